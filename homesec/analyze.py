"""`homesec analyze`: the daemon's detector and event logic on a recorded file, as fast as it
decodes, printing events. Users tune sensitivity with it; we measure detection quality with it.

The JSON-lines output format is a stable interface (see the README).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from homesec.camera import video_camera
from homesec.camera.base import EndOfStream
from homesec.capture.events import Event, EventTracker
from homesec.capture.motion import MotionDetector, use_one_opencv_thread
from homesec.config import Config

DEFAULT_FPS = 25.0


@dataclass
class Summary:
    """Totals for one analysed file."""

    frames: int
    fps: float
    events: int
    light_changes: int
    detect_ms_per_frame: float

    def to_json(self) -> dict[str, Any]:
        """The summary line's object."""
        return {"type": "summary", "frames": self.frames, "fps": self.fps, "events": self.events,
                "light_changes": self.light_changes,
                "detect_ms_per_frame": round(self.detect_ms_per_frame, 4)}


def event_json(ev: Event, fps: float) -> dict[str, Any]:
    """An event line; times are frame index / fps. `end_reason` says why it ended (quiet,
    max_length, end_of_stream) and `transient_frames` how many of its frames showed only small
    fast blobs (insects, rain near the lens): why an event was long. Fields are only ever added."""
    return {"type": "event", "start_s": round(ev.start_frame / fps, 3),
            "end_s": round(ev.end_frame / fps, 3), "start_frame": ev.start_frame,
            "end_frame": ev.end_frame, "peak_area_pct": round(ev.peak_area_pct, 3),
            "boxes": [list(b) for b in ev.boxes], "end_reason": ev.end_reason,
            "transient_frames": ev.transient_frames}


def analyze(video: str, cfg: Config, fps: float | None = None, decoder: str | None = None
            ) -> Iterator[dict[str, Any]]:
    """Yield an event object as each event ends, then the summary object."""
    use_one_opencv_thread()
    cam = video_camera(video, fps or 0.0, decoder or cfg.camera.decoder,
                       detect_width=cfg.motion.detect_width)
    cam.open()
    if cam.fps <= 0:
        cam.fps = DEFAULT_FPS
    fps_used = cam.fps
    detector = MotionDetector(cfg.motion, fps=fps_used)
    tracker = EventTracker(cfg.events, keep_images=False)
    frames = events = light = 0
    detect_s = 0.0
    try:
        while True:
            try:
                frame = cam.read()
            except EndOfStream:
                break
            frames += 1
            t0 = time.perf_counter()
            result = detector.update(frame.luma)
            detect_s += time.perf_counter() - t0
            light += result.light_change
            upd = tracker.update(frame, result)
            if upd.ended is not None:
                events += 1
                yield event_json(upd.ended, fps_used)
        last = tracker.finish()
        if last is not None:
            events += 1
            yield event_json(last, fps_used)
    finally:
        cam.close()
    yield Summary(frames, fps_used, events, light,
                  1000.0 * detect_s / frames if frames else 0.0).to_json()


def format_line(obj: dict[str, Any], as_json: bool) -> str:
    """One output line, JSON or human-readable."""
    if as_json:
        return json.dumps(obj)
    if obj["type"] == "event":
        return (f"event {obj['start_s']:8.2f}s - {obj['end_s']:8.2f}s  "
                f"frames {obj['start_frame']}-{obj['end_frame']}  peak {obj['peak_area_pct']:.2f}%"
                f"  boxes {obj['boxes']}  ended: {obj['end_reason']}"
                f"  insect-only frames {obj['transient_frames']}")
    return (f"{obj['frames']} frames at {obj['fps']:g} fps: {obj['events']} event(s), "
            f"{obj['light_changes']} light-change frame(s), "
            f"detector {obj['detect_ms_per_frame']:.3f} ms/frame")
