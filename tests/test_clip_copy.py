"""Clips from a file or network camera that sends H.264: the camera's own packets, not
re-encoded; other codecs and `clips.copy_h264 = false` still encode (capture/clip_copy.py)."""

from __future__ import annotations

import itertools
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from homesec.camera.demo import DemoScene
from homesec.capture.daemon import Daemon
from homesec.capture.recording import PART_SUFFIX, EncodedPacket, PacketRing
from homesec.config import Config
from homesec.storage.clips import clips_of
from homesec.storage.store import Store
from tests.conftest import DEV_CLIPS, homesec_cmd, wait_for, write_config

W, H, FPS = 640, 360, 15


def scene_file(path: Path, seconds: float, codec: list[str]) -> Path:
    """The demo scene (a person crosses from 5 s to 9 s) encoded with `codec` by ffmpeg."""
    scene = DemoScene(W, H, 320, seed=3)
    enc = subprocess.Popen(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s",
         f"{W}x{H}", "-r", str(FPS), "-i", "-", *codec, str(path)], stdin=subprocess.PIPE)
    assert enc.stdin is not None
    for i in range(round(seconds * FPS)):
        enc.stdin.write(scene.color(i / FPS).tobytes())
    enc.stdin.close()
    assert enc.wait() == 0
    return path


# What an IP camera's main stream is like: High profile with B-frames (decoding order differs
# from presentation order), a keyframe every second.
H264_BFRAMES = ["-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", str(FPS),
                "-pix_fmt", "yuv420p"]


@pytest.fixture(scope="module")
def h264_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scene_file(tmp_path_factory.mktemp("src") / "cam.mp4", 14.0, H264_BFRAMES)


def file_config(make_config, device: Path, **sections) -> Config:
    return make_config(camera={"source": "opencv", "device": str(device), "fps": FPS,
                               "width": W, "height": H, **sections.pop("camera", {})},
                       clips={"pre_roll_s": 2.0, **sections.pop("clips", {})},
                       events={"post_motion_s": 2.0}, **sections)


def run_to_one_clip(cfg: Config, encoder: str) -> tuple[Any, Any, Path]:
    """The daemon on the file to its end; it made one event with one clip, with `encoder`
    (status.json's name: "copy (h264)" or "libx264"). Returns (event, clip, path)."""
    daemon = Daemon(cfg)
    daemon.run()  # the file ends: the daemon stops
    assert daemon.status()["clips"]["encoder"] == encoder
    store = Store(cfg.paths.db_path)
    (ev,) = store.events()
    (clip,) = clips_of(store, ev.id)
    return ev, clip, cfg.paths.media / clip.path


def packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(video=0) if p.size]


def decoded(path: Path) -> list[av.VideoFrame]:
    """Every frame (PyAV raises on a damaged file)."""
    with av.open(str(path)) as c:
        return list(c.decode(video=0))


class PacketTimes:
    """A packet tap (the clip recorder's side of PyAVCamera.packet_tap) that keeps each
    packet's presentation time, in the order the source hands them over."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def opened(self, stream: object) -> None:
        pass

    def packet(self, data: bytes, keyframe: bool, mono_s: float, wall_s: float,
               dts_mono: float) -> None:
        self.times.append(mono_s)


def is_run_of(part: list[bytes], whole: list[bytes]) -> bool:
    """`part` is a contiguous run of `whole`."""
    n = len(part)
    return any(whole[i:i + n] == part for i in range(len(whole) - n + 1))


def test_h264_clip_is_the_cameras_own_video_with_pre_roll(make_config, h264_file: Path) -> None:
    cfg = file_config(make_config, h264_file)
    ev, clip, path = run_to_one_clip(cfg, "copy (h264)")
    # Not re-encoded: the clip's packets are the camera's, byte for byte, in the same order.
    mine = packets(path)
    assert len(mine) > 4 * FPS
    assert is_run_of(mine, packets(h264_file)), "the clip's video is not the camera's own"
    frames = decoded(path)
    assert len(frames) == clip.frames == len(mine) and clip.dropped_frames == 0
    assert (frames[0].width, frames[0].height) == (W, H)
    # Shown in the right order (B-frames): presentation times strictly increase.
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in itertools.pairwise(pts)), pts[:20]
    # Pre-roll before the event, the event and its post-motion time all in the clip.
    assert ev.start_ts - clip.start_ts >= cfg.clips.pre_roll_s - 0.01
    assert ev.start_ts - clip.start_ts <= cfg.clips.pre_roll_s + 1.0 + 0.01  # GOP of 1 s
    assert clip.end_ts >= ev.end_ts - 0.1
    duration = float(frames[-1].pts * frames[-1].time_base - frames[0].pts * frames[0].time_base)
    assert abs(duration - clip.duration_s) <= 2.0 / FPS
    # The first frame is the empty room, a frame 2 s into the event shows the person.
    scene = DemoScene(W, H, 320, seed=3)
    bg = scene.background.astype(np.float32)
    first = frames[0].to_ndarray(format="bgr24").astype(np.float32)
    mid_i = round((ev.start_ts - clip.start_ts + 2.0) * FPS)
    mid = frames[mid_i].to_ndarray(format="bgr24").astype(np.float32)
    assert np.abs(first - bg).mean() < 6 < np.abs(mid - bg).mean() + 3
    assert np.abs(mid - bg).mean() > np.abs(first - bg).mean() + 1


def test_a_clip_across_the_files_loop_stays_playable(make_config, tmp_path: Path) -> None:
    """The file ends while the person is in view (8 s) and starts again: timestamps of the
    copied packets go on from the last loop, so the clip spanning the restart plays through."""
    src = scene_file(tmp_path / "short.mp4", 8.0, H264_BFRAMES)
    stop = threading.Event()
    cfg = file_config(make_config, src, camera={"loop": True})
    daemon = Daemon(cfg, stop=stop)
    t = threading.Thread(target=daemon.run)
    t.start()
    try:
        wait_for(lambda: daemon.frames >= 12 * FPS, timeout=120, what="12 s of the looped file")
    finally:
        stop.set()
        t.join(30)
    assert daemon.status()["clips"]["encoder"] == "copy (h264)"
    store = Store(cfg.paths.db_path)
    ev = min(store.events(), key=lambda e: e.start_ts)  # the crossing cut by the loop
    (clip,) = clips_of(store, ev.id)
    assert is_run_of(packets(cfg.paths.media / clip.path), packets(src) * 2)
    frames = decoded(cfg.paths.media / clip.path)
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in itertools.pairwise(pts))
    assert clip.end_ts - clip.start_ts > (8.0 - 5.0) + cfg.events.post_motion_s - 0.5, \
        "the clip stopped at the file's end instead of going on across the restart"
    assert len(frames) == clip.frames


def test_a_camera_that_sends_another_codec_gets_encoded_clips(make_config,
                                                             tmp_path: Path) -> None:
    src = scene_file(tmp_path / "cam.mkv", 12.0, ["-c:v", "mpeg4", "-q:v", "4"])
    cfg = file_config(make_config, src)
    ev, clip, path = run_to_one_clip(cfg, "libx264")
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
    frames = decoded(path)
    assert len(frames) == clip.frames > 4 * FPS
    assert ev.start_ts - clip.start_ts >= cfg.clips.pre_roll_s - 0.01


@pytest.mark.parametrize("clips", [{"copy_h264": False}, {"width": 320}],
                         ids=["copy-off", "other-width"])
def test_copy_off_or_another_width_re_encodes(make_config, h264_file: Path, clips) -> None:
    cfg = file_config(make_config, h264_file, clips=clips)
    _ev, _clip, path = run_to_one_clip(cfg, "libx264")
    mine = packets(path)
    assert not is_run_of(mine[:5], packets(h264_file))
    frames = decoded(path)
    assert frames[0].width == clips.get("width", W)


def _pkt(t: float, key: bool, size: int = 1000) -> EncodedPacket:
    return EncodedPacket(b"\0" * size, key, t, 1_700_000_000.0 + t)


def test_the_pre_roll_ring_stays_bounded_whatever_the_camera_sends() -> None:
    """A long GOP at a high bit rate keeps at most max_bytes; a stream that never sends another
    keyframe empties the ring instead of growing it (the daemon's memory is the limit)."""
    ring = PacketRing(3.0, max_bytes=100_000)
    for i in range(1000):  # a keyframe every 10 s at 25 fps, 1 kB packets: 250 kB per GOP
        ring.append(_pkt(i / 25, i % 250 == 0))
        assert ring.bytes <= 100_000
    ring = PacketRing(3.0, max_bytes=100_000)
    ring.append(_pkt(0.0, True))
    for i in range(1, 5000):  # one keyframe, then P-frames for ever
        ring.append(_pkt(i / 25, False))
        assert ring.bytes <= 100_000
    assert ring.since(100.0) == [] and len(ring) == 0
    ring.append(_pkt(200.0, True))  # the next keyframe starts it again
    assert len(ring.since(200.0)) == 1


def test_the_pre_roll_ring_starts_at_the_keyframe_before_the_pre_roll() -> None:
    ring = PacketRing(3.0)
    for i in range(10 * 25):  # 10 s at 25 fps, a keyframe every second
        ring.append(_pkt(i / 25, i % 25 == 0))
    assert ring.since(9.99 - 3.0)[0].mono_s == 6.0  # the keyframe at or before 6.99 s
    assert ring.since(0.0)[0].mono_s == 6.0  # older than the ring: its oldest keyframe
    assert all(p.mono_s >= 6.0 for p in ring.since(7.5))
    assert ring.since(7.5)[0].keyframe and ring.since(7.5)[0].mono_s == 7.0


def test_a_stalled_clip_thread_drops_packets_up_to_a_keyframe_never_blocks_or_grows(
        make_config, h264_file: Path) -> None:
    """A live camera (real time) never waits for the clip thread: with the thread stalled, the
    waiting packets stay within the queue's bounds, the rest are dropped and counted, and what
    is kept after a drop starts at a keyframe."""
    from homesec.capture import clip_copy
    from homesec.capture.recording import ClipIndex

    cfg = file_config(make_config, h264_file, camera={"realtime": True})
    rec = clip_copy.CopyingClipRecorder(cfg, ClipIndex(cfg))  # its thread not started: stalled
    with av.open(str(h264_file)) as c:
        rec.opened(c.streams.video[0])
        big = [(bytes(p) * 50, p.is_keyframe) for p in c.demux(video=0) if p.size]
    for i, (data, key) in enumerate(big):  # packets 50x their size: the byte bound is hit first
        rec.packet(data, key, i / FPS, 1_700_000_000.0 + i / FPS, i / FPS)
    assert rec._queued_bytes <= clip_copy.QUEUE_BYTES
    assert rec.stats()["dropped_packets"] > 0
    queued = [v for k, _gen, v in list(rec.items.queue) if k == "packet"]
    assert queued and queued[0].keyframe
    assert sum(len(p.data) for p in queued) == rec._queued_bytes


def test_a_live_camera_of_another_codec_never_waits_for_a_stalled_encoder(
        make_config, tmp_path: Path) -> None:
    """Frames of a live (real-time) camera that is not copied queue two deep for the encoder;
    with the encoder stalled the rest are dropped and counted, and submit() returns at once."""
    from homesec.camera.pyav_source import PyAVCamera
    from homesec.capture import clip_copy
    from homesec.capture.recording import ClipIndex

    src = scene_file(tmp_path / "cam.mkv", 2.0, ["-c:v", "mpeg4", "-q:v", "4"])
    cfg = file_config(make_config, src, camera={"realtime": True})
    rec = clip_copy.CopyingClipRecorder(cfg, ClipIndex(cfg))  # its thread not started: stalled
    cam = PyAVCamera(str(src), FPS)
    cam.packet_tap = rec
    cam.open()
    for _ in range(20):
        rec.submit(cam.read())
    cam.close()
    assert not rec.copying and rec.stats()["encoder"] == "libx264"
    assert rec.stats()["frames"] == 2 and rec.stats()["dropped_frames"] == 18


def test_a_reopen_in_another_format_is_never_lost_to_a_full_queue(make_config, tmp_path: Path,
                                                                  h264_file: Path) -> None:
    """The camera comes back as another stream while the clip thread is behind and its queue
    full: the switch still reaches the thread (no packet of the new stream is muxed with the old
    one's parameters), and the new stream's clips are made right."""
    from homesec.capture import clip_copy
    from homesec.capture.recording import ClipIndex

    other = scene_file(tmp_path / "other.mp4", 3.0, ["-c:v", "libx264", "-preset", "ultrafast",
                                                      "-g", str(FPS), "-pix_fmt", "yuv420p"])
    cfg = file_config(make_config, h264_file, camera={"realtime": True})
    rec = clip_copy.CopyingClipRecorder(cfg, ClipIndex(cfg))
    with av.open(str(h264_file)) as a, av.open(str(other)) as b:
        rec.opened(a.streams.video[0])
        first = [(bytes(p), p.is_keyframe) for p in a.demux(video=0) if p.size]
        for i, (data, key) in enumerate(first * 2):  # fills the queue
            rec.packet(data, key, i / FPS, 1e9 + i / FPS, i / FPS)
        assert rec.items.full()
        rec.opened(b.streams.video[0])  # the queue is still full
        assert rec._sources, "the switch was dropped with the queue full"
        rec.start()  # the thread catches up
        t0 = 100.0
        for i, p in enumerate(p for p in b.demux(video=0) if p.size):
            rec.packet(bytes(p), p.is_keyframe, t0 + i / FPS, 1e9 + t0 + i / FPS, t0 + i / FPS)
        wait_for(lambda: rec.items.empty() and not rec._sources, timeout=10,
                 what="the clip thread to take the switch")
    assert rec.sink.template is not None
    ring = rec.sink.ring.since(0.0)
    assert ring and all(p.mono_s >= t0 for p in ring), "old stream's packets kept after the switch"
    rec.stop()


def ffprobe_duration(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of",
                          "csv=p=0", str(path)], capture_output=True, text=True, check=True)
    return float(out.stdout)


@pytest.mark.skipif(not (DEV_CLIPS / "beweging-walking-to.h264").exists(), reason="no dev clip")
def test_a_raw_h264_file_without_timestamps_gives_clips_that_play_every_frame(
        make_config) -> None:
    """A raw .h264 file (what a Pi camera or a DVR export writes) has no timestamps and its
    stream claims a frame rate of 1200000: every copied frame must still play, the last one
    included (it was cut by the MP4's edit list: the packets had no duration)."""
    src = DEV_CLIPS / "beweging-walking-to.h264"
    cfg = make_config(camera={"source": "opencv", "device": str(src), "fps": 25, "width": 640,
                              "height": 480},
                      clips={"pre_roll_s": 2.0}, events={"post_motion_s": 2.0})
    daemon = Daemon(cfg)
    daemon.run()
    assert daemon.status()["clips"]["encoder"] == "copy (h264)"
    store = Store(cfg.paths.db_path)
    clips = [c for ev in store.events() for c in clips_of(store, ev.id)]
    assert clips
    for clip in clips:
        path = cfg.paths.media / clip.path
        frames = decoded(path)
        assert len(frames) == clip.frames, "a copied frame does not play"
        pts = [f.pts for f in frames]
        assert all(b > a for a, b in itertools.pairwise(pts))
        # Shown at the file's 25 fps: the player's duration is the frames' count / 25.
        assert abs(ffprobe_duration(path) - clip.frames / 25) <= 1.5 / 25
        assert abs(clip.duration_s - clip.frames / 25) <= 1.5 / 25
    # status.json tells what the clips are: the camera's 25 fps copied (not clips.fps, which
    # does not apply), and the frames taken so far.
    status = daemon.status()["clips"]
    assert status["fps"] == 25 and cfg.clips.fps != 25
    assert status["frames"] >= sum(c.frames for c in clips)
    assert status["dropped_frames"] == 0


@pytest.mark.parametrize("suffix", [".h264", ".avi"])
def test_a_raw_h264_file_with_b_frames_gives_clips_shown_in_order(make_config, tmp_path: Path,
                                                                  suffix: str) -> None:
    """A raw .h264 stream has no timestamps: with B-frames (decoding order is not the order
    shown) the presentation time of its packets is unknown; copied, each frame got the time of
    its place in decoding order, so the times of the frames shown went back and forth (players
    drop or stutter them). Such a clip is encoded instead. The same for AVI, which stores no
    presentation times (FFmpeg guesses them as decoding time + 2 ticks)."""
    src = scene_file(tmp_path / f"cam{suffix}", 14.0, H264_BFRAMES)
    cfg = file_config(make_config, src)
    daemon = Daemon(cfg)
    daemon.run()
    store = Store(cfg.paths.db_path)
    (ev,) = store.events()
    (clip,) = clips_of(store, ev.id)
    frames = decoded(cfg.paths.media / clip.path)
    assert len(frames) == clip.frames > 4 * FPS
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in itertools.pairwise(pts)), f"times go back: {pts[:12]}"
    assert abs(ffprobe_duration(cfg.paths.media / clip.path) - clip.duration_s) <= 2.0 / FPS


def test_an_h264_avi_file_gives_clips_at_its_own_speed_with_pre_roll(make_config,
                                                                     tmp_path: Path) -> None:
    """An AVI of H.264 (what `ffmpeg -c copy` makes of an MP4, and some recorders export) has
    a time base of 1/30 for 15 fps and claims an average rate of 30: the copied packets were
    timed at half speed, so the clip ran twice as long as its frames and started after the
    event instead of before it."""
    mp4 = scene_file(tmp_path / "cam.mp4", 14.0, ["-c:v", "libx264", "-preset", "veryfast",
                                                   "-bf", "0", "-g", str(FPS), "-pix_fmt",
                                                   "yuv420p"])
    src = tmp_path / "cam.avi"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(mp4), "-c", "copy",
                    str(src)], check=True)
    cfg = file_config(make_config, src)
    ev, clip, path = run_to_one_clip(cfg, "copy (h264)")
    frames = decoded(path)
    assert len(frames) == clip.frames > 4 * FPS
    assert abs(ffprobe_duration(path) - clip.frames / FPS) <= 1.5 / FPS, "not at 15 fps"
    assert abs(clip.duration_s - clip.frames / FPS) <= 1.5 / FPS
    assert ev.start_ts - clip.start_ts >= cfg.clips.pre_roll_s - 0.01
    assert ev.start_ts - clip.start_ts <= cfg.clips.pre_roll_s + 1.0 + 0.01
    assert clip.end_ts >= ev.end_ts - 0.1


class TSCamera:
    """An IP camera on loopback: H.264 in MPEG-TS over HTTP, sent in real time by ffmpeg (-re);
    each connection starts the recording again (the stream's clock restarts); `cut()` drops the
    connection in progress, as a camera that reboots or a Wi-Fi that drops."""

    def __init__(self, src: Path, *options: str) -> None:
        self.connections = 0
        self._procs: list[subprocess.Popen[bytes]] = []
        cam = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                cam.connections += 1
                proc = subprocess.Popen(["ffmpeg", "-loglevel", "error", "-re", "-i", str(src),
                                         "-c", "copy", *options, "-f", "mpegts", "pipe:1"],
                                        stdout=subprocess.PIPE)
                cam._procs.append(proc)
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.end_headers()
                assert proc.stdout is not None
                try:
                    while chunk := proc.stdout.read1(65536):
                        self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    proc.kill()
                    proc.wait()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/cam.ts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def cut(self) -> None:
        for proc in self._procs:
            proc.kill()

    def close(self) -> None:
        self.cut()
        self.server.shutdown()
        self.server.server_close()


def test_a_network_camera_that_reconnects_during_an_event_gives_a_clip_that_plays(
        make_config, h264_file: Path) -> None:
    """The camera's stream drops while the person is in view and comes back from the start of
    its clock: the copied clip goes on across the reconnect, every frame plays, times go on."""
    cam = TSCamera(h264_file)
    stop = threading.Event()
    cfg = make_config(camera={"source": "opencv", "device": cam.url, "fps": FPS, "width": W,
                              "height": H, "realtime": True, "reconnect_max_s": 0.5},
                      clips={"pre_roll_s": 2.0}, events={"post_motion_s": 2.0})
    daemon = Daemon(cfg, stop=stop)
    t = threading.Thread(target=daemon.run)
    t.start()
    try:
        wait_for(lambda: daemon.tracker.current is not None, timeout=30, what="the event")
        wait_for(lambda: daemon.frames >= 7 * FPS, timeout=30, what="the person in view")
        assert daemon.status()["clips"]["encoder"] == "copy (h264)"
        cam.cut()
        wait_for(lambda: cam.connections >= 2, timeout=30, what="the reconnect")
        wait_for(lambda: daemon.clips.index.registered >= 1, timeout=60, what="the clip")
    finally:
        stop.set()
        t.join(30)
        cam.close()
    store = Store(cfg.paths.db_path)
    ev = min(store.events(), key=lambda e: e.start_ts)
    clips = clips_of(store, ev.id)
    assert clips
    for clip in clips:
        path = cfg.paths.media / clip.path
        frames = decoded(path)
        assert len(frames) == clip.frames
        pts = [f.pts for f in frames]
        assert all(b > a for a, b in itertools.pairwise(pts))
        # The burst after the reconnect plays at the camera's pace (up to its length longer).
        assert clip.duration_s - 0.5 <= ffprobe_duration(path) <= clip.duration_s + 2.0
    # The pre-roll is there: the packets are timed like the frames the detector saw.
    assert ev.start_ts - clips[0].start_ts >= cfg.clips.pre_roll_s - 0.01
    assert clips[-1].end_ts >= ev.end_ts - 0.2


def test_a_network_cameras_packets_are_timed_like_its_frames(h264_file: Path) -> None:
    """A stream's first seconds arrive in a burst (FFmpeg probes it; many cameras send their
    last GOP at once): the packets, timed by the stream's clock from the first one, ran ahead of
    the frames, timed when decoded, by that burst (1.2 s here) for the whole session: a clip then
    lost its pre-roll (the ring's horizon is the newest packet) and the end of its event."""
    from homesec.camera.pyav_source import PyAVCamera

    mp4 = h264_file.with_name("nob.mp4")
    if not mp4.exists():
        scene_file(mp4, 14.0, ["-c:v", "libx264", "-preset", "veryfast", "-g", str(FPS),
                               "-pix_fmt", "yuv420p"])
    cam = TSCamera(mp4)
    tap = PacketTimes()
    times = tap.times
    src = PyAVCamera(cam.url, FPS)
    src.packet_tap = tap
    try:
        src.open()
        frames = [src.read().mono_s for _ in range(6 * FPS)]  # no B-frames: packet i = frame i
    finally:
        src.close()
        cam.close()
    late = [round(times[i] - frames[i], 2) for i in range(len(frames))]
    # A few frames of decoder delay at most (the burst itself is decoded in a burst).
    assert max(abs(d) for d in late[2 * FPS:]) <= 0.3, late


def test_sigterm_while_a_copied_clip_is_written_finishes_and_lists_it(
        tmp_path: Path, h264_file: Path) -> None:
    """`systemctl stop` during an event: the copied clip in progress is finished (playable,
    not a .part) and gets its row before the daemon exits."""
    cfg_path = write_config(tmp_path, camera={"source": "opencv", "device": str(h264_file),
                                              "fps": FPS, "width": W, "height": H,
                                              "realtime": True, "loop": True},
                            clips={"pre_roll_s": 2.0})
    media = tmp_path / "state" / "media"
    proc = subprocess.Popen(homesec_cmd("run", "--config", str(cfg_path)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: list(media.glob(f"*/*{PART_SUFFIX}")), timeout=30,
                 what="a clip being written")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert not list(media.glob(f"*/*{PART_SUFFIX}"))
    store = Store(tmp_path / "state" / "homesec.db")
    clips = [c for ev in store.events() for c in clips_of(store, ev.id)]
    assert clips, err[-2000:]
    for clip in clips:
        frames = decoded(media / clip.path)
        assert len(frames) == clip.frames > 0


def test_packets_dropped_inside_a_copied_clip_are_counted_on_its_row(
        make_config, h264_file: Path) -> None:
    """The disk stalls during an event: the packets the full queue dropped are a gap in that
    clip, and its row (the web UI's "dropped frames") says how many, as for encoded clips."""
    from homesec.capture import clip_copy
    from homesec.capture.events import Event
    from homesec.capture.recording import ClipFile, ClipIndex

    cfg = file_config(make_config, h264_file, camera={"realtime": True})
    rec = clip_copy.CopyingClipRecorder(cfg, ClipIndex(cfg))  # the clip index is not started:
    # the finished clip stays in its queue for the test to read
    with av.open(str(h264_file)) as c:
        rec.opened(c.streams.video[0])
        pkts = [(bytes(p), p.is_keyframe) for p in c.demux(video=0) if p.size]
    ev = Event(start_frame=0, start_mono=0.0, start_wall=1e9, end_frame=0, end_mono=0.0,
               end_wall=1e9)
    rec.event_started(ev)
    feed = pkts * 3
    t = 0
    for data, key in feed[:2 * len(pkts)]:  # the clips thread stalls: the queue fills, drops
        rec.packet(data, key, t / FPS, 1e9 + t / FPS, t / FPS)
        t += 1
    dropped = rec.packets_dropped
    assert dropped > 0
    threading.Thread.start(rec)  # the thread catches up (without the index thread)
    wait_for(rec.items.empty, timeout=30, what="the queue to drain")
    for data, key in feed[2 * len(pkts):]:
        rec.packet(data, key, t / FPS, 1e9 + t / FPS, t / FPS)
        t += 1
    rec.event_ended(ev, t / FPS)
    rec.items.put(None)
    rec.join(30)
    clip = rec.index.q.get(timeout=1)
    assert isinstance(clip, ClipFile)
    assert clip.dropped == dropped == rec.packets_dropped
    assert clip.frames + clip.dropped == len(feed)


def test_a_long_event_from_a_camera_with_a_long_gop_splits_within_max_s(
        make_config, tmp_path: Path) -> None:
    """A camera with a keyframe every 4 s (common on IP cameras): a part can only start at a
    keyframe, so a long event's parts were split at the first keyframe past max_s - 0.5 s,
    up to 3.5 s longer than clips.max_s. They are now split at the last keyframe that keeps
    them within it, and each part plays on its own."""
    from homesec.capture.events import Event
    from homesec.capture.recording import ClipSink

    src = scene_file(tmp_path / "cam.mp4", 30.0, ["-c:v", "libx264", "-preset", "ultrafast",
                                                   "-g", str(4 * FPS), "-keyint_min",
                                                   str(4 * FPS), "-sc_threshold", "0",
                                                   "-pix_fmt", "yuv420p"])
    media = tmp_path / "media"
    done: list = []
    sink = ClipSink(media, pre_roll_s=2.0, max_s=10.0, fps=FPS, on_clip=done.append)
    ev = Event(start_frame=0, start_mono=5.0, start_wall=1e9 + 5.0, end_frame=0, end_mono=5.0,
               end_wall=1e9 + 5.0)
    with av.open(str(src)) as c:
        sink.use_template(c.streams.video[0])
        for i, p in enumerate(p for p in c.demux(video=0) if p.size):
            if i == 5 * FPS:
                sink.begin(ev)
            sink.packet(EncodedPacket(bytes(p), p.is_keyframe, i / FPS, 1e9 + i / FPS))
        sink.end(ev, 29.0)
        sink.close()
    assert len(done) >= 3
    for clip in done:
        assert clip.end_wall - clip.start_wall <= 10.0 + 1e-6, (clip.rel, clip.end_wall -
                                                                 clip.start_wall)
        assert len(decoded(media / clip.rel)) == clip.frames
    assert done[-1].end_wall >= 1e9 + 29.0


@pytest.mark.skipif(not (DEV_CLIPS / "beweging-walking-to.h264").exists(), reason="no dev clip")
def test_a_looped_raw_h264_file_gives_clips_that_play(make_config) -> None:
    """A raw .h264 file looped: no timestamps, so the packets are timed by their place in the
    stream, going on across each restart; the clips of every loop play at 25 fps."""
    src = DEV_CLIPS / "beweging-walking-to.h264"
    stop = threading.Event()
    cfg = make_config(camera={"source": "opencv", "device": str(src), "fps": 25, "width": 640,
                              "height": 480, "loop": True},
                      clips={"pre_roll_s": 2.0}, events={"post_motion_s": 2.0})
    daemon = Daemon(cfg, stop=stop)
    t = threading.Thread(target=daemon.run)
    t.start()
    try:
        wait_for(lambda: daemon.frames >= 479 + 10 * 25, timeout=120, what="the loop")
    finally:
        stop.set()
        t.join(30)
    store = Store(cfg.paths.db_path)
    clips = [c for ev in store.events() for c in clips_of(store, ev.id)]
    assert len(store.events()) >= 2 and len(clips) >= 2  # the walker again in the next loop
    for clip in clips:
        path = cfg.paths.media / clip.path
        frames = decoded(path)
        assert len(frames) == clip.frames
        pts = [f.pts for f in frames]
        assert all(b > a for a, b in itertools.pairwise(pts))
        assert abs(ffprobe_duration(path) - clip.frames / 25) <= 1.5 / 25


def test_the_pre_roll_reaches_back_from_the_events_start_though_packets_run_ahead(
        make_config, tmp_path: Path) -> None:
    """The clips thread hears of an event when it is confirmed (confirm_s after its first
    motion frame), and a copied camera's packets run ahead of its decoded frames (the decoder's
    frame threads and B-frames: 0.3 s here). The ring kept pre_roll_s behind its newest packet,
    so a clip could begin after "start minus pre-roll" (1.4 s of pre-roll for 2 s asked, one in
    three runs on a live camera)."""
    from homesec.capture import clip_copy
    from homesec.capture.events import Event
    from homesec.capture.recording import ClipFile, ClipIndex

    src = scene_file(tmp_path / "cam.mp4", 14.0, ["-c:v", "libx264", "-preset", "ultrafast",
                                                   "-g", str(FPS), "-pix_fmt", "yuv420p"])
    cfg = file_config(make_config, src, camera={"realtime": True})
    rec = clip_copy.CopyingClipRecorder(cfg, ClipIndex(cfg))  # the index is not started
    threading.Thread.start(rec)
    ev_start = 9.9  # keyframes every second: 7.0 is the one before 9.9 - 2.0
    confirmed_at = ev_start + cfg.events.confirm_s + 0.3  # the newest packet then
    ev = Event(start_frame=0, start_mono=ev_start, start_wall=1e9 + ev_start, end_frame=0,
               end_mono=ev_start, end_wall=1e9 + ev_start)
    with av.open(str(src)) as c:
        rec.opened(c.streams.video[0])
        pkts = [(bytes(p), p.is_keyframe) for p in c.demux(video=0) if p.size]
    for i, (data, key) in enumerate(pkts):
        t = i / FPS
        if t > confirmed_at and ev is not None:
            wait_for(rec.items.empty, what="the clips thread to catch up")
            rec.event_started(ev)
            rec.event_ended(ev, 12.0)
            ev = None
        rec.packet(data, key, t, 1e9 + t, t)
    rec.items.put(None)
    rec.join(30)
    clip = rec.index.q.get(timeout=1)
    assert isinstance(clip, ClipFile)
    assert clip.start_wall <= 1e9 + ev_start - cfg.clips.pre_roll_s, clip.start_wall - 1e9


def test_the_live_view_and_snapshots_still_work_on_a_copied_source(make_config,
                                                                   h264_file: Path) -> None:
    """Copying skips the colour conversion of clip frames, not of the frames that need it: the
    event's snapshot shows the person and the live view is published while a viewer watches."""
    import cv2

    from homesec.capture.live import LIVE_NAME, WANTED_NAME

    cfg = file_config(make_config, h264_file, camera={"realtime": True})
    cfg.paths.runtime_dir.mkdir(parents=True, exist_ok=True)
    (cfg.paths.runtime_dir / WANTED_NAME).touch()  # a viewer has the live page open
    daemon = Daemon(cfg)
    daemon.run()
    assert daemon.status()["clips"]["encoder"] == "copy (h264)"
    live = cv2.imread(str(cfg.paths.runtime_dir / LIVE_NAME))
    assert live is not None and live.shape[1] == W
    store = Store(cfg.paths.db_path)
    (ev,) = store.events()
    assert ev.snapshot
    snap = cv2.imread(str(cfg.paths.media / ev.snapshot))
    assert snap is not None and snap.shape[:2] == (H, W)
    bg = DemoScene(W, H, 320, seed=3).background.astype(np.float32)

    def changed(img: np.ndarray) -> float:  # share of pixels far from the empty room
        return float((np.abs(img.astype(np.float32) - bg).sum(axis=2) > 90).mean())

    empty = decoded(h264_file)[0].to_ndarray(format="bgr24")
    assert changed(empty) < 0.01 < 0.04 < changed(snap), "the snapshot shows an empty room"


def test_status_gives_the_copied_streams_own_size(make_config, h264_file: Path) -> None:
    """camera.width/height are what the owner expects; a copied clip has the camera's real size,
    and status.json says that one (it said the configured size)."""
    cfg = file_config(make_config, h264_file, camera={"width": 1280, "height": 720})
    daemon = Daemon(cfg)
    daemon.run()
    status = daemon.status()["clips"]
    assert status["encoder"] == "copy (h264)"
    store = Store(cfg.paths.db_path)
    (ev,) = store.events()
    (clip,) = clips_of(store, ev.id)
    frame = decoded(cfg.paths.media / clip.path)[0]
    assert status["size"] == [frame.width, frame.height] == [W, H]


def test_sigkill_while_a_copied_clip_is_written_lists_no_broken_clip(
        tmp_path: Path, h264_file: Path) -> None:
    """A power cut during a copied clip: the half-written file is never listed, and the next
    start removes it."""
    cfg_path = write_config(tmp_path, camera={"source": "opencv", "device": str(h264_file),
                                              "fps": FPS, "width": W, "height": H,
                                              "realtime": True, "loop": True},
                            clips={"pre_roll_s": 2.0})
    media = tmp_path / "state" / "media"

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(homesec_cmd("run", "--config", str(cfg_path)),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)

    proc = start()
    try:
        parts = wait_for(lambda: list(media.glob(f"*/*{PART_SUFFIX}")), timeout=30,
                         what="a clip being written")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert all(p.exists() for p in parts)
    proc = start()
    try:
        wait_for(lambda: not any(p.exists() for p in parts), timeout=20,
                 what="the half-written clip to be removed at start")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    store = Store(tmp_path / "state" / "homesec.db")
    for ev in store.events():
        for clip in clips_of(store, ev.id):
            assert not clip.path.endswith(PART_SUFFIX)
            assert len(decoded(media / clip.path)) == clip.frames > 0


@pytest.mark.parametrize("device", ["http://127.0.0.1:9/cam.ts", "rtsp://127.0.0.1:9/live",
                                    "/dev/video0"])
def test_a_live_camera_never_waits_for_the_clip_thread_even_with_realtime_off(
        make_config, h264_file: Path, device: str) -> None:
    """`camera.realtime = false` paces nothing for a live camera: its frames and packets are
    dropped (and counted) when the clip thread is behind, never waited for (a stalled disk must
    not stall detection)."""
    from homesec.camera.demo import DemoCamera
    from homesec.capture import clip_copy
    from homesec.capture.recording import ClipIndex, PyavClipRecorder

    cfg = make_config(camera={"source": "opencv", "device": device, "realtime": False,
                              "fps": FPS, "width": W, "height": H})
    cam = DemoCamera(W, H, 320, FPS, 1, False)
    cam.open()
    frames = [cam.read() for _ in range(4)]
    t0 = time.monotonic()
    enc = PyavClipRecorder(cfg, ClipIndex(cfg))  # threads not started: a clip thread that stalls
    for f in frames:
        enc.submit(f)
    assert enc.stats()["frames"] == 2 and enc.stats()["dropped_frames"] == 2
    rec = clip_copy.CopyingClipRecorder(cfg, ClipIndex(cfg))
    with av.open(str(h264_file)) as c:
        rec.opened(c.streams.video[0])
        pk = [(bytes(p), p.is_keyframe) for p in c.demux(video=0) if p.size]
    for i, (data, key) in enumerate((pk * 2)[:clip_copy.QUEUE_PACKETS + 4]):
        rec.packet(data, key, i / FPS, 1e9 + i / FPS, i / FPS)
    assert rec.stats()["dropped_packets"] > 0
    assert time.monotonic() - t0 < 5.0, "the capture thread waited for the clip thread"


def test_a_clip_from_the_start_of_an_mkv_file_shows_its_first_gop_in_order(make_config,
                                                                            tmp_path: Path) -> None:
    """Matroska stores no decoding times; FFmpeg infers them from the B-frame order, but only
    after the first packets (as many as the B-frame delay). Timed by their presentation times
    instead, those packets went back in decoding order and the clip's first GOP was shown out
    of order. Here the pre-roll reaches back to the file's first frame."""
    src = scene_file(tmp_path / "cam.mkv", 14.0, H264_BFRAMES)
    cfg = file_config(make_config, src, clips={"pre_roll_s": 8.0})
    _ev, clip, path = run_to_one_clip(cfg, "copy (h264)")
    mine, theirs = packets(path), packets(src)
    assert mine[:3] == theirs[:3] and is_run_of(mine, theirs), "not copied from the file's start"
    frames = decoded(path)
    assert len(frames) == clip.frames == len(mine)
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in itertools.pairwise(pts)), f"times go back: {pts[:12]}"
    # Shown in order: the frames match the file's own, decoded, frame by frame.
    with av.open(str(src)) as c:
        want = [f.to_ndarray(format="gray")
                for f in itertools.islice(c.decode(video=0), 12)]
    got = [f.to_ndarray(format="gray") for f in frames[:12]]
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        assert np.array_equal(a, b), f"frame {i} of the clip is not the file's frame {i}"
