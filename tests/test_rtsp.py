"""IP cameras over RTSP, against a real RTSP server (GStreamer's gst-rtsp-server, run by the
system python3: tests/rtsp_server.py) sending an H.264 recording of the demo scene at its own
pace: detection and copied clips, a camera that restarts, credentials in the URL, TCP and UDP.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from homesec.camera.demo import DemoScene
from homesec.capture.daemon import Daemon
from homesec.capture.status import STATUS_NAME
from homesec.config import Config
from homesec.storage.clips import clips_of
from homesec.storage.store import Store
from homesec.web import accounts, create_app
from tests.conftest import REPO, homesec_cmd, wait_for, write_config
from tests.test_clip_copy import FPS, H264_BFRAMES, H, PacketTimes, W, decoded, ffprobe_duration, scene_file
from tests.web.conftest import PASSWORD, Browser, free_port

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = REPO / "tests" / "rtsp_server.py"
APT = ("gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-good "
       "gstreamer1.0-plugins-bad")


def _server_missing() -> str | None:
    """Why the RTSP server cannot run here (said, not skipped silently), or None."""
    if not os.path.exists(SYSTEM_PYTHON):
        return f"{SYSTEM_PYTHON} not found"
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
         "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
         "assert Gst.ElementFactory.find('rtph264pay') and Gst.ElementFactory.find('h264parse')"],
        capture_output=True, text=True)
    return None if probe.returncode == 0 else f"apt-get install {APT}: {probe.stderr[-300:]}"


@pytest.fixture(scope="module", autouse=True)
def _rtsp_server_available() -> None:
    missing = _server_missing()
    if missing:  # CI installs these (.ci/run): a missing server is a failure, with the fix
        pytest.fail(f"the RTSP test server cannot run: {missing}")


class RTSPCamera:
    """A real RTSP camera on a loopback port: `kill()` is a camera that loses power, `start()`
    the same camera back on the same address (its stream starts again at the recording's
    start, as a camera's clock does)."""

    def __init__(self, src: Path, protocols: str = "both", user: str | None = None,
                 password: str | None = None, auth: str = "basic") -> None:
        self.src, self.protocols = src, protocols
        self.user, self.password, self.auth = user, password, auth
        self.port = free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.start()

    def url(self, credentials: str | None = None) -> str:
        auth = f"{credentials}@" if credentials else ""
        return f"rtsp://{auth}127.0.0.1:{self.port}/cam"

    def start(self) -> None:
        args = [SYSTEM_PYTHON, str(SERVER), "--port", str(self.port), "--file", str(self.src),
                "--protocols", self.protocols]
        if self.user:
            args += ["--user", self.user, "--password", self.password or "", "--auth", self.auth]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "ready" once it listens (or EOF if it failed)
        if line.strip() != "ready":
            self.proc.kill()
            raise AssertionError(f"RTSP server did not start: {self.proc.communicate()[1]}")

    def freeze(self) -> None:
        """A camera that hangs: its connections stay open, nothing is sent."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)

    def close(self) -> None:
        self.kill()


@pytest.fixture(scope="module")
def cam_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo scene (a person walks through from 5 s to 9 s) as an IP camera's main stream:
    H.264 High with B-frames, a keyframe a second."""
    return scene_file(tmp_path_factory.mktemp("rtsp") / "cam.mp4", 14.0, H264_BFRAMES)


@pytest.fixture
def camera(cam_file: Path, request: pytest.FixtureRequest) -> Iterator[RTSPCamera]:
    cam = RTSPCamera(cam_file, **getattr(request, "param", {}))
    yield cam
    cam.close()


def rtsp_config(make_config, url: str, **camera: Any) -> Config:
    return make_config(camera={"source": "opencv", "device": url, "fps": FPS, "width": W,
                               "height": H, "realtime": True, "reconnect_max_s": 0.5, **camera},
                       clips={"pre_roll_s": 2.0}, events={"post_motion_s": 2.0})


class Running:
    """The daemon in a thread, stopped (events and clips finished) on exit."""

    def __init__(self, cfg: Config) -> None:
        self.stop = threading.Event()
        self.daemon = Daemon(cfg, stop=self.stop)
        self.thread = threading.Thread(target=self.daemon.run)

    def __enter__(self) -> Daemon:
        self.thread.start()
        return self.daemon

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the daemon did not stop"


def nal_slices(data: bytes) -> list[bytes]:
    """The coded slices (NAL types 1 and 5) of an H.264 packet, Annex B or length-prefixed:
    what the camera's encoder made. Parameter sets and delimiters are left out: RTP carries
    them differently (rtph264pay repeats SPS/PPS before keyframes) from an MP4 file."""
    if data.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")):
        units = [u.rstrip(b"\x00") for u in data.replace(b"\x00\x00\x00\x01", b"\x00\x00\x01")
                 .split(b"\x00\x00\x01") if u]
    else:
        units, i = [], 0
        while i + 4 <= len(data):
            n = int.from_bytes(data[i:i + 4], "big")
            units.append(data[i + 4:i + 4 + n])
            i += 4 + n
    return [u for u in units if u and u[0] & 0x1F in (1, 5)]


def slices_of(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [s for p in c.demux(video=0) if p.size for s in nal_slices(bytes(p))]


def is_run_of(part: list[bytes], whole: list[bytes]) -> bool:
    n = len(part)
    return n > 0 and any(whole[i:i + n] == part for i in range(len(whole) - n + 1))


def assert_clips_play(cfg: Config, store: Store, event_id: int) -> list[Any]:
    """Every clip of the event decodes to its listed frames, shown in order, at its length."""
    clips = clips_of(store, event_id)
    assert clips, f"event {event_id} has no clip"
    for clip in clips:
        path = cfg.paths.media / clip.path
        frames = decoded(path)
        assert len(frames) == clip.frames > 0
        pts = [f.pts for f in frames]
        back = [(i, a, b) for i, (a, b) in enumerate(itertools.pairwise(pts)) if b <= a]
        assert not back, f"frames shown out of order (index, pts, next pts): {back}"
        assert clip.duration_s - 0.5 <= ffprobe_duration(path) <= clip.duration_s + 2.0
    return clips


@pytest.mark.parametrize("camera", [{"protocols": "tcp"}], indirect=True)
def test_an_rtsp_camera_gives_an_event_and_a_clip_of_its_own_packets(
        make_config, camera: RTSPCamera, cam_file: Path) -> None:
    """The camera accepts RTSP over TCP only (as the default asks): the person walking through
    is an event, and its clip is the camera's own H.264, not re-encoded, with its pre-roll."""
    cfg = rtsp_config(make_config, camera.url())
    with Running(cfg) as daemon:
        wait_for(lambda: daemon.tracker.current is not None, timeout=30, what="the event")
        assert daemon.status()["camera_ok"] is True
        assert daemon.status()["clips"]["encoder"] == "copy (h264)"
        wait_for(lambda: daemon.clips.index.registered >= 1, timeout=30, what="the clip")
    store = Store(cfg.paths.db_path)
    ev = min(store.events(), key=lambda e: e.start_ts)
    assert ev.end_ts is not None and not ev.interrupted
    snap = cv2.imread(str(cfg.paths.media / ev.snapshot)) if ev.snapshot else None
    assert snap is not None and snap.shape == (H, W, 3), "no snapshot of the camera's picture"
    (clip,) = assert_clips_play(cfg, store, ev.id)
    path = cfg.paths.media / clip.path
    mine = slices_of(path)
    assert len(mine) > 4 * FPS
    assert is_run_of(mine, slices_of(cam_file)), "the clip's video is not the camera's own"
    assert ev.start_ts - clip.start_ts >= cfg.clips.pre_roll_s - 0.01
    assert clip.end_ts >= ev.end_ts - 0.2
    # The clip starts on the empty room and shows the person 2 s into the event.
    frames = decoded(path)
    assert (frames[0].width, frames[0].height) == (W, H)
    bg = DemoScene(W, H, 320, seed=3).background.astype(np.float32)
    first = frames[0].to_ndarray(format="bgr24").astype(np.float32)
    mid = frames[min(len(frames) - 1, round((ev.start_ts - clip.start_ts + 2.0) * FPS))]
    mid_diff = np.abs(mid.to_ndarray(format="bgr24").astype(np.float32) - bg).mean()
    assert np.abs(first - bg).mean() + 1 < mid_diff


def test_a_camera_that_restarts_is_reconnected_and_still_detects(
        make_config, camera: RTSPCamera) -> None:
    """The camera loses power while the person is in view and comes back on the same address:
    status says the camera is lost, then back; the person walking through again is a second
    event; every clip plays."""
    cfg = rtsp_config(make_config, camera.url())
    with Running(cfg) as daemon:
        wait_for(lambda: daemon.tracker.current is not None, timeout=30, what="the event")
        camera.kill()
        lost = wait_for(lambda: (s := daemon.status())["camera_ok"] is False and s, timeout=15,
                        what="status to say the camera is lost")
        assert lost["camera_lost_since"] and lost["camera_error"]
        camera.start()
        back = wait_for(lambda: (s := daemon.status())["camera_ok"] and s, timeout=20,
                        what="status to say the camera is back")
        assert back["camera_reopens"] >= 1 and back["camera_error"] is None
        store = Store(cfg.paths.db_path)
        first_id = min(e.id for e in store.events())
        wait_for(lambda: any(e.id != first_id for e in store.events()), timeout=30,
                 what="an event after the reconnect")
        wait_for(lambda: daemon.tracker.current is None and daemon.clips.index.registered >= 2,
                 timeout=30, what="the second event's clip")
    events = sorted(store.events(), key=lambda e: e.start_ts)
    assert len(events) >= 2
    for ev in events:
        assert_clips_play(cfg, store, ev.id)


def test_the_first_packets_of_an_rtsp_session_keep_the_cameras_frame_spacing(
        camera: RTSPCamera) -> None:
    """FFmpeg gives the first packet of an RTSP session (a keyframe) no timestamp: it was timed
    "now", and the next packet, anchoring the stream's clock, "now" as well, so the keyframe and
    the frame 0.2 s after it (B-frames between) shared a time, and the B-frames came before the
    keyframe: a clip going on across a camera's restart showed its frames out of order."""
    from homesec.camera.pyav_source import PyAVCamera

    tap = PacketTimes()
    times = tap.times
    src = PyAVCamera(camera.url(), FPS)
    src.packet_tap = tap
    try:
        for _ in (1, 2):  # the first session, then a reconnect
            src.open()
            start = len(times)
            while len(times) < start + 2 * FPS:
                src.read()
            gop = sorted(times[start:start + FPS])  # the first second: one GOP
            steps = [round(b - a, 3) for a, b in itertools.pairwise(gop)]
            assert times[start] == gop[0], "a frame is shown before the keyframe"
            assert all(abs(s - 1 / FPS) < 0.01 for s in steps), steps
    finally:
        src.close()


SECRET = "s3cr:t@Pw"  # ':' and '@' as passwords hold them (percent-encoded in the URL)
SECRET_IN_URL = "s3cr%3At%40Pw"


def test_a_url_with_a_percent_encoded_password_is_a_network_camera(make_config) -> None:
    """A '%' in the device named an image sequence ('frame%04d.png'): a camera URL whose password
    was percent-encoded (as ':' '@' '/' must be) went to OpenCV as a *file* (it ended instead of
    reconnecting), and OpenCV's image-sequence reader printed the whole URL to the journal."""
    from homesec.camera import make_camera
    from homesec.camera.pyav_source import PyAVCamera

    for decoder in ("pyav", "opencv"):
        cam = make_camera(rtsp_config(make_config, f"rtsp://admin:{SECRET_IN_URL}@10.0.0.9/cam",
                                      decoder=decoder).camera)
        assert cam.file is False, decoder  # type: ignore[attr-defined]
        assert isinstance(cam, PyAVCamera) == (decoder == "pyav")


@pytest.mark.parametrize(("camera", "decoder"), [
    ({"user": "admin", "password": SECRET}, "pyav"),
    ({"user": "admin", "password": SECRET, "auth": "digest"}, "pyav"),
    ({"user": "admin", "password": SECRET}, "opencv"),
], indirect=["camera"], ids=["basic-pyav", "digest-pyav", "basic-opencv"])
def test_the_cameras_password_never_shows_in_logs_status_or_the_web(
        tmp_path: Path, camera: RTSPCamera, decoder: str) -> None:
    """The real `homesec run`, its URL carrying the camera's password: first a camera that is
    off (the error names the address), then on. Neither the daemon's output (the journal, with
    FFmpeg's and OpenCV's own lines), status.json, nor the web UI's status show the password."""
    camera.kill()
    url = camera.url(f"admin:{SECRET_IN_URL}")
    cfg_path = write_config(tmp_path, camera={"source": "opencv", "device": url, "fps": FPS,
                                              "width": W, "height": H, "realtime": True,
                                              "reconnect_max_s": 0.5, "decoder": decoder},
                            events={"post_motion_s": 1.0})
    status_file = tmp_path / "run" / STATUS_NAME
    log_path = tmp_path / "daemon.log"
    seen: list[str] = []

    def status_text() -> str:
        try:
            text = status_file.read_text()
        except FileNotFoundError:
            return ""
        seen.append(text)
        return text

    with log_path.open("w") as log:
        proc = subprocess.Popen(homesec_cmd("run", "--config", str(cfg_path)), stdout=log,
                                stderr=subprocess.STDOUT, text=True)
    try:
        lost = wait_for(lambda: (t := status_text()) and json.loads(t)["camera_error"],
                        timeout=20, what="status.json to report the camera off")
        assert "admin:***@127.0.0.1" in lost
        web = web_status(cfg_path)
        camera.start()
        wait_for(lambda: (t := status_text()) and json.loads(t)["camera_ok"]
                 and json.loads(t)["frames"] > 2 * FPS, timeout=30, what="frames from the camera")
        web += web_status(cfg_path)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    with pytest.raises(av.error.HTTPUnauthorizedError):  # the camera does check the password
        av.open(camera.url("admin:wrong"), options={"rtsp_transport": "tcp"}, timeout=10).close()
    logged = log_path.read_text()
    assert "camera lost" in logged and "admin:***@" in logged, logged[-2000:]
    for where, text in [("the daemon's output", logged), ("status.json", "".join(seen)),
                        ("the web status", web)]:
        for form in (SECRET, SECRET_IN_URL):
            assert form not in text, f"the camera's password is in {where}"


def web_status(cfg_path: Path) -> str:
    """What the web UI shows a logged-in owner: the home page and the status API."""
    from homesec.config import load

    cfg = load(cfg_path)
    store = Store(cfg.paths.db_path)
    if accounts.password_hash(store) is None:
        accounts.set_password(store, PASSWORD)
    store.close()
    browser = Browser(create_app(cfg).test_client())
    assert browser.login().status_code == 302
    api = browser.api("GET", "/status")
    assert api.status_code == 200
    home = browser.c.get("/")
    assert home.status_code == 200
    return api.get_data(as_text=True) + home.get_data(as_text=True)


@pytest.mark.parametrize("decoder", ["pyav", "opencv"])
@pytest.mark.parametrize("camera", [{"protocols": "udp"}], indirect=True)
def test_a_camera_that_speaks_rtsp_over_udp_only_works_when_configured(
        make_config, camera: RTSPCamera, decoder: str) -> None:
    """TCP is the default (reliable through NAT and Wi-Fi, what most NVRs use); a camera that
    refuses it gives no frames (with PyAV, an error that names the setting), and
    `rtsp_transport = "udp"` works, with either decoder."""
    cfg = rtsp_config(make_config, camera.url(), decoder=decoder)
    with Running(cfg) as daemon:
        err = wait_for(lambda: daemon.status()["camera_error"], timeout=20,
                       what="the camera error")
        if decoder == "pyav":
            assert 'camera.rtsp_transport = "udp"' in err, err
        assert daemon.frames == 0
    cfg = rtsp_config(make_config, camera.url(), rtsp_transport="udp", decoder=decoder)
    with Running(cfg) as daemon:
        wait_for(lambda: daemon.frames >= 2 * FPS, timeout=20, what="frames over UDP")
        st = daemon.status()
        assert st["camera_ok"] is True and st["camera_error"] is None


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_a_camera_that_hangs_is_noticed_and_reconnected(make_config, camera: RTSPCamera,
                                                        transport: str) -> None:
    """A camera that freezes (or a Wi-Fi that drops) closes nothing: the connection stays open
    and no packet comes. The read timeout says the camera is lost; once the camera is back
    (restarted on the same address) the daemon reconnects and frames flow again."""
    from homesec.camera.pyav_source import READ_TIMEOUT_S

    cfg = rtsp_config(make_config, camera.url(), rtsp_transport=transport)
    with Running(cfg) as daemon:
        wait_for(lambda: daemon.frames >= FPS, timeout=20, what="frames")
        camera.freeze()
        wait_for(lambda: daemon.status()["camera_ok"] is False, timeout=READ_TIMEOUT_S + 10,
                 what="status to say the camera is lost")
        camera.kill()
        camera.start()
        frames = daemon.frames
        wait_for(lambda: daemon.status()["camera_ok"] and daemon.frames > frames + FPS,
                 timeout=30, what="frames again after the camera came back")
        assert daemon.status()["camera_reopens"] >= 1


def test_rtsp_transport_is_checked_and_reaches_the_source(make_config) -> None:
    from homesec.camera import make_camera
    from homesec.config import ConfigError, parse

    cam = make_camera(rtsp_config(make_config, "rtsp://127.0.0.1:9/cam",
                                  rtsp_transport="udp").camera)
    assert getattr(cam, "rtsp_transport", None) == "udp"
    assert make_camera(rtsp_config(make_config, "rtsp://127.0.0.1:9/cam").camera
                       ).rtsp_transport == "tcp"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="rtsp_transport"):
        parse({"camera": {"source": "opencv", "device": "rtsp://h/", "rtsp_transport": "http"}})
