"""EventTracker: turns the detector's per-frame results into motion events.

Why confirmation: single frames of "motion" come from noise bursts, compression glitches and
insects; a real intruder keeps moving. An event starts only when motion has lasted `confirm_s`
(a one-frame gap is forgiven), and it ends after `post_motion_s` without motion, so one person
walking around is one event, not twenty. The tracker is pure bookkeeping, no I/O: the daemon
and `homesec analyze` feed it the same way.

Why an event ends when the motion ends: what keeps an event open is motion that could have
started one, i.e. a run of motion lasting `confirm_s`. A flicker of a frame or two (an insect
the detector let through, a monitor, a leaf in a restless area) neither starts an event nor
prolongs one, so the event (and with it the clip and the alarm's "triggered" state) ends
`post_motion_s` after the person has left, whatever flickers remain. Each event says why it
ended (`end_reason`: quiet, max_length, or end_of_stream when the stream or the daemon
stopped) and how many of its frames showed only small fast blobs (`transient_frames`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from homesec.camera.base import Frame
from homesec.capture.motion import MotionResult
from homesec.config import EventsConfig

Box = tuple[int, int, int, int]


def union_box(boxes: list[Box], current: Box | None = None) -> Box | None:
    """The smallest box containing all `boxes` (and `current`)."""
    all_boxes = list(boxes) + ([current] if current is not None else [])
    if not all_boxes:
        return None
    x0 = min(b[0] for b in all_boxes)
    y0 = min(b[1] for b in all_boxes)
    x1 = max(b[0] + b[2] for b in all_boxes)
    y1 = max(b[1] + b[3] for b in all_boxes)
    return (x0, y0, x1 - x0, y1 - y0)


def scale_boxes(boxes: list[Box], sx: float, sy: float) -> list[Box]:
    """Boxes from detection-frame to snapshot coordinates (the Pi's lores vs main stream)."""
    if sx == 1.0 and sy == 1.0:
        return list(boxes)
    return [(int(x * sx), int(y * sy), round(w * sx), round(h * sy)) for x, y, w, h in boxes]


def frame_score(boxes: list[Box], width: int, height: int, area_pct: float = 0.0
                ) -> tuple[bool, int, float]:
    """How well a frame shows the moving object: (its largest box lies clear of the frame
    border, that box's area, the changed area). Compared as a tuple: an object fully in view
    beats a bigger one entering at the edge, so the snapshot is not the frame where someone
    steps in."""
    if not boxes:
        return (False, 0, area_pct)
    x, y, w, h = max(boxes, key=lambda b: b[2] * b[3])
    m = max(1, width // 100)  # boxes come from a downscaled grid: a pixel or so of slack
    inside = x > m and y > m and x + w < width - m and y + h < height - m
    return (inside, w * h, area_pct)


@dataclass
class Event:
    """One motion event as it grows. `id` is set once the store has written it."""

    start_frame: int
    start_mono: float
    start_wall: float
    end_frame: int
    end_mono: float
    end_wall: float
    peak_area_pct: float = 0.0
    boxes: list[Box] = field(default_factory=list)  # boxes of the best frame
    union: Box | None = None
    best_frame: int = -1
    best_wall: float = 0.0
    best_image: np.ndarray | None = field(default=None, repr=False)
    motion_frames: int = 0
    best_score: tuple[bool, int, float] = (False, -1, 0.0)
    id: int | None = None
    closed: bool = False
    end_reason: str = ""  # quiet | max_length | end_of_stream, once closed
    transient_frames: int = 0  # frames with only small fast blobs (insects, rain), no motion

    @property
    def duration_s(self) -> float:
        """Seconds from the first to the last frame with motion."""
        return self.end_mono - self.start_mono


@dataclass
class TrackerUpdate:
    """What changed with one frame: an event started, and/or one ended."""

    started: Event | None = None
    ended: Event | None = None


class EventTracker:
    """Feed it `(frame, result)` for every frame; it says when events start and end."""

    def __init__(self, cfg: EventsConfig | None = None, keep_images: bool = True) -> None:
        self.cfg = cfg or EventsConfig()
        self.keep_images = keep_images
        self.current: Event | None = None
        self._pending: Event | None = None
        self._last_motion_mono = 0.0
        self._last_frame: Frame | None = None
        self._frame_dt = 0.0
        self._run_start = -1.0  # start of the current run of motion (gaps of a frame forgiven)
        self._run_frames = 0
        self._run_last = -1.0

    def _note_motion(self, ev: Event, frame: Frame, result: MotionResult) -> None:
        ev.end_frame, ev.end_mono, ev.end_wall = frame.index, frame.mono_s, frame.wall_s
        ev.motion_frames += 1
        boxes = scale_boxes(result.boxes, *frame.box_scale())
        ev.union = union_box(boxes, ev.union)
        ev.peak_area_pct = max(ev.peak_area_pct, result.area_pct)
        h, w = frame.luma.shape[:2]
        score = frame_score(result.boxes, w, h, result.area_pct)
        if score > ev.best_score or ev.best_frame < 0:
            ev.best_score = score
            ev.boxes = boxes
            ev.best_frame, ev.best_wall = frame.index, frame.wall_s
            if self.keep_images:
                ev.best_image = frame.color()

    def update(self, frame: Frame, result: MotionResult) -> TrackerUpdate:
        """Account for one frame."""
        out = TrackerUpdate()
        if self._last_frame is not None:
            dt = frame.mono_s - self._last_frame.mono_s
            if dt > 0:
                self._frame_dt = dt if self._frame_dt == 0 else 0.9 * self._frame_dt + 0.1 * dt
        self._last_frame = frame
        gap_allowed = max(1.5 * self._frame_dt, 0.15)
        confirmed_run = self._run(frame, result, gap_allowed)
        ev = self.current
        if ev is not None:
            if result.motion and confirmed_run:
                self._note_motion(ev, frame, result)
            elif not result.motion and result.transient:
                ev.transient_frames += 1
            quiet_for = frame.mono_s - ev.end_mono + 1e-6  # float slack: 1.9 - 0.9 < 1.0
            too_long = frame.mono_s - ev.start_mono >= self.cfg.max_event_s
            # A run of motion still too short to count may yet grow into one: wait for it (at
            # most confirm_s) rather than end the event and start a new one at once.
            growing = (self._run_frames > 0 and not confirmed_run
                       and frame.mono_s - self._run_last <= gap_allowed)
            if too_long or (quiet_for >= self.cfg.post_motion_s and not growing):
                out.ended = self._close("quiet" if quiet_for >= self.cfg.post_motion_s
                                        else "max_length")
            return out

        pend = self._pending
        if result.motion:
            if pend is not None and frame.mono_s - pend.end_mono > gap_allowed:
                pend = None
            if pend is None:
                pend = Event(frame.index, frame.mono_s, frame.wall_s,
                             frame.index, frame.mono_s, frame.wall_s)
            self._note_motion(pend, frame, result)
            self._pending = pend
            # Confirmed: motion lasted confirm_s (allowing half a frame of timing jitter).
            needed = max(0.0, self.cfg.confirm_s - 0.5 * self._frame_dt) - 1e-6  # float slack
            if (pend.motion_frames >= 2 and frame.mono_s - pend.start_mono >= needed) or (
                self.cfg.confirm_s == 0
            ):
                self.current, self._pending = pend, None
                out.started = pend
        elif pend is not None and frame.mono_s - pend.end_mono > gap_allowed:
            self._pending = None
        return out

    def _run(self, frame: Frame, result: MotionResult, gap_allowed: float) -> bool:
        """Follow the current run of motion; whether it has lasted long enough to start an event
        (and so to keep one open)."""
        if not result.motion:
            return False
        if self._run_frames == 0 or frame.mono_s - self._run_last > gap_allowed:
            self._run_start, self._run_frames = frame.mono_s, 0
        self._run_frames += 1
        self._run_last = frame.mono_s
        needed = max(0.0, self.cfg.confirm_s - 0.5 * self._frame_dt) - 1e-6  # as for a start
        return self.cfg.confirm_s == 0 or (
            self._run_frames >= 2 and frame.mono_s - self._run_start >= needed)

    def _close(self, reason: str) -> Event | None:
        ev, self.current = self.current, None
        if ev is not None:
            ev.closed = True
            ev.end_reason = reason
        return ev

    def finish(self) -> Event | None:
        """Close the event in progress (stream ended or the daemon stops)."""
        self._pending = None
        return self._close("end_of_stream")
