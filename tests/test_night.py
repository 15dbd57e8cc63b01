"""Nights under an infrared lamp (tests/night_scene.py): the day/night switch is a light change,
moths are not motion and do not keep an event open, a small dim person far away is still found,
and the camera's burnt-in clock never raises motion. Each test runs the real MotionDetector and
EventTracker over the frames, as the daemon and `homesec analyze` do."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from homesec.camera.base import Frame
from homesec.capture.events import Event, EventTracker
from homesec.capture.motion import MotionDetector
from homesec.config import EventsConfig, MotionConfig
from tests.night_scene import NightScene

POST_MOTION_S = EventsConfig().post_motion_s


@dataclass
class Run:
    """What the detector and tracker made of a scene: events (with the time each was closed)."""

    events: list[Event] = field(default_factory=list)
    closed_at: list[float] = field(default_factory=list)
    light_frames: int = 0
    motion_frames: int = 0
    transient_frames: int = 0


def watch(scene: NightScene, seconds: float) -> Run:
    det = MotionDetector(MotionConfig(), fps=scene.fps)
    tracker = EventTracker(EventsConfig(), keep_images=False)
    run = Run()
    for k in range(round(seconds * scene.fps)):
        t = k / scene.fps
        luma = scene.luma(t)
        res = det.update(luma)
        run.light_frames += res.light_change
        run.motion_frames += res.motion
        run.transient_frames += res.transient > 0
        upd = tracker.update(Frame(index=k, mono_s=t, wall_s=t, luma=luma,
                                   _color_fn=lambda: np.zeros((1, 1, 3), np.uint8)), res)
        if upd.ended is not None:
            run.events.append(upd.ended)
            run.closed_at.append(t)
    last = tracker.finish()
    if last is not None:
        run.events.append(last)
        run.closed_at.append(seconds)
    return run


def spans(run: Run) -> list[tuple[float, float]]:
    return [(round(e.start_mono, 2), round(e.end_mono, 2)) for e in run.events]


def test_the_ir_scene_alone_is_quiet() -> None:
    run = watch(NightScene(), 12.0)
    assert run.events == [] and run.motion_frames == 0


@pytest.mark.parametrize("switch_frames", [3, 8])
@pytest.mark.parametrize("direction", ["to day", "to night"])
def test_day_night_switch_is_a_light_change_not_motion(direction: str, switch_frames: int) -> None:
    """(a) white-out over 3-8 frames, then the picture brighter, in a new pattern, grey turning
    colour, exposure settling; (b) the reverse: black-out, the IR lamp's spot settling. The
    burnt-in clock ticks on through it."""
    if direction == "to day":
        scene = NightScene(to_day_at=5.0, switch_frames=switch_frames, clock=True)
    else:
        scene = NightScene(to_night_at=5.0, switch_frames=switch_frames, clock=True)
    run = watch(scene, 14.0)
    assert run.events == [], f"the switch raised {spans(run)}"
    assert run.light_frames > 0, "the switch was not seen as a light change"


@pytest.mark.parametrize("direction", ["to day", "to night"])
def test_a_person_walking_in_while_the_picture_settles_is_found(direction: str) -> None:
    """Someone who walks in a second after dusk (the exposure and the lamp still settling) is
    found, at the latest when the settling time is over."""
    kw = {"to_day_at": 5.0} if direction == "to day" else {"to_night_at": 5.0}
    scene = NightScene(person=(6.0, 12.0), person_value=40.0, clock=True, **kw)
    run = watch(scene, 13.0)
    assert len(run.events) == 1, spans(run)
    assert 6.0 <= run.events[0].start_mono <= 9.0, spans(run)


@pytest.mark.parametrize("seed", [1, 2, 4])
def test_moths_at_the_lamp_are_not_motion(seed: int) -> None:
    """(c) small bright blurred blobs crossing in 2-6 frames, about six a second."""
    run = watch(NightScene(seed=seed, moths=(2.0, 24.0)), 24.0)
    assert run.events == [], f"moths raised {spans(run)}"
    assert run.transient_frames > 100, "the moths were not even seen"
    assert run.motion_frames < 0.05 * 24 * 15  # a stray frame where several cross at once


@pytest.mark.parametrize("moths", [False, True], ids=["alone", "with moths"])
def test_a_small_dim_person_far_away_is_found_and_the_event_ends_when_he_leaves(moths: bool) -> None:
    """(d) a person at 30 m: 9 x 22 detection pixels, 18 grey levels over the grass in noise of
    sigma 6, walking 9 px a second; found within a second. (e) He steps behind the hedge at 14 s
    while the moths go on: the event ends within post_motion_s + 2 s."""
    scene = NightScene(seed=5, person=(6.0, 14.0), moths=(2.0, 30.0) if moths else None)
    run = watch(scene, 26.0)
    assert len(run.events) == 1, spans(run)
    ev = run.events[0]
    assert 6.0 <= ev.start_mono <= 7.0, f"found late: {spans(run)}"
    assert ev.end_reason == "quiet"
    assert run.closed_at[0] <= 14.0 + POST_MOTION_S + 2.0, (spans(run), run.closed_at)
    assert ev.end_mono >= 12.0, f"lost him early: {spans(run)}"
    x, y, _, h = ev.union
    px, py, _, ph = scene.person_box
    assert x <= px + 10 and y <= py + ph and y + h >= py, "the boxes are not on the person"
    if moths:
        assert ev.transient_frames > 0


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_a_burnt_in_clock_never_raises_motion(scale: float) -> None:
    """Date and time redrawn every second in the corner (the minute changes at 5 s), on the IR
    scene: no motion at all."""
    run = watch(NightScene(clock=True, clock_scale=scale), 20.0)
    assert run.events == [] and run.motion_frames == 0
