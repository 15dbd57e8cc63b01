"""Changing the owner's web password from the web UI (the form on the Sessions & tokens page).

The same rules as `homesec passwd` (accounts.check_password_rules, argon2id), and the same
consequences: every login session ends and the recorded login failures are forgotten, in the
transaction that stores the new hash. This browser gets a new session (a new id, secret and CSRF
token) in that same commit, so it stays logged in while every other device, and any copy of this
browser's old cookie, is logged out. API tokens stay valid (the page says so; revoke them there).

Why the login's guards: the form checks the current password, so a stolen session cookie must not
turn it into a guessing machine. It shares the login's rate limit (failures per address, the
global slow-down for unknown devices, counted before the check) and its one-check-at-a-time lock.
Only a login session may change the password: a client let in by its network or `auth = false`,
or a bearer token, gets 403.
"""

from __future__ import annotations

import time
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    request,
    session,
    url_for,
)

from homesec.storage import audit
from homesec.storage.store import Store
from homesec.web import accounts, audit_hooks, sessions
from homesec.web.auth import LOGIN_WAIT_S, SESSION_SECRET_KEY, identity
from homesec.web.db import cfg, get_store
from homesec.web.security import (
    client_addr,
    csrf_token,
    known_device,
    rate_limit_key,
    remember_device,
)

bp = Blueprint("password", __name__)

NOTHING_CHANGED = "Nothing was changed."


@bp.app_context_processor
def _rules() -> dict[str, Any]:
    """The form's length limits come from the same rules the server applies."""
    return {"password_min_len": accounts.MIN_PASSWORD_LEN,
            "password_max_len": accounts.MAX_PASSWORD_LEN}


def _refused(message: str, status: int, retry_after: float | None = None) -> Response:
    """The Sessions & tokens page again, with the form's message and a 4xx (or 503) status."""
    from homesec.web.pages import _tokens_page

    resp = Response(_tokens_page(password_error=message), status=status)
    if retry_after is not None:
        resp.headers["Retry-After"] = str(max(1, int(retry_after + 0.999)))
    return resp


def _wait_s(store: Store) -> tuple[float, str]:
    """Seconds this client must wait before its password is checked (0: now), and why."""
    wait = accounts.login_blocked_for(store, rate_limit_key(client_addr()))
    if wait > 0:
        return wait, (f"Too many wrong passwords from this address. Try again in "
                      f"{int(wait // 60) + 1} minutes.")
    if not known_device(accounts.password_fingerprint(store)):
        wait = accounts.login_slowed_for(store)
        if wait > 0:
            return wait, (f"Many failed logins on this appliance: password checks from new "
                          f"devices are slowed. Try again in {int(wait) + 1} seconds.")
    return 0.0, ""


@bp.post("/password")
def change() -> Any:
    """Check the current password, store the new one, end every other session."""
    ident = identity()
    if ident.kind != "session" or ident.login is None:
        abort(403, "Only a login session can change the password: log in with it first "
                   "(or run `sudo homesec passwd` on the device).")
    current = request.form.get("current_password", "")
    new = request.form.get("new_password", "")
    if new != request.form.get("new_password2", ""):
        return _refused(f"The two new passwords differ. {NOTHING_CHANGED}", 400)
    try:
        accounts.check_password_rules(new)
    except accounts.AccountError as exc:
        return _refused(f"The new password is refused: {exc}. {NOTHING_CHANGED}", 400)
    lock = current_app.extensions["homesec_login_lock"]
    if not lock.acquire(timeout=LOGIN_WAIT_S):
        return _refused(f"Busy. Try again in a moment. {NOTHING_CHANGED}", 503, 5)
    try:
        store = get_store()
        wait, why = _wait_s(store)
        if wait > 0:
            return _refused(f"{why} {NOTHING_CHANGED}", 429, wait)
        # Counted before the check, as at login: a guess whose failure cannot be recorded is
        # never checked. A right password forgets every failure with the old password below.
        accounts.record_login_failure(store, rate_limit_key(client_addr()))
        if not accounts.verify_password(store, current):
            audit_hooks.login_failed()
            return _refused(f"The current password is wrong. {NOTHING_CHANGED}", 401)
        digest = accounts.hash_password(new)
        with store.transaction() as c:
            others = c.execute("SELECT COUNT(*) FROM web_sessions WHERE id != ?",
                               (ident.login.id,)).fetchone()[0]
            accounts.store_password_hash(c, digest)  # ends every session, this one too
            _, secret = sessions.insert(c, cfg().web.session_days, client_addr(),
                                        request.headers.get("User-Agent", ""))
            audit.record(c, time.time(), "password_change", ident.label, client_addr(),
                         f"web UI; {others} other session(s) ended; API tokens kept")
    finally:
        lock.release()
    session.clear()
    session.permanent = True
    session[SESSION_SECRET_KEY] = secret
    csrf_token()
    flash(f"Password changed. {others} other device(s) logged out; this one stays logged in. "
          "API tokens still work: revoke them here if a script should stop.")
    resp = redirect(url_for("pages.tokens"))
    fingerprint = accounts.password_fingerprint(store)
    if fingerprint is not None:
        remember_device(resp, fingerprint)
    return resp
