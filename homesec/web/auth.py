"""Who is asking: login and logout pages, and the check in front of every request.

Order of the check (before every request, except static files):
1. An `Authorization: Bearer` header must hold a valid token (scripts, phone shortcuts); a bad one
   is refused even if a cookie is present. Token requests need no CSRF token.
2. `web.auth = false` lets everybody in (CSRF still applies to browsers) who asks for this
   appliance by an IP address or a name of its own (no DNS rebinding, see _names_this_appliance).
3. A session cookie from a login with the current password.
4. A client address inside `web.trust_networks` (explicit opt-in only), asking for this
   appliance by an IP address or a name of its own (no DNS rebinding, see _names_this_appliance).
5. Otherwise: 401 JSON for the API, a redirect to the login page for pages.
Then every POST/DELETE not made with a token must carry the session's CSRF token.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from homesec.web import accounts
from homesec.web.db import cfg, get_store
from homesec.web.errors import json_error, wants_json
from homesec.web.security import UNSAFE_METHODS, csrf_ok, csrf_token

bp = Blueprint("auth", __name__)

PUBLIC_ENDPOINTS = frozenset({"static", "auth.login"})
# How long a login waits for the password check of another request in the same process.
LOGIN_WAIT_S = 10.0


@dataclass(frozen=True)
class Identity:
    """The authenticated party of a request; `label` goes into the arm log."""

    kind: str  # "token" | "session" | "trusted" | "open"
    label: str
    csrf_exempt: bool = False


def client_addr() -> str:
    """The peer address (no proxy headers trusted: gunicorn faces the LAN directly)."""
    return request.remote_addr or "unknown"


def rate_limit_key(addr: str) -> str:
    """Whom the login rate limit counts: an IPv4 address, or a whole IPv6 /64. One device can use
    any address of its /64 (SLAAC privacy addresses), so counting single IPv6 addresses would
    give a guest's phone an unlimited number of guesses."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return addr
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


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
        return Identity("token", f"token:{info.name}", csrf_exempt=True)
    if not cfg().web.auth and _names_this_appliance():
        return Identity("open", f"web {client_addr()} (auth off)")
    if session.get("user") == accounts.OWNER:
        fp = accounts.password_fingerprint(get_store())
        if fp is not None and session.get("pwfp") == fp:
            return Identity("session", f"{accounts.OWNER} ({client_addr()})")
        session.pop("user", None)  # the password changed since this login
    if _trusted(client_addr()) and _names_this_appliance():
        return Identity("trusted", f"trusted {client_addr()}")
    return None


@bp.before_app_request
def authenticate() -> Any:
    """Resolve the identity, refuse anonymous requests, enforce CSRF on unsafe methods."""
    if request.endpoint == "static":
        return None
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


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths after login (no open redirect)."""
    if not target:
        return url_for("pages.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") \
            or "\\" in target:
        return url_for("pages.home")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The login form (owner password). Rate-limited per client address."""
    from homesec.web import audit_hooks

    store = get_store()
    has_password = accounts.password_hash(store) is not None
    next_url = _safe_next(request.values.get("next"))
    if g.get("identity") is not None and request.method == "GET":
        return redirect(next_url)
    error = None
    status = 200
    if request.method == "POST":
        # Password checks run one at a time per worker process: parallel guesses would otherwise
        # all pass the rate-limit check before any failure is recorded, and each argon2id hash
        # holds tens of MiB, so a burst of logins could push the service past its MemoryMax.
        lock = current_app.extensions["homesec_login_lock"]
        if not lock.acquire(timeout=LOGIN_WAIT_S):
            resp = Response(render_template("login.html", error="Busy. Try again in a moment.",
                                            has_password=has_password, next=next_url), status=503)
            resp.headers["Retry-After"] = "5"
            return resp
        try:
            client = rate_limit_key(client_addr())
            wait = accounts.login_blocked_for(store, client)
            if wait > 0:
                error = f"Too many failed attempts. Try again in {int(wait // 60) + 1} minutes."
                resp = Response(render_template("login.html", error=error,
                                                has_password=has_password, next=next_url),
                                status=429)
                resp.headers["Retry-After"] = str(int(wait))
                return resp
            password = request.form.get("password", "")
            if has_password and accounts.verify_password(store, password):
                accounts.clear_login_failures(store, client)
                session.clear()
                session.permanent = True
                session["user"] = accounts.OWNER
                session["pwfp"] = accounts.password_fingerprint(store)
                csrf_token()  # a fresh CSRF token for the new session
                audit_hooks.login_ok()
                return redirect(next_url)
            accounts.record_login_failure(store, client)
            audit_hooks.login_failed()
        finally:
            lock.release()
        error = "Wrong password." if has_password else "No password is set yet."
        status = 401
    return Response(render_template("login.html", error=error, has_password=has_password,
                                    next=next_url), status=status)


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    """End the session (POST with the CSRF token, so another site cannot log you out)."""
    from homesec.web import audit_hooks

    audit_hooks.logout()
    session.clear()
    return redirect(url_for("auth.login"))
