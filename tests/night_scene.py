"""A synthetic night under an infrared lamp, for the detector's night tests and the robustness
yardstick: a dark, grey, noisy garden with the lamp's hot spot, the camera's switch to day mode
and back, moths crossing close to the lens, a small dim person far away, and a burnt-in clock.

Everything is luma (the detector's only input), rendered at `width` x `height`; times in seconds.
What each part imitates:
- IR picture: grey (no colour under IR), dim (mean about 35 levels), a hot spot where the lamp
  points (up to 2.2x in the middle), strong sensor gain noise (sigma 6) and a little frame-to-frame
  gain jitter (the sensor's analogue gain hunting).
- Day mode: the IR cut filter flips in. The picture whites out over a few frames (the exposure
  was set for the dark), comes back brighter with a different pattern (foliage is bright under IR,
  dark in daylight; colour changes the grey levels object by object), the colour fades in over a
  second and the exposure settles over two more.
- Night mode (the reverse): the picture blacks out over a few frames, the IR lamp comes on, and its
  hot spot and the exposure settle over two seconds.
- Moths: small, bright, blurred blobs that cross (part of) the picture in 2-6 frames (at 15 fps
  or more; slower cameras see them in fewer frames), several a second, drawn as motion-blurred
  streaks (a long night exposure).
- A person at 30 m: 20 x 8 detection pixels (at 320 wide), 18 levels brighter than the grass,
  walking 9 detection pixels a second; appears from behind the hedge and disappears again.
- A clock burnt in by the camera: white digits with a black outline, redrawn every second,
  noise-free (drawn after the sensor).
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass
class Moth:
    """One insect crossing: positions at its first and last frame time, size, brightness."""

    t0: float
    dur: float
    p0: tuple[float, float]
    p1: tuple[float, float]
    radius: float
    value: float


@dataclass
class NightScene:
    """Render frames of the night garden; see the module docstring."""

    width: int = 640
    height: int = 360
    fps: float = 15.0
    seed: int = 3
    noise: float = 6.0
    # Optional parts, each a time span in seconds (None: absent).
    to_day_at: float | None = None  # switch night -> day starts here
    to_night_at: float | None = None  # switch day -> night starts here (scene starts in day mode)
    switch_frames: int = 5  # white-out / black-out length
    moths: tuple[float, float] | None = None  # moths fly between these times
    moth_rate: float = 6.0  # per second
    person: tuple[float, float] | None = None  # visible between these times
    person_value: float = 18.0
    clock: bool = False
    clock_scale: float = 1.0  # 1: text about 4 % of the picture high
    _moths: list[Moth] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self.rng = np.random.default_rng(self.seed + 100)  # noise, per frame
        w, h = self.width, self.height

        def pattern(scale: int, sigma: float) -> np.ndarray:
            base = rng.normal(0.0, 1.0, (h // scale + 1, w // scale + 1)).astype(np.float32)
            big = cv2.resize(cv2.GaussianBlur(base, (0, 0), 1.0), (w, h), interpolation=cv2.INTER_CUBIC)
            return big * sigma

        grass, leaves = pattern(12, 1.0), pattern(6, 1.0)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        self.spot = 1.0 + 1.2 * np.exp(-((xx - 0.5 * w) ** 2 + (yy - 0.55 * h) ** 2) / (0.35 * w) ** 2)
        # Under IR foliage is bright, in daylight dark: the two modes weigh the patterns differently.
        self.ir = np.clip(22.0 + 6.0 * grass + 5.0 * leaves, 4, 80)
        self.day = np.clip(120.0 + 25.0 * grass - 20.0 * leaves, 20, 235)
        self.day_grey = np.clip(0.5 * self.day + 0.5 * self.ir * 2.8, 20, 235)  # before colour comes
        self.person_box = (int(0.30 * w), int(0.42 * h), int(0.028 * w), int(0.125 * h))
        if self.moths is not None:
            t, end = self.moths
            while True:
                t += float(rng.exponential(1.0 / self.moth_rate))
                if t >= end:
                    break
                # Crosses in 2-6 frames at 15 fps or more; below, in the same time as at 15 fps
                # (a moth's speed does not depend on the camera: at 5 fps it is seen in 1-2 frames).
                dur = float(rng.integers(2, 7)) / max(self.fps, 15.0)
                p0 = (float(rng.uniform(0, w)), float(rng.uniform(0, h)))
                ang = float(rng.uniform(0, 2 * np.pi))
                dist = float(rng.uniform(0.4, 1.0)) * w
                p1 = (p0[0] + dist * np.cos(ang), p0[1] + dist * np.sin(ang))
                self._moths.append(Moth(t, dur, p0, p1, float(rng.uniform(0.006, 0.02)) * w,
                                        float(rng.uniform(90, 200))))

    # ----------------------------------------------------------------- the picture by mode

    def _mode_picture(self, t: float) -> np.ndarray:
        """The noise-free scene at time t: IR or day, through the switch and its settling."""
        if self.to_day_at is not None and t >= self.to_day_at:
            return self._switching(t - self.to_day_at, self.ir * self.spot, self._day_settling, 255.0)
        if self.to_night_at is not None:
            if t < self.to_night_at:
                return self.day
            return self._switching(t - self.to_night_at, self.day, self._night_settling, 0.0)
        return self.ir * self.spot

    def _switching(self, dt: float, before: np.ndarray, after_fn, extreme: float) -> np.ndarray:
        n = self.switch_frames / self.fps
        if dt < n:  # white-out (or black-out) over the switch frames, the new picture under it
            k = dt / n
            w = np.sin(np.pi * k)  # up, then down into the new picture
            mid = before if k < 0.5 else after_fn(0.0)
            return mid * (1 - w) + extreme * w
        return after_fn(dt - n)

    def _day_settling(self, dt: float) -> np.ndarray:
        colour = min(1.0, dt / 1.0)  # grey -> colour in a second
        exposure = 1.0 + 0.25 * max(0.0, 1.0 - dt / 3.0)  # over-exposed, settling in 3 s
        return (self.day_grey * (1 - colour) + self.day * colour) * exposure

    def _night_settling(self, dt: float) -> np.ndarray:
        s = max(0.0, 1.0 - dt / 2.0)
        spot = 1.0 + (self.spot - 1.0) * (1.0 + 0.5 * s)  # the lamp's spot settles in 2 s
        return self.ir * spot * (1.0 + 0.3 * s)

    # ----------------------------------------------------------------- per frame

    def luma(self, t: float) -> np.ndarray:
        """The frame at time t, uint8 luma."""
        img = self._mode_picture(t).astype(np.float32)
        if self.person is not None and self.person[0] <= t < self.person[1]:
            x, y, w, h = self.person_box
            x += int(0.028 * self.width * (t - self.person[0]))  # 9 px/s at 320 wide
            body = np.zeros_like(img)
            cv2.ellipse(body, (x + w // 2, y + h // 2), (w // 2, h // 2), 0, 0, 360, 1.0, -1)
            img += self.person_value * body
        img = self._draw_moths(img, t)
        gain = 1.0 + float(self.rng.normal(0.0, 0.01))
        out = img * gain + self.rng.normal(0.0, self.noise, img.shape).astype(np.float32)
        out = np.clip(out, 0, 255).astype(np.uint8)
        if self.clock:
            self._draw_clock(out, t)
        return out

    def frames(self, seconds: float, start: float = 0.0) -> list[np.ndarray]:
        """Frames from `start` for `seconds`."""
        return [self.luma(start + k / self.fps) for k in range(round(seconds * self.fps))]

    def _draw_moths(self, img: np.ndarray, t: float) -> np.ndarray:
        streaks = None
        exposure = 1.0 / self.fps
        for m in self._moths:
            if not (m.t0 <= t < m.t0 + m.dur):
                continue
            if streaks is None:
                streaks = np.zeros_like(img)
            a = (t - m.t0) / m.dur
            b = min(1.0, a + exposure / m.dur)  # blurred along its path during the exposure
            pa = (m.p0[0] + a * (m.p1[0] - m.p0[0]), m.p0[1] + a * (m.p1[1] - m.p0[1]))
            pb = (m.p0[0] + b * (m.p1[0] - m.p0[0]), m.p0[1] + b * (m.p1[1] - m.p0[1]))
            cv2.line(streaks, (int(pa[0]), int(pa[1])), (int(pb[0]), int(pb[1])), m.value,
                     max(1, int(2 * m.radius)))
        if streaks is None:
            return img
        return img + cv2.GaussianBlur(streaks, (0, 0), 0.006 * self.width)

    def _draw_clock(self, out: np.ndarray, t: float) -> None:
        # Like many CCTV cameras: date and time, text 5 % of the picture high, top left; starts
        # 5 s before a full minute, so the minute changes too.
        text = _time.strftime("%Y-%m-%d %H:%M:%S", _time.gmtime(1_800_000_000 + 55 + int(t)))
        org = (int(0.02 * self.width), int(0.08 * self.height))
        scale = self.height / 600.0 * self.clock_scale
        thick = max(1, round(self.height / 180))
        cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, 0, thick + 2, cv2.LINE_AA)
        cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thick, cv2.LINE_AA)
