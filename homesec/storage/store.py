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
from dataclasses import dataclass
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
]


@dataclass
class ArmStatus:
    """The arm state as seen at a given time; an expired 'arming' reads as 'armed'."""

    state: str
    deadline_ts: float | None
    changed_ts: float
    changed_by: str

    @property
    def armed(self) -> bool:
        """True when alerts go out."""
        return self.state == "armed"


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

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for the API)."""
        return {
            "id": self.id, "camera": self.camera, "start_ts": self.start_ts,
            "end_ts": self.end_ts, "peak_area_pct": round(self.peak_area_pct, 3),
            "boxes": self.boxes, "union_box": self.union_box,
            "has_snapshot": self.snapshot is not None, "motion_frames": self.motion_frames,
            "armed": self.armed, "interrupted": self.interrupted,
            "in_progress": self.end_ts is None and not self.interrupted,
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
    )


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
    conn.execute("PRAGMA journal_mode=WAL")
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

    # ---- arm state -------------------------------------------------------------------------

    def arm_status(self, now: float | None = None) -> ArmStatus:
        """The arm state now; 'arming' past its deadline is reported as 'armed'."""
        now = time.time() if now is None else now
        r = self.conn.execute("SELECT * FROM arm_state WHERE id = 1").fetchone()
        state, deadline = r["state"], r["deadline_ts"]
        if state == "arming" and deadline is not None and now >= deadline:
            state = "armed"
        return ArmStatus(state, deadline, r["changed_ts"], r["changed_by"])

    def set_arm(self, armed: bool, by: str, delay_s: float = 0.0, now: float | None = None
                ) -> ArmStatus:
        """Arm (with an exit delay, stored as a deadline) or disarm (cancels a pending arm)."""
        now = time.time() if now is None else now
        if armed:
            state = "arming" if delay_s > 0 else "armed"
            deadline: float | None = now + delay_s
        else:
            state, deadline = "disarmed", None
        with self.transaction():
            self._write_arm(state, deadline, now, by)
        return self.arm_status(now)

    def arm(self, by: str, delay_s: float = 0.0, now: float | None = None) -> ArmStatus:
        """Arm with an exit delay, deciding and writing in one transaction (two phones tapping at
        once see one outcome). Already armed: nothing changes (re-arming must not open a new
        exit delay in which alerts are off). Arming: only a shorter delay moves the deadline."""
        now = time.time() if now is None else now
        with self.transaction():
            current = self.arm_status(now)
            keep = current.state == "armed" or (
                current.state == "arming" and current.deadline_ts is not None
                and current.deadline_ts <= now + delay_s)
            if not keep:
                self._write_arm("arming" if delay_s > 0 else "armed", now + delay_s, now, by)
        return self.arm_status(now)

    def _write_arm(self, state: str, deadline: float | None, now: float, by: str) -> None:
        self.conn.execute(
            "UPDATE arm_state SET state = ?, deadline_ts = ?, changed_ts = ?, changed_by = ? "
            "WHERE id = 1", (state, deadline, now, by),
        )
        self.conn.execute("INSERT INTO arm_log (state, deadline_ts, ts, by) VALUES (?, ?, ?, ?)",
                          (state, deadline, now, by))

    # ---- events ----------------------------------------------------------------------------

    def add_event(self, camera: str, start_ts: float, peak_area_pct: float,
                  boxes: list[Any], union: Any, snapshot: str | None, thumb: str | None,
                  motion_frames: int, now: float | None = None) -> tuple[int, bool]:
        """Record a new (open) event; if armed right now, queue its alert in the same
        transaction. Returns (event id, whether an alert was queued)."""
        now = time.time() if now is None else now
        with self.transaction() as c:
            armed = self.arm_status(now).armed
            cur = c.execute(
                "INSERT INTO events (camera, start_ts, peak_area_pct, boxes, union_box, snapshot,"
                " thumb, motion_frames, armed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (camera, start_ts, peak_area_pct, json.dumps(boxes),
                 json.dumps(union) if union else None, snapshot, thumb, motion_frames, armed),
            )
            event_id = int(cur.lastrowid or 0)
            if armed:
                c.execute(
                    "INSERT INTO outbox (event_id, created_ts, next_attempt_ts) VALUES (?, ?, ?)",
                    (event_id, now, now),
                )
        return event_id, armed

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

    def events(self, limit: int = 50, before_id: int | None = None) -> list[EventRow]:
        """Newest first; `before_id` pages backwards."""
        if before_id is None:
            rows = self.conn.execute(
                "SELECT * FROM events ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        else:
            rows = self.conn.execute(
                "SELECT * FROM events WHERE id < ? ORDER BY id DESC LIMIT ?",
                (before_id, limit)).fetchall()
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
            c.execute("DELETE FROM events WHERE id = ?", (event_id,))
        return _event_row(r)

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
