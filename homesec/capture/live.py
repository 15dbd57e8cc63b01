"""The live view between processes: the daemon publishes the newest frame as a JPEG file in the
runtime directory; web workers read it.

Why a file and a "wanted" marker: frames must not cross process boundaries otherwise, and
encoding JPEGs costs the Pi real CPU. A viewer's request touches `live.wanted`; the daemon encodes
frames only while that marker is fresh (a few seconds), so the live view costs nothing when nobody
watches. The JPEG is replaced atomically, so readers never see a torn image.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from homesec.system.atomic import write_atomic

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("homesec.capture.live")

LIVE_NAME = "live.jpg"
WANTED_NAME = "live.wanted"
WANTED_FOR_S = 5.0


def request_live(runtime_dir: Path) -> None:
    """Called by a viewer: ask the daemon to keep publishing frames for a few seconds."""
    runtime_dir.mkdir(parents=True, exist_ok=True)
    marker = runtime_dir / WANTED_NAME
    try:
        os.utime(marker)
    except FileNotFoundError:
        marker.touch()


def read_live(runtime_dir: Path) -> tuple[bytes, float] | None:
    """The newest live JPEG and its modification time, or None when there is none."""
    path = runtime_dir / LIVE_NAME
    try:
        with open(path, "rb") as f:
            data = f.read()
            mtime = os.fstat(f.fileno()).st_mtime
    except FileNotFoundError:
        return None
    return data, mtime


class LivePublisher(threading.Thread):
    """Daemon side: publish a frame at most `max_fps` times a second, only while wanted.

    Encoding a JPEG costs a Pi Zero tens of milliseconds, so it happens in this thread, not in the
    capture loop: `submit()` only hands over the image (replacing one not yet encoded) and never
    waits. Frames the encoder cannot keep up with are dropped, which for a live view is right.
    """

    def __init__(self, runtime_dir: Path, max_fps: float = 5.0, width: int = 960) -> None:
        super().__init__(name="live", daemon=True)
        self.dir = runtime_dir
        self.min_dt = 1.0 / max_fps
        self.width = width
        self._last_pub = 0.0
        self._last_check = 0.0
        self._wanted = False
        self._cond = threading.Condition()
        self._pending: np.ndarray | None = None
        self._stopping = False

    def wanted(self, now: float | None = None) -> bool:
        """Whether a viewer asked recently (the marker's mtime is checked once a second)."""
        now = time.time() if now is None else now
        if now - self._last_check >= 1.0:
            self._last_check = now
            try:
                self._wanted = now - (self.dir / WANTED_NAME).stat().st_mtime < WANTED_FOR_S
            except FileNotFoundError:
                self._wanted = False
        return self._wanted

    def due(self, now: float | None = None) -> bool:
        """True when a frame should be published now."""
        now = time.time() if now is None else now
        return self.wanted(now) and now - self._last_pub >= self.min_dt

    def submit(self, image: np.ndarray, now: float | None = None) -> None:
        """Hand a frame to the encoder thread; returns at once."""
        self._last_pub = time.time() if now is None else now
        with self._cond:
            self._pending = image
            self._cond.notify()

    def stop(self, timeout: float = 2.0) -> None:
        """End the thread (a frame not yet encoded is dropped)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        from homesec.capture.snapshot import encode_jpeg, thumbnail  # OpenCV: daemon side only

        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._stopping)
                if self._stopping:
                    return
                image, self._pending = self._pending, None
            try:
                write_atomic(self.dir / LIVE_NAME, encode_jpeg(thumbnail(image, self.width), 75))
            except Exception as exc:  # OSError, cv2.error: the live view must not die for good
                log.warning("cannot publish live frame: %s", exc)
