"""The Pi camera as picamera2 really behaves (issue 15), against the faithful fake.

The fake (tests/fakes/picamera2) blocks where picamera2 blocks, keeps the camera acquired where
picamera2 does, rounds and adjusts sizes, drops frames for a slow consumer and stamps frames with
sensor timestamps; the first tests check the fake itself against those behaviours, the rest what
homesec does with them.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import CancelledError
from pathlib import Path

import numpy as np
import pytest

from homesec.camera import CameraHung, make_camera
from homesec.camera.base import CameraError
from homesec.camera.picam import PicameraCamera, import_error_message
from homesec.capture.daemon import Daemon
from homesec.capture.status import read_status
from homesec.config import ConfigError, parse
from tests.conftest import REPO, config_dict, wait_for, write_config

FAKES = Path(__file__).parent / "fakes"


# ---- the fake behaves like picamera2 --------------------------------------------------------


def _started(cls: type, fps: float = 30.0, buffer_count: int = 4) -> object:
    cam = cls(0)
    cfg = cam.create_video_configuration(main={"size": (640, 480), "format": "RGB888"},
                                         lores={"size": (320, 240), "format": "YUV420"},
                                         controls={"FrameRate": fps}, buffer_count=buffer_count)
    cam.configure(cfg)
    cam.start()
    return cam


def test_fake_capture_blocks_on_a_stall_and_times_out_only_when_asked(fake_picamera2: type
                                                                      ) -> None:
    fake_picamera2.stall_after = 3
    cam = _started(fake_picamera2)
    for _ in range(3):
        cam.capture_request(wait=2.0).release()
    with pytest.raises(TimeoutError):
        cam.capture_request(wait=0.3)  # no exception from the camera itself, only our deadline
    # Without a wait the call would block for good: it is still waiting after the stall.
    got: list[object] = []

    def capture() -> None:
        try:
            got.append(cam.capture_request())
        except CancelledError as exc:
            got.append(exc)

    t = threading.Thread(target=capture, daemon=True)
    t.start()
    t.join(0.3)
    assert t.is_alive() and not got
    cam.cancel_all_and_flush()  # the stuck jobs get CancelledError; stop() can run
    t.join(2)
    assert not t.is_alive() and isinstance(got[0], CancelledError)
    cam.close()
    assert cam.closed


def test_fake_acquires_until_close_release_twice_raises_held_requests_stall(
        fake_picamera2: type) -> None:
    cam = _started(fake_picamera2)
    with pytest.raises(RuntimeError, match="did not complete"):
        fake_picamera2(0)  # busy: the first object holds the camera
    held = [cam.capture_request(wait=2.0) for _ in range(4)]  # all 4 buffers with us
    with pytest.raises(TimeoutError):
        cam.capture_request(wait=0.5)
    cam.cancel_all_and_flush()  # else the timed-out job stays queued and takes the next frame
    held[0].release()
    with pytest.raises(RuntimeError, match="negative ref_count"):
        held[0].release()
    cam.capture_request(wait=2.0).release()  # a buffer came back: frames flow again
    for r in held[1:]:
        r.release()
    cam.close()
    fake_picamera2(0).close()  # free again after close
    fake_picamera2.cameras = 0
    with pytest.raises(IndexError):
        fake_picamera2(0)


def test_fake_configure_rounds_checks_and_writes_back(fake_picamera2: type) -> None:
    cam = fake_picamera2(0)
    cfg = cam.create_video_configuration(main={"size": (641, 481), "format": "RGB888"},
                                         lores={"size": (301, 201), "format": "YUV420"})
    assert cfg["lores"]["size"] == (300, 200) and cfg["main"]["size"] == (640, 480)
    cam.configure(cfg)
    assert cfg["lores"]["stride"] == 320  # written into the dict we passed
    assert cam.camera_configuration()["lores"]["framesize"] == 320 * 300
    too_big = cam.create_video_configuration(main={"size": (320, 240)},
                                             lores={"size": (640, 480)})
    with pytest.raises(RuntimeError, match="lores stream dimensions may not exceed"):
        cam.configure(too_big)
    cam.close()


# ---- homesec's picamera2 source ---------------------------------------------------------------


def test_stalled_camera_is_detected_reopened_and_frames_resume(fake_picamera2: type,
                                                              make_config) -> None:
    cfg = make_config(camera={"source": "picamera2", "fps": 30, "width": 640, "height": 480,
                              "reconnect_max_s": 0.5, "frame_timeout_s": 0.5})
    fake_picamera2.stall_after = 45  # the sensor stops after 1.5 s; picamera2 raises nothing
    stop = threading.Event()
    daemon = Daemon(cfg, camera=make_camera(cfg.camera), stop=stop)
    t = threading.Thread(target=daemon.run)
    t.start()
    try:
        lost = wait_for(lambda: (s := read_status(cfg.paths.runtime_dir)) and
                        s["camera_lost_since"] and s, what="camera lost")
        assert lost["camera_ok"] is False and "no frame for 0.5 s" in lost["camera_error"]
        first = fake_picamera2.instances[0]
        # Closed for real (cancel_all_and_flush, then stop), so the camera is free to reopen.
        wait_for(lambda: first.closed, what="the stalled camera to be closed")
        frames_then = lost["frames"]
        fake_picamera2.stall_after = None
        back = wait_for(lambda: (s := read_status(cfg.paths.runtime_dir)) and s["camera_ok"]
                        and s["frames"] > frames_then + 10 and s, timeout=15,
                        what="frames after the reopen")
        assert back["camera_reopens"] >= 1 and back["camera_lost_since"] is None
        assert len(fake_picamera2.instances) >= 2 and t.is_alive()
    finally:
        stop.set()
        t.join(10)
    assert not t.is_alive()


@pytest.mark.parametrize("failure", [
    ("fail_start", RuntimeError("Failed to start camera: Device or resource busy")),
    ("fail_configure", OSError(errno.ENOMEM, "Cannot allocate memory")),
])
def test_failed_start_releases_the_camera_and_the_next_open_works(
        fake_picamera2: type, failure: tuple[str, Exception]) -> None:
    knob, exc = failure
    getattr(fake_picamera2, knob).append(exc)
    cam = PicameraCamera(width=640, height=480, lores_width=320, lores_height=240, fps=30)
    with pytest.raises(CameraError, match="cannot start the Pi camera"):
        cam.open()
    assert fake_picamera2.instances[0].closed  # not left acquired until the process exits
    cam.open()  # same process, no restart
    assert cam.read().luma.shape == (240, 320)
    cam.close()


def test_dma_heap_permission_error_names_the_fix_and_acquires_nothing(fake_picamera2: type
                                                                      ) -> None:
    fake_picamera2.dma_heap_error = PermissionError(
        errno.EACCES, "Permission denied", "/dev/dma_heap/vidbuf_cached")
    cam = PicameraCamera()
    with pytest.raises(CameraError) as err:
        cam.open()
    assert "/dev/dma_heap" in str(err.value) and "'video'" in str(err.value)
    assert "DeviceAllow=char-dma_heap" in str(err.value)
    assert fake_picamera2._acquired == set()  # made before the camera was acquired
    fake_picamera2.dma_heap_error = None
    cam.open()
    cam.close()


def test_no_camera_and_busy_camera_are_clear_errors(fake_picamera2: type) -> None:
    other = fake_picamera2(0)  # someone else holds the camera
    with pytest.raises(CameraError, match="another program"):
        PicameraCamera().open()
    other.close()
    fake_picamera2.cameras = 0
    with pytest.raises(CameraError, match="no Pi camera found"):
        PicameraCamera().open()


def test_missing_module_names_its_apt_package() -> None:
    exc = ModuleNotFoundError("No module named 'pykms'", name="pykms")
    assert "sudo apt install python3-kms++" in import_error_message(exc)
    assert "python3-picamera2" in import_error_message(
        ModuleNotFoundError("No module named 'picamera2'", name="picamera2"))


def test_request_released_when_make_array_raises(fake_picamera2: type) -> None:
    cam = PicameraCamera(width=640, height=480, lores_width=320, lores_height=240, fps=30)
    cam.open()
    cam.read()
    fake = fake_picamera2.instances[0]
    fake_picamera2.make_array_error = RuntimeError("failed to find buffer in DmaSync")
    for _ in range(6):  # more than the 4 buffers: a leak would stall the camera
        with pytest.raises(CameraError, match="cannot read the frame"):
            cam.read()
    assert fake.outstanding == 0
    fake_picamera2.make_array_error = None
    assert cam.read().luma.shape == (240, 320)
    cam.close()


def test_sizes_come_from_the_configuration_picamera2_made(fake_picamera2: type) -> None:
    # Odd lores size: picamera2 rounds down to 300x200; no padding column reaches detection.
    cam = PicameraCamera(width=640, height=480, lores_width=301, lores_height=201, fps=30)
    cam.open()
    frame = cam.read()
    raw = cam._request.make_array("lores")
    assert frame.luma.shape == (200, 300)
    assert np.array_equal(frame.luma, raw[:200, :300])
    assert (raw[:200, 300:] == 128).all()  # what an unrounded crop would have let in
    cam.close()
    # libcamera adjusted the streams: main to 632x474 (box scale), lores to 288x216.
    fake_picamera2.adjust = {"main": (632, 474), "lores": (288, 216)}
    cam = PicameraCamera(width=640, height=480, lores_width=320, lores_height=240, fps=30)
    cam.open()
    frame = cam.read()
    assert frame.luma.shape == (216, 288) and frame.size == (632, 474)
    assert frame.color().shape == (474, 632, 3)
    cam.close()


def test_check_config_refuses_lores_larger_than_main(tmp_path: Path) -> None:
    data = config_dict(tmp_path, camera={"source": "picamera2", "width": 640, "height": 480,
                                         "lores_width": 800, "lores_height": 240})
    with pytest.raises(ConfigError, match=r"lores_width x lores_height .*must not exceed"):
        parse(data)
    path = write_config(tmp_path, camera={"source": "picamera2", "width": 320, "height": 240,
                                          "lores_width": 320, "lores_height": 480})
    out = subprocess.run([sys.executable, "-m", "homesec", "check-config", str(path)],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode != 0 and "must not exceed" in out.stderr + out.stdout


def test_slow_consumer_sees_lost_frames_counted_and_sensor_timestamps(fake_picamera2: type
                                                                      ) -> None:
    cam = PicameraCamera(width=640, height=480, lores_width=320, lores_height=240, fps=30)
    cam.open()
    fake = fake_picamera2.instances[0]
    first = cam.read()
    md = cam._request.get_metadata()
    assert first.mono_s == md["SensorTimestamp"] / 1e9  # the sensor's time, not ours
    assert cam.frames_lost == 0
    produced = fake.frames
    wait_for(lambda: fake.frames >= produced + 6, what="the camera to run ahead")
    asked_at = time.monotonic()
    late = cam.read()  # picamera2 kept only the newest: the frames in between are gone
    assert late.mono_s < asked_at  # completed before we asked for it
    assert cam.frames_lost >= 5 and cam.frames_lost == fake.lost_frames
    assert late.mono_s - first.mono_s == pytest.approx((cam.frames_lost + 1) / 30, abs=1e-6)
    assert abs(late.wall_s - (time.time() - (time.monotonic() - late.mono_s))) < 0.05
    cam.close()


def test_daemon_reports_frames_lost_in_status(fake_picamera2: type, make_config) -> None:
    cfg = make_config(camera={"source": "picamera2", "fps": 30, "width": 640, "height": 480})
    camera = make_camera(cfg.camera)
    stop = threading.Event()
    daemon = Daemon(cfg, camera=camera, stop=stop)
    t = threading.Thread(target=daemon.run)
    t.start()
    try:
        wait_for(lambda: (s := read_status(cfg.paths.runtime_dir)) and s["frames"] > 5,
                 what="frames")
        camera.frames_lost += 7  # as a slow loop would have found in the timestamps
        wait_for(lambda: (s := read_status(cfg.paths.runtime_dir)) and s["frames_lost"] >= 7,
                 what="frames lost in the status")
    finally:
        stop.set()
        t.join(10)


def test_camera_that_cannot_be_closed_makes_the_supervisor_give_up(fake_picamera2: type,
                                                                   make_config) -> None:
    cfg = make_config(camera={"source": "picamera2", "fps": 30, "width": 640, "height": 480,
                              "reconnect_max_s": 0.5, "frame_timeout_s": 0.5})
    fake_picamera2.stall_after = 10
    fake_picamera2.stop_hangs = threading.Event()  # libcamera's stop never returns
    camera = PicameraCamera(640, 480, 320, 240, 30, frame_timeout_s=0.5, close_timeout_s=0.5)
    daemon = Daemon(cfg, camera=camera, stop=threading.Event())
    t = threading.Thread(target=daemon.run)
    t.start()
    t.join(20)
    assert not t.is_alive(), "the daemon hung on a camera that cannot be closed"
    assert daemon.supervisor.hung and camera.hung
    assert "restarting the process" in (read_status(cfg.paths.runtime_dir) or {})["camera_error"]
    camera.close()  # a no-op now: never blocks again
    with pytest.raises(CameraHung):
        raise CameraHung("type is importable")


def test_homesec_run_exits_for_a_restart_when_the_camera_hangs(tmp_path: Path) -> None:
    """The real `homesec run` process: the camera stalls, stop() never returns; the process must
    end with exit status 75 (systemd's Restart=always then starts a fresh one), not hang."""
    path = write_config(tmp_path, camera={"source": "picamera2", "fps": 30, "width": 640,
                                          "height": 480, "realtime": True,
                                          "frame_timeout_s": 0.5, "reconnect_max_s": 0.5})
    script = (
        f"import sys, threading; sys.path.insert(0, {str(FAKES)!r})\n"
        "import picamera2\n"
        "picamera2.Picamera2.stall_after = 20\n"
        "picamera2.Picamera2.stop_hangs = threading.Event()\n"
        "from homesec.cli import main\n"
        f"sys.exit(main(['run', '--config', {str(path)!r}]))\n")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=REPO, env=env, timeout=60)
    assert out.returncode == 75, out.stderr[-2000:]
    assert "camera hung" in out.stderr
