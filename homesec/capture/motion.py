"""MotionDetector: background subtraction with a learnt per-pixel noise level; pure computation.

Pipeline per frame, almost all of it at the small detection width so the cost hardly grows with
the camera's size: downscale (halvings with area averaging, OpenCV's fast path; a 3x3 blur only for
an input that is already small) -> global brightness gain -> difference with the running
background outside each pixel's neighbourhood range -> threshold by what each pixel does by
itself (noise, restlessness) -> at half size: 2x2 vote, structure test when much changed,
closing, outer contours, abrupt-change test for new regions, small-fast-blob test -> boxes in
input-frame coordinates. The tests are the stages in homesec/capture/stages.py.

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
- Codec repeats (stages.FreshCount). A compressed stream repeats a block the encoder skipped
  bit for bit, which a sensor never does. At a low bitrate a swaying tree is frozen for seconds,
  then its blocks jump one clump at a time as the encoder catches up, and freeze again: each jump
  arrives abruptly and would stay "found" for good, while the warm-up measured the frozen tree as
  calm. So until a pixel has been shown anew in as many frames as a warm-up lasts, the detector
  has not seen how it behaves, and a region lying mostly on such pixels counts only while it keeps
  changing frame to frame, for its first 0.3 s (a person walking in is coded in every frame). A
  camera with sensor noise is judged everywhere within its warm-up, and the test costs nothing
  after.
- Insects and rain near the lens (stages.TransientFilter): small regions that do not cover
  where they were two frames ago are small fast blobs, not motion; they teach neither noise nor
  restlessness. A small distant person moves slowly and overlaps himself; a moth crossing in
  2-6 frames does not. See docs/detector-nights.md.
- Time constants are in seconds and converted with the frame rate (give `fps` when known), so a
  15 fps Pi stream and a 30 fps file behave alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from homesec.capture.stages import (
    AFTERMATH_STRUCT,
    FLICKER_K,
    RESTLESS_TAU_S,
    TRANSIENT_MAX_PCT,
    AbruptChange,
    FreshCount,
    LightSettling,
    Restlessness,
    StructureTest,
    TransientFilter,
)
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
AFTERMATH_TAU_S = 0.5
# Global gain: over GAIN_ROBUST it is re-measured robustly (median of block ratios); a gain step
# over LIGHT_GAIN_STEP between background and frame is a light change (exposure, lamp, cloud).
GAIN_ROBUST = 0.04
LIGHT_GAIN_STEP = 0.12


# A changed region that counts: its contour, half-size bounding box and area (half-size pixels).
Region = tuple[np.ndarray, tuple[int, int, int, int], float]


@dataclass
class MotionResult:
    """What one frame showed. Boxes are (x, y, w, h) in the coordinates of the input frame."""

    motion: bool
    area_pct: float = 0.0
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    light_change: bool = False
    warming_up: bool = False
    transient: int = 0  # small fast blobs (insects, rain near the lens) seen and ignored


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


def use_one_opencv_thread() -> None:
    """Run OpenCV's functions on the calling thread only, for the whole process.

    Why: by default OpenCV splits each call over a pool of one thread per core. The capture
    loop's calls work on small images (the detector's 320-pixel frame, one 720p halving), where
    waking the pool costs more than it saves: measured on a 720p H.264 file, `homesec analyze`
    used 11 % less CPU in all, and ran faster too, with one thread (benchmarks/decode.py). On a
    Pi the cores are better left to the decoder, the encoder and the web service.
    """
    cv2.setNumThreads(1)


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

    The detector owns the learnt model (background, its neighbourhood range, per-pixel noise and
    threshold); the tests applied to each frame are stages from homesec/capture/stages.py, and
    `update` runs them in order.
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
        self._thresh_ff2 = np.full((dh // 2, dw // 2), 255, np.uint8)
        self._thresh = np.full((dh, dw), NOISE_FLOOR, np.uint8)
        self._thresh_ff = self._thresh
        self._fg = np.zeros((dh, dw), np.uint8)
        self._fg_any = False
        self._half = (dw // 2, dh // 2)
        self._coarse_steps = [(dw >> k, dh >> k) for k in (1, 2, 3)]
        self._bg_coarse = np.zeros((dh >> 3, dw >> 3), np.float32)
        self._quiet_coarse: np.ndarray | None = None
        self._min_px = max(8.0, self.cfg.min_area_pct / 100.0 * self._npx)
        self._frames = 0
        self._stable = 0
        self._warm = True
        self._slow_n = 0
        # The stages, each with its own state.
        self._settling = LightSettling(self._relearn_frames, self._aftermath_frames)
        self._structure = StructureTest((dw, dh), self.cfg.light_change_pct)
        self._abrupt = AbruptChange((dw, dh), self.fps)
        self._fresh = FreshCount((dw, dh), self._warmup_frames)
        self._restless = Restlessness((dw, dh), self._a_rest, self._warm_n)
        max_blob2 = TRANSIENT_MAX_PCT / 100.0 * self._examined / 4.0  # half-size pixels
        self._transient = TransientFilter((dw, dh), self.fps, max_blob2)

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
            t = self._restless.gain(t)
        t8 = cv2.convertScaleAbs(t, alpha=NOISE_K / self.cfg.sensitivity)
        self._thresh = cv2.max(t8, NOISE_FLOOR / self.cfg.sensitivity)
        # Frame-to-frame differences carry the noise of two frames: a wider threshold for flicker.
        self._thresh_ff = cv2.convertScaleAbs(self._thresh, alpha=FLICKER_K)
        self._thresh_ff2 = cv2.resize(self._thresh_ff, self._half, interpolation=cv2.INTER_AREA)
        self._structure.set_noise(self._dev)

    def _learn_slow(self, cur: np.ndarray, gain: float) -> None:
        """Every few frames: noise level and restlessness, then the threshold."""
        crossed = self._transient.slow_step(self._down.size)  # by insects: not noise
        learn_fg = self._fg if self._fg_any else None
        if crossed is not None:
            learn_fg = crossed if learn_fg is None else cv2.bitwise_or(learn_fg, crossed)
        quiet = cv2.bitwise_not(learn_fg) if learn_fg is not None else None
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
            step = cv2.multiply(cv2.subtract(dev_now, self._dev), self._restless.rest, scale=a_dev)
            cv2.add(self._dev, step, dst=self._dev, mask=learn_fg)
        self._restless.update(cur, self._thresh_ff, n, self.cfg.learn_restless, crossed,
                              self._fg if self._fg_any else None)
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
        self._abrupt.remember(cur)
        return MotionResult(motion=False, warming_up=True)

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
        """Examine one frame and learn from it: the stages in order."""
        if self._in_shape != luma.shape[:2]:
            self._setup(luma)
        cur = self._prepare(luma)
        self._fresh.update(cur)
        if self._warm:
            return self._warmup(cur)
        self._frames += 1
        # 1. Settling after a light change: re-learning (nothing to report), or the aftermath.
        phase = self._settling.next_frame()
        if phase == LightSettling.RELEARN:
            return self._relearning(cur, light=False)
        after = phase == LightSettling.AFTERMATH
        # 2. Global gain: a step in the whole picture's brightness is exposure or a light.
        gain = self._gain(cur)
        if abs(gain - 1.0) > LIGHT_GAIN_STEP:
            self._settling.light_changed()
            self.debug = {"gain": gain}
            return self._relearning(cur, light=True)
        gain = 1.0 if abs(gain - 1.0) < 0.01 else gain
        # 3. Changed pixels: outside the neighbourhood's background range by the pixel's threshold.
        changed, n_changed = self._changed(cur, gain)
        frac = n_changed / self._examined
        self.debug = {"gain": gain, "frac": frac}
        if n_changed < self._min_px:
            self._transient.quiet_frame()
            self._abrupt.remember(cur)
            self._learn(cur, gain, None)
            return MotionResult(motion=False)
        # Half size from here on: 2x2 pixels must be at least half changed (isolated noise
        # pixels vanish), and morphology, structure test and contours cost a quarter.
        changed2 = cv2.resize(changed, self._half, interpolation=cv2.INTER_AREA)
        changed2 = cv2.threshold(changed2, 100, 255, cv2.THRESH_BINARY)[1]
        cur2 = None  # the frame at half size, once needed
        # 4. Structure: light keeps the local pattern (global light change, local light patches).
        if self._structure.due(self._frames, frac, after):
            cur2 = cv2.resize(cur, self._half, interpolation=cv2.INTER_AREA)
            verdict = self._structure.judge(cur2, self._half_ref(gain), changed2, frac)
            self.debug.update(self._structure.debug)
            if verdict.light:
                self._settling.light_changed()
                return self._relearning(cur, light=True)
            if after and verdict.broken < AFTERMATH_STRUCT:
                # Still settling after a light change, and nothing broke the scene's structure.
                self._structure.lit2 = None
                self._transient.quiet_frame()
                return self._settling_step(cur)
        if self._structure.lit2 is not None:
            # (not over the objects of the last frame: a small dim person on textured grass
            # looks like a light patch to one 8x8 block's correlation, and would be lost)
            lit2 = self._structure.lit2
            if self._abrupt.found2 is not None:
                lit2 = cv2.subtract(lit2, self._abrupt.found2)
            changed2 = cv2.subtract(changed2, lit2)
        # 5. Regions, each kept only if it lasts (not an insect crossing) and its change arrived
        # abruptly (or it was found before).
        fg2 = cv2.morphologyEx(changed2, cv2.MORPH_CLOSE, self._k_close)
        contours, _ = cv2.findContours(fg2, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        self._abrupt.flag(cur, changed2, self._thresh_ff2, cur2, self._fresh.unjudged2())
        self._transient.start(fg2)
        objects, transients = self._objects(contours)
        # 6. Report, and learn everywhere but under the objects (and the insects).
        return self._report(cur, gain, fg2, objects, transients)

    def _changed(self, cur: np.ndarray, gain: float) -> tuple[np.ndarray, int]:
        """Pixels outside the range of their 3x3 background neighbourhood (scaled by the gain)
        by more than their own threshold, masks applied; and how many."""
        if gain == 1.0:
            lo, hi = self._lo, self._hi
        else:
            lo = cv2.convertScaleAbs(self._lo, alpha=gain)
            hi = cv2.convertScaleAbs(self._hi, alpha=gain)
        diff = cv2.add(cv2.subtract(cur, hi), cv2.subtract(lo, cur))
        changed = cv2.compare(diff, self._thresh, cv2.CMP_GT)
        if self._mask is not None:
            changed = cv2.bitwise_and(changed, self._mask)
        return changed, cv2.countNonZero(changed)

    def _half_ref(self, gain: float) -> np.ndarray:
        """The (gain-scaled) background at half size, for the structure test."""
        ref2 = cv2.resize(self._bg8, self._half, interpolation=cv2.INTER_AREA)
        if gain != 1.0:
            ref2 = cv2.convertScaleAbs(ref2, alpha=gain)
        return ref2

    def _objects(self, contours: list[np.ndarray]) -> tuple[list[Region], list[np.ndarray]]:
        """The contours big enough, accepted by the abrupt-change test and lasting, with their
        half-size bounding boxes and areas; and the contours of small fast blobs."""
        objects = []
        transients = []
        min_px2 = self._min_px / 4.0
        for cnt in contours:
            a = cv2.contourArea(cnt)
            if a < 0.5 * min_px2:
                continue
            box = cv2.boundingRect(cnt)
            if a < min_px2:
                # Hysteresis: an object found in the last frame may shrink to half the minimum
                # area (someone small and far away, whose outline the noise nibbles at).
                if self._abrupt.was_found(box):
                    objects.append((cnt, box, a))
                continue
            if not self._abrupt.accepts(box, a):
                continue  # crept in: shading, learnt like any quiet pixel
            if self._transient.is_transient(cnt, box, a):
                transients.append(cnt)
            else:
                objects.append((cnt, box, a))
        # While something real moves, blobs by it are its parts (a fast car breaks up into
        # pieces), not insects; they do not make it last longer, though.
        self._transient.saw_objects([(box, a) for _, box, a in objects])
        if transients and self._transient.recent_box is not None:
            near = [self._transient.near_object(cv2.boundingRect(c)) for c in transients]
            objects += [(c, cv2.boundingRect(c), cv2.contourArea(c))
                        for c, n in zip(transients, near, strict=True) if n]
            transients = [c for c, n in zip(transients, near, strict=True) if not n]
        return objects, transients

    def _report(self, cur: np.ndarray, gain: float, fg2: np.ndarray, objects: list[Region],
                transients: list[np.ndarray]) -> MotionResult:
        """The result (boxes in input coordinates); objects and small fast blobs are excluded from
        learning (a bright moth would leave a ghost in the background that looks like an object
        for seconds), specks (leaves, noise) teach the noise level."""
        sx, sy = 2.0 * self._sx, 2.0 * self._sy
        boxes = [clip_box(int(x * sx), int(y * sy), math.ceil((w + 1) * sx),
                          math.ceil((h + 1) * sy), self._in_shape[1], self._in_shape[0])
                 for _, (x, y, w, h), _ in objects]
        area = sum(a for _, _, a in objects)
        fg = None
        self._abrupt.remember(cur)
        if objects or transients:
            fg2[:] = 0
            cv2.drawContours(fg2, [cnt for cnt, _, _ in objects], -1, 255, -1)
            if objects:
                self._abrupt.found(fg2, [(cnt, box) for cnt, box, _ in objects])
            if transients:
                cv2.drawContours(fg2, transients, -1, 255, -1)
            # The contours run through the outer pixels' centres and the 2x2 vote thins an object:
            # its rim is no background either (else a small, slow object is eaten from its edge).
            fg = cv2.resize(cv2.dilate(fg2, self._k_open), self._down.size,
                            interpolation=cv2.INTER_NEAREST)
            q = cv2.resize(fg2, self._coarse_steps[1], interpolation=cv2.INTER_AREA)
            q = cv2.resize(q, self._coarse_steps[2], interpolation=cv2.INTER_AREA)
            self._quiet_coarse = cv2.threshold(q, 0, 255, cv2.THRESH_BINARY_INV)[1]
            if cv2.countNonZero(self._quiet_coarse) < q.size // 4:
                self._quiet_coarse = None  # mostly covered: the plain means are all there is
        self._learn(cur, gain, fg)
        area_pct = 100.0 * 4.0 * area / self._npx
        return MotionResult(motion=bool(boxes), area_pct=area_pct, boxes=boxes,
                            transient=len(transients))

    def _settling_step(self, cur: np.ndarray) -> MotionResult:
        """In the aftermath of a light change, with nothing that broke the structure: follow the
        picture (time constant AFTERMATH_TAU_S), report nothing."""
        cv2.accumulateWeighted(cur, self._bg, self._a_after)
        self._refresh_background()
        self._fg_any = False
        self._abrupt.remember(cur)
        return MotionResult(motion=False)

    def _relearning(self, cur: np.ndarray, light: bool) -> MotionResult:
        """After a light change: pull the background to the new picture quickly, report nothing."""
        cv2.accumulateWeighted(cur, self._bg, self._a_relearn)
        self._refresh_background()
        self._fg_any = False
        self._settling.relearnt()
        self._restless.forget_last()  # the light change is not flicker
        self._abrupt.remember(cur)
        self._abrupt.forget_flags()  # the light change is not abrupt change either
        self._transient.forget()
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
