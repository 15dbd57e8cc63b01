"""Login sessions kept on the server (table web_sessions), so that logging out really ends one.

Why not just the signed cookie: a signed cookie is valid wherever it is copied to until it
expires; clearing it in one browser does nothing to a copy. Here the cookie carries only a
random secret (256 bits); the request is logged in while a row with that secret's SHA-256 exists
and has not expired. Logout deletes the row, "log out everywhere" and a new password delete all
rows (accounts.set_password), so every copy of the cookie stops working at once.

The lifetime is absolute: `expires_ts` is fixed at login (created + web.session_days) and never
moves, however often the session is used. `last_seen_ts` is written at most once a minute and
only as a best effort: a read-only database must not turn page views into errors.

No Flask here: `homesec passwd` (CLI) revokes sessions through the same functions.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sqlite3
import time
from dataclasses import dataclass

from homesec.storage.store import Store, row_id_ok

log = logging.getLogger(__name__)

# How recent the password entry of a session must be for tokens to be created or revoked.
REAUTH_S = 600.0
# last_seen_ts is refreshed at most this often (a polling page must not write on every request).
SEEN_EVERY_S = 60.0
# How long that best-effort write waits for another writer (the store's own timeout is 10 s,
# which a page view must not sit through while the daemon or a stuck writer holds the lock).
SEEN_WAIT_MS = 250
USER_AGENT_MAX = 200
CLIENT_MAX = 64


@dataclass(frozen=True)
class SessionInfo:
    """One stored session, without its secret."""

    id: int
    created_ts: float
    expires_ts: float
    last_seen_ts: float
    client: str
    user_agent: str

    def fresh(self, now: float | None = None) -> bool:
        """Whether the password was entered within REAUTH_S (every login makes a new session,
        so the session's age is the age of the password entry)."""
        now = time.time() if now is None else now
        return now - self.created_ts < REAUTH_S


def _hash(secret: str) -> str:
    """What is stored for a session secret (hex SHA-256)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _info(r: sqlite3.Row) -> SessionInfo:
    return SessionInfo(r["id"], r["created_ts"], r["expires_ts"], r["last_seen_ts"],
                       r["client"], r["user_agent"])


def _printable(text: str, limit: int) -> str:
    """A header value cut to `limit` characters, control characters dropped (it is shown in
    the UI and must not carry line breaks into logs)."""
    return "".join(ch for ch in text[:limit] if ch.isprintable())


def create(store: Store, days: int, client: str, user_agent: str,
           now: float | None = None) -> tuple[SessionInfo, str]:
    """A new session valid for `days` from now; returns it and the secret for the cookie.
    Expired rows are swept in the same transaction, so the table never grows without bound."""
    with store.transaction() as c:
        return insert(c, days, client, user_agent, now)


def insert(c: sqlite3.Connection, days: int, client: str, user_agent: str,
           now: float | None = None) -> tuple[SessionInfo, str]:
    """create() inside the caller's transaction (a password change ends every session and
    starts this browser's new one in one commit)."""
    now = time.time() if now is None else now
    secret = secrets.token_urlsafe(32)
    client, user_agent = _printable(client, CLIENT_MAX), _printable(user_agent, USER_AGENT_MAX)
    expires = now + days * 86400.0
    c.execute("DELETE FROM web_sessions WHERE expires_ts <= ?", (now,))
    cur = c.execute(
        "INSERT INTO web_sessions (secret_hash, created_ts, expires_ts, last_seen_ts, client,"
        " user_agent) VALUES (?, ?, ?, ?, ?, ?)",
        (_hash(secret), now, expires, now, client, user_agent))
    return SessionInfo(int(cur.lastrowid or 0), now, expires, now, client, user_agent), secret


def lookup(store: Store, secret: str, now: float | None = None) -> SessionInfo | None:
    """The live session for a cookie's secret, or None (unknown, revoked or expired). Marks it
    seen (best effort, at most once a minute)."""
    if not isinstance(secret, str) or not 20 <= len(secret) <= 100:
        return None
    now = time.time() if now is None else now
    r = store.conn.execute("SELECT * FROM web_sessions WHERE secret_hash = ?",
                           (_hash(secret),)).fetchone()
    if r is None or r["expires_ts"] <= now:
        return None
    info = _info(r)
    if now - info.last_seen_ts > SEEN_EVERY_S:
        _mark_seen(store, info.id, now)
    return info


def _mark_seen(store: Store, session_id: int, now: float) -> None:
    """Record the session's last use if the database lets us write within SEEN_WAIT_MS."""
    conn = store.conn
    timeout = int(conn.execute("PRAGMA busy_timeout").fetchone()[0])
    conn.execute(f"PRAGMA busy_timeout={SEEN_WAIT_MS}")
    try:
        with store.transaction() as c:
            c.execute("UPDATE web_sessions SET last_seen_ts = ? WHERE id = ?", (now, session_id))
    except sqlite3.Error as exc:  # read-only or locked: being logged in must not need a write
        log.debug("session %d: last-seen not recorded: %s", session_id, exc)
    finally:
        conn.execute(f"PRAGMA busy_timeout={timeout}")


def list_active(store: Store, now: float | None = None) -> list[SessionInfo]:
    """Sessions that have not expired, most recently seen first."""
    now = time.time() if now is None else now
    rows = store.conn.execute(
        "SELECT * FROM web_sessions WHERE expires_ts > ? ORDER BY last_seen_ts DESC, id DESC",
        (now,)).fetchall()
    return [_info(r) for r in rows]


def revoke(store: Store, session_id: int) -> bool:
    """End one session; False when there was none with that id."""
    if not row_id_ok(session_id):
        return False
    with store.transaction() as c:
        cur = c.execute("DELETE FROM web_sessions WHERE id = ?", (session_id,))
    return cur.rowcount > 0


def revoke_all(store: Store) -> int:
    """End every session ("log out everywhere"); returns how many there were."""
    with store.transaction() as c:
        cur = c.execute("DELETE FROM web_sessions")
    return cur.rowcount
