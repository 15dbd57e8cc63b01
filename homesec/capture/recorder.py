"""The event recorder: writes event rows and snapshot files from a queue, in order, off the
capture thread (JPEG encoding and SQLite commits take tens of milliseconds on a Pi and an SD card
can stall for longer; the capture loop hands events to a queue and goes on with the next frame).

Why it never gives up on an event: a database that cannot be written (held locked, read-only,
disk I/O errors, an immutable file) must not cost an armed event or the end of one. Each job is
made small first (its snapshot written to the media dir, the picture freed), then written to the
database; when that fails, it and every later job wait, in order, in a `Backlog` that spills to a
journal in the state dir, and are written once the database takes writes again, also after a
restart. Meanwhile the status says "database not writable since T".
"""

from __future__ import annotations

import contextlib
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
from homesec.capture.backlog import Backlog, Record, journal_path
from homesec.capture.events import Event
from homesec.capture.snapshot import save_snapshot
from homesec.config import Config
from homesec.storage.retention import sweep
from homesec.storage.store import Store
from homesec.storage.writable import unwritable_reason

log = logging.getLogger("homesec.capture.recorder")

SWEEP_EVERY_S = 3600.0  # retention sweep: at start-up, then hourly
RETRY_MIN_S = 0.5  # database not writable: first retry of the waiting jobs after this ...
RETRY_MAX_S = 5.0  # ... doubling up to this (a failed write is cheap; a locked one waits 10 s)
PROBE_S = 5.0  # between events, this often: can the database files be written at all?


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


def _file_key(start_wall: float) -> str:
    """An event's file name stem: HHMMSS-ms of its start (the same for its start and end)."""
    return (time.strftime("%H%M%S", time.localtime(start_wall))
            + f"-{int(start_wall * 1000) % 1000:03d}")


class EventRecorder(threading.Thread):
    """Writes event rows and snapshot files from a queue, in order, off the capture thread."""

    def __init__(self, cfg: Config, on_recorded: Callable[[str, int], None] | None = None
                 ) -> None:
        super().__init__(name="recorder", daemon=True)
        self.cfg = cfg
        self.q: queue.Queue[_Job | None] = queue.Queue()
        self.on_recorded = on_recorded
        self.backlog = Backlog(journal_path(cfg.paths.state_dir))
        self._store: Store | None = None
        self._stale = False  # the connection saw an error: replace it once that is safe
        self._ids: dict[tuple[str, float], int] = {}  # (camera, start) -> row id, open events
        # (camera, start) -> the tracker's Event, in memory only: it learns its row id when the
        # start is written (the clip writer waits for that id to list the event's clips).
        self._events: dict[tuple[str, float], Event] = {}
        self._retry_at = 0.0
        self._retry_s = RETRY_MIN_S
        self._stopping = False
        # Read by the capture thread for the status file.
        self.unwritable_since: float | None = None
        self.db_error: str | None = None

    def put(self, kind: str, ev: Event) -> None:
        """Queue a start or end of an event."""
        if kind == "start":
            self._events[(self.cfg.camera.name, ev.start_wall)] = ev
        self.q.put(_Job(kind, ev, _event_fields(ev)))

    def stop(self, timeout: float = 15.0) -> None:
        """Finish the queued jobs (what the database does not take stays in the journal), then
        end the thread."""
        self.q.put(None)
        self.join(timeout)

    def health(self) -> dict[str, Any]:
        """For the status file: whether the database takes writes, since when not, why not, and
        how many event records wait (in the queue, in memory or in the journal)."""
        return {
            "db_ok": self.unwritable_since is None,
            "db_unwritable_since": self.unwritable_since,
            "db_error": self.db_error,
            "events_waiting": len(self.backlog) + self.q.qsize(),
            "events_refused": self.backlog.dropped,
            "journal_error": self.backlog.journal_error,
        }

    # ---- the database ----------------------------------------------------------------------

    def _open_store(self) -> Store | None:
        """The database, or None when it cannot be opened or written now (retried with the
        waiting jobs)."""
        if not self._probe():
            self._retry_at = time.monotonic() + self._retry_s
            self._retry_s = min(self._retry_s * 2, RETRY_MAX_S)
            return None
        if self._store is not None and self._stale:
            self._drop_store()
        if self._store is None:
            try:
                self._store = open_store(self.cfg)  # (the alarm decides with the config's delays)
            except sqlite3.Error as exc:
                self._unwritable(exc)
        return self._store

    def _drop_store(self) -> None:
        """After an error the connection may be left mid-transaction: start afresh next time.
        (Not while the files refuse writes: even a close touches the -shm mapping.)"""
        self._stale = True
        if self._store is not None and unwritable_reason(self.cfg.paths.db_path) is None:
            with contextlib.suppress(sqlite3.Error):
                self._store.close()
            self._store = None
            self._stale = False

    def _unwritable(self, exc: BaseException) -> None:
        now = time.time()
        if self.unwritable_since is None:
            self.unwritable_since = now
            log.error("database not writable (%s): event records wait, in order, in memory and "
                      "in the journal %s until it is", exc, self.backlog.path)
        self.db_error = str(exc)
        self._retry_at = time.monotonic() + self._retry_s
        self._retry_s = min(self._retry_s * 2, RETRY_MAX_S)

    def _writable(self) -> None:
        if self.unwritable_since is not None and not self.backlog:
            log.warning("database writable again after %.0f s; every waiting event record is "
                        "written", time.time() - self.unwritable_since)
            self.unwritable_since = None
            self.db_error = None
        self._retry_s = RETRY_MIN_S

    def _probe(self) -> bool:
        """True when the database files can be written. Asked between events (so the owner sees
        a fault before an event needs the database) and before every database job: a thread
        that touches SQLite while its files are immutable can be killed (see `writable`)."""
        reason = unwritable_reason(self.cfg.paths.db_path)
        if reason is not None:
            if self.unwritable_since is None:
                self.unwritable_since = time.time()
                log.error("database not writable: %s", reason)
            if self.db_error is None:  # (a failed write's own error says more)
                self.db_error = reason
            return False
        if not self.backlog and self.unwritable_since is not None:
            self._writable()
        return True

    def _sweep(self, media: Path) -> None:
        store = self._open_store()
        if store is None:
            return
        try:
            sweep(store, self.cfg)
        except (OSError, sqlite3.Error) as exc:
            log.error("retention sweep failed: %s", exc)

    # ---- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        media = self.cfg.paths.media
        media.mkdir(parents=True, exist_ok=True)
        self.backlog.prepare_dir()
        self.backlog.load()  # what an earlier run could not write comes first
        # Events a crash left open are closed after the journal had its say (it may hold their
        # ends) and before any new event is written.
        self._submit({"kind": "recover"})
        next_sweep = next_probe = 0.0
        try:
            while True:
                now = time.monotonic()
                if now >= next_sweep and not self.backlog:
                    self._sweep(media)
                    next_sweep = time.monotonic() + SWEEP_EVERY_S
                if now >= next_probe:
                    self._probe()
                    next_probe = now + PROBE_S
                due = min(next_sweep, next_probe)
                if self.backlog:
                    due = min(due, self._retry_at)
                try:
                    job = self.q.get(timeout=max(0.05, due - time.monotonic()))
                except queue.Empty:
                    pass
                else:
                    if job is None:
                        break
                    self._submit(self._prepare(media, job))
                if self.backlog and time.monotonic() >= self._retry_at:
                    self._drain()
        finally:
            self._stopping = True
            self._finish()

    def _finish(self) -> None:
        """Stopping: write what the database takes now, leave the rest in the journal."""
        while True:  # jobs queued behind the stop (a late end from the daemon's shutdown)
            try:
                job = self.q.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                self._submit(self._prepare(self.cfg.paths.media, job))
        if self.backlog and self.unwritable_since is None:
            self._drain()
        self.backlog.close()
        self._drop_store()

    def _submit(self, rec: Record) -> None:
        """Write a record now when nothing waits before it; else it waits behind the others."""
        waits = bool(self.backlog) or (self._stopping and self.unwritable_since is not None)
        if waits or not self._write(rec):
            self.backlog.append(rec)

    def _drain(self) -> None:
        """Write the waiting records in order; stop at the first the database refuses."""
        while (rec := self.backlog.peek()) is not None:
            if not self._write({**rec, "replay": True}):
                return
            self.backlog.pop()
        self._writable()

    def _write(self, rec: Record) -> bool:
        """One record into the database; False (and it should wait) when the database refused."""
        store = self._open_store()
        if store is None:
            return False
        try:
            event_id = self._record(store, rec)
        except sqlite3.Error as exc:
            self._drop_store()
            self._unwritable(exc)
            return False
        except Exception:  # a bug in one record must not hold every later one back
            log.exception("event record (%s) could not be written; skipped", rec.get("kind"))
            return True
        if not self.backlog:
            self._writable()
        if event_id is not None and rec["kind"] != "recover":
            ident = (rec["camera"], rec["start"])
            ev = (self._events.get(ident) if rec["kind"] in ("start", "armed")
                  else self._events.pop(ident, None))
            if ev is not None:
                ev.id = event_id
        if self.on_recorded is not None and event_id is not None and rec["kind"] != "armed":
            self.on_recorded(rec["kind"], event_id)
        return True

    # ---- one job ---------------------------------------------------------------------------

    def _prepare(self, media: Path, job: _Job) -> Record:
        """Save the job's snapshot and return the small record the database gets (the picture
        is freed here, so a database that waits holds no frames)."""
        f = job.snapshot
        snap = thumb = None
        if f["image"] is not None:
            ev_cfg = self.cfg.events
            try:
                snap, thumb = save_snapshot(media, _file_key(f["start_wall"]), f["image"],
                                            f["boxes"], f["best_wall"], self.cfg.camera.name,
                                            ev_cfg.snapshot_quality, ev_cfg.thumb_width,
                                            day_of=f["start_wall"])
            except (OSError, ValueError) as exc:
                # Disk full, media dir gone, encoder failure: the event row and its alert matter
                # more than the picture, so they are still written (without a snapshot). A full
                # disk also triggers the retention sweep, so the next event has room again.
                log.error("snapshot of the event not saved (%s); recording the event without it",
                          exc)
                if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                    self._sweep(media)
        return {"kind": job.kind, "camera": self.cfg.camera.name, "start": f["start_wall"],
                "end": f["end_wall"], "peak": f["peak"], "boxes": f["boxes"],
                "union": f["union"], "frames": f["frames"], "snapshot": snap, "thumb": thumb,
                "best": f["best_wall"]}

    def _find(self, store: Store, camera: str, start: float) -> int | None:
        """The row of an event already written (a journal replayed after a crash)."""
        r = store.conn.execute("SELECT id FROM events WHERE camera = ? AND start_ts = ? "
                               "ORDER BY id DESC LIMIT 1", (camera, start)).fetchone()
        return int(r[0]) if r else None

    def _record(self, store: Store, rec: Record) -> int | None:
        """Write one record; returns the event's row id (None for the start-up recovery)."""
        if rec["kind"] == "recover":
            n = store.close_interrupted()
            if n:
                log.warning("closed %d event(s) left open by an earlier crash", n)
            return None
        camera, start = rec["camera"], rec["start"]
        ident = (camera, start)
        event_id = self._ids.get(ident)
        if event_id is None and rec.get("replay"):
            event_id = self._find(store, camera, start)
        if rec["kind"] == "armed":  # still moving after the house was armed (alarm/running.py)
            if event_id is None:
                return None  # (its start was never written: it met the alarm then)
            outcome = continued_motion_safe(store, event_id, rec.get("best") or start,
                                            time.time(), rec["snapshot"], rec["thumb"])
            log.info("event %d goes on after arming: %s", event_id, outcome)
            return event_id
        if event_id is None:  # a start (or an end whose start was never written: both now)
            event_id, armed = store.add_event(camera, start, rec["peak"], rec["boxes"],
                                              rec["union"], rec["snapshot"], rec["thumb"],
                                              rec["frames"])
            log.info("event %d started%s (%.1f%% of the frame changed)", event_id,
                     ", alert queued" if armed else "", rec["peak"])
        if rec["kind"] == "start":
            self._ids[ident] = event_id
            return event_id
        store.finish_event(event_id, rec["end"], rec["peak"], rec["boxes"], rec["union"],
                           rec["snapshot"], rec["thumb"], rec["frames"])
        self._ids.pop(ident, None)
        log.info("event %d ended after %.1f s", event_id, rec["end"] - start)
        return event_id
