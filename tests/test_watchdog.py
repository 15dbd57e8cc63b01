"""The sd_notify protocol as systemd sees it, with the real `homesec run` process: READY=1 only
once a frame has arrived, WATCHDOG=1 while frames keep coming (often enough for WATCHDOG_USEC),
and silence when the camera hangs, so that systemd's WatchdogSec= restarts the daemon.

The camera is an OpenCV source reading MJPEG from a named pipe the test writes to: when the test
stops writing (but keeps the pipe open), the daemon's read blocks exactly like a hung USB camera
or a stalled stream.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.conftest import homesec_cmd, wait_for

WATCHDOG_USEC = 6_000_000  # WatchdogSec=6: pings must come at least every 3 s (systemd's advice)
SILENCE_S = 5.0  # this long without a ping (more than WATCHDOG_USEC / 2) = pings have stopped


class NotifyListener(threading.Thread):
    """Owns the NOTIFY_SOCKET datagram socket, records (monotonic time, message) pairs."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            with self.lock:
                for line in data.decode().splitlines():
                    self.messages.append((time.monotonic(), line))

    def times(self, message: str) -> list[float]:
        """When `message` arrived, oldest first."""
        with self.lock:
            return [t for t, m in self.messages if m == message]

    def close(self) -> None:
        self.stopped.set()
        self.join(2)
        self.sock.close()


class MjpegPipeCamera(threading.Thread):
    """Writes JPEG frames into a FIFO at ~20 fps while `flowing` is set; holds the pipe open."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        os.mkfifo(path)
        self.flowing = threading.Event()
        self.flowing.set()
        self.stopped = threading.Event()
        rng = np.random.default_rng(1)
        base = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
        self.jpeg = cv2.imencode(".jpg", base)[1].tobytes()
        self.frames = 0

    def run(self) -> None:
        with open(self.path, "wb", buffering=0) as pipe:  # blocks until the daemon opens it
            while not self.stopped.is_set():
                if self.flowing.is_set():
                    try:
                        pipe.write(self.jpeg)
                    except BrokenPipeError:
                        return
                    self.frames += 1
                self.stopped.wait(0.05)

    def close(self) -> None:
        self.stopped.set()
        self.join(5)


@pytest.fixture
def notify(tmp_path: Path) -> Any:
    listener = NotifyListener(tmp_path / "notify.sock")
    listener.start()
    yield listener
    listener.close()


def test_ready_after_first_frame_watchdog_while_frames_flow_silence_when_camera_hangs(
        tmp_path: Path, notify: NotifyListener) -> None:
    fifo = tmp_path / "camera.mjpeg"
    camera = MjpegPipeCamera(fifo)
    config = tmp_path / "config.toml"
    config.write_text(f"""
[camera]
source = "opencv"
device = "{fifo}"
fps = 20
width = 320
height = 240
[paths]
state_dir = "{tmp_path / 'state'}"
runtime_dir = "{tmp_path / 'run'}"
""")
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    env.pop("WATCHDOG_PID", None)
    log = open(tmp_path / "daemon.log", "w+")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(homesec_cmd("run", "--config", str(config)), env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        # The daemon starts and blocks opening the camera; no frame exists yet, so no READY.
        wait_for(lambda: "capturing from opencv" in (tmp_path / "daemon.log").read_text(), 30,
                 what="the daemon to reach its capture loop")
        assert notify.times("READY=1") == [], "READY=1 before any frame"

        camera.start()
        wait_for(lambda: notify.times("READY=1"), 30, what="READY=1 after frames started")
        ready = notify.times("READY=1")[0]
        assert camera.frames > 0
        wait_for(lambda: len([t for t in notify.times("WATCHDOG=1") if t > ready]) >= 5, 30,
                 what="WATCHDOG=1 pings while frames flow")
        pings = [t for t in notify.times("WATCHDOG=1") if t >= ready]
        gaps = np.diff(pings)
        assert gaps.max() <= WATCHDOG_USEC / 1e6 / 2, f"pings too far apart for WatchdogSec: {gaps}"

        # The camera hangs: frames stop, the pipe stays open, the daemon's read blocks.
        camera.flowing.clear()
        hung_at = time.monotonic()
        # Pings must stop for good: none for longer than the interval systemd expects them at.
        wait_for(lambda: time.monotonic() - max(notify.times("WATCHDOG=1")) > SILENCE_S,
                 30, what="WATCHDOG=1 to stop after the camera hung")
        last_ping = max(notify.times("WATCHDOG=1"))
        assert last_ping - hung_at < 3.0, "pings went on long after the camera hung"
        assert proc.poll() is None, "the daemon exited instead of hanging: systemd must do the kill"

        # The camera comes back: pings resume (systemd would not have restarted it yet).
        camera.flowing.set()
        wait_for(lambda: max(notify.times("WATCHDOG=1")) > last_ping + 0.5, 30,
                 what="WATCHDOG=1 to resume when frames come back")
    finally:
        proc.send_signal(signal.SIGTERM)
        camera.close()  # EOF unblocks a read that is still waiting
        try:
            proc.wait(20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.seek(0)
            output = log.read()
            log.close()
    assert proc.returncode == 0, output
    assert notify.times("STOPPING=1"), output
