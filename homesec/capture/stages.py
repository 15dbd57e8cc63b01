"""The tests MotionDetector.update runs in order, one small object each, with its own state.

The detector (homesec/capture/motion.py) owns the learnt background and noise model; each stage
here answers one question about the current frame and remembers only what it needs for that:

- `LightSettling`: are we re-learning or settling after a light change?
- `StructureTest`: did the changed part keep its local pattern (light) or break it (an object)?
- `AbruptChange`: did a changed region arrive with a sharp edge (a body) or creep in (shading)?
  And where the stream has not yet shown enough to judge: does it keep changing?
- `FreshCount`: which pixels has the stream (not a codec repeating a skipped block) shown anew?
- `Restlessness`: where does the scene change again and again (leaves, water)?
- `TransientFilter`: is a region lasting, or a small fast blob (an insect close to the lens)?

The physics behind each threshold is in motion.py's docstring; the constants sit by their stage.
All images are uint8 at detection size, or at half of it where the name ends in 2.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

# Restlessness ("smart mask"): share of recent quarter-seconds in which a pixel changed by more
# than FLICKER_K times its threshold; it multiplies the pixel's threshold. A tree is
# restless as a whole: the map is spread to each pixel's 5x5 neighbourhood (max), and a pixel
# flickering a quarter of the time (leaves against the sky in wind) gets the full gain.
RESTLESS_TAU_S = 5.0
RESTLESS_GAIN = 4.0
RESTLESS_FULL = 0.25
RESTLESS_SPREAD = 5
FLICKER_K = 1.5
# Under found objects a flicker counts this much (a person's own edges are not restlessness).
OBJECT_FLICKER = 0.25
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
# For the aftermath of a light change: at least AFTERMATH_STRUCT blocks whose texture changed.
AFTERMATH_STRUCT = 3
# Abrupt change: a pixel that differs from the frame ABRUPT_S ago by more than its flicker
# threshold stays flagged while it stays changed. A new changed region is motion only when at least
# ABRUPT_SHARE of it is flagged (a shadow's soft edge creeps over an untextured wall, a body's edge
# jumps); once found, a region stays found while it overlaps the last frame's objects.
ABRUPT_S = 0.25
ABRUPT_SHARE = 0.25
# Codec repeats: a compressed stream repeats a block it skips bit for bit. A sensor never does
# (its noise changes every pixel in every frame), so a pixel is judged once the stream has brought
# it a new value in as many frames as a warm-up lasts; until then the detector has not seen how
# the place behaves (a swaying tree that a low-bitrate encoder freezes, then updates in jumps as
# it catches up). A new region lying on more than UNJUDGED_SHARE unjudged pixels must be live: at
# least LIVE_SHARE of its area changed since the last frame by more than the flicker threshold,
# in every frame until it has been an object for SETTLE_S (a person walking in is coded in every
# frame; a codec update is one jump, then the block is frozen again).
UNJUDGED_SHARE = 0.5
LIVE_SHARE = 0.1
SETTLE_S = 0.3


class LightSettling:
    """After a light change: `relearn_frames` of fast re-learning (nothing reported), then
    `aftermath_frames` in which only change that breaks the scene's structure counts."""

    RELEARN, AFTERMATH, NORMAL = "relearn", "aftermath", "normal"

    def __init__(self, relearn_frames: int, aftermath_frames: int) -> None:
        self.relearn_frames, self.aftermath_frames = relearn_frames, aftermath_frames
        self.relearn = 0
        self.after = 0

    def next_frame(self) -> str:
        """Which phase this frame is in (and one frame of it used up)."""
        if self.relearn > 0:
            self.relearn -= 1
            return self.RELEARN
        if self.after > 0:
            self.after -= 1
            return self.AFTERMATH
        return self.NORMAL

    def light_changed(self) -> None:
        """A light change was seen in this frame: re-learn from the next one."""
        self.relearn = self.relearn_frames

    def relearnt(self) -> None:
        """The background was pulled towards this frame: the aftermath starts (again)."""
        self.after = self.aftermath_frames


@dataclass
class StructureVerdict:
    """What the block structure test found in one frame."""

    light: bool  # a (global) light change
    broken: int  # changed blocks whose texture changed (evidence of an object)
    lit2: np.ndarray | None  # half-size mask of local light (kept-structure) blocks, or None


class StructureTest:
    """Light keeps the local pattern, an object replaces it: normalised cross-correlation of the
    frame with the background in 8x8 blocks, where both are textured. Remembers when it last ran
    (it runs at most every other frame while the change grows steadily) and the local-light mask,
    which also applies to the next frame."""

    def __init__(self, size: tuple[int, int], light_change_pct: float) -> None:
        dw, dh = size
        self.blocks = (dw // BLOCK, dh // BLOCK)
        self.half = (dw // 2, dh // 2)
        self.blocks_half = ((dw // BLOCK) * HALF_BLOCK, (dh // BLOCK) * HALF_BLOCK)
        self.big = light_change_pct / 100.0
        self.block_noise_var = np.zeros((self.blocks[1], self.blocks[0]), np.float32)
        self.lit2: np.ndarray | None = None
        self.tested_at = -10
        self.tested_frac = 0.0
        self.debug: dict[str, float] = {}

    def set_noise(self, dev: np.ndarray) -> None:
        """Noise variance per block from the per-pixel noise level (half-size pixels average 4)."""
        bw, bh = self.blocks
        nd = cv2.resize(dev[: bh * BLOCK, : bw * BLOCK], (bw, bh), interpolation=cv2.INTER_AREA)
        self.block_noise_var = (TEXTURE_NOISE_K * 1.25 * nd) ** 2 / 4.0

    def due(self, frame_no: int, frac: float, after: bool) -> bool:
        """Whether to run on this frame: always while settling; otherwise when enough changed,
        every other frame at most while the change grows steadily (one frame of unjudged change
        cannot start an event), at once when the change jumps."""
        test = after or (frac > STRUCTURE_MIN_FRAC and (
            frame_no - self.tested_at >= 2 or frac > 1.25 * self.tested_frac + 0.005
        ))
        if test:
            self.tested_at, self.tested_frac = frame_no, frac
        elif frac <= STRUCTURE_MIN_FRAC:
            self.lit2 = None
        return test

    def blocks_of(self, cur2: np.ndarray, ref2: np.ndarray, changed2: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per block, as boolean arrays: changed?, textured in both images?, structure kept
        (textured and NCC high)?, and structure broken (textured in both, NCC low)?"""
        bw, bh = self.blocks
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
        tex_min = np.maximum(TEXTURE_VAR, self.block_noise_var)
        textured = (vr > tex_min) & (vc > tex_min)
        kept = textured & (ncc > NCC_LIGHT)
        # (Texture that appears or vanishes proves nothing: light brings out texture in a dark
        # room and darkness hides it, just as a person does.)
        broken = textured & ~kept
        return chg, textured, kept, broken

    def judge(self, cur2: np.ndarray, ref2: np.ndarray, changed2: np.ndarray, frac: float
              ) -> StructureVerdict:
        """Light change, or how many blocks broke structure, and the local-light mask."""
        chg, textured, kept, broken = self.blocks_of(cur2, ref2, changed2)
        n_chg = int(np.count_nonzero(chg))
        judged = int(np.count_nonzero(chg & textured))
        n_kept = int(np.count_nonzero(chg & kept))
        chg_share = n_chg / max(1, chg.size)
        self.debug = {"chg_share": chg_share, "judged": judged, "kept": n_kept}
        big = self.big
        # Evidence: enough of the changed blocks must be textured to judge their structure.
        enough = judged >= max(LIGHT_MIN_JUDGED, LIGHT_JUDGED_SHARE * n_chg)
        light = (
            (chg_share > LIGHT_MIN_SHARE * big and enough and n_kept >= LIGHT_KEPT_SHARE * judged)
            or (frac > big and n_kept >= 0.5 * judged)
            or frac > GLOBAL_CHANGE_FRAC
        )
        self.lit2 = None
        n_broken = int(np.count_nonzero(chg & broken))
        if light:
            return StructureVerdict(True, n_broken, None)
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
            lit = cv2.resize(lit_blocks.astype(np.uint8) * 255, self.blocks_half,
                             interpolation=cv2.INTER_NEAREST)
            self.lit2 = cv2.copyMakeBorder(lit, 0, self.half[1] - lit.shape[0], 0,
                                           self.half[0] - lit.shape[1], cv2.BORDER_CONSTANT, 0)
        return StructureVerdict(False, n_broken, self.lit2)


class AbruptChange:
    """A body's edge jumps, a soft shadow creeps: flags half-size pixels that changed by more than
    their flicker threshold within the last ABRUPT_S, kept while they stay changed. A new region
    is accepted when ABRUPT_SHARE of it is flagged; one that overlaps the objects of the last frame
    stays accepted (a person who stops). Where the stream has not yet shown enough to judge
    (FreshCount), a region must also be live, in every frame until it has been found for
    SETTLE_S: a codec's catch-up jump happens once, a walker changes in every frame."""

    def __init__(self, size: tuple[int, int], fps: float) -> None:
        dw, dh = size
        self.half = (dw // 2, dh // 2)
        self.recent: deque[np.ndarray] = deque(maxlen=max(1, round(ABRUPT_S * fps)))
        self.flags2 = np.zeros((dh // 2, dw // 2), np.uint8)
        self.live2 = self.flags2
        self.run2 = self.flags2.copy()
        self.settle = max(2, round(SETTLE_S * fps))
        self.unjudged2: np.ndarray | None = None  # pixels the stream has shown too few times
        self.found2: np.ndarray | None = None
        self.last_found2: np.ndarray | None = None
        self.judging = False

    def remember(self, cur: np.ndarray) -> None:
        """Keep the frame (a reference: `cur` is never written to); no objects found in it unless
        `found` is called after."""
        self.recent.append(cur)
        self.last_found2, self.found2 = self.found2, None

    def forget_flags(self) -> None:
        """A light change is not abrupt change."""
        self.flags2[:] = 0

    def flag(self, cur: np.ndarray, changed2: np.ndarray, thresh_ff2: np.ndarray,
             cur2: np.ndarray | None = None, unjudged2: np.ndarray | None = None) -> None:
        """Update the flags with this frame (nothing to compare with on the first frame), and
        which pixels changed since the last frame (`live2`); `unjudged2`: half-size mask of the
        pixels the stream has not yet shown often enough to judge (FreshCount), or None."""
        self.unjudged2 = unjudged2
        self.judging = bool(self.recent)
        if not self.judging:
            return
        if cur2 is None:
            cur2 = cv2.resize(cur, self.half, interpolation=cv2.INTER_AREA)
        old2 = cv2.resize(self.recent[0], self.half, interpolation=cv2.INTER_AREA)
        jumped = cv2.compare(cv2.absdiff(cur2, old2), thresh_ff2, cv2.CMP_GT)
        self.flags2 = cv2.bitwise_and(cv2.bitwise_or(self.flags2, jumped), changed2)
        if unjudged2 is None:
            return  # (liveness is asked for only where the stream has shown too little)
        prev2 = old2 if len(self.recent) == 1 else cv2.resize(self.recent[-1], self.half,
                                                               interpolation=cv2.INTER_AREA)
        self.live2 = cv2.bitwise_and(cv2.compare(cv2.absdiff(cur2, prev2), thresh_ff2,
                                                 cv2.CMP_GT), changed2)

    def was_found(self, box: tuple[int, int, int, int]) -> bool:
        """Whether a region (half-size bounding box) overlaps the objects of the last frame."""
        if not self.judging or self.found2 is None:
            return False
        x, y, w, h = box
        return cv2.countNonZero(self.found2[y : y + h, x : x + w]) > 0

    def accepts(self, box: tuple[int, int, int, int], area: float) -> bool:
        """Whether a changed region (half-size bounding box and area) counts as an object.

        A new region whose change crept in is shading (a soft shadow or light on an untextured
        wall, where the structure test has nothing to judge): it is learnt into the background
        like any quiet pixel. A found one stays found (a person who stops, a plain-coloured car
        that slows down)."""
        if not self.judging:
            return True
        x, y, w, h = box
        roi = (slice(y, y + h), slice(x, x + w))
        # Where the stream has hardly shown anything yet, only a region that keeps changing counts.
        live = (self.unjudged2 is None
                or cv2.countNonZero(self.unjudged2[roi]) <= UNJUDGED_SHARE * area
                or cv2.countNonZero(self.live2[roi]) >= LIVE_SHARE * area)
        if self.found2 is not None and cv2.countNonZero(self.found2[roi]) > 0:
            return live or self._run_in(box) >= self.settle
        return live and cv2.countNonZero(self.flags2[roi]) >= max(1.0, ABRUPT_SHARE * area)

    def _run_in(self, box: tuple[int, int, int, int], last: np.ndarray | None = None) -> int:
        """For how many frames in a row the objects in this box have been found (by `found2`,
        or `last`)."""
        found = self.found2 if last is None else last
        if found is None:
            return 0
        x, y, w, h = box
        roi = (slice(y, y + h), slice(x, x + w))
        return int(cv2.minMaxLoc(self.run2[roi], found[roi])[1]) if cv2.countNonZero(found[roi]) else 0

    def found(self, fg2: np.ndarray, objects: list[tuple[np.ndarray, tuple[int, int, int, int]]]
              ) -> None:
        """The objects of this frame (after `remember`): contours and half-size boxes."""
        self.found2 = fg2.copy()
        if self.unjudged2 is None:
            return  # (runs matter only for liveness)
        runs = [min(255, self._run_in(box, self.last_found2) + 1) for _, box in objects]
        self.run2 = np.zeros_like(self.run2)
        for (cnt, _), r in zip(objects, runs, strict=True):
            cv2.drawContours(self.run2, [cnt], -1, r, -1)


class FreshCount:
    """Per pixel, in how many frames the stream brought a new value, up to `needed`. A codec
    repeats a skipped block bit for bit; until a pixel has changed in `needed` frames the detector
    has not seen how the place behaves. Costs two operations a frame until every pixel is judged
    (at once with a sensor's noise), nothing after."""

    def __init__(self, size: tuple[int, int], needed: int) -> None:
        dw, dh = size
        self.half = (dw // 2, dh // 2)
        self.needed = min(255, needed)
        self.count = np.zeros((dh, dw), np.uint8)
        self.prev: np.ndarray | None = None
        self.all_judged = False
        self._frames = 0
        self._unjudged2: np.ndarray | None = None
        self._unjudged_at = -1

    def update(self, cur: np.ndarray) -> None:
        """Count this frame (at detection size)."""
        if self.all_judged:
            return
        self._frames += 1
        if self.prev is not None:
            cv2.add(self.count, 1, dst=self.count, mask=cv2.compare(cur, self.prev, cv2.CMP_NE))
            if self._frames % 8 == 0 and cv2.countNonZero(
                    cv2.compare(self.count, self.needed, cv2.CMP_LT)) == 0:
                self.all_judged = True
                self.prev = None
                return
        self.prev = cur

    def unjudged2(self) -> np.ndarray | None:
        """Half-size mask of the pixels not yet judged (None once all are), for this frame."""
        if self.all_judged:
            return None
        if self._unjudged_at != self._frames:
            unjudged = cv2.compare(self.count, self.needed, cv2.CMP_LT)
            self._unjudged2 = cv2.resize(unjudged, self.half, interpolation=cv2.INTER_NEAREST)
            self._unjudged_at = self._frames
        return self._unjudged2


class Restlessness:
    """The share of recent quarter-seconds in which each pixel flickered (changed by more than its
    flicker threshold since the last slow step). Leaves and escalator steps do that all the time;
    a person who stands still does not, and stays found."""

    def __init__(self, size: tuple[int, int], alpha: float, prior_n: int) -> None:
        dw, dh = size
        self.rest = np.zeros((dh, dw), np.float32)
        self.prev: np.ndarray | None = None
        self.alpha, self.prior_n = alpha, prior_n
        self._calm = np.full((dh, dw), 255, np.uint8)  # not (yet) known to be restless
        self._k_spread = cv2.getStructuringElement(cv2.MORPH_RECT, (RESTLESS_SPREAD, RESTLESS_SPREAD))

    def update(self, cur: np.ndarray, thresh_ff: np.ndarray, n: int, learn: bool,
               ignore: np.ndarray | None = None, objects: np.ndarray | None = None) -> None:
        """One slow step (the n-th). rest += a * (flickered - rest); early on the share is a
        plain mean with a prior of one second of calm, so that one change (a person who walks in
        and stops) does not look like restlessness. Pixels in `ignore` (crossed by insects) count
        as calm. Under `objects` (found moving things) flicker counts OBJECT_FLICKER of a time
        until the place is known to be a little restless (a quarter of the full gain): a tree or
        an escalator found as an object still becomes restless (it flickers all the time), while
        a person's own edges, passing over the pixels he moves onto, hardly raise the threshold
        under him (which would lose a small, dim person within a second)."""
        if learn and self.prev is not None:
            a = max(self.alpha, 1.0 / (n + self.prior_n))
            flicker = cv2.compare(cv2.absdiff(cur, self.prev), thresh_ff, cv2.CMP_GT)
            if ignore is not None:
                flicker = cv2.subtract(flicker, ignore)
            if objects is not None:
                under = cv2.bitwise_and(cv2.bitwise_and(flicker, objects), self._calm)
                flicker = cv2.addWeighted(flicker, 1.0, under, OBJECT_FLICKER - 1.0, 0.0)
            self.rest = cv2.addWeighted(self.rest, 1.0 - a, flicker, a / 255.0, 0.0,
                                        dtype=cv2.CV_32F)
        self.prev = cur

    def forget_last(self) -> None:
        """A light change is not flicker: the next step has nothing to compare with."""
        self.prev = None

    def gain(self, thresh: np.ndarray) -> np.ndarray:
        """The threshold raised where the neighbourhood is restless (a tree is restless as a whole)."""
        rest = cv2.min(cv2.dilate(self.rest, self._k_spread), RESTLESS_FULL)
        self._calm = cv2.compare(rest, OBJECT_FLICKER * RESTLESS_FULL, cv2.CMP_LT)
        return cv2.scaleAdd(cv2.multiply(thresh, rest), RESTLESS_GAIN / RESTLESS_FULL, thresh)


# Insects and rain near the lens: small, bright, blurred things that cross the picture in a few
# frames. A region is a small fast blob when it covers at most TRANSIENT_MAX_PCT of the frame and
# does not last: of what had changed within its bounding box TRANSIENT_LAG_FRAMES frames ago,
# less than PERSIST_SHARE is still covered by it (or nothing had changed there). A moth crossing
# in 2-6 frames moves a streak length per frame, so two frames later it is a streak further on
# and covers nothing of where it was; a person, even a small distant one, still covers most of
# where he was two frames ago (at 15 fps a person 9 px wide at 30 m moves about 1 px; someone
# walking at 15 m, a quarter of his width), and one who comes closer or steps into view grows
# over where he was. Bigger regions (a person close by, running) are never judged so. The price:
# a small object is reported two frames late. (The lag is in frames, not seconds, because it is
# the insect's few frames that matter; below 7.5 fps it is one frame, as a person walking across
# the picture at 5 fps moves a third of his width per frame.)
TRANSIENT_LAG_FRAMES = 2
PERSIST_SHARE = 0.3
# ... and what had changed there must be at least GROWTH_SHARE of the region now (a person
# stepping into view grows, but not six-fold in two frames; a moth's box catching a
# corner of another one's old streak is a chance, not a lasting thing).
GROWTH_SHARE = 0.15
TRANSIENT_MAX_PCT = 5.0
# ... unless something lasting moved near it within the last NEAR_S: then the blob is a piece of
# that (a fast car breaking up into fragments at the edge of the picture). "Near": within the
# lasting objects' bounding box grown by its own size on every side; "lasting": objects that
# lasted in every frame for NEAR_RUN_S (not one moth that happened to cover another's streak).
NEAR_S = 0.5
NEAR_RUN_S = 0.2


class TransientFilter:
    """Small fast blobs (insects, rain drops close to the lens) are not motion: a region must be
    lasting, i.e. cover much of what had changed where it is TRANSIENT_LAG_FRAMES ago.
    Remembers the candidate regions of the last few frames, and which pixels small fast blobs
    covered in the last two slow periods (they teach neither the noise level nor restlessness:
    a moth is no property of the place it crossed)."""

    def __init__(self, size: tuple[int, int], fps: float, max_px2: float) -> None:
        dw, dh = size
        # Two frames, or one below 7.5 fps (there a frame is long enough for a walker to move away
        # from where he was, and an insect crosses within a frame or two anyway).
        lag = TRANSIENT_LAG_FRAMES if fps >= 7.5 else 1
        self.history: deque[np.ndarray | None] = deque(maxlen=lag)
        self.max_px2 = max_px2
        self._old2: np.ndarray | None = None  # the candidate regions TRANSIENT_LAG_FRAMES ago
        self._lasting2: np.ndarray | None = None  # of them, what this frame still covers
        self._fg2: np.ndarray | None = None
        self._verdicts: dict[tuple[int, int, int, int], bool] = {}  # lasts(), per box
        self.recent_box: tuple[int, int, int, int] | None = None  # lasting objects, NEAR_S
        self._near_frames = max(1, round(NEAR_S * fps))
        self._recent_left = 0
        self._run = 0
        self._run_needed = max(2, round(NEAR_RUN_S * fps))
        self.crossed2 = np.zeros((dh // 2, dw // 2), np.uint8)  # since the last slow step
        self._crossed_before2 = self.crossed2.copy()  # the slow period before that
        self.count = 0

    def quiet_frame(self) -> None:
        """A frame with no candidate regions at all."""
        self.history.append(None)
        self.count = 0
        self._run = 0

    def forget(self) -> None:
        """A light change: no region lasts across it."""
        self.history.clear()
        self.recent_box, self._recent_left, self._run = None, 0, 0

    def start(self, fg2: np.ndarray) -> None:
        """This frame's candidate regions (half-size mask, after closing)."""
        old = self.history[0] if len(self.history) == self.history.maxlen else None
        self._old2 = old
        self._lasting2 = None  # fg2 & old, when first needed
        self._fg2 = fg2
        self._verdicts: dict[tuple[int, int, int, int], bool] = {}
        self.history.append(fg2.copy())
        self.count = 0

    def is_transient(self, cnt: np.ndarray, box: tuple[int, int, int, int], area: float) -> bool:
        """Whether this region (contour, half-size box and area) is a small fast blob; if so it is
        counted and remembered as crossed."""
        if area > self.max_px2 or self.lasts(box):
            return False
        self.count += 1
        cv2.drawContours(self.crossed2, [cnt], -1, 255, -1)
        return True

    def saw_objects(self, objects: list[tuple[tuple[int, int, int, int], float]]) -> None:
        """The objects of this frame (half-size boxes and areas), for `near_object`: those that
        lasted (too big to be judged counts as lasting)."""
        boxes = [b for b, a in objects if a > self.max_px2 or self._verdicts.get(b, False)]
        self._run = self._run + 1 if boxes else 0
        if self._run >= self._run_needed:
            x0 = min(b[0] for b in boxes)
            y0 = min(b[1] for b in boxes)
            x1 = max(b[0] + b[2] for b in boxes)
            y1 = max(b[1] + b[3] for b in boxes)
            self.recent_box, self._recent_left = (x0, y0, x1 - x0, y1 - y0), self._near_frames
        elif self._recent_left > 0:
            self._recent_left -= 1
            if self._recent_left == 0:
                self.recent_box = None

    def near_object(self, box: tuple[int, int, int, int]) -> bool:
        """Whether a small fast blob (half-size box) is by a lasting object seen lately; if so it
        is no longer counted as one."""
        if self.recent_box is None:
            return False
        x, y, w, h = box
        rx, ry, rw, rh = self.recent_box
        near = x < rx + 2 * rw and x + w > rx - rw and y < ry + 2 * rh and y + h > ry - rh
        if near:
            self.count -= 1
        return near

    def lasts(self, box: tuple[int, int, int, int]) -> bool:
        """Whether the region in this half-size box covers PERSIST_SHARE of what had changed
        there TRANSIENT_LAG_FRAMES ago."""
        if self._old2 is None or self._fg2 is None:
            return False
        if box in self._verdicts:
            return self._verdicts[box]
        x, y, w, h = box
        roi = (slice(y, y + h), slice(x, x + w))
        before = cv2.countNonZero(self._old2[roi])
        lasts = False
        if before:
            now = cv2.countNonZero(self._fg2[roi])
            if before >= GROWTH_SHARE * now:
                if self._lasting2 is None:
                    self._lasting2 = cv2.bitwise_and(self._fg2, self._old2)
                lasts = cv2.countNonZero(self._lasting2[roi]) >= PERSIST_SHARE * min(before, now)
        self._verdicts[box] = lasts
        return lasts

    def slow_step(self, size: tuple[int, int]) -> np.ndarray | None:
        """At a slow step: the pixels (detection size) small fast blobs crossed in the last two
        slow periods, or None; starts a new period."""
        both = cv2.bitwise_or(self.crossed2, self._crossed_before2)
        self._crossed_before2, self.crossed2 = self.crossed2, self._crossed_before2
        self.crossed2[:] = 0
        if not cv2.countNonZero(both):
            return None
        return cv2.resize(cv2.dilate(both, None), size, interpolation=cv2.INTER_NEAREST)
