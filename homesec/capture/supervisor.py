"""The camera supervisor: USB cameras get unplugged, RTSP streams drop, libcamera hiccups; the
daemon must come back by itself, reporting "camera lost since T" meanwhile.

One failure no reopen can fix: a camera whose close never finishes (a driver call that does not
return; the source raises CameraHung). Then the supervisor stops reading and sets `hung`; the
daemon shuts down (events written) and the process exits so systemd starts a fresh one, instead
of hanging until the watchdog kills it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from homesec.camera import Camera, CameraError, CameraHung, EndOfStream, Frame

log = logging.getLogger("homesec.capture.supervisor")


class CameraSupervisor:
    """Reads frames; on failure closes, waits with exponential backoff, reopens. Never raises
    CameraError; returns None when asked to stop or when a finite source ends."""

    def __init__(self, camera: Camera, stop: threading.Event, max_backoff_s: float,
                 on_wait: Callable[[], None] | None = None) -> None:
        self.camera = camera
        self.on_wait = on_wait
        self.stop = stop
        self.max_backoff_s = max_backoff_s
        self.is_open = False
        self.lost_since: float | None = None
        self.last_error: str | None = None
        self.reopens = 0
        self.ended = False
        self.hung = False

    def _lost(self, err: str) -> None:
        if self.lost_since is None:
            self.lost_since = time.time()
            log.warning("camera lost: %s", err)
        self.last_error = err
        self.is_open = False
        try:
            self.camera.close()
        except CameraHung as exc:
            self._hung(exc)
        except Exception as exc:  # a broken device may fail to close too; we reopen anyway
            log.debug("closing the failed camera: %s", exc)

    def _hung(self, exc: CameraHung) -> None:
        log.critical("camera hung: %s", exc)
        if self.lost_since is None:
            self.lost_since = time.time()
        self.last_error = f"camera hung, restarting the process: {exc}"
        self.hung = True
        self.is_open = False

    def _failed(self, err: str, backoff: float) -> float:
        """After a failed open or read: close, wait `backoff` (not when the close hung: the loop
        then ends), and return the next, doubled backoff."""
        self._lost(err)
        if not self.hung:
            self._wait(backoff)
        return min(backoff * 2, self.max_backoff_s)

    def _wait(self, seconds: float) -> None:
        if self.on_wait is not None:
            self.on_wait()
        self.stop.wait(seconds)

    def read(self) -> Frame | None:
        """The next frame, reopening as long as needed."""
        backoff = 0.5
        while not self.stop.is_set() and not self.hung:
            if not self.is_open:
                try:
                    self.camera.open()
                    self.is_open = True
                except CameraHung as exc:  # a failed start whose close did not finish
                    self._hung(exc)
                    break
                except CameraError as exc:
                    backoff = self._failed(str(exc), backoff)
                    continue
            try:
                frame = self.camera.read()
            except EndOfStream:
                self.ended = True
                return None
            except CameraError as exc:
                backoff = self._failed(str(exc), backoff)
                continue
            if self.lost_since is not None:
                log.warning("camera back after %.1f s", time.time() - self.lost_since)
                self.reopens += 1
                self.lost_since = None
                self.last_error = None
            return frame
        return None

    def close(self) -> None:
        """Release the camera (sets `hung` when even that cannot finish)."""
        if self.is_open:
            self.is_open = False
            try:
                self.camera.close()
            except CameraHung as exc:
                self._hung(exc)
