"""The audit log: who did what to the alarm and the accounts, when, from where.

Every arm, disarm, snooze, schedule action, login, burst of failed logins, token creation and
revocation and password change is one row (time, action, who, client address, detail). It absorbs
the old arm log (still readable as the `arm_log` view). Why bounded: a looping script once wrote
thousands of arm lines a minute; lines are written only when something changed, arm/disarm
requests are rate-limited per client (web/arm_limit.py), and rows older than `events.keep_days`
are pruned with the events.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from homesec.storage.store import Store

ACTIONS = ("arm", "disarm", "snooze", "unsnooze", "schedule", "login", "login_failures",
           "logout", "token_create", "token_revoke", "password_change")


@dataclass
class AuditRow:
    """One line of the log."""

    id: int
    ts: float
    action: str
    who: str
    client: str | None
    detail: str | None
    state: str | None

    def to_json(self) -> dict[str, Any]:
        """For GET /api/v1/audit."""
        return {"id": self.id, "ts": self.ts, "action": self.action, "who": self.who,
                "client": self.client, "detail": self.detail, "state": self.state}


def record(conn: sqlite3.Connection, ts: float, action: str, who: str, client: str | None = None,
           detail: str | None = None, state: str | None = None) -> None:
    """Append a line inside the caller's transaction (or as its own statement)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    conn.execute("INSERT INTO audit (ts, action, who, client, detail, state) "
                 "VALUES (?, ?, ?, ?, ?, ?)", (ts, action, who[:200],
                                               client[:100] if client else None,
                                               detail[:500] if detail else None, state))


def log(store: Store, action: str, who: str, client: str | None = None,
        detail: str | None = None, now: float | None = None) -> None:
    """Append a line in its own transaction: the one-line call for logins, tokens, passwords."""
    with store.transaction() as c:
        record(c, time.time() if now is None else now, action, who, client, detail)


def page(store: Store, limit: int = 50, before_id: int | None = None) -> list[AuditRow]:
    """Newest first; `before_id` pages backwards."""
    rows = store.conn.execute(
        "SELECT * FROM audit WHERE (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?",
        (before_id, before_id, limit)).fetchall()
    return [AuditRow(r["id"], r["ts"], r["action"], r["who"], r["client"], r["detail"],
                     r["state"]) for r in rows]


def prune(store: Store, keep_days: float, now: float | None = None) -> int:
    """Delete lines older than `keep_days` (the events' retention); returns how many."""
    now = time.time() if now is None else now
    with store.transaction() as c:
        cur = c.execute("DELETE FROM audit WHERE ts < ?", (now - keep_days * 86400.0,))
        c.execute("DELETE FROM request_hits WHERE ts < ?", (now - 3600.0,))
    return cur.rowcount
