"""The event recorder: writes event rows and snapshot files from a queue, in order, off the
capture thread (JPEG encoding and SQLite commits take tens of milliseconds on a Pi and an SD card
can stall for longer; the capture loop hands events to a queue and goes on with the next frame).
"""

from __future__ import annotations

import errno
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homesec.alarm.persist import continued_motion_safe, open_store
from homesec.capture.events import Event
from homesec.capture.snapshot import save_snapshot
from homesec.config import Config
from homesec.storage.retention import sweep
from homesec.storage.store import Store

log = logging.getLogger("homesec.capture.recorder")

SWEEP_EVERY_S = 3600.0  # retention sweep: at start-up, then hourly
RECORD_ATTEMPTS = 5  # each waits out the 10 s busy timeout, then 1, 2, 4, 8 s more


@dataclass
class _Job:
    kind: str  # "start" | "armed" | "end"
    event: Event
    snapshot: dict[str, Any]


def _event_fields(ev: Event) -> dict[str, Any]:
    """A copy of what the recorder needs, taken in the capture thread (the tracker mutates ev)."""
    return {
        "image": ev.best_image, "boxes": list(ev.boxes), "best_wall": ev.best_wall,
        "start_wall": ev.start_wall, "end_wall": ev.end_wall, "peak": ev.peak_area_pct,
        "union": list(ev.union) if ev.union else None, "frames": ev.motion_frames,
    }


class EventRecorder(threading.Thread):
    """Writes event rows and snapshot files from a queue, in order, off the capture thread."""

    def __init__(self, cfg: Config, on_recorded: Callable[[str, int], None] | None = None
                 ) -> None:
        super().__init__(name="recorder", daemon=True)
        self.cfg = cfg
        self.q: queue.Queue[_Job | None] = queue.Queue()
        self.on_recorded = on_recorded
        self._keys: dict[int, str] = {}

    def put(self, kind: str, ev: Event) -> None:
        """Queue a start or end of an event."""
        self.q.put(_Job(kind, ev, _event_fields(ev)))

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the queued jobs, then end the thread."""
        self.q.put(None)
        self.join(timeout)

    def _open_store(self) -> Store:
        """The database, retried until it opens (a locked or briefly unreadable file): events
        wait in the queue meanwhile, none is dropped."""
        delay = 1.0
        while True:
            try:
                return open_store(self.cfg)  # (the alarm decides with the config's delays)
            except sqlite3.Error as exc:
                log.error("recorder cannot open the database (%s); retrying in %g s", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _sweep(self, store: Store, media: Path) -> None:
        try:
            sweep(store, self.cfg)
        except (OSError, sqlite3.Error) as exc:
            log.error("retention sweep failed: %s", exc)

    def run(self) -> None:
        media = self.cfg.paths.media
        media.mkdir(parents=True, exist_ok=True)
        store = self._open_store()
        next_sweep = 0.0
        try:
            while True:
                if time.monotonic() >= next_sweep:
                    self._sweep(store, media)
                    next_sweep = time.monotonic() + SWEEP_EVERY_S
                try:
                    job = self.q.get(timeout=max(0.1, next_sweep - time.monotonic()))
                except queue.Empty:
                    continue
                if job is None:
                    break
                self._record_retrying(store, media, job)
        finally:
            store.close()

    def _record_retrying(self, store: Store, media: Path, job: _Job) -> None:
        """Record a job; a database locked for longer than the busy timeout (someone holding a
        write transaction open) is waited out a few more times before the event is given up."""
        for attempt in range(RECORD_ATTEMPTS):
            try:
                self._record(store, media, job)
                return
            except sqlite3.OperationalError as exc:
                if attempt + 1 == RECORD_ATTEMPTS:
                    log.error("event %s not recorded, database unusable: %s", job.kind, exc)
                    return
                log.warning("database busy (%s); retrying the event %s", exc, job.kind)
                time.sleep(min(2.0**attempt, 10.0))
            except Exception:
                log.exception("could not record event (%s)", job.kind)
                return

    def _record(self, store: Store, media: Path, job: _Job) -> None:
        ev, f = job.event, job.snapshot
        key = self._keys.get(id(ev))
        if key is None:
            t = f["start_wall"]
            key = time.strftime("%H%M%S", time.localtime(t)) + f"-{int(t * 1000) % 1000:03d}"
            self._keys[id(ev)] = key
        snap = thumb = None
        if f["image"] is not None:
            ev_cfg = self.cfg.events
            try:
                snap, thumb = save_snapshot(media, key, f["image"], f["boxes"], f["best_wall"],
                                            self.cfg.camera.name, ev_cfg.snapshot_quality,
                                            ev_cfg.thumb_width, day_of=f["start_wall"])
            except (OSError, ValueError) as exc:
                # Disk full, media dir gone, encoder failure: the event row and its alert matter
                # more than the picture, so they are still written (without a snapshot). A full
                # disk also triggers the retention sweep, so the next event has room again.
                log.error("snapshot of the event not saved (%s); recording the event without it",
                          exc)
                if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                    self._sweep(store, media)
        if job.kind == "start":
            ev.id, armed = store.add_event(self.cfg.camera.name, f["start_wall"], f["peak"],
                                           f["boxes"], f["union"], snap, thumb, f["frames"])
            log.info("event %d started%s (%.1f%% of the frame changed)", ev.id,
                     ", alert queued" if armed else "", f["peak"])
        elif job.kind == "armed":  # still moving after the house was armed (alarm/running.py)
            if ev.id is None:
                return
            outcome = continued_motion_safe(store, ev.id, f["best_wall"], time.time(), snap, thumb)
            log.info("event %d goes on after arming: %s", ev.id, outcome)
        else:
            self._keys.pop(id(ev), None)  # (an id() may be reused by a later event object)
            if ev.id is None:
                return
            store.finish_event(ev.id, f["end_wall"], f["peak"], f["boxes"], f["union"], snap,
                               thumb, f["frames"])
            log.info("event %d ended after %.1f s", ev.id, f["end_wall"] - f["start_wall"])
        if self.on_recorded is not None and ev.id is not None:
            self.on_recorded(job.kind, ev.id)
