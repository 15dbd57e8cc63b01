"""The outbox table as the mailer sees it: pending alerts, batches (one email each), sent, failed.

Why batches are fixed before the first attempt: a message that may have reached the server (the
connection broke after DATA) must be resent identically, with the same Message-ID, so the mail
client shows it once. Alerts that arrive while a batch is being retried go into the next one.
Nothing here deletes a row: a failed alert keeps its error until it is retried or sent.
"""

from __future__ import annotations

import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any

from homesec.storage.store import Store

MAX_EVENTS_PER_MESSAGE = 50
DELETED_EVENT = "the event was deleted before its alert went out"


@dataclass
class Batch:
    """The outbox rows that go out in one email."""

    id: int
    message_id: str
    row_ids: list[int]
    event_ids: list[int]
    attempts: int
    next_attempt_ts: float
    notice: tuple[str, str] | None = None  # a health/tamper alert: (subject, text), no event


def _batch(store: Store, batch_id: int) -> Batch | None:
    rows = store.conn.execute(
        "SELECT id, event_id, attempts, next_attempt_ts, message_id, kind, title, body "
        "FROM outbox WHERE batch = ? AND status = 'pending' ORDER BY id", (batch_id,)).fetchall()
    if not rows:
        return None
    notice = (rows[0]["title"] or "", rows[0]["body"] or "") if rows[0]["kind"] != "motion" \
        else None
    return Batch(batch_id, rows[0]["message_id"], [r["id"] for r in rows],
                 [r["event_id"] for r in rows if r["event_id"] is not None],
                 max(r["attempts"] for r in rows), max(r["next_attempt_ts"] for r in rows),
                 notice)


def open_batch(store: Store) -> Batch | None:
    """The oldest batch formed but not yet sent (being retried), if any."""
    r = store.conn.execute(
        "SELECT MIN(batch) FROM outbox WHERE status = 'pending' AND batch IS NOT NULL").fetchone()
    return _batch(store, r[0]) if r[0] is not None else None


def has_unbatched(store: Store) -> bool:
    """Whether alerts are waiting for a batch."""
    return store.conn.execute(
        "SELECT 1 FROM outbox WHERE status = 'pending' AND batch IS NULL LIMIT 1").fetchone() is not None


def last_sent_ts(store: Store) -> float | None:
    """When the last email was accepted (read from the table, so it survives restarts)."""
    r = store.conn.execute("SELECT MAX(sent_ts) FROM outbox WHERE status = 'sent'").fetchone()
    return r[0]


def new_message_id(batch_id: int, now: float) -> str:
    """A globally unique, stable Message-ID for a batch."""
    host = socket.gethostname() or "homesec"
    return f"<homesec.{int(now)}.{batch_id}.{secrets.token_hex(6)}@{host}>"


def form_batch(store: Store, now: float | None = None,
               limit: int = MAX_EVENTS_PER_MESSAGE) -> Batch | None:
    """Put the oldest waiting alerts (up to `limit`) into one new batch with its Message-ID.
    Rows whose event was deleted are marked failed with a reason instead (kept, not dropped)."""
    now = time.time() if now is None else now
    with store.transaction() as c:
        c.execute("UPDATE outbox SET status = 'failed', last_error = ? WHERE status = 'pending'"
                  " AND batch IS NULL AND event_id IS NULL AND kind = 'motion'", (DELETED_EVENT,))
        first = c.execute("SELECT id, kind FROM outbox WHERE status = 'pending' AND batch IS NULL"
                          " ORDER BY id LIMIT 1").fetchone()
        # A health/tamper alert is an email of its own; motion alerts are folded together.
        ids = [first["id"]] if first is not None and first["kind"] != "motion" else [
            r[0] for r in c.execute(
                "SELECT id FROM outbox WHERE status = 'pending' AND batch IS NULL"
                " AND kind = 'motion' ORDER BY id LIMIT ?", (limit,))]
        if not ids:
            return None
        mid = new_message_id(ids[0], now)
        c.executemany("UPDATE outbox SET batch = ?, message_id = ? WHERE id = ?",
                      [(ids[0], mid, i) for i in ids])
    return _batch(store, ids[0])


def mark_sent(store: Store, batch: Batch, now: float | None = None, note: str | None = None) -> None:
    """The server accepted the message: every row of the batch is sent (`note`: partial refusals)."""
    mark_sent_batch(store, batch.id, now, note)


def mark_sent_batch(store: Store, batch_id: int, now: float | None = None,
                    note: str | None = None) -> None:
    """`mark_sent` by batch id (what the mailer remembers of a delivered batch)."""
    now = time.time() if now is None else now
    with store.transaction() as c:
        c.execute("UPDATE outbox SET status = 'sent', sent_ts = ?, attempts = attempts + 1, "
                  "last_error = ? WHERE batch = ? AND status = 'pending'", (now, note, batch_id))


def mark_retry(store: Store, batch: Batch, error: str, next_ts: float) -> None:
    """A temporary failure: count the attempt, keep the error, try again at `next_ts`."""
    with store.transaction() as c:
        c.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_ts = ? "
                  "WHERE batch = ? AND status = 'pending'", (error, next_ts, batch.id))


def mark_failed(store: Store, batch: Batch, error: str) -> None:
    """A permanent failure (wrong password, refused recipient): kept with its error, retried after
    the config or password changes (`requeue_failed`)."""
    with store.transaction() as c:
        c.execute("UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = ? "
                  "WHERE batch = ? AND status = 'pending'", (error, batch.id))


def requeue_failed(store: Store, now: float | None = None) -> int:
    """Failed alerts (of events that still exist) become pending again, in their old batches so
    they keep their Message-ID. Returns how many."""
    now = time.time() if now is None else now
    with store.transaction() as c:
        cur = c.execute("UPDATE outbox SET status = 'pending', next_attempt_ts = ? "
                        "WHERE status = 'failed' AND (event_id IS NOT NULL OR kind != 'motion')",
                        (now,))
    return cur.rowcount


def summary(store: Store) -> dict[str, Any]:
    """Counts per status and the newest error, for status displays and `mail-test`."""
    counts = {r[0]: r[1] for r in store.conn.execute(
        "SELECT status, COUNT(*) FROM outbox GROUP BY status")}
    err = store.conn.execute(
        "SELECT last_error FROM outbox WHERE status != 'sent' AND last_error IS NOT NULL "
        "ORDER BY id DESC LIMIT 1").fetchone()
    return {"pending": counts.get("pending", 0), "failed": counts.get("failed", 0),
            "sent": counts.get("sent", 0), "last_error": err[0] if err else None}
