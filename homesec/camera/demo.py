"""A generated scene that needs no camera: a room with texture, sensor noise, a person who walks
through every 20 s and a lamp that is switched on and off once a minute.

Why this exists: `make demo`, the daemon tests and the web UI must run on a laptop or in CI with no
camera, and every case the detector must handle (real motion, a global light change, noise) occurs
in it on a fixed timetable, so tests can say what must happen when. Deterministic for a seed.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from homesec.camera.base import Frame

CROSSING_PERIOD_S = 20.0  # a person walks through at 5 s, 25 s, 45 s, ...
CROSSING_START_S = 5.0
CROSSING_DURATION_S = 4.0
LIGHT_PERIOD_S = 60.0  # the lamp is on from 40 s to 60 s of every minute
LIGHT_ON_S = 40.0
NOISE_SIGMA = 2.5
LIT_BAND_ROWS = 48  # rows lit at a time in DemoScene._lit (memory, not speed)


def crossing_at(t: float) -> float | None:
    """Progress 0..1 of the person crossing at scene time t, or None when nobody is there."""
    phase = (t - CROSSING_START_S) % CROSSING_PERIOD_S
    if t < CROSSING_START_S or phase > CROSSING_DURATION_S:
        return None
    return phase / CROSSING_DURATION_S


def light_on_at(t: float) -> bool:
    """Whether the lamp is on at scene time t."""
    return (t % LIGHT_PERIOD_S) >= LIGHT_ON_S


def crossing_intervals(duration_s: float) -> list[tuple[float, float]]:
    """Scene-time intervals in which someone is in view (for tests and the demo's own check)."""
    out = []
    t = CROSSING_START_S
    while t < duration_s:
        out.append((t, t + CROSSING_DURATION_S))
        t += CROSSING_PERIOD_S
    return out


class DemoScene:
    """Renders the scene at any time t; colour at main resolution, luma at lores resolution."""

    def __init__(self, width: int, height: int, lores_width: int, seed: int) -> None:
        self.width, self.height = width, height
        self.lores_w = lores_width
        self.lores_h = max(2, round(lores_width * height / width / 2) * 2)
        rng = np.random.default_rng(seed)
        # Texture: smoothed noise at low resolution, upscaled, plus a few pieces of "furniture".
        base = rng.normal(120, 40, (height // 16 + 1, width // 16 + 1)).astype(np.float32)
        base = cv2.GaussianBlur(base, (0, 0), 1.2)
        tex = cv2.resize(base, (width, height), interpolation=cv2.INTER_CUBIC)
        fine = rng.normal(0, 10, (height, width)).astype(np.float32)
        tex = np.clip(tex + cv2.GaussianBlur(fine, (0, 0), 1.0), 20, 230)
        # Channel by channel into uint8 (not a float32 stack: 11 MB less at 720p, same pixels).
        bgr = np.empty((height, width, 3), np.uint8)
        for c, k in enumerate((0.9, 0.95, 1.0)):
            bgr[..., c] = tex * k
        for _ in range(6):
            x, y = int(rng.integers(0, width - 100)), int(rng.integers(height // 3, height - 60))
            w, h = int(rng.integers(60, width // 4)), int(rng.integers(40, height // 3))
            colour = tuple(int(c) for c in rng.integers(30, 200, 3))
            cv2.rectangle(bgr, (x, y), (x + w, y + h), colour, -1)
        # A window frame near the top gives strong edges.
        cv2.rectangle(bgr, (width // 10, height // 12), (width // 3, height // 3), (220, 220, 210), 6)
        self.background = bgr
        # The lamp brightens the room unevenly: strongest at the top right.
        # Broadcast row and column coordinates (np.mgrid would build two int64 planes, 15 MB).
        yy = np.arange(height, dtype=np.float32)[:, None]
        xx = np.arange(width, dtype=np.float32)[None, :]
        dist = np.hypot(xx - width * 0.85, yy - height * 0.1) / max(width, height)
        self.lamp_gain = (1.25 + 0.45 * np.exp(-4 * dist)).astype(np.float32)
        self.lores_bg = cv2.resize(
            cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), (self.lores_w, self.lores_h),
            interpolation=cv2.INTER_AREA,
        ).astype(np.float32)
        self.lores_gain = cv2.resize(
            self.lamp_gain, (self.lores_w, self.lores_h), interpolation=cv2.INTER_AREA
        )
        self.noise = np.empty((self.lores_h, self.lores_w), np.float32)

    def _lit(self) -> np.ndarray:
        """The background under the lamp, in bands of rows: the float32 products of a whole
        720p frame would take 2 x 11 MB each frame; a band takes 0.5 MB. Same pixels."""
        bg, gain = self.background, self.lamp_gain
        out = np.empty_like(bg)
        band = np.empty((LIT_BAND_ROWS, self.width, 3), np.float32)
        for y0 in range(0, self.height, LIT_BAND_ROWS):
            y1 = min(self.height, y0 + LIT_BAND_ROWS)
            tmp = band[: y1 - y0]
            np.multiply(bg[y0:y1], gain[y0:y1, :, None], out=tmp)
            np.clip(tmp, 0, 255, out=tmp)
            out[y0:y1] = tmp
        return out

    def _figure(self, img: np.ndarray, progress: float, t: float, scale: float) -> None:
        """Draw a walking person at `progress` across an image `scale` times the main size."""
        w, h = self.width * scale, self.height * scale
        cx = -0.1 * w + progress * 1.2 * w
        bob = 0.01 * h * np.sin(t * 9.0)
        cy = 0.62 * h + bob
        body = (int(cx), int(cy)), (max(1, int(0.045 * w)), max(1, int(0.2 * h)))
        cv2.ellipse(img, body[0], body[1], 0, 0, 360, (40, 45, 60), -1)
        head_c = (int(cx), int(cy - 0.26 * h))
        cv2.circle(img, head_c, max(1, int(0.035 * w)), (70, 90, 130), -1)

    def luma(self, t: float) -> np.ndarray:
        """The lores luma plane at time t, with sensor noise."""
        img = self.lores_bg * self.lores_gain if light_on_at(t) else self.lores_bg.copy()
        progress = crossing_at(t)
        if progress is not None:
            layer = np.zeros((self.lores_h, self.lores_w, 3), np.uint8)
            self._figure(layer, progress, t, self.lores_w / self.width)
            grey = cv2.cvtColor(layer, cv2.COLOR_BGR2GRAY).astype(np.float32)
            inside = grey > 0
            img[inside] = grey[inside] * (self.lores_gain[inside] if light_on_at(t) else 1.0)
        cv2.randn(self.noise, 0.0, NOISE_SIGMA)
        img += self.noise
        return np.clip(img, 0, 255).astype(np.uint8)

    def color(self, t: float) -> np.ndarray:
        """The full-resolution BGR image at time t (no noise: snapshots only)."""
        img = self._lit() if light_on_at(t) else self.background.copy()
        progress = crossing_at(t)
        if progress is not None:
            self._figure(img, progress, t, 1.0)
        return img


class DemoCamera:
    """The demo scene as a camera. Real-time pacing unless `realtime` is off (tests, analysis)."""

    def __init__(
        self, width: int = 1280, height: int = 720, lores_width: int = 320, fps: float = 15.0,
        seed: int = 1, realtime: bool = True,
    ) -> None:
        self.fps = fps
        self.realtime = realtime
        self.scene = DemoScene(width, height, lores_width, seed)
        self.seed = seed
        self._index = 0
        self._t0_mono = 0.0
        self._t0_wall = 0.0

    def open(self) -> None:
        """Start the scene clock (a reopened demo camera continues where it was)."""
        cv2.setRNGSeed(self.seed)
        now_m, now_w = time.monotonic(), time.time()
        self._t0_mono = now_m - self._index / self.fps
        self._t0_wall = now_w - self._index / self.fps

    def scene_time(self, t: float) -> float:
        """The scene time shown t seconds after the start (tests fold it to other timetables)."""
        return t

    def read(self) -> Frame:
        """The next frame; waits for its time when real-time."""
        i = self._index
        self._index += 1
        t = i / self.fps
        if self.realtime:
            delay = self._t0_mono + t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        st = self.scene_time(t)
        luma = self.scene.luma(st)
        return Frame(
            index=i, mono_s=self._t0_mono + t, wall_s=self._t0_wall + t, luma=luma,
            _color_fn=lambda: self.scene.color(st), size=(self.scene.width, self.scene.height),
        )

    def close(self) -> None:
        """Nothing to release."""
