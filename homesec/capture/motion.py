"""MotionDetector: background subtraction with a learnt per-pixel noise level; pure computation.

Pipeline per frame, almost all of it at the small detection width so the cost hardly grows with
the camera's size: downscale (halvings with area averaging, OpenCV's fast path; a 3x3 blur only for
an input that is already small) -> global brightness gain -> difference with the running
background outside each pixel's neighbourhood range -> threshold by what each pixel does by
itself (noise, restlessness) -> at half size: 2x2 vote, structure test when much changed,
closing, outer contours, abrupt-change test for new regions -> boxes in input-frame coordinates.

Why each step (the physics behind it):
- Per-pixel noise. A dark room is noisy, a bright wall is not, compression flickers around edges:
  one fixed threshold is either blind in the dark or jumpy in the light. Each pixel's mean absolute
  deviation from the background is measured while no object covers it; the threshold is a multiple
  of it, never below a floor of a few grey levels (composited or very clean video has zero noise,
  yet codecs still flicker by a few levels).
- Neighbourhood background. A pixel counts as changed only when it lies outside the range of the
  background values in its 3x3 neighbourhood. Sub-pixel camera shake, compression ringing along
  edges and small sway do not create values the neighbourhood lacks; a person does.
- Restlessness (the Motion daemon's "smart mask"). Where the scene changes again and again (leaves,
  water, escalator steps) the share of quarter-seconds in which a pixel changed rises; spread over
  its 5x5 neighbourhood (a tree is restless as a whole) it multiplies the threshold, and there the
  noise level is learnt even under "objects", so a tree is not a stream of events while a person (a
  large, new, strong change) still stands out. It is recurring change that counts, not lasting
  change: a person who walks in and stands still stays found.
- Learning from little data. A clip or a camera start gives seconds, not minutes: the noise level
  and restlessness start as plain means of all samples so far (1/n weights) and become exponential
  averages only after their time constant. The warm-up (one second once the exposure has settled;
  a camera starts dark) already measures each pixel's variability, a swaying branch included.
- Light changes. A lamp, a cloud or an auto-exposure step changes many pixels but keeps the local
  pattern (edges, texture); a person replaces it. Three tests: the frame's brightness over the
  background's (robustly: the median of 8x8 block ratios) jumped by over 12 %; or a sizeable part
  changed and, measured by normalised cross-correlation in 8x8 blocks, the textured part of it kept
  its structure; or nearly everything changed. Then the frame is a `light_change`, no motion is
  reported, the background is re-learnt within a fraction of a second, and for 3 s after (lamps
  warm up, exposure and white balance settle) only change that breaks the scene's structure counts
  as motion. Smaller structure-keeping patches (a sun patch, headlights), and whole changed regions
  whose textured blocks all kept their structure (a shadow or a reflection on a wall), are removed
  from the changed pixels. The structure test runs only when there is candidate change, and at most every
  other frame while the change grows steadily.
- Abrupt change. On an untextured wall the structure test has nothing to judge, and a soft shadow
  (someone between a lamp and the wall, out of view) looks like a plain-coloured object. What
  tells them apart is how the change arrives: a body's edge is sharp, so a pixel it passes jumps
  from background to body within a frame or two, while a soft shadow's penumbra creeps over each
  pixel. A pixel that changed by more than its flicker threshold within the last quarter second is
  flagged, and stays flagged while it stays changed; a new changed region is motion only once a
  quarter of it is flagged, and a region found once stays found while it overlaps the last
  frame's objects (a person who stops). The flags accumulate, so a slow object is found once its
  edge has swept a quarter of its area. The price: a new object must differ from the background
  by about 1.5 thresholds (the flicker threshold) where one used to do, and a slow, faint object
  is judged like creeping shading (20 grey levels darker than a clean wall and crossing the
  picture in over a minute: found seconds late, or not at all).
- Time constants are in seconds and converted with the frame rate (give `fps` when known), so a
  15 fps Pi stream and a 30 fps file behave alike.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from homesec.config import MaskConfig, MotionConfig

DEFAULT_FPS = 15.0
# Warm-up: learn for this long after the brightness has settled, at most WARMUP_MAX_S in total.
WARMUP_S = 1.0
WARMUP_MAX_S = 6.0
WARMUP_STABLE_GAIN = 0.03
# Background time constants: quiet pixels follow slow scene changes within seconds; pixels under a
# moving object are absorbed only slowly (a parked car becomes background in about a minute).
BG_TAU_S = 2.0
BG_TAU_MOTION_S = 60.0
# Per-pixel noise: threshold = NOISE_K * mean absolute deviation, never below NOISE_FLOOR levels.
NOISE_TAU_S = 4.0
NOISE_K = 4.0
NOISE_FLOOR = 6.0
NOISE_INIT = 2.0
# Restlessness ("smart mask"): share of recent quarter-seconds in which a pixel changed by more
# than FLICKER_K times its threshold; it multiplies the pixel's threshold. A tree is
# restless as a whole: the map is spread to each pixel's 5x5 neighbourhood (max), and a pixel
# flickering a quarter of the time (leaves against the sky in wind) gets the full gain.
RESTLESS_TAU_S = 5.0
RESTLESS_GAIN = 4.0
RESTLESS_FULL = 0.25
RESTLESS_SPREAD = 5
FLICKER_K = 1.5
# Slow statistics (noise, restlessness, thresholds, derived background images) are refreshed
# about this often; the background itself every BG_EVERY frames.
SLOW_PERIOD_S = 0.25
BG_EVERY = 2
# After a light change the background is re-learnt with this time constant for RELEARN_S.
RELEARN_TAU_S = 0.06
RELEARN_S = 0.3
# For AFTERMATH_S after a light change (lamps warm up, exposure and white balance settle) only
# changes that break the scene's structure count as motion: at least AFTERMATH_STRUCT blocks
# whose texture changed; smooth brightness changes are learnt with time constant AFTERMATH_TAU_S.
AFTERMATH_S = 3.0
AFTERMATH_STRUCT = 3
AFTERMATH_TAU_S = 0.5
# Structure test in BLOCK x BLOCK blocks: a block is "changed" when CHANGED_BLOCK of it changed,
# textured when both images have a local variance over TEXTURE_VAR (grey levels squared) and over
# TEXTURE_NOISE_K^2 times the noise variance; it keeps its structure when the NCC exceeds NCC_LIGHT.
BLOCK = 8
HALF_BLOCK = BLOCK // 2
CHANGED_BLOCK = 0.2
TEXTURE_VAR = 16.0
TEXTURE_NOISE_K = 3.0
NCC_LIGHT = 0.7
# The structure test runs when more than this share of the frame changed.
STRUCTURE_MIN_FRAC = 0.002
# A frame is a light change when changed blocks cover this share of the frame (of the configured
# light_change_pct, which is the share at which any change counts as global) and at least
# LIGHT_KEPT_SHARE of the judged (textured) changed blocks kept their structure.
LIGHT_MIN_SHARE = 0.25
LIGHT_KEPT_SHARE = 0.6
# ... provided at least this many, and this share, of the changed blocks could be judged (are
# textured): a car on a plain road is mostly untextured blocks and proves nothing either way.
LIGHT_MIN_JUDGED = 6
LIGHT_JUDGED_SHARE = 0.25
# A changed region (of 8x8 blocks) is a shading change, not motion, when at least this many of its
# blocks are textured and all of them kept their structure (a shadow or a reflection on a wall).
SHADING_MIN_JUDGED = 2
# Nearly the whole frame changed: global whatever the structure says.
GLOBAL_CHANGE_FRAC = 0.9
# Global gain: over GAIN_ROBUST it is re-measured robustly (median of block ratios); a gain step
# over LIGHT_GAIN_STEP between background and frame is a light change (exposure, lamp, cloud).
GAIN_ROBUST = 0.04
LIGHT_GAIN_STEP = 0.12
# Abrupt change: a pixel that differs from the frame ABRUPT_S ago by more than its flicker
# threshold stays flagged while it stays changed. A new changed region is motion only when at least
# ABRUPT_SHARE of it is flagged (a shadow's soft edge creeps over an untextured wall, a body's edge
# jumps); once found, a region stays found while it overlaps the last frame's objects.
ABRUPT_S = 0.25
ABRUPT_SHARE = 0.25


@dataclass
class MotionResult:
    """What one frame showed. Boxes are (x, y, w, h) in the coordinates of the input frame."""

    motion: bool
    area_pct: float = 0.0
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    light_change: bool = False
    warming_up: bool = False


def clip_box(x: int, y: int, w: int, h: int, width: int, height: int) -> tuple[int, int, int, int]:
    """A box scaled up from the detection grid, kept inside the input frame."""
    x, y = min(max(x, 0), width - 1), min(max(y, 0), height - 1)
    return (x, y, max(1, min(w, width - x)), max(1, min(h, height - y)))


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


def alpha_for(tau_s: float, dt_s: float) -> float:
    """Per-step weight of an exponential average with time constant tau_s, steps dt_s apart."""
    return 1.0 - math.exp(-dt_s / tau_s)


class Downscaler:
    """Luma of any size -> detection size, cheaply.

    Why halvings: OpenCV's area interpolation has a fast path for exactly 2x that averages 2x2
    pixels (noise falls by half each time); other ratios take a generic path up to 20x slower. So
    the frame is halved while it stays at least twice the detection width, and the last step (a
    ratio under 2, on a small, already averaged image) is bilinear.
    """

    def __init__(self, in_w: int, in_h: int, detect_width: int) -> None:
        self.steps: list[tuple[int, int]] = []
        w, h = in_w, in_h
        while w // 2 >= detect_width:
            w, h = w // 2, h // 2
            self.steps.append((w, h))
        # Even sizes, so the detector's own halvings stay on the fast path.
        dw = max(16, min(detect_width, in_w) // 2 * 2)
        dh = max(16, round(in_h * dw / in_w / 2) * 2)
        self.final = (dw, dh) if (w, h) != (dw, dh) else None
        self.size = (dw, dh)

    def __call__(self, luma: np.ndarray) -> np.ndarray:
        """The downscaled uint8 image."""
        img = luma
        for size in self.steps:
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        if self.final is not None:
            img = cv2.resize(img, self.final, interpolation=cv2.INTER_LINEAR)
        return img


class MotionDetector:
    """Stateful detector for one camera; feed it every frame's luma plane in order.

    `fps` (optional) is the frame rate of the stream; the learning rates are defined per second.
    `debug` holds a few numbers about the last frame (gain, changed share, structure counts) for
    tuning and diagnosis; it is not part of the result.
    """

    def __init__(self, cfg: MotionConfig | None = None, fps: float | None = None) -> None:
        self.cfg = cfg or MotionConfig()
        self.fps = fps if fps and fps > 0 else DEFAULT_FPS
        dt = 1.0 / self.fps
        self._slow_every = max(2, round(SLOW_PERIOD_S * self.fps))
        self._warm_n = max(1, round(WARMUP_S / SLOW_PERIOD_S))  # warm-up worth in slow samples
        self._a_bg = alpha_for(BG_TAU_S, dt * BG_EVERY)
        self._a_bg_motion = alpha_for(BG_TAU_MOTION_S, dt * BG_EVERY)
        self._a_noise = alpha_for(NOISE_TAU_S, dt * self._slow_every)
        self._a_rest = alpha_for(RESTLESS_TAU_S, dt * self._slow_every)
        self._a_relearn = alpha_for(RELEARN_TAU_S, dt)
        self._relearn_frames = max(2, round(RELEARN_S * self.fps))
        self._aftermath_frames = round(AFTERMATH_S * self.fps)
        self._a_after = alpha_for(AFTERMATH_TAU_S, dt)
        self._warmup_frames = max(5, round(WARMUP_S * self.fps))
        self._warmup_max = max(self._warmup_frames, round(WARMUP_MAX_S * self.fps))
        self._k_open = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
        self._k_close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        self._k_spread = cv2.getStructuringElement(cv2.MORPH_RECT, (RESTLESS_SPREAD, RESTLESS_SPREAD))
        self.debug: dict[str, float] = {}
        self.reset()

    def reset(self) -> None:
        """Forget everything learnt (after the camera was reopened, say)."""
        self._in_shape: tuple[int, int] | None = None
        self._frames = 0

    # ----------------------------------------------------------------- set-up and learning

    def _setup(self, luma: np.ndarray) -> None:
        h, w = luma.shape[:2]
        self._in_shape = (h, w)
        self._down = Downscaler(w, h, self.cfg.detect_width)
        dw, dh = self._down.size
        self._sx, self._sy = w / dw, h / dh
        self._npx = dw * dh
        self._mask = mask_image(self.cfg.masks, dw, dh)
        self._examined = self._npx if self._mask is None else max(1, cv2.countNonZero(self._mask))
        self._bg = np.zeros((dh, dw), np.float32)
        self._bg8 = np.zeros((dh, dw), np.uint8)
        self._lo = self._hi = self._bg8
        self._dev = np.full((dh, dw), NOISE_INIT, np.float32)
        self._rest = np.zeros((dh, dw), np.float32)
        self._prev_slow: np.ndarray | None = None
        # The last ABRUPT_S of (detection-size) frames; the objects found in the last frame and
        # the abrupt-change flags, at half size.
        self._recent: deque[np.ndarray] = deque(maxlen=max(1, round(ABRUPT_S * self.fps)))
        self._found2: np.ndarray | None = None
        self._abrupt2 = np.zeros((dh // 2, dw // 2), np.uint8)
        self._thresh_ff2 = np.full((dh // 2, dw // 2), 255, np.uint8)
        self._thresh = np.full((dh, dw), NOISE_FLOOR, np.uint8)
        self._thresh_ff = self._thresh
        self._fg = np.zeros((dh, dw), np.uint8)
        self._fg_any = False
        self._half = (dw // 2, dh // 2)
        self._blocks_half = ((dw // BLOCK) * HALF_BLOCK, (dh // BLOCK) * HALF_BLOCK)
        self._lit2: np.ndarray | None = None
        self._tested_at = -10
        self._tested_frac = 0.0
        self._blocks = (dw // BLOCK, dh // BLOCK)
        self._coarse_steps = [(dw >> k, dh >> k) for k in (1, 2, 3)]
        self._bg_coarse = np.zeros((dh >> 3, dw >> 3), np.float32)
        self._quiet_coarse: np.ndarray | None = None
        self._block_noise_var = np.zeros((self._blocks[1], self._blocks[0]), np.float32)
        self._min_px = max(8.0, self.cfg.min_area_pct / 100.0 * self._npx)
        self._frames = 0
        self._stable = 0
        self._relearn = 0
        self._after = 0
        self._warm = True
        self._slow_n = 0

    def _prepare(self, luma: np.ndarray) -> np.ndarray:
        if luma.ndim == 3:
            luma = luma[..., 0]
        small = self._down(luma)
        if self._down.steps:
            return small  # already the average of 2x2 or more pixels
        # A 3x3 blur removes single-pixel noise and codec mosquito noise at little cost.
        return cv2.GaussianBlur(small, (3, 3), 0)

    def _refresh_background(self) -> None:
        """uint8 background and its 3x3 neighbourhood min/max, after the float background moved."""
        self._bg8 = cv2.convertScaleAbs(self._bg)
        self._lo = cv2.erode(self._bg8, self._k_open)
        self._hi = cv2.dilate(self._bg8, self._k_open)
        self._bg_coarse = self._to_coarse(self._bg8)

    def _to_coarse(self, img: np.ndarray) -> np.ndarray:
        """Block means (8x8 detection pixels) by three fast halvings, float32."""
        for size in self._coarse_steps:
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        return img.astype(np.float32)

    def _refresh_threshold(self) -> None:
        """Per-pixel threshold from noise level and restlessness (uint8, grey levels)."""
        t = self._dev
        if self.cfg.learn_restless:
            rest = cv2.min(cv2.dilate(self._rest, self._k_spread), RESTLESS_FULL)
            t = cv2.scaleAdd(cv2.multiply(t, rest), RESTLESS_GAIN / RESTLESS_FULL, t)
        t8 = cv2.convertScaleAbs(t, alpha=NOISE_K / self.cfg.sensitivity)
        self._thresh = cv2.max(t8, NOISE_FLOOR / self.cfg.sensitivity)
        # Frame-to-frame differences carry the noise of two frames: a wider threshold for flicker.
        self._thresh_ff = cv2.convertScaleAbs(self._thresh, alpha=FLICKER_K)
        self._thresh_ff2 = cv2.resize(self._thresh_ff, self._half, interpolation=cv2.INTER_AREA)
        # Noise variance per structure-test block (half-size pixels average 4: variance / 4).
        bw, bh = self._blocks
        nd = cv2.resize(self._dev[: bh * BLOCK, : bw * BLOCK], (bw, bh), interpolation=cv2.INTER_AREA)
        self._block_noise_var = (TEXTURE_NOISE_K * 1.25 * nd) ** 2 / 4.0

    def _learn_slow(self, cur: np.ndarray, gain: float) -> None:
        """Every few frames: noise level and restlessness, then the threshold."""
        quiet = cv2.bitwise_not(self._fg) if self._fg_any else None
        ref = self._bg8 if gain == 1.0 else cv2.convertScaleAbs(self._bg, alpha=gain)
        dev_now = cv2.absdiff(cur, ref)
        # A pixel's measured deviation may not jump: cap what one sample teaches at the threshold.
        dev_now = cv2.min(dev_now, self._thresh).astype(np.float32)
        # Early on, the averages are plain means of all samples so far (1/n), the best estimate
        # from little data; after their time constant they become exponential averages. So a
        # tree swaying from the first second is learnt within seconds, not minutes.
        self._slow_n += 1
        n = self._slow_n
        a_dev = max(self._a_noise, 1.0 / (n + self._warm_n))
        cv2.accumulateWeighted(dev_now, self._dev, a_dev, quiet)
        if quiet is not None and self.cfg.learn_restless:
            # Under "objects" the level is learnt too, in proportion to how restless the pixel is:
            # a passer-by teaches nothing, an escalator or a fountain that is "moving" all the time
            # is background that moves, and its own amplitude becomes its noise level.
            step = cv2.multiply(cv2.subtract(dev_now, self._dev), self._rest, scale=a_dev)
            cv2.add(self._dev, step, dst=self._dev, mask=self._fg)
        if self.cfg.learn_restless and self._prev_slow is not None:
            # Restlessness is flicker: the pixel changed since the last slow step (a quarter of a
            # second ago). Leaves and escalator steps do that all the time; a person who stands
            # still does not, and stays found (only the background, with its one-minute time
            # constant, absorbs him). rest += a * (flickered - rest)
            # Early on the share is a plain mean with a prior of one second of calm, so that one
            # change (a person who walks in and stops) does not look like restlessness.
            a = max(self._a_rest, 1.0 / (n + self._warm_n))
            flicker = cv2.compare(cv2.absdiff(cur, self._prev_slow), self._thresh_ff, cv2.CMP_GT)
            self._rest = cv2.addWeighted(self._rest, 1.0 - a, flicker, a / 255.0, 0.0, dtype=cv2.CV_32F)
        self._prev_slow = cur
        self._refresh_threshold()

    def _warmup(self, cur: np.ndarray) -> MotionResult:
        """Learn the background fast and each pixel's variability; report nothing."""
        self._frames += 1
        if self._frames == 1:
            self._bg[:] = cur
            self._refresh_background()
            return MotionResult(motion=False, warming_up=True)
        m_bg, m_cur = float(cv2.mean(self._bg8)[0]), float(cv2.mean(cur)[0])
        # Black so far: stable if still black (a dark night), settling if not.
        black_gain = 1.0 if m_cur <= 4.0 else 2.0
        gain = m_cur / m_bg if m_bg > 4.0 else black_gain
        if abs(gain - 1.0) > WARMUP_STABLE_GAIN:
            # Exposure still settling: follow it, do not learn noise from it.
            self._stable = 0
            cv2.accumulateWeighted(cur, self._bg, 0.7)
        else:
            self._stable += 1
            a = max(1.0 / (self._stable + 1), self._a_bg)
            diff = cv2.absdiff(cur, self._bg8).astype(np.float32)
            cv2.accumulateWeighted(diff, self._dev, max(1.0 / self._stable, self._a_noise))
            cv2.accumulateWeighted(cur, self._bg, a)
        self._refresh_background()
        if self._stable >= self._warmup_frames or self._frames >= self._warmup_max:
            self._warm = False
            self._refresh_threshold()
        self._remember(cur)
        return MotionResult(motion=False, warming_up=True)

    # ----------------------------------------------------------------- the structure test

    def _structure(self, cur2: np.ndarray, ref2: np.ndarray, changed2: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per block (8x8 detection pixels, pooled from the half-size images), as boolean arrays:
        changed?, textured in both images?, structure kept (textured and NCC high)?, and structure
        broken (textured in both, NCC low)?"""
        bw, bh = self._blocks
        hh, ww = bh * HALF_BLOCK, bw * HALF_BLOCK
        c = cur2[:hh, :ww].astype(np.float32)
        r = ref2[:hh, :ww].astype(np.float32)

        def pool(img: np.ndarray) -> np.ndarray:
            return cv2.resize(img, (bw, bh), interpolation=cv2.INTER_AREA)

        mc, mr = pool(c), pool(r)
        vc = pool(c * c) - mc * mc
        vr = pool(r * r) - mr * mr
        cov = pool(c * r) - mc * mr
        ncc = cov / np.sqrt(np.maximum(vc * vr, 1e-6))
        chg = pool(changed2[:hh, :ww]) > (255.0 * CHANGED_BLOCK)
        tex_min = np.maximum(TEXTURE_VAR, self._block_noise_var)
        textured = (vr > tex_min) & (vc > tex_min)
        kept = textured & (ncc > NCC_LIGHT)
        # (Texture that appears or vanishes proves nothing: light brings out texture in a dark
        # room and darkness hides it, just as a person does.)
        broken = textured & ~kept
        return chg, textured, kept, broken

    def _gain(self, cur: np.ndarray) -> float:
        """Global brightness gain of this frame over the background (auto-exposure, clouds).

        With something moving, only over the 8x8 blocks it did not touch in the last frame: a
        person covering a third of the picture must not look like the exposure changing."""
        cc = None
        if not self._fg_any:
            # (masked-out parts, a flickering TV say, do not count)
            m_bg = cv2.mean(self._bg8, self._mask)[0]
            gain = cv2.mean(cur, self._mask)[0] / m_bg if m_bg > 2.0 else 1.0
        else:
            cc = self._to_coarse(cur)
            m_bg = cv2.mean(self._bg_coarse, self._quiet_coarse)[0]
            gain = cv2.mean(cc, self._quiet_coarse)[0] / m_bg if m_bg > 2.0 else 1.0
        if abs(gain - 1.0) > GAIN_ROBUST:
            # A big change: make sure it is global, as the median of the blocks' ratios (a
            # person filling a third of the picture moves the mean, not the median).
            gain = self._median_gain(cur, cc)
        return gain

    def _median_gain(self, cur: np.ndarray, cc: np.ndarray | None = None) -> float:
        """Median over 8x8 blocks of current / background brightness."""
        cc = self._to_coarse(cur) if cc is None else cc
        ratio = ((cc + 1.0) / (self._bg_coarse + 1.0)).ravel()
        mid = ratio.size // 2
        return float(np.partition(ratio, mid)[mid])

    # ----------------------------------------------------------------- per frame

    def update(self, luma: np.ndarray) -> MotionResult:
        """Examine one frame and learn from it."""
        if self._in_shape != luma.shape[:2]:
            self._setup(luma)
        cur = self._prepare(luma)
        if self._warm:
            return self._warmup(cur)
        self._frames += 1
        if self._relearn > 0:
            self._relearn -= 1
            return self._relearning(cur, light=False)
        after = self._after > 0
        if after:
            self._after -= 1
        gain = self._gain(cur)
        if abs(gain - 1.0) > LIGHT_GAIN_STEP:
            # The whole picture got brighter or darker at once: exposure or a light.
            self._relearn = self._relearn_frames
            self.debug = {"gain": gain}
            return self._relearning(cur, light=True)
        if abs(gain - 1.0) < 0.01:
            gain = 1.0
            lo, hi = self._lo, self._hi
        else:
            lo = cv2.convertScaleAbs(self._lo, alpha=gain)
            hi = cv2.convertScaleAbs(self._hi, alpha=gain)

        # Difference outside the neighbourhood's background range, against each pixel's threshold.
        diff = cv2.add(cv2.subtract(cur, hi), cv2.subtract(lo, cur))
        changed = cv2.compare(diff, self._thresh, cv2.CMP_GT)
        if self._mask is not None:
            changed = cv2.bitwise_and(changed, self._mask)
        n_changed = cv2.countNonZero(changed)
        frac = n_changed / self._examined
        self.debug = {"gain": gain, "frac": frac}
        if n_changed < self._min_px:
            self._remember(cur)
            self._learn(cur, gain, None)
            return MotionResult(motion=False)

        # Half size from here on: 2x2 pixels must be at least half changed (isolated noise
        # pixels vanish), and morphology, structure test and contours cost a quarter.
        changed2 = cv2.resize(changed, self._half, interpolation=cv2.INTER_AREA)
        changed2 = cv2.threshold(changed2, 100, 255, cv2.THRESH_BINARY)[1]
        # The structure test: on every other frame at most while the change grows steadily (one
        # frame of unjudged change cannot start an event), at once when the change jumps.
        test = after or (frac > STRUCTURE_MIN_FRAC and (
            self._frames - self._tested_at >= 2 or frac > 1.25 * self._tested_frac + 0.005
        ))
        if test:
            self._tested_at, self._tested_frac = self._frames, frac
            cur2 = cv2.resize(cur, self._half, interpolation=cv2.INTER_AREA)
            ref2 = cv2.resize(self._bg8, self._half, interpolation=cv2.INTER_AREA)
            if gain != 1.0:
                ref2 = cv2.convertScaleAbs(ref2, alpha=gain)
            chg, textured, kept, broken = self._structure(cur2, ref2, changed2)
            n_chg = int(np.count_nonzero(chg))
            judged = int(np.count_nonzero(chg & textured))
            n_kept = int(np.count_nonzero(chg & kept))
            chg_share = n_chg / max(1, chg.size)
            self.debug.update(chg_share=chg_share, judged=judged, kept=n_kept)
            big = self.cfg.light_change_pct / 100.0
            # Evidence: enough of the changed blocks must be textured to judge their structure.
            enough = judged >= max(LIGHT_MIN_JUDGED, LIGHT_JUDGED_SHARE * n_chg)
            light = (
                (chg_share > LIGHT_MIN_SHARE * big and enough and n_kept >= LIGHT_KEPT_SHARE * judged)
                or (frac > big and n_kept >= 0.5 * judged)
                or frac > GLOBAL_CHANGE_FRAC
            )
            if light:
                self._relearn = self._relearn_frames
                self._lit2 = None
                return self._relearning(cur, light=True)
            self._lit2 = None
            if after and np.count_nonzero(chg & broken) < AFTERMATH_STRUCT:
                # Still settling after a light change, and nothing broke the scene's structure.
                cv2.accumulateWeighted(cur, self._bg, self._a_after)
                self._refresh_background()
                self._fg_any = False
                self._remember(cur)
                return MotionResult(motion=False)
            if n_kept:
                # Local light (a sun patch, headlights, a shadow): not motion, here and in the next
                # frame. That is every structure-keeping block, and every changed region (at block
                # level) in which all the blocks that can be judged kept their structure.
                lit_blocks = chg & kept
                n_reg, regions = cv2.connectedComponents(chg.astype(np.uint8), connectivity=8)
                if n_reg > 2 or n_kept < judged:
                    judged_in = np.bincount(regions[chg & textured], minlength=n_reg)
                    kept_in = np.bincount(regions[chg & kept], minlength=n_reg)
                    shading = (judged_in >= SHADING_MIN_JUDGED) & (kept_in == judged_in)
                    shading[0] = False
                    lit_blocks |= shading[regions]
                elif judged >= SHADING_MIN_JUDGED:  # one region, all judged blocks kept
                    lit_blocks = chg
                lit = cv2.resize(lit_blocks.astype(np.uint8) * 255, self._blocks_half,
                                 interpolation=cv2.INTER_NEAREST)
                self._lit2 = cv2.copyMakeBorder(lit, 0, self._half[1] - lit.shape[0], 0,
                                                self._half[0] - lit.shape[1], cv2.BORDER_CONSTANT, 0)
        elif frac <= STRUCTURE_MIN_FRAC:
            self._lit2 = None
        if self._lit2 is not None:
            changed2 = cv2.subtract(changed2, self._lit2)

        fg2 = cv2.morphologyEx(changed2, cv2.MORPH_CLOSE, self._k_close)
        contours, _ = cv2.findContours(fg2, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes: list[tuple[int, int, int, int]] = []
        objects = []
        area = 0.0
        min_px2 = self._min_px / 4.0
        sx, sy = 2.0 * self._sx, 2.0 * self._sy
        judge = bool(self._recent)
        if judge:
            # Abrupt change (see ABRUPT_S): flag pixels that jumped within the last quarter second,
            # keep the flags while the pixels stay changed.
            cur2 = cv2.resize(cur, self._half, interpolation=cv2.INTER_AREA)
            old2 = cv2.resize(self._recent[0], self._half, interpolation=cv2.INTER_AREA)
            jumped = cv2.compare(cv2.absdiff(cur2, old2), self._thresh_ff2, cv2.CMP_GT)
            self._abrupt2 = cv2.bitwise_and(cv2.bitwise_or(self._abrupt2, jumped), changed2)
        for cnt in contours:
            a = cv2.contourArea(cnt)
            if a < min_px2:
                continue
            x, y, w, h = cv2.boundingRect(cnt)
            if judge:
                # A new region whose change crept in is shading (a soft shadow or light on an
                # untextured wall, where the structure test has nothing to judge): it is learnt
                # into the background like any quiet pixel. A found one stays found (a person
                # who stops, a plain-coloured car that slows down).
                roi = (slice(y, y + h), slice(x, x + w))
                found = self._found2 is not None and cv2.countNonZero(self._found2[roi]) > 0
                if not found and cv2.countNonZero(self._abrupt2[roi]) < max(1.0, ABRUPT_SHARE * a):
                    continue
            objects.append(cnt)
            area += a
            boxes.append(clip_box(int(x * sx), int(y * sy), math.ceil((w + 1) * sx),
                                  math.ceil((h + 1) * sy), self._in_shape[1], self._in_shape[0]))
        fg = None
        self._remember(cur)
        if objects:
            # Objects are excluded from learning; specks (leaves, noise) teach the noise level.
            fg2[:] = 0
            cv2.drawContours(fg2, objects, -1, 255, -1)
            self._found2 = fg2.copy()
            fg = cv2.resize(fg2, self._down.size, interpolation=cv2.INTER_NEAREST)
            q = cv2.resize(fg2, self._coarse_steps[1], interpolation=cv2.INTER_AREA)
            q = cv2.resize(q, self._coarse_steps[2], interpolation=cv2.INTER_AREA)
            self._quiet_coarse = cv2.threshold(q, 0, 255, cv2.THRESH_BINARY_INV)[1]
            if cv2.countNonZero(self._quiet_coarse) < q.size // 4:
                self._quiet_coarse = None  # mostly covered: the plain means are all there is
        self._learn(cur, gain, fg)
        area_pct = 100.0 * 4.0 * area / self._npx
        return MotionResult(motion=bool(boxes), area_pct=area_pct, boxes=boxes)

    def _remember(self, cur: np.ndarray) -> None:
        """Keep the frame for the abrupt-change test (a reference: `cur` is never written to);
        no objects found in it unless the caller says so after."""
        self._recent.append(cur)
        self._found2 = None

    def _relearning(self, cur: np.ndarray, light: bool) -> MotionResult:
        """After a light change: pull the background to the new picture quickly, report nothing."""
        cv2.accumulateWeighted(cur, self._bg, self._a_relearn)
        self._refresh_background()
        self._fg_any = False
        self._after = self._aftermath_frames
        self._prev_slow = None  # the light change is not flicker
        self._remember(cur)
        self._abrupt2[:] = 0  # the light change is not abrupt change either
        return MotionResult(motion=False, light_change=light)

    def _learn(self, cur: np.ndarray, gain: float, fg: np.ndarray | None) -> None:
        """Background (slowly under objects), restlessness, and every few frames the noise."""
        if fg is not None:
            self._fg, self._fg_any = fg, True
        else:
            self._fg_any = False
        if self._frames % BG_EVERY == 0:
            if fg is not None:
                cv2.accumulateWeighted(cur, self._bg, self._a_bg, cv2.bitwise_not(fg))
                cv2.accumulateWeighted(cur, self._bg, self._a_bg_motion, fg)
            else:
                cv2.accumulateWeighted(cur, self._bg, self._a_bg)
        if self._frames % self._slow_every == 0:
            # The derived images follow the background (time constant: seconds) every few frames.
            self._refresh_background()
            self._learn_slow(cur, gain)

