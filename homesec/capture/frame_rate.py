"""The frame rate the detector really gets, measured from the frames' own timestamps.

Why: the detector's time constants (background, noise, warm-up, abrupt-change window) are set in
seconds and converted to frames with a frame rate. The configured `camera.fps` is only what was
asked for: a Pi camera in low light, an IP camera that sends 10 fps whatever it is told, or a Pi
Zero that cannot keep up (picamera2 then drops frames) all deliver fewer. Measured here as the
median interval between frame timestamps (the sensor's timestamps on the Pi camera), robust to a
single late frame or a reconnect gap; the daemon re-creates the detector with the measured rate
when it has differed by more than RETUNE_RATIO for a while and no event is in progress.
"""

from __future__ import annotations

from collections import deque
from statistics import median

WINDOW = 64  # intervals kept (4 s at 15 fps)
MIN_INTERVALS = 30  # before the first judgement
RETUNE_RATIO = 1.25  # measured vs. current rate, either way
MAX_GAP_S = 2.0  # longer gaps (camera lost and back) are not frame intervals


class FrameRateMeter:
    """Feed it every frame's monotonic time; `retune(current)` says when a new rate is due."""

    def __init__(self) -> None:
        self._last: float | None = None
        self._intervals: deque[float] = deque(maxlen=WINDOW)

    def add(self, mono_s: float) -> None:
        """One frame's time (seconds, monotonic)."""
        if self._last is not None:
            dt = mono_s - self._last
            if 0 < dt <= MAX_GAP_S:
                self._intervals.append(dt)
        self._last = mono_s

    def rate(self) -> float | None:
        """Frames per second from the median interval, once enough frames were seen."""
        if len(self._intervals) < MIN_INTERVALS:
            return None
        return 1.0 / median(self._intervals)

    def retune(self, current_fps: float) -> float | None:
        """The measured rate when it is off from `current_fps` by more than RETUNE_RATIO."""
        measured = self.rate()
        if measured is None:
            return None
        ratio = measured / current_fps
        if ratio > RETUNE_RATIO or ratio < 1 / RETUNE_RATIO:
            self._intervals.clear()  # judge the new rate on fresh frames
            return round(measured, 2)
        return None
