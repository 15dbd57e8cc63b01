"""Who is asking: login and logout pages, and the check in front of every request.

Order of the check (before every request, except static files):
1. An `Authorization: Bearer` header must hold a valid token (scripts, phone shortcuts); a bad one
   is refused even if a cookie is present. Token requests need no CSRF token.
2. A session cookie whose session record exists and has not expired (sessions.py: logout,
   "log out everywhere" and a new password delete records, so a copied cookie dies with them).
3. A client address inside `web.trust_networks` (explicit opt-in only), asking for this
   appliance by an IP address or a name of its own (no DNS rebinding, see _names_this_appliance).
   `web.auth = false` lets everybody in the same way.
4. Otherwise: 401 JSON for the API, a redirect to the login page for pages.
Then every POST/DELETE not made with a token must carry the session's CSRF token.

Creating or revoking API tokens needs more: a session whose password was entered within the last
ten minutes (require_fresh_login); a client let in by its network or by `auth = false` has
entered no password at all.
"""

from __future__ import annotations

import ipaddress
import socket
import sqlite3
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.exceptions import BadHost

from homesec.storage import audit
from homesec.storage.store import Store
from homesec.web import accounts, sessions
from homesec.web.db import cfg, get_store
from homesec.web.errors import json_error, wants_json
from homesec.web.security import (
    UNSAFE_METHODS,
    client_addr,
    csrf_ok,
    csrf_token,
    known_device,
    rate_limit_key,
    remember_device,
)

bp = Blueprint("auth", __name__)

PUBLIC_ENDPOINTS = frozenset({"static", "auth.login"})
# How long a login waits for the password check of another request in the same process.
LOGIN_WAIT_S = 10.0
# The key in the signed cookie that holds the session record's secret.
SESSION_SECRET_KEY = "sid"
DB_UNWRITABLE = ("The database cannot be written just now (disk full or read-only?), so logins "
                 "and logouts cannot be recorded. Try again in a minute.")


@dataclass(frozen=True)
class Identity:
    """The authenticated party of a request; `label` goes into the arm log."""

    kind: str  # "token" | "session" | "trusted" | "open"
    label: str
    csrf_exempt: bool = False
    login: sessions.SessionInfo | None = None  # the session record, for kind "session"
    token_id: int | None = None  # the API token's id, for kind "token"


def _trusted(addr: str) -> bool:
    """Whether the address lies in one of web.trust_networks."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # gunicorn bound to '::' sees IPv4 clients as ::ffff:a.b.c.d
    return any(ip in net for net in current_app.extensions["homesec_trusted"])


def _names_this_appliance() -> bool:
    """Whether the Host header names this appliance: an IP address, localhost, an mDNS `.local`
    name, this machine's host name or the host of web.base_url.

    Why: a trusted network (or `auth = false`) lets a client in by its address, which a web page
    opened on a phone in the LAN can borrow by DNS rebinding (its own name resolving to this box):
    its script would then read the pages (CSRF token included) and disarm. Such requests carry the
    page's host name, never one of these; they get no pass (a login still works)."""
    name = (urlsplit(f"//{request.host}").hostname or "").rstrip(".").lower()
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    if name == "localhost" or name.endswith(".local"):
        return True
    own = socket.gethostname().lower()
    base = (urlsplit(cfg().web.base_url).hostname or "").lower()
    return name in {own, own.split(".")[0], base} - {""}


def current_session() -> sessions.SessionInfo | None:
    """The live session record named by the cookie, or None. A cookie whose record is gone
    (logged out, revoked, expired, new password) is logged out here and now."""
    secret = session.get(SESSION_SECRET_KEY)
    if secret is None:
        return None
    record = sessions.lookup(get_store(), secret)
    if record is None:
        session.pop(SESSION_SECRET_KEY, None)
    return record


def _identify() -> Identity | Response | None:
    """The request's identity, None when anonymous, or an error response for a bad token."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, secret = header.partition(" ")
        info = accounts.check_token(get_store(), secret.strip()) if scheme.lower() == "bearer" \
            else None
        if info is None:
            resp = json_error(401, "invalid or revoked token")
            resp.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
            return resp
        return Identity("token", f"token:{info.name}", csrf_exempt=True, token_id=info.id)
    record = current_session()
    if record is not None:
        return Identity("session", f"{accounts.OWNER} ({client_addr()})", login=record)
    if not cfg().web.auth and _names_this_appliance():
        return Identity("open", f"web {client_addr()} (auth off)")
    if _trusted(client_addr()) and _names_this_appliance():
        return Identity("trusted", f"trusted {client_addr()}")
    return None


@bp.before_app_request
def authenticate() -> Any:
    """Resolve the identity, refuse anonymous requests, enforce CSRF on unsafe methods."""
    if request.endpoint == "static":
        return None
    if isinstance(request.routing_exception, BadHost):
        return None  # an unusable Host header: dispatch answers 400 (nothing to build URLs from)
    ident = _identify()
    if isinstance(ident, Response):
        return ident
    g.identity = ident
    if ident is None and request.endpoint not in PUBLIC_ENDPOINTS:
        if wants_json() or request.method != "GET":
            resp = json_error(401, "login or a bearer token required")
            resp.headers["WWW-Authenticate"] = 'Bearer realm="homesec"'
            return resp
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    if request.method in UNSAFE_METHODS and not (ident and ident.csrf_exempt) and not csrf_ok():
        if wants_json():
            return json_error(400, "CSRF token missing or wrong (reload the page)")
        abort(400, "The form expired or came from another site. Reload the page and try again.")
    return None


def identity() -> Identity:
    """The current request's identity (only called from routes behind the check)."""
    ident: Identity | None = g.get("identity")
    if ident is None:
        abort(401)
    return ident


def require_fresh_login() -> None:
    """Refuse (403) unless the request comes from a login session whose password was entered
    within sessions.REAUTH_S: what creating or revoking a token needs. A stolen cookie alone,
    a trusted network or `auth = false` is not enough to mint a credential that outlives it."""
    ident = identity()
    if ident.kind != "session" or ident.login is None or not ident.login.fresh():
        abort(403, "Creating or revoking a token needs your password: confirm it on the "
                   f"Sessions & tokens page (it counts for {int(sessions.REAUTH_S // 60)} minutes).")


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths after login (no open redirect, no header injection)."""
    if not target or len(target) > 2000:
        return url_for("pages.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") \
            or "\\" in target or not target.isprintable() or not target.isascii():
        return url_for("pages.home")
    return target


def _login_page(error: str | None, has_password: bool, next_url: str, status: int) -> Response:
    """The login form with a message."""
    return Response(render_template("login.html", error=error, has_password=has_password,
                                    next=next_url), status=status)


def _start_session(store: Store, next_url: str) -> Response:
    """After the password was right: a new session record and cookie (a fresh secret and CSRF
    token, so a cookie planted before the login is worth nothing), the old one ended."""
    old = current_session()
    if old is not None:
        sessions.revoke(store, old.id)
    session.clear()
    _, secret = sessions.create(store, cfg().web.session_days, client_addr(),
                                request.headers.get("User-Agent", ""))
    session.permanent = True
    session[SESSION_SECRET_KEY] = secret
    csrf_token()
    resp = redirect(next_url)
    fp = accounts.password_fingerprint(store)
    if fp is not None:
        remember_device(resp, fp)
    return resp


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The login form (owner password). Rate-limited per client address."""
    from homesec.web import audit_hooks

    store = get_store()
    has_password = accounts.password_hash(store) is not None
    next_url = _safe_next(request.values.get("next"))
    ident = g.get("identity")
    if ident is not None and ident.kind == "session" and request.method == "GET":
        return redirect(next_url)
    error = None
    status = 200
    if request.method == "POST":
        # Password checks run one at a time per worker process: parallel guesses would otherwise
        # all pass the rate-limit check before any failure is recorded, and each argon2id hash
        # holds tens of MiB, so a burst of logins could push the service past its MemoryMax.
        lock = current_app.extensions["homesec_login_lock"]
        if not lock.acquire(timeout=LOGIN_WAIT_S):
            resp = _login_page("Busy. Try again in a moment.", has_password, next_url, 503)
            resp.headers["Retry-After"] = "5"
            return resp
        try:
            client = rate_limit_key(client_addr())
            wait = accounts.login_blocked_for(store, client)
            if wait > 0:
                error = f"Too many failed attempts. Try again in {int(wait // 60) + 1} minutes."
            elif not known_device(accounts.password_fingerprint(store)):
                wait = accounts.login_slowed_for(store)
                error = (f"Many failed logins on this appliance: logins from new devices are "
                         f"slowed. Try again in {int(wait) + 1} seconds.")
            if wait > 0:
                resp = _login_page(error, has_password, next_url, 429)
                resp.headers["Retry-After"] = str(max(1, int(wait + 0.999)))
                return resp
            password = request.form.get("password", "")
            # Counted before the check and forgiven on success: a guess whose failure cannot be
            # recorded (database not writable) is never checked, so that is no way around the
            # limit either.
            accounts.record_login_failure(store, client)
            if has_password and accounts.verify_password(store, password):
                accounts.clear_login_failures(store, client)
                audit_hooks.login_ok()
                return _start_session(store, next_url)
            # a failed login: its failure is already recorded above
            audit_hooks.login_failed()
        except sqlite3.OperationalError:
            resp = _login_page(DB_UNWRITABLE, has_password, next_url, 503)
            resp.headers["Retry-After"] = "30"
            return resp
        finally:
            lock.release()
        error = "Wrong password." if has_password else "No password is set yet."
        status = 401
    return _login_page(error, has_password, next_url, status)


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    """End the session (POST with the CSRF token, so another site cannot log you out): its
    record is deleted, so a copy of the cookie is logged out too."""
    record = current_session()
    if record is not None:
        # A database that cannot be written answers 503 (db_errors.py): never "logged out"
        # while a copy of the cookie still works.
        sessions.revoke(get_store(), record.id)
    from homesec.web import audit_hooks

    audit_hooks.logout()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.post("/logout/everywhere")
def logout_everywhere() -> Any:
    """End every login session, on every device (API tokens stay: revoke them one by one)."""
    if identity().kind != "session":
        abort(403, "Only a login session can log out everywhere.")
    sessions.revoke_all(get_store())
    audit.log(get_store(), "logout", identity().label, client_addr(), "everywhere")
    session.clear()
    return redirect(url_for("auth.login"))


@bp.post("/sessions/<int:session_id>/revoke")
def session_revoke(session_id: int) -> Any:
    """End one login session (another phone, a lost laptop)."""
    ident = identity()
    if ident.kind != "session":
        abort(403, "Only a login session can end sessions.")
    if not sessions.revoke(get_store(), session_id):
        abort(404, f"There is no session {session_id}.")
    audit.log(get_store(), "logout", ident.label, client_addr(), f"session {session_id} ended")
    if ident.login is not None and ident.login.id == session_id:
        session.clear()
        return redirect(url_for("auth.login"))
    flash("Session ended.")
    return redirect(url_for("pages.tokens"))
