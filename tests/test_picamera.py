"""The picamera2 source against a fake with picamera2's API (there is no camera here)."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from homesec.camera import make_camera
from homesec.camera.base import CameraError
from homesec.camera.picam import PicameraCamera
from homesec.capture.daemon import Daemon
from homesec.capture.status import read_status
from tests.conftest import wait_for


def test_lores_y_plane_feeds_detection_and_main_is_lazy(fake_picamera2: type) -> None:
    cam = PicameraCamera(width=1280, height=720, lores_width=320, lores_height=240, fps=20)
    cam.open()
    (fake,) = fake_picamera2.instances
    assert fake.config["lores"] == {"format": "YUV420", "size": (320, 240)}
    assert fake.config["main"]["size"] == (1280, 720)
    assert fake.config["controls"]["FrameRate"] == 20.0
    frame = cam.read()
    assert frame.luma.shape == (240, 320) and frame.luma.dtype == np.uint8
    # The luma is the Y plane itself, no conversion: same values as the fake's YUV rows.
    req = cam._request
    assert np.array_equal(frame.luma, req.make_array("lores")[:240, :320])
    colour = frame.color()
    assert colour.shape == (720, 1280, 3)
    # Reading on releases the previous request: a camera with 4 buffers keeps running.
    for _ in range(20):
        cam.read()
    assert fake.outstanding == 1
    cam.close()
    assert fake.closed and fake.outstanding == 0


def test_missing_picamera2_is_a_clear_camera_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # makes the import fail
    with pytest.raises(CameraError, match="python3-picamera2"):
        PicameraCamera().open()


def test_daemon_on_picamera2_records_events_and_recovers(fake_picamera2: type, make_config
                                                         ) -> None:
    cfg = make_config(camera={"source": "picamera2", "fps": 30, "width": 640, "height": 480,
                              "reconnect_max_s": 0.5, "frame_timeout_s": 1.0})
    fake_picamera2.fail_after = 240  # the camera times out after 8 s (someone crosses at 5 s)
    stop = threading.Event()
    daemon = Daemon(cfg, camera=make_camera(cfg.camera), stop=stop)
    t = threading.Thread(target=daemon.run)
    t.start()
    try:
        wait_for(lambda: len(fake_picamera2.instances) >= 2 and
                 fake_picamera2.instances[0].closed, what="the camera to be reopened")
        fake_picamera2.fail_after = None
        wait_for(lambda: (s := read_status(cfg.paths.runtime_dir)) and s["camera_ok"]
                 and s["camera_reopens"] >= 1, what="frames again after the reopen")
    finally:
        stop.set()
        t.join(10)
    from homesec.storage.store import Store

    events = Store(cfg.paths.db_path).events()
    assert events, "the person crossing at 5 s was not recorded"


def test_padded_lores_rows_are_cropped(fake_picamera2: type) -> None:
    cam = PicameraCamera(width=640, height=480, lores_width=300, lores_height=200, fps=30)
    cam.open()
    frame = cam.read()
    raw = cam._request.make_array("lores")
    assert raw.shape == (300, 320)  # 200 * 3 / 2 rows, stride 320 for 300 pixels
    assert frame.luma.shape == (200, 300)
    assert np.array_equal(frame.luma, raw[:200, :300])
    cam.close()



def test_clips_on_picamera2_use_its_encoder_circular_output_and_pyav_output(
        fake_picamera2: type, make_config) -> None:
    """The Pi path: H264Encoder on the main stream (I-frame every second, SPS/PPS repeated),
    CircularOutput2 holding the pre-roll, one PyavOutput per clip, renamed when complete."""
    import av

    from homesec.storage.clips import clips_of
    from homesec.storage.store import Store

    sys.modules.pop("picamera2.outputs", None)
    sys.modules.pop("picamera2.encoders", None)
    from picamera2.outputs import CircularOutput2

    CircularOutput2.instances.clear()
    cfg = make_config(camera={"source": "picamera2", "fps": 10, "width": 320, "height": 240},
                      events={"post_motion_s": 1.0}, clips={"pre_roll_s": 2.0})
    stop = threading.Event()
    daemon = Daemon(cfg, camera=make_camera(cfg.camera), stop=stop)
    t = threading.Thread(target=daemon.run)
    t.start()
    try:
        store = Store(cfg.paths.db_path)
        wait_for(lambda: (evs := store.events()) and clips_of(store, evs[-1].id), timeout=30,
                 what="a clip of the person crossing at 5 s")
    finally:
        stop.set()
        t.join(15)
    (circ,) = CircularOutput2.instances
    assert circ.buffer_duration_ms == 2000 and circ.opened >= 1
    enc = daemon.clips.encoder
    assert enc.iperiod == 10 and enc.repeat is True and enc.bitrate > 0
    assert enc.width == 320 and enc.height == 240
    ev = store.events()[-1]
    (clip,) = clips_of(store, ev.id)
    path = cfg.paths.media / clip.path
    assert path.suffix == ".mp4" and not list(path.parent.glob("*.part"))
    with av.open(str(path)) as c:
        frames = [f for f in c.decode(video=0)]
    assert len(frames) == clip.frames > 0
    # Pre-roll + event (5 s .. 9 s) + post-motion, give or take one I-frame period.
    expected = 2.0 + (ev.end_ts - ev.start_ts) + 1.0
    assert expected - 1.2 <= clip.duration_s <= expected + 1.2, (clip.duration_s, expected)
