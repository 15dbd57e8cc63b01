"""MotionDetector: frame differencing against a running background, pure computation, no I/O.

Pipeline per frame (all at the small detection width, so cost hardly grows with camera size):
downscale (area) -> blur -> difference with the running background, after compensating a global
brightness gain (auto-exposure steps, the sun behind a cloud) -> threshold against a per-pixel noise
level that the detector measures itself -> morphology -> connected regions -> boxes in full-frame
coordinates.

Why a per-pixel noise level: a dark room is noisy, a bright wall is not; one fixed threshold is
either blind in the dark or jumpy in the light. The same measurement, learned slowly while a pixel
keeps changing, is the "smart mask": where leaves sway all day the threshold rises, so the tree is
not a stream of events while a person (a large, new change) still stands out.

Why light changes are recognised by structure: when a lamp goes on, pixels change a lot but the
local pattern (edges, texture) stays; when a person walks in, the pattern itself changes. Changed
pixels whose neighbourhood still correlates with the background are counted as light, not motion;
if much of the frame changes that way (or an implausibly large part changes at all) the frame is a
`light_change`, no motion is reported, and the background is re-learnt quickly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from homesec.config import MaskConfig, MotionConfig

# The first frames of a stream (camera start-up, auto-exposure settling) only teach the background.
WARMUP_FRAMES = 8
# Background learning rates per frame: quiet pixels follow slow scene changes within seconds;
# pixels in motion are absorbed only slowly (a parked car becomes background in about a minute).
BG_ALPHA = 0.04
BG_ALPHA_MOTION = 0.002
# After a light change the background is re-learnt fast for this many frames.
RELEARN_FRAMES = 6
RELEARN_ALPHA = 0.5
# Noise: threshold = NOISE_K * per-pixel mean absolute deviation, never below NOISE_FLOOR grey levels
# (a composited or very clean picture has zero noise, yet compression still flickers by a few levels).
NOISE_K = 4.0
NOISE_FLOOR = 7.0
NOISE_ALPHA = 0.03
# Restlessness: how often a pixel was recently "in motion"; it multiplies that pixel's threshold.
RESTLESS_ALPHA = 0.02
RESTLESS_GAIN = 4.0
# Structure test for light changes (normalised cross-correlation in a small window).
NCC_WINDOW = 7
NCC_LIGHT = 0.8
TEXTURE_MIN_VAR = 12.0
# A frame where more than this share changes at all is a global change even if unstructured.
GLOBAL_CHANGE_FRAC = 0.6


@dataclass
class MotionResult:
    """What one frame showed. Boxes are (x, y, w, h) in the coordinates of the input frame."""

    motion: bool
    area_pct: float = 0.0
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    light_change: bool = False
    warming_up: bool = False


def mask_image(masks: list[MaskConfig], width: int, height: int) -> np.ndarray | None:
    """A uint8 image, 0 where excluded, 255 where examined; None when there are no masks."""
    if not masks:
        return None
    img = np.full((height, width), 255, np.uint8)
    for m in masks:
        if m.rect is not None:
            x, y, w, h = m.rect
            p0 = (round(x * width), round(y * height))
            p1 = (round((x + w) * width) - 1, round((y + h) * height) - 1)
            cv2.rectangle(img, p0, p1, 0, -1)
        elif m.polygon is not None:
            pts = np.array([[round(px * width), round(py * height)] for px, py in m.polygon],
                           np.int32)
            cv2.fillPoly(img, [pts], 0)
    return img


class MotionDetector:
    """Stateful detector for one camera; feed it every frame's luma plane in order."""

    def __init__(self, cfg: MotionConfig | None = None) -> None:
        self.cfg = cfg or MotionConfig()
        self._shape: tuple[int, int] | None = None
        self._bg: np.ndarray | None = None
        self._dev: np.ndarray | None = None
        self._restless: np.ndarray | None = None
        self._mask: np.ndarray | None = None
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._close_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
        self._frames = 0
        self._relearn = 0
        self._scale = 1.0

    def reset(self) -> None:
        """Forget the background (after the camera was reopened, say)."""
        self._shape = None
        self._bg = None
        self._frames = 0

    def _setup(self, luma: np.ndarray) -> None:
        h, w = luma.shape[:2]
        dw = min(self.cfg.detect_width, w)
        dh = max(1, round(h * dw / w))
        self._shape = (h, w)
        self._small = (dw, dh)
        self._scale = w / dw
        self._mask = mask_image(self.cfg.masks, dw, dh)
        self._dev = np.full((dh, dw), NOISE_FLOOR / NOISE_K, np.float32)
        self._restless = np.zeros((dh, dw), np.float32)
        self._frames = 0

    def _prepare(self, luma: np.ndarray) -> np.ndarray:
        """Downscale (area) and blur; float32 at detection size."""
        if luma.ndim == 3:
            luma = luma[..., 0]
        small = luma
        if (luma.shape[1], luma.shape[0]) != self._small:
            small = cv2.resize(luma, self._small, interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(small, (5, 5), 0).astype(np.float32)

    def _structure_kept(self, cur: np.ndarray, bg: np.ndarray) -> np.ndarray:
        """Boolean image: where the local pattern still matches the background (light, not motion)."""
        k = (NCC_WINDOW, NCC_WINDOW)
        mc, mb = cv2.blur(cur, k), cv2.blur(bg, k)
        vc = cv2.blur(cur * cur, k) - mc * mc
        vb = cv2.blur(bg * bg, k) - mb * mb
        cov = cv2.blur(cur * bg, k) - mc * mb
        ncc = cov / np.sqrt(np.maximum(vc * vb, 1e-6))
        textured = (vb > TEXTURE_MIN_VAR) & (vc > TEXTURE_MIN_VAR)
        return textured & (ncc > NCC_LIGHT)

    def update(self, luma: np.ndarray) -> MotionResult:
        """Examine one frame and learn from it."""
        if self._shape != luma.shape[:2]:
            self._setup(luma)
        cur = self._prepare(luma)
        assert self._dev is not None and self._restless is not None
        if self._bg is None:
            self._bg = cur.copy()
        bg = self._bg
        self._frames += 1

        # Global gain: auto-exposure and clouds scale the whole picture.
        mean_bg = float(cv2.mean(bg)[0])
        gain = float(cv2.mean(cur)[0]) / mean_bg if mean_bg > 1.0 else 1.0
        ref = bg * gain if abs(gain - 1.0) > 0.01 else bg
        diff = cv2.absdiff(cur, ref)

        if self._frames <= WARMUP_FRAMES:
            # Start-up: learn the background fast and the noise level from frame-to-frame change.
            a = 1.0 / self._frames
            cv2.accumulateWeighted(cur, bg, max(a, 0.3))
            cv2.accumulateWeighted(diff, self._dev, max(a, 0.3))
            return MotionResult(motion=False, warming_up=True)

        thresh = np.maximum(self._dev * (NOISE_K / self.cfg.sensitivity), NOISE_FLOOR)
        if self.cfg.learn_restless:
            thresh *= 1.0 + RESTLESS_GAIN * self._restless
        changed = (diff > thresh).astype(np.uint8)
        if self._mask is not None:
            changed &= self._mask > 0
        changed_frac = float(cv2.countNonZero(changed)) / changed.size

        light = False
        if changed_frac > 0.002:
            kept = self._structure_kept(cur, ref)
            light_px = float(np.count_nonzero(kept & (changed > 0)))
            light_frac = light_px / changed.size
            light = (
                light_frac * 100.0 > self.cfg.light_change_pct * 0.5
                or (changed_frac * 100.0 > self.cfg.light_change_pct
                and light_frac > 0.3 * changed_frac)
                or changed_frac > GLOBAL_CHANGE_FRAC
            )
            if not light:
                changed[kept] = 0

        if light or self._relearn > 0:
            # Re-learn the background quickly; report no motion meanwhile.
            self._relearn = RELEARN_FRAMES if light else self._relearn - 1
            cv2.accumulateWeighted(cur, bg, RELEARN_ALPHA)
            return MotionResult(motion=False, light_change=light)

        changed = cv2.morphologyEx(changed, cv2.MORPH_OPEN, self._kernel)
        changed = cv2.morphologyEx(changed, cv2.MORPH_CLOSE, self._close_kernel)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(changed, connectivity=8)
        min_px = self.cfg.min_area_pct / 100.0 * changed.size
        boxes: list[tuple[int, int, int, int]] = []
        area = 0
        for i in range(1, n):
            x, y, w, h, a = stats[i]
            if a < min_px:
                changed[labels == i] = 0
                continue
            area += int(a)
            s = self._scale
            boxes.append((int(x * s), int(y * s), int(np.ceil(w * s)), int(np.ceil(h * s))))

        # Learn: background slowly (more slowly under motion), noise and restlessness.
        moving = changed > 0
        alpha = np.where(moving, BG_ALPHA_MOTION, BG_ALPHA).astype(np.float32)
        bg += alpha * (cur - bg)
        quiet = ~moving
        self._dev[quiet] += NOISE_ALPHA * (np.minimum(diff[quiet], thresh[quiet]) - self._dev[quiet])
        cv2.accumulateWeighted(moving.astype(np.float32), self._restless, RESTLESS_ALPHA)

        area_pct = 100.0 * area / changed.size
        return MotionResult(motion=bool(boxes), area_pct=area_pct, boxes=boxes)
