"""Tamper and health checks: camera covered or blinded, camera lost, disk nearly full.

Pure and cheap, so the capture loop can afford them: `CoverWatch.update` looks at a 40x30 area
average of the luma plane a few times a second (about 20 microseconds on a laptop, well under a
millisecond on a Pi Zero 2) and keeps a few numbers of state; nothing here touches the disk, the
database or the network. What becomes an alert is decided by the daemon's alarm thread and goes
through the outbox (alarm/notify.py).

Why "uniform" is the sign of a covered camera: a hand, tape, a bag or a torch in the lens leave
a picture without structure, very dark or very bright. A room whose light was switched off keeps
its structure (the night picture is dark but still shows edges, and sensor noise is averaged away
by the 40x30 area average, so it does not count as structure either way). A camera that starts
black (the first frames before the exposure settles) is not tampering: the watch only reports a
picture that goes uniform after it had shown structure for a while, and only once it has stayed
uniform for `hold_s`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SMALL = (40, 30)
# A picture is uniform when the grey-level spread (standard deviation over the 40x30 averages) is
# below UNIFORM_STD_MIN, or below both UNIFORM_STD and UNIFORM_REL of the mean brightness (a
# torch in the lens: bright, a little vignetting left). Measured: a covered lens about 0.2-1
# (what is left of noise after averaging), the dev clips' real rooms 12-40 (their darkest frame
# after the camera's first black one, exposure still settling: 4.6 at mean ~10), the demo room
# dimmed to 15 % of its light 2.7 at mean 18: still structure.
UNIFORM_STD_MIN = 1.2
UNIFORM_STD = 5.0
UNIFORM_REL = 0.06
TEXTURED_S = 1.0  # structure must have been seen this long before "went uniform" counts
CHECK_EVERY_S = 0.2  # how often the capture loop looks


def structure(luma: np.ndarray) -> tuple[float, float]:
    """(mean, standard deviation) of a 40x30 area average of the luma plane."""
    small = cv2.resize(luma, SMALL, interpolation=cv2.INTER_AREA)
    mean, std = cv2.meanStdDev(small)
    return float(mean[0, 0]), float(std[0, 0])


def is_uniform(luma: np.ndarray) -> bool:
    """No structure: covered, blinded (see the constants above)."""
    mean, std = structure(luma)
    return std < UNIFORM_STD_MIN or (std < UNIFORM_STD and std < UNIFORM_REL * mean)


@dataclass
class CoverWatch:
    """Feed it the luma plane with a monotonic time; it says when the picture has gone uniform
    (covered, blinded) for `hold_s` and when it has structure again."""

    hold_s: float = 5.0
    covered: bool = False
    textured_since: float | None = None  # start of the current run of pictures with structure
    uniform_since: float | None = None  # start of the current run of uniform pictures
    after_structure: bool = False  # the current uniform run followed TEXTURED_S of structure
    _last_check: float = float("-inf")

    def update(self, luma: np.ndarray, mono_s: float) -> str | None:
        """'covered' once when it happens, 'cleared' once when it ends, else None."""
        if mono_s - self._last_check < CHECK_EVERY_S:
            return None
        self._last_check = mono_s
        return self.observe(is_uniform(luma), mono_s)

    def observe(self, uniform: bool, mono_s: float) -> str | None:
        """The state machine behind `update`, for a measured picture."""
        if not uniform:
            if self.textured_since is None:
                self.textured_since = mono_s
            self.uniform_since = None
            if self.covered and mono_s - self.textured_since >= TEXTURED_S:
                self.covered = False
                return "cleared"
            return None
        if self.uniform_since is None:
            self.uniform_since = mono_s
            self.after_structure = (self.textured_since is not None
                                    and mono_s - self.textured_since >= TEXTURED_S)
            self.textured_since = None
        if self.after_structure and not self.covered and mono_s - self.uniform_since >= self.hold_s:
            self.covered = True
            return "covered"
        return None


def camera_lost_for(lost_since: float | None, now: float) -> float:
    """Seconds the camera has been lost (0 when it is not)."""
    return 0.0 if lost_since is None else max(0.0, now - lost_since)


def disk_low(free_pct: float, limit_pct: float) -> bool:
    """Whether the disk has less free space than the alert limit (0 = never)."""
    return limit_pct > 0 and free_pct < limit_pct
