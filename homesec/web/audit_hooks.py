"""One-line audit calls for the login, logout and token sites (web/auth.py, web/pages.py).

Each writes one line to the audit log (storage/audit.py) with who and the client address. A
failed login is not one line each (a guesser would fill the log): the burst is written once, when
a client's failures in the last LOGIN_BURST_WINDOW_S reach LOGIN_BURST, counted in the
`request_hits` table so every gunicorn worker sees the same count.
"""

from __future__ import annotations

import time

from homesec.storage import audit
from homesec.web.auth import client_addr, identity
from homesec.web.db import get_store

LOGIN_BURST = 5
LOGIN_BURST_WINDOW_S = 600.0


def login_ok(user: str = "owner") -> None:
    """A successful password login."""
    audit.log(get_store(), "login", user, client_addr())


def login_failed() -> None:
    """A failed login: counted; the LOGIN_BURST-th in the window becomes one audit line."""
    store, client, now = get_store(), client_addr(), time.time()
    with store.transaction() as c:
        c.execute("DELETE FROM request_hits WHERE bucket = 'login_fail' AND ts < ?",
                  (now - LOGIN_BURST_WINDOW_S,))
        c.execute("INSERT INTO request_hits (bucket, client, ts) VALUES ('login_fail', ?, ?)",
                  (client, now))
        n = c.execute("SELECT COUNT(*) FROM request_hits WHERE bucket = 'login_fail' AND "
                      "client = ?", (client,)).fetchone()[0]
        if n == LOGIN_BURST:
            audit.record(c, now, "login_failures", "unknown", client,
                         f"{n} failed logins within {LOGIN_BURST_WINDOW_S / 60:.0f} min")


def logout() -> None:
    """The session was ended by its owner."""
    audit.log(get_store(), "logout", identity().label if _has_identity() else "owner",
              client_addr())


def token_created(name: str) -> None:
    """An API token was made."""
    audit.log(get_store(), "token_create", identity().label, client_addr(), f"token '{name}'")


def token_revoked(token_id: int) -> None:
    """An API token was revoked."""
    audit.log(get_store(), "token_revoke", identity().label, client_addr(), f"token {token_id}")


def password_changed() -> None:
    """The owner's password was changed from the web UI."""
    audit.log(get_store(), "password_change", identity().label, client_addr())


def _has_identity() -> bool:
    from flask import g

    return g.get("identity") is not None
