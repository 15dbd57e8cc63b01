"""An event that is already running when the house becomes armed.

The alarm meets an event when it starts (Store.add_event). An event that started before the
armed time (the owner walking out during the exit delay, or someone moving while the house is
armed with delay 0) would otherwise never alert, however long the motion goes on. `ArmedWatch`
runs in the capture loop (pure bookkeeping on numbers the loop has anyway): once the house is
armed, new motion frames of the running event after the armed time, lasting `confirm_s` like
the start of an event, make it alertable once; the post-motion tail (no motion frames) does not.
From that frame on the event's best picture is chosen among frames taken after arming, so the
email's snapshot shows what happened while armed.
"""

from __future__ import annotations

from dataclasses import dataclass

from homesec.alarm.machine import ARMED_STATES
from homesec.camera.base import Frame
from homesec.capture.events import Event, scale_boxes
from homesec.capture.motion import MotionResult
from homesec.storage.store import ArmStatus


def armed_since(view: ArmStatus | None, wall_s: float) -> float | None:
    """When the house became armed as of `wall_s` (None: not armed). An 'arming' whose deadline
    has passed counts from its deadline (the view may be a fraction of a second old)."""
    if view is None:
        return None
    if view.state in ARMED_STATES:
        return view.armed_ts if view.armed_ts is not None else view.changed_ts
    if view.state == "arming" and view.deadline_ts is not None and wall_s >= view.deadline_ts:
        return view.deadline_ts
    return None


@dataclass
class _Watched:
    event: Event
    met: bool = False  # already met the alarm (at its start, or by this watch)
    first_ts: float | None = None
    frames: int = 0


class ArmedWatch:
    """Says once per event when its motion after the armed time makes it alertable."""

    def __init__(self, confirm_s: float = 0.3) -> None:
        self.confirm_s = confirm_s
        self._w: _Watched | None = None

    def update(self, ev: Event | None, frame: Frame, result: MotionResult,
               view: ArmStatus | None) -> bool:
        """True when `ev` has just become alertable (queue it once)."""
        if ev is None:
            self._w = None
            return False
        w = self._w
        since = armed_since(view, frame.wall_s)
        if w is None or w.event is not ev:
            # A new event: one that starts after the armed time meets the alarm at its start.
            w = self._w = _Watched(ev, met=since is not None and ev.start_wall >= since)
        if w.met or since is None or not result.motion or frame.wall_s < since:
            return False
        if w.first_ts is None:
            w.first_ts = frame.wall_s
        w.frames += 1
        if w.frames >= 2 and frame.wall_s - w.first_ts >= self.confirm_s - 1e-6:
            w.met = True
            restart_best(ev, frame, result)
            return True
        return False


def restart_best(ev: Event, frame: Frame, result: MotionResult) -> None:
    """Make this frame the event's best, so the snapshot is chosen among frames from now on."""
    ev.best_frame, ev.best_wall = frame.index, frame.wall_s
    ev.boxes = scale_boxes(result.boxes, *frame.box_scale())
    ev.peak_area_pct = result.area_pct
    ev.best_image = frame.color()
