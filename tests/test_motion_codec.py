"""A low-bitrate compressed stream: a tree the encoder freezes and updates in jumps is no alarm,
a person walking into the frozen scene still is, at once.

The stream is modelled the way a thin-link H.264 camera behaves (see docs/detector-conditions.md,
`h264-low`): a block the encoder skips is repeated bit for bit; the swaying tree costs more bits
than there are, so each frame only a clump of its 16x16 blocks is brought up to date (each one a
jump, then frozen again); a keyframe every 2 s refreshes everything; a person walking in is
coded in every frame (his blocks change the most). No sensor noise survives such a stream.
"""

from __future__ import annotations

import cv2
import numpy as np

from homesec.camera.base import Frame
from homesec.capture.events import EventTracker
from homesec.capture.motion import MotionDetector, MotionResult
from homesec.config import EventsConfig, MotionConfig

W, H, MB = 640, 352, 16
FPS = 15.0
TREE = (320, 48, 256, 256)  # x, y, w, h: the tree's part of the picture, in whole blocks


def texture(seed: int, blur: float, contrast: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, contrast, (H, W)).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), blur)


class CodecStream:
    """Decoded frames of a static room with a swaying tree, and optionally a walker."""

    def __init__(self, clumps: int = 1) -> None:
        self.room = np.clip(120 + texture(1, 6.0, 120.0), 20, 230)
        self.leaves = texture(2, 3.0, 250.0)
        self.rng = np.random.default_rng(5)
        self.clumps = clumps
        self.decoded = self.true(0.0, None)

    def true(self, t: float, walker_x: int | None) -> np.ndarray:
        """The scene as the lens sees it at time t: leaves swaying a few pixels, a dark walker."""
        img = self.room.copy()
        x, y, w, h = TREE
        dx = 4.0 * np.sin(2 * np.pi * t / 1.3) + 2.0 * np.sin(2 * np.pi * t / 0.45)
        shift = np.float32([[1, 0, dx], [0, 1, 0.5 * dx]])
        leaves = cv2.warpAffine(self.leaves, shift, (W, H), borderMode=cv2.BORDER_REFLECT)
        img[y:y + h, x:x + w] = np.clip(150 + leaves[y:y + h, x:x + w], 0, 255)
        if walker_x is not None:
            cv2.ellipse(img, (walker_x, 220), (28, 80), 0, 0, 360, 35.0, -1)
        return img

    def frame(self, i: int, walker_x: int | None = None) -> np.ndarray:
        """Frame i as decoded: repeats where the encoder skipped."""
        t = i / FPS
        true = self.true(t, walker_x)
        if i % round(2 * FPS) == 0:
            self.decoded = true.copy()  # keyframe
        else:
            # The few blocks there are bits for, a clump at a time (where the sway moved most).
            x, y, w, h = TREE
            for _ in range(self.clumps):
                cx = x + MB * int(self.rng.integers(0, w // MB - 2))
                cy = y + MB * int(self.rng.integers(0, h // MB - 2))
                self.decoded[cy:cy + 3 * MB, cx:cx + 3 * MB] = true[cy:cy + 3 * MB, cx:cx + 3 * MB]
            if walker_x is not None:
                x0 = max(0, (walker_x - 40) // MB * MB)
                x1 = min(W, (walker_x + 40) // MB * MB + MB)
                self.decoded[112:320, x0:x1] = true[112:320, x0:x1]
        return np.clip(self.decoded + 0.5, 0, 255).astype(np.uint8)


def event_starts(results: list[MotionResult]) -> list[float]:
    """When the real EventTracker (default config) starts events: when the alert would go out."""
    tracker = EventTracker(EventsConfig(), keep_images=False)
    starts = []
    for i, r in enumerate(results):
        frame = Frame(index=i, mono_s=i / FPS, wall_s=i / FPS, luma=np.zeros((1, 1), np.uint8),
                      _color_fn=lambda: np.zeros((1, 1, 3), np.uint8))
        if tracker.update(frame, r).started is not None:
            starts.append(i / FPS)
    return starts


def test_a_tree_the_codec_updates_in_jumps_is_no_alarm_but_a_walker_is() -> None:
    stream = CodecStream()
    det = MotionDetector(MotionConfig(), fps=FPS)
    quiet_s, walk_s = 4.0, 2.0
    n_quiet = int(quiet_s * FPS)
    results = [det.update(stream.frame(i)) for i in range(n_quiet)]
    assert event_starts(results) == [], "the tree, frozen and updated in jumps, raised an alarm"
    # A person walks in from the left, through the static part of the room (not the tree).
    for k in range(int(walk_s * FPS)):
        results.append(det.update(stream.frame(n_quiet + k, walker_x=-20 + 14 * k)))
    starts = event_starts(results)
    assert starts, "the person walking into the frozen room was not found"
    assert starts[0] - quiet_s < 0.5, f"the person was found late: {starts[0] - quiet_s:.2f} s"


def test_a_sensor_stream_is_judged_within_a_warm_up_and_a_frozen_one_is_not() -> None:
    from homesec.capture.stages import FreshCount

    rng = np.random.default_rng(3)
    noisy, frozen = FreshCount((64, 48), needed=15), FreshCount((64, 48), needed=15)
    still = rng.integers(0, 255, (48, 64), dtype=np.uint8)
    for _ in range(24):
        noisy.update(rng.integers(0, 255, (48, 64), dtype=np.uint8))
        frozen.update(still)
    assert noisy.all_judged and noisy.unjudged2() is None  # nothing more to do, ever
    unjudged = frozen.unjudged2()
    assert unjudged is not None and cv2.countNonZero(unjudged) == unjudged.size
