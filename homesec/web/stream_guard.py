"""A live stream ends when the login or token that opened it ends.

Why: the credential is checked once, when a stream starts, and a stream lasts up to
`web.live_max_s` (15 min by default). Without this, a stolen cookie that was logged out ("log out
everywhere", a new password) or a token that was revoked kept watching the camera for the rest
of that time: the session had not really ended. So the stream asks the database every
CHECK_EVERY_S whether its session record (or token) still exists and has not expired, and stops
within a few seconds when it is gone.

Clients let in by `web.trust_networks` or `auth = false` have no credential that could end; their
streams run their course as before.

The check opens its own read-only SQLite connection: the generator runs after the request (and
its connection) has ended, in the stream's own thread.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CHECK_EVERY_S = 2.0


class CredentialCheck:
    """Callable: True while the credential behind a stream is still valid. `sql` selects a row
    while it is, given the credential's id and the time now (`:id`, `:now`)."""

    def __init__(self, db_path: Path, sql: str, key: int) -> None:
        self.db_path = db_path
        self.sql = sql
        self.key = key
        self._conn: sqlite3.Connection | None = None
        self._checked = time.monotonic()

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self._checked < CHECK_EVERY_S:
            return True
        self._checked = now
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(f"{self.db_path.resolve().as_uri()}?mode=ro", uri=True,
                                             timeout=1.0, check_same_thread=False)
            row = self._conn.execute(self.sql, {"id": self.key, "now": time.time()}).fetchone()
        except sqlite3.Error as exc:
            # A locked or unreadable database says nothing about the credential: keep going
            # (the next check asks again); revocation needs a write, which the lock delays.
            log.debug("stream credential check skipped: %s", exc)
            return True
        return row is not None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def for_session(db_path: Path, session_id: int) -> CredentialCheck:
    """Valid while the login session record exists and has not expired."""
    return CredentialCheck(db_path, "SELECT 1 FROM web_sessions WHERE id = :id AND expires_ts > :now",
                           session_id)


def for_token(db_path: Path, token_id: int) -> CredentialCheck:
    """Valid while the API token exists (tokens do not expire)."""
    return CredentialCheck(db_path, "SELECT 1 FROM api_tokens WHERE id = :id",
                           token_id)


def for_identity(ident: Any, db_path: Path) -> CredentialCheck | None:
    """The check for a request's identity (homesec.web.auth.Identity); None for clients let
    in without a credential (trusted network, auth off)."""
    if ident.kind == "session" and ident.login is not None:
        return for_session(db_path, ident.login.id)
    if ident.kind == "token" and ident.token_id is not None:
        return for_token(db_path, ident.token_id)
    return None
