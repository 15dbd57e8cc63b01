"""The detector's stages one by one, on tiny synthetic images: each says what it is for."""

from __future__ import annotations

import cv2
import numpy as np

from homesec.capture.stages import (
    AbruptChange,
    LightSettling,
    Restlessness,
    StructureTest,
    TransientFilter,
)

SIZE = (160, 96)  # detection size (w, h)


def texture(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(110, 40, (SIZE[1] // 4, SIZE[0] // 4)).astype(np.float32)
    return np.clip(cv2.resize(base, SIZE, interpolation=cv2.INTER_CUBIC), 10, 240).astype(np.uint8)


def half(img: np.ndarray) -> np.ndarray:
    return cv2.resize(img, (SIZE[0] // 2, SIZE[1] // 2), interpolation=cv2.INTER_AREA)


def test_light_settling_relearns_then_settles_then_is_normal() -> None:
    s = LightSettling(relearn_frames=2, aftermath_frames=3)
    assert s.next_frame() == LightSettling.NORMAL
    s.light_changed()
    s.relearnt()
    phases = [s.next_frame() for _ in range(6)]
    assert phases == ["relearn", "relearn", "aftermath", "aftermath", "aftermath", "normal"]


def test_structure_test_tells_light_from_an_object() -> None:
    ref = texture()
    st = StructureTest(SIZE, light_change_pct=35.0)
    everything = np.full((SIZE[1] // 2, SIZE[0] // 2), 255, np.uint8)
    brighter = cv2.convertScaleAbs(ref, alpha=1.4)
    v = st.judge(half(brighter), half(ref), everything, frac=1.0)
    assert v.light, "a brighter copy of the scene is a light change"
    other = texture(seed=9)  # a different pattern everywhere: nothing kept
    v = st.judge(half(other), half(ref), everything, frac=0.3)
    assert not v.light and v.broken > 10


def test_structure_test_runs_every_other_frame_unless_the_change_jumps() -> None:
    st = StructureTest(SIZE, light_change_pct=35.0)
    assert st.due(10, 0.01, after=False)
    assert not st.due(11, 0.011, after=False)
    assert st.due(11, 0.05, after=False)  # jumped
    assert st.due(12, 0.0, after=True)  # always while settling


def test_abrupt_change_accepts_a_jump_not_a_creep() -> None:
    thr2 = np.full((SIZE[1] // 2, SIZE[0] // 2), 20, np.uint8)
    bg = np.full((SIZE[1], SIZE[0]), 100, np.uint8)
    region = (10, 10, 20, 20)  # half-size box
    changed2 = np.zeros_like(thr2)
    changed2[10:30, 10:30] = 255
    jump = AbruptChange(SIZE, fps=15.0)
    for _ in range(4):
        jump.remember(bg)
    body = bg.copy()
    body[20:60, 20:60] = 30  # a dark body, at once
    jump.flag(body, changed2, thr2)
    assert jump.accepts(region, 400.0)
    creep = AbruptChange(SIZE, fps=15.0)
    for k in range(20):  # the same darkening, 3 levels per frame
        img = bg.copy()
        img[20:60, 20:60] = 100 - 3 * k
        creep.flag(img, changed2, thr2)
        creep.remember(img)
    assert not creep.accepts(region, 400.0)


def test_restlessness_rises_where_pixels_flicker() -> None:
    r = Restlessness(SIZE, alpha=0.05, prior_n=4)
    thr = np.full((SIZE[1], SIZE[0]), 10, np.uint8)
    for n in range(1, 30):
        img = np.full((SIZE[1], SIZE[0]), 100, np.uint8)
        if n % 2:
            img[:, :40] = 160  # the left quarter flickers
        r.update(img, thr, n, learn=True)
    raised = r.gain(np.full((SIZE[1], SIZE[0]), 2.0, np.float32))
    assert raised[:, :30].min() > 2.0 * raised[:, 80:].max()


def test_transient_filter_rejects_a_blob_that_jumps_and_keeps_one_that_lasts() -> None:
    tf = TransientFilter(SIZE, fps=15.0, max_px2=1000.0)  # lag: 2 frames
    hw = (SIZE[1] // 2, SIZE[0] // 2)

    def blob(x: int) -> tuple[np.ndarray, np.ndarray]:
        img = np.zeros(hw, np.uint8)
        cv2.rectangle(img, (x, 20), (x + 5, 27), 255, -1)
        cnt = cv2.findContours(img, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0][0]
        return img, cnt

    verdicts = []
    for k in range(6):  # a moth: 12 half-size pixels a frame, 6 wide
        img, cnt = blob(5 + 12 * k)
        tf.start(img)
        verdicts.append(tf.is_transient(cnt, cv2.boundingRect(cnt), cv2.contourArea(cnt)))
    assert all(verdicts) and tf.slow_step(SIZE) is not None  # and its path is remembered
    tf.forget()
    verdicts = []
    for k in range(6):  # a small person: one pixel a frame
        img, cnt = blob(5 + k)
        tf.start(img)
        verdicts.append(tf.is_transient(cnt, cv2.boundingRect(cnt), cv2.contourArea(cnt)))
    assert verdicts[:2] == [True, True] and not any(verdicts[2:]), verdicts
