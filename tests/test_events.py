"""EventTracker: confirmation, quiet period, best frame."""

from __future__ import annotations

import numpy as np

from homesec.camera.base import Frame
from homesec.capture.events import EventTracker
from homesec.capture.motion import MotionResult
from homesec.config import EventsConfig

FPS = 10.0


def frame(i: int) -> Frame:
    img = np.full((4, 4, 3), i % 256, np.uint8)
    return Frame(index=i, mono_s=i / FPS, wall_s=1000 + i / FPS, luma=img[..., 0],
                 _color_fn=lambda: img)


def feed(tracker: EventTracker, pattern: list[float]) -> list[tuple[str, int, object]]:
    """pattern[i] = motion area at frame i (0 = none); returns (kind, frame index, event)."""
    out = []
    for i, area in enumerate(pattern):
        res = MotionResult(motion=area > 0, area_pct=area,
                           boxes=[(i, i, 2, 2)] if area > 0 else [])
        upd = tracker.update(frame(i), res)
        if upd.started:
            out.append(("start", i, upd.started))
        if upd.ended:
            out.append(("end", i, upd.ended))
    return out


def test_single_frame_blips_never_start_an_event() -> None:
    t = EventTracker(EventsConfig(confirm_s=0.3, post_motion_s=1.0))
    pattern = ([0] * 5 + [1.0] + [0] * 5) * 5
    assert feed(t, pattern) == []


def test_event_confirmed_after_confirm_s_and_ends_after_quiet_period() -> None:
    t = EventTracker(EventsConfig(confirm_s=0.3, post_motion_s=1.0))
    pattern = [0] * 5 + [1.0, 2.0, 5.0, 3.0, 1.0] + [0] * 20
    out = feed(t, pattern)
    kinds = [(k, i) for k, i, _ in out]
    # Motion from frame 5; 0.3 s later (frame 8) the event is confirmed; last motion at 9,
    # so it ends 1.0 s after that, at frame 19.
    assert kinds == [("start", 8), ("end", 19)]
    ev = out[1][2]
    assert ev.start_frame == 5 and ev.end_frame == 9
    assert ev.peak_area_pct == 5.0 and ev.best_frame == 7
    assert ev.boxes == [(7, 7, 2, 2)]
    assert ev.union == (5, 5, 6, 6)
    assert int(ev.best_image[0, 0, 0]) == 7  # the image kept is the best frame's


def test_gaps_shorter_than_post_motion_keep_one_event() -> None:
    t = EventTracker(EventsConfig(confirm_s=0.2, post_motion_s=1.0))
    pattern = [1.0] * 5 + [0] * 8 + [1.0] * 5 + [0] * 15
    out = feed(t, pattern)
    assert [k for k, _, _ in out] == ["start", "end"]


def test_finish_closes_the_open_event() -> None:
    t = EventTracker(EventsConfig(confirm_s=0.2, post_motion_s=5.0))
    feed(t, [1.0] * 6)
    ev = t.finish()
    assert ev is not None and ev.closed and t.current is None


def test_confirmation_at_low_frame_rate_is_not_lost_to_float_rounding() -> None:
    # At 5 fps, frames at 3.6 s and 3.8 s are 0.2 s apart, but 3.8 - 3.6 < 0.2 in floating point.
    t = EventTracker(EventsConfig(confirm_s=0.3, post_motion_s=1.0))
    started = []
    for i in range(17, 22):
        t_s = round(i * 0.2, 1)
        f = Frame(index=i, mono_s=t_s, wall_s=t_s, luma=np.zeros((2, 2), np.uint8),
                  _color_fn=lambda: np.zeros((2, 2, 3), np.uint8))
        upd = t.update(f, MotionResult(motion=i >= 18, area_pct=1.0, boxes=[(0, 0, 1, 1)]))
        if upd.started:
            started.append(i)
    assert started == [19]  # 3.6 s and 3.8 s with motion: 0.2 s >= 0.3 s - half a frame


def test_best_frame_shows_the_object_fully_in_view_not_entering_at_the_edge() -> None:
    """A person walks in from the left edge (big box touching the border), then stands inside
    the frame (smaller box clear of the border): the snapshot is the second."""
    t = EventTracker(EventsConfig(confirm_s=0.1, post_motion_s=0.5))
    W, H = 320, 240
    boxes = [(0, 40, 120, 180)] * 3 + [(100, 50, 60, 150), (110, 50, 70, 160), (120, 55, 65, 150)]
    boxes += [(200, 40, 120, 190)]  # leaving at the right edge, biggest of all
    ev = None
    for i, box in enumerate([*boxes, None, None, None, None, None, None, None]):
        img = np.zeros((H, W), np.uint8)
        f = Frame(index=i, mono_s=i / FPS, wall_s=1000 + i / FPS, luma=img,
                  _color_fn=lambda img=img: img)
        res = MotionResult(motion=box is not None, area_pct=(box[2] * box[3] / W / H * 100)
                           if box else 0.0, boxes=[box] if box else [])
        upd = t.update(f, res)
        ev = upd.ended or ev
    assert ev is not None
    assert ev.best_frame == 4 and ev.boxes == [(110, 50, 70, 160)]
    assert ev.peak_area_pct == max(b[2] * b[3] for b in boxes) / W / H * 100  # still the peak


def test_best_frame_falls_back_to_the_largest_box_when_all_touch_the_border() -> None:
    t = EventTracker(EventsConfig(confirm_s=0.1, post_motion_s=0.5))
    pattern = [0, 1.0, 3.0, 2.0, 0, 0, 0, 0, 0, 0, 0]
    out = []
    for i, area in enumerate(pattern):
        img = np.zeros((40, 40), np.uint8)
        f = Frame(index=i, mono_s=i / FPS, wall_s=1000 + i / FPS, luma=img,
                  _color_fn=lambda img=img: img)
        box = (0, 0, int(area * 5), 10) if area else None
        upd = t.update(f, MotionResult(motion=bool(area), area_pct=area,
                                       boxes=[box] if box else []))
        if upd.ended:
            out.append(upd.ended)
    (ev,) = out
    assert ev.best_frame == 2
