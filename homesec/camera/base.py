"""The frame type and the camera interface every source implements.

Why a lazy colour image: detection needs only a small luma plane, every frame; the full-resolution
colour image is needed only for a snapshot or the live view, a few times a minute. Sources hand
out the luma plane and a callable that produces the colour image on demand, valid until the next
`read()`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


def is_url(device: str) -> bool:
    """True for a network stream's address (rtsp://, http://...)."""
    return re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", device) is not None


class CameraError(Exception):
    """The camera could not be opened or stopped delivering frames."""


class CameraHung(Exception):
    """The camera could not even be closed (a driver call that never returns): only a new process
    can take it again, so the daemon exits and systemd restarts it. Not a CameraError on purpose:
    a handler that retries a lost camera must not swallow it."""


class EndOfStream(Exception):
    """A finite source (a video file without looping) has no more frames."""


@dataclass
class Frame:
    """One camera frame: timestamps, the luma plane for detection, colour on demand."""

    index: int
    mono_s: float
    wall_s: float
    luma: np.ndarray
    _color_fn: Callable[[], np.ndarray] = field(repr=False)
    size: tuple[int, int] | None = None  # (width, height) of color(); None = the luma's size
    _color: np.ndarray | None = field(default=None, repr=False)

    def box_scale(self) -> tuple[float, float]:
        """Factors from luma coordinates to colour-image coordinates."""
        if self.size is None:
            return 1.0, 1.0
        h, w = self.luma.shape[:2]
        return self.size[0] / w, self.size[1] / h

    def color(self) -> np.ndarray:
        """The full-resolution BGR image (computed once, then cached)."""
        if self._color is None:
            self._color = self._color_fn()
        return self._color


class Camera(Protocol):
    """A source of frames. `read()` blocks until the next frame.

    `read()` raises CameraError when the device fails (the caller reopens it with backoff) and
    EndOfStream when a file ends.
    """

    def open(self) -> None: ...

    def read(self) -> Frame: ...

    def close(self) -> None: ...


def file_frame_times(index: int, fps: float, t0_mono: float, t0_wall: float, realtime: bool
                     ) -> tuple[float, float]:
    """(monotonic, wall) time of frame `index` of a file played from (t0_mono, t0_wall): the
    frame's place in the file, not the decoding speed. With `realtime`, waits until that time
    (a file standing in for a live camera)."""
    t = index / fps
    if realtime:
        delay = t0_mono + t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return t0_mono + t, t0_wall + t
