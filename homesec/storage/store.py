"""The shared state: one SQLite file (WAL) with events, arm state and the alert outbox.

Why SQLite and not process memory: the capture daemon and several gunicorn workers are separate
processes that restart independently; they agree through this file. Every write is one short
transaction; readers never block the writer (WAL). The schema carries a version and is moved
forward by numbered migrations, so an upgrade on a Pi keeps its history.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Each entry moves the schema from version i to i + 1. Never edit a released migration: add one.
MIGRATIONS: list[str] = [
    # 1: events, arm state (+ its history), outbox, users, API tokens, login failures
    """
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        camera TEXT NOT NULL,
        start_ts REAL NOT NULL,
        end_ts REAL,
        peak_area_pct REAL NOT NULL DEFAULT 0,
        boxes TEXT NOT NULL DEFAULT '[]',
        union_box TEXT,
        snapshot TEXT,
        thumb TEXT,
        motion_frames INTEGER NOT NULL DEFAULT 0,
        armed INTEGER NOT NULL DEFAULT 0,
        interrupted INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX events_start ON events(start_ts);
    CREATE TABLE arm_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        state TEXT NOT NULL CHECK (state IN ('disarmed', 'arming', 'armed')),
        deadline_ts REAL,
        changed_ts REAL NOT NULL,
        changed_by TEXT NOT NULL
    );
    INSERT INTO arm_state VALUES (1, 'disarmed', NULL, strftime('%s', 'now'), 'install');
    CREATE TABLE arm_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        state TEXT NOT NULL,
        deadline_ts REAL,
        ts REAL NOT NULL,
        by TEXT NOT NULL
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id INTEGER REFERENCES events(id) ON DELETE SET NULL,
        created_ts REAL NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ts REAL NOT NULL,
        last_error TEXT,
        sent_ts REAL,
        message_id TEXT
    );
    CREATE INDEX outbox_due ON outbox(status, next_attempt_ts);
    CREATE TABLE users (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_ts REAL NOT NULL
    );
    CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        created_ts REAL NOT NULL,
        last_used_ts REAL
    );
    CREATE TABLE login_failures (
        client TEXT NOT NULL,
        ts REAL NOT NULL
    );
    CREATE INDEX login_failures_client ON login_failures(client, ts);
    """,
    # 2 (mailer): which email an outbox row went out in. Rows of one digest share `batch` (the id
    # of its first row) and `message_id`, fixed before the first attempt so a retry resends the
    # same message with the same Message-ID.
    """
    ALTER TABLE outbox ADD COLUMN batch INTEGER;
    CREATE INDEX outbox_batch ON outbox(batch);
    """,
    # 3 (websec): server-side login sessions, so logout really ends one (a copied cookie is
    # worthless afterwards). The cookie holds a random secret; only its SHA-256 is stored.
    # expires_ts is fixed at login (created + web.session_days): the lifetime never slides.
    """
    CREATE TABLE web_sessions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        secret_hash TEXT NOT NULL UNIQUE,
        created_ts REAL NOT NULL,
        expires_ts REAL NOT NULL,
        last_seen_ts REAL NOT NULL,
        client TEXT NOT NULL,
        user_agent TEXT NOT NULL
    );
    CREATE INDEX web_sessions_expires ON web_sessions(expires_ts);
    """,
    # 4 (mqtt): the other units of the site this unit has heard from over MQTT (written by the
    # capture daemon's MQTT client, shown by the web UI). One row per unit name.
    """
    CREATE TABLE site_units (
        unit TEXT PRIMARY KEY,
        online INTEGER NOT NULL DEFAULT 0,
        url TEXT,
        seen_ts REAL NOT NULL,
        last_event_ts REAL
    );
    """,
    # 5 (clips): the video clips of an event (a long event has several parts), written once the
    # file is complete, so a listed clip always decodes. `media_deleted_ts` marks an event whose
    # clips and snapshot the size budget removed while its row stays in the history.
    """
    CREATE TABLE clips (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
        part INTEGER NOT NULL,
        path TEXT NOT NULL,
        start_ts REAL NOT NULL,
        end_ts REAL NOT NULL,
        bytes INTEGER NOT NULL,
        frames INTEGER NOT NULL,
        dropped_frames INTEGER NOT NULL DEFAULT 0,
        created_ts REAL NOT NULL,
        UNIQUE (event_id, part)
    );
    CREATE INDEX clips_start ON clips(start_ts);
    ALTER TABLE events ADD COLUMN media_deleted_ts REAL;
    """,
    # 6 (alarm): the alarm state machine's row (homesec/alarm/machine.py: five states, snooze,
    # the event waiting in the entry delay, when the schedule last ran); the audit log, which
    # absorbs arm_log (kept as a view for old readers); outbox rows that are not motion (health
    # and tamper alerts carry their own title and text); what the alarm made of each event;
    # request counters for rate limits; the health conditions already alerted.
    """
    CREATE TABLE alarm_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        state TEXT NOT NULL
            CHECK (state IN ('disarmed', 'arming', 'armed', 'pending', 'triggered')),
        deadline_ts REAL,
        armed_ts REAL,
        changed_ts REAL NOT NULL,
        changed_by TEXT NOT NULL,
        snooze_until REAL,
        event_id INTEGER,
        schedule_checked_ts REAL
    );
    INSERT INTO alarm_state (id, state, deadline_ts, armed_ts, changed_ts, changed_by)
        SELECT 1, state, deadline_ts,
               CASE state WHEN 'armed' THEN COALESCE(deadline_ts, changed_ts)
                          WHEN 'arming' THEN deadline_ts END,
               changed_ts, changed_by FROM arm_state;
    DROP TABLE arm_state;
    ALTER TABLE alarm_state RENAME TO arm_state;
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        action TEXT NOT NULL,
        who TEXT NOT NULL,
        client TEXT,
        detail TEXT,
        state TEXT
    );
    CREATE INDEX audit_ts ON audit(ts);
    INSERT INTO audit (ts, action, who, detail, state)
        SELECT ts, CASE state WHEN 'disarmed' THEN 'disarm' ELSE 'arm' END, by,
               'from the arm log before the audit log', state FROM arm_log ORDER BY id;
    DROP TABLE arm_log;
    CREATE VIEW arm_log AS
        SELECT id, state, NULL AS deadline_ts, ts, who AS by FROM audit
        WHERE action IN ('arm', 'disarm');
    ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'motion';
    ALTER TABLE outbox ADD COLUMN title TEXT;
    ALTER TABLE outbox ADD COLUMN body TEXT;
    ALTER TABLE events ADD COLUMN alarm TEXT;
    CREATE TABLE request_hits (
        bucket TEXT NOT NULL,
        client TEXT NOT NULL,
        ts REAL NOT NULL
    );
    CREATE INDEX request_hits_client ON request_hits(bucket, client, ts);
    CREATE TABLE health_alerts (
        condition TEXT PRIMARY KEY,
        since_ts REAL NOT NULL,
        alerted_ts REAL
    );
    """,
]


@dataclass
class ArmStatus:
    """The alarm state as seen at a given time (homesec/alarm/machine.py): an expired 'arming'
    reads as 'armed', an expired entry delay as 'triggered'. `snooze_until` is a time, `inf`
    for "until disarmed", or None."""

    state: str
    deadline_ts: float | None
    changed_ts: float
    changed_by: str
    armed_ts: float | None = None
    snooze_until: float | None = None
    event_id: int | None = None

    @property
    def armed(self) -> bool:
        """True when the house is armed (armed, pending or triggered): motion is an intrusion."""
        return self.state in ("armed", "pending", "triggered")


@dataclass
class EventRow:
    """One stored event."""

    id: int
    camera: str
    start_ts: float
    end_ts: float | None
    peak_area_pct: float
    boxes: list[list[int]]
    union_box: list[int] | None
    snapshot: str | None
    thumb: str | None
    motion_frames: int
    armed: bool
    interrupted: bool
    media_deleted_ts: float | None = None  # clips and snapshot removed by the size budget
    clip_paths: list[str] = field(default_factory=list)  # filled by delete_event only
    alarm: str | None = None  # what the alarm made of it: alert, pending, disarmed_in_time, ...

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for the API)."""
        return {
            "id": self.id, "camera": self.camera, "start_ts": self.start_ts,
            "end_ts": self.end_ts, "peak_area_pct": round(self.peak_area_pct, 3),
            "boxes": self.boxes, "union_box": self.union_box,
            "has_snapshot": self.snapshot is not None, "motion_frames": self.motion_frames,
            "armed": self.armed, "interrupted": self.interrupted,
            "in_progress": self.end_ts is None and not self.interrupted,
            "media_deleted": self.media_deleted_ts is not None,
            "alarm": self.alarm,
        }


# SQLite integers are signed 64-bit; a larger Python int (from a URL or a command line) would
# raise OverflowError in the driver instead of simply matching no row.
MAX_ROW_ID = 2**63 - 1


def row_id_ok(row_id: int) -> bool:
    """Whether `row_id` can be a row id at all (1 .. 2**63-1)."""
    return 0 < row_id <= MAX_ROW_ID


def _event_row(r: sqlite3.Row) -> EventRow:
    return EventRow(
        id=r["id"], camera=r["camera"], start_ts=r["start_ts"], end_ts=r["end_ts"],
        peak_area_pct=r["peak_area_pct"], boxes=json.loads(r["boxes"]),
        union_box=json.loads(r["union_box"]) if r["union_box"] else None,
        snapshot=r["snapshot"], thumb=r["thumb"], motion_frames=r["motion_frames"],
        armed=bool(r["armed"]), interrupted=bool(r["interrupted"]),
        media_deleted_ts=r["media_deleted_ts"],
        alarm=r["alarm"],
    )


def use_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Put the file in WAL mode (it stays so), retrying while another process holds it.

    Switching a new file to WAL needs it to itself, and SQLite does not wait for that (the busy
    timeout does not apply): when two processes opened a new database at once (the capture
    daemon and the web service at a Pi's first boot), one of them failed with "database is
    locked" (about 1 open in 20 with six at once). A file already in WAL mode is left alone."""
    if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = "locked" in str(exc) or "busy" in str(exc)
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def connect(db_path: Path | str, timeout_s: float = 10.0) -> sqlite3.Connection:
    """Open the database (creating it), WAL mode, foreign keys on, rows as sqlite3.Row."""
    db_path = Path(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    if not db_path.exists():
        # Password and token hashes live here: only the owner may read it, whatever the umask
        # (SQLite gives its -wal and -shm files the same mode).
        os.close(os.open(db_path, os.O_CREAT | os.O_WRONLY, 0o600))
    conn = sqlite3.connect(db_path, timeout=timeout_s, isolation_level=None,
                           check_same_thread=False)
    conn.row_factory = sqlite3.Row
    use_wal(conn, timeout_s)
    # NORMAL in WAL mode: a power cut may lose the last transactions but never corrupts the file;
    # FULL would fsync every event write, which SD cards pay for in wear.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    """The version the file is at (0 for a new file)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def statements(script: str) -> list[str]:
    """Split an SQL script into statements the way SQLite's parser sees them (a ';' inside a
    string literal or a trigger body does not end a statement). executescript() would commit
    on its own, which a migration inside our transaction must not do."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        raise ValueError(f"incomplete SQL statement in a migration: {buf.strip()[:60]!r}")
    return out


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration the file lacks, each in its own transaction; return the version."""
    version = schema_version(conn)
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"database schema version {version} is newer than this homesec knows "
            f"({len(MIGRATIONS)}): upgrade homesec"
        )
    for i in range(version, len(MIGRATIONS)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if schema_version(conn) == i:  # another process may have migrated meanwhile
                for stmt in statements(MIGRATIONS[i]):
                    conn.execute(stmt)
                conn.execute(f"PRAGMA user_version={i + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return schema_version(conn)


class Store:
    """Typed access to the database. One instance per thread or per request."""

    def __init__(self, db_path: Path | str) -> None:
        self.path = Path(db_path)
        self.conn = connect(self.path)
        migrate(self.conn)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): one short write transaction."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # ---- arm state (the machine in homesec/alarm/machine.py, persisted by alarm/persist.py) --

    def arm_status(self, now: float | None = None) -> ArmStatus:
        """The alarm state now (time-driven changes applied as a reader sees them)."""
        from homesec.alarm import persist

        return persist.status(self, time.time() if now is None else now)

    def set_arm(self, armed: bool, by: str, delay_s: float = 0.0, now: float | None = None,
                client: str | None = None) -> ArmStatus:
        """Arm (with an exit delay, stored as a deadline) or disarm (cancels an arming, an entry
        delay and a snooze). Arming goes through `arm`: already armed stays armed."""
        if armed:
            return self.arm(by, delay_s=delay_s, now=now, client=client)
        from homesec.alarm import persist

        return persist.apply(self, "disarm", by=by, now=now, client=client).status

    def arm(self, by: str, delay_s: float = 0.0, now: float | None = None,
            client: str | None = None) -> ArmStatus:
        """Arm with an exit delay, deciding and writing in one transaction (two phones tapping at
        once see one outcome). Already armed: nothing changes (re-arming must not open a new
        exit delay in which alerts are off). Arming: only a shorter delay moves the deadline."""
        from homesec.alarm import persist

        return persist.apply(self, "arm", by=by, delay_s=delay_s, now=now, client=client).status

    # ---- events ----------------------------------------------------------------------------

    def add_event(self, camera: str, start_ts: float, peak_area_pct: float,
                  boxes: list[Any], union: Any, snapshot: str | None, thumb: str | None,
                  motion_frames: int, now: float | None = None) -> tuple[int, bool]:
        """Record a new (open) event; if armed right now, queue its alert in the same
        transaction. Returns (event id, whether an alert was queued)."""
        now = time.time() if now is None else now
        from homesec.alarm import persist

        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO events (camera, start_ts, peak_area_pct, boxes, union_box, snapshot,"
                " thumb, motion_frames, armed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (camera, start_ts, peak_area_pct, json.dumps(boxes),
                 json.dumps(union) if union else None, snapshot, thumb, motion_frames, False),
            )
            event_id = int(cur.lastrowid or 0)
            # The alarm decides in the same transaction: alert now, wait (entry delay), or not.
            alerted = persist.motion_in_transaction(self, event_id, start_ts, now)
        return event_id, alerted

    def finish_event(self, event_id: int, end_ts: float, peak_area_pct: float,
                     boxes: list[Any], union: Any, snapshot: str | None, thumb: str | None,
                     motion_frames: int) -> None:
        """Close an event with its final numbers and best snapshot."""
        with self.transaction() as c:
            c.execute(
                "UPDATE events SET end_ts = ?, peak_area_pct = ?, boxes = ?, union_box = ?,"
                " snapshot = COALESCE(?, snapshot), thumb = COALESCE(?, thumb),"
                " motion_frames = ? WHERE id = ?",
                (end_ts, peak_area_pct, json.dumps(boxes), json.dumps(union) if union else None,
                 snapshot, thumb, motion_frames, event_id),
            )

    def close_interrupted(self) -> int:
        """Events left open by a crash (SIGKILL, power cut): close them at their start time and
        mark them interrupted, so the history reads cleanly. Returns how many."""
        with self.transaction() as c:
            cur = c.execute(
                "UPDATE events SET end_ts = start_ts, interrupted = 1 WHERE end_ts IS NULL"
            )
        return cur.rowcount

    def events(self, limit: int = 50, before_id: int | None = None,
               since: float | None = None, until: float | None = None) -> list[EventRow]:
        """Newest first; `before_id` pages backwards; `since` <= start_ts < `until` filters."""
        rows = self.conn.execute(
            "SELECT * FROM events WHERE (? IS NULL OR id < ?) AND (? IS NULL OR start_ts >= ?)"
            " AND (? IS NULL OR start_ts < ?) ORDER BY id DESC LIMIT ?",
            (before_id, before_id, since, since, until, until, limit)).fetchall()
        return [_event_row(r) for r in rows]

    def event(self, event_id: int) -> EventRow | None:
        """One event, or None."""
        if not row_id_ok(event_id):
            return None
        r = self.conn.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
        return _event_row(r) if r else None

    def delete_event(self, event_id: int) -> EventRow | None:
        """Delete an event row (the caller removes its files); returns the row deleted."""
        if not row_id_ok(event_id):
            return None
        with self.transaction() as c:
            r = c.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
            if r is None:
                return None
            clips = [p for (p,) in c.execute("SELECT path FROM clips WHERE event_id = ?",
                                             (event_id,))]
            c.execute("DELETE FROM events WHERE id = ?", (event_id,))
        row = _event_row(r)
        row.clip_paths = clips
        return row

    def prunable_events(self, before_ts: float | None, limit: int) -> list[EventRow]:
        """Oldest first: finished events (started before `before_ts`, if given) whose alert, if
        any, is no longer waiting to be sent. What the retention sweep may delete."""
        rows = self.conn.execute(
            "SELECT * FROM events e WHERE end_ts IS NOT NULL AND (? IS NULL OR start_ts < ?)"
            " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = e.id"
            " AND o.status = 'pending') ORDER BY start_ts LIMIT ?",
            (before_ts, before_ts, limit)).fetchall()
        return [_event_row(r) for r in rows]

    def count_events(self) -> int:
        """How many events are stored."""
        return int(self.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
