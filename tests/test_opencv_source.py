"""The OpenCV source: files (looped or not) and a real HTTP MJPEG camera that drops out."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from homesec.camera.base import CameraError, EndOfStream
from homesec.camera.opencv_source import OpenCVCamera
from homesec.capture.daemon import Daemon
from homesec.capture.status import read_status
from tests.conftest import wait_for


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "ten.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (160, 120))
    for i in range(10):
        writer.write(np.full((120, 160, 3), 20 * i, np.uint8))
    writer.release()
    return path


def test_file_ends_unless_looped(clip: Path) -> None:
    cam = OpenCVCamera(str(clip), fps=10.0)
    cam.open()
    frames = [cam.read() for _ in range(10)]
    with pytest.raises(EndOfStream):
        cam.read()
    assert frames[3].luma.shape == (120, 160) and frames[3].color().shape == (120, 160, 3)
    assert frames[9].mono_s - frames[0].mono_s == pytest.approx(0.9)

    looped = OpenCVCamera(str(clip), fps=10.0, loop=True)
    looped.open()
    lumas = [looped.read().luma for _ in range(25)]
    # After the tenth frame the file starts again: frame 10 looks like frame 0.
    assert abs(int(lumas[10].mean()) - int(lumas[0].mean())) <= 2
    assert abs(int(lumas[12].mean()) - int(lumas[2].mean())) <= 2


def test_unopenable_device_is_a_camera_error(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="cannot open"):
        OpenCVCamera("http://127.0.0.1:9/none.mjpg").open()


class MJPEGCamera:
    """A network camera on loopback: multipart JPEG over HTTP; can be switched off and on."""

    def __init__(self) -> None:
        self.up = threading.Event()
        self.up.set()
        self.frames_sent = 0
        img = np.zeros((240, 320, 3), np.uint8)
        cv2.putText(img, "cam", (100, 120), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
        self.jpeg = cv2.imencode(".jpg", img)[1].tobytes()
        cam = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if not cam.up.is_set():
                    self.send_error(503, "camera off")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while cam.up.is_set():
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                         + str(len(cam.jpeg)).encode() + b"\r\n\r\n" + cam.jpeg
                                         + b"\r\n")
                        cam.frames_sent += 1
                        time.sleep(1 / 30)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/stream.mjpg"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.up.clear()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def netcam() -> Iterator[MJPEGCamera]:
    cam = MJPEGCamera()
    yield cam
    cam.close()


def test_network_camera_that_drops_out_comes_back(netcam: MJPEGCamera, make_config) -> None:
    cfg = make_config(camera={"source": "opencv", "device": netcam.url, "reconnect_max_s": 0.5})
    stop = threading.Event()
    daemon = Daemon(cfg, stop=stop)
    t = threading.Thread(target=daemon.run)
    t.start()
    try:
        wait_for(lambda: (s := read_status(cfg.paths.runtime_dir)) and s["frames"] > 10,
                 what="frames from the network camera")
        netcam.up.clear()  # the camera goes away: stream ends, reconnects get 503
        lost = wait_for(lambda: (s := read_status(cfg.paths.runtime_dir)) and
                        s["camera_lost_since"] and s, what="camera lost")
        assert lost["camera_ok"] is False
        frames_then = lost["frames"]
        netcam.up.set()
        back = wait_for(lambda: (s := read_status(cfg.paths.runtime_dir)) and s["camera_ok"]
                        and s["frames"] > frames_then + 10 and s, timeout=20, what="camera back")
        assert back["camera_reopens"] >= 1 and back["camera_lost_since"] is None
        assert t.is_alive()
    finally:
        stop.set()
        t.join(10)


def test_camera_password_never_shown(make_config, caplog: pytest.LogCaptureFixture) -> None:
    """A camera URL carries its password; it must not reach the log, the status the web UI
    shows, or the config summary (check-config, start-up log)."""
    from homesec.config import summary

    secret = "s3cr@t-pw"
    url = f"http://admin:{secret}@127.0.0.1:9/stream.mjpg"  # port 9: connection refused
    cfg = make_config(camera={"source": "opencv", "device": url, "reconnect_max_s": 0.5})
    assert secret not in summary(cfg) and "admin:***@127.0.0.1:9" in summary(cfg)
    stop = threading.Event()
    t = threading.Thread(target=Daemon(cfg, stop=stop).run)
    caplog.set_level("DEBUG")
    t.start()
    try:
        lost = wait_for(lambda: (s := read_status(cfg.paths.runtime_dir)) and
                        s["camera_lost_since"] and s, what="camera lost")
    finally:
        stop.set()
        t.join(10)
    assert "cannot open" in lost["camera_error"] and "127.0.0.1:9" in lost["camera_error"]
    assert secret not in (cfg.paths.runtime_dir / "status.json").read_text()
    assert "camera lost" in caplog.text and secret not in caplog.text
    assert "s3cr" not in caplog.text  # not even the part before an '@' in the password
