"""Secret key, CSRF tokens and security headers.

Why a secret key file: the session cookie is signed with it; it must survive restarts (or every
phone is logged out) and be the same in every gunicorn worker, but it is not configuration and must
never sit in the config file. It is generated once, written 0600 to the state dir.

Why our own CSRF token: the rule is small. The session holds a random token; every form carries
it in a hidden field and every browser fetch() in an X-CSRF-Token header; a state-changing request
authenticated by the cookie (or by nothing: auth off, trusted network) without the matching token is
refused. Bearer-token requests are exempt: a browser never adds that header by itself.

Why a device cookie: the login limit counts failures per address, plus a global cap that slows
password checks from unknown devices (accounts.LOGIN_GLOBAL_MAX_FAILURES). A browser that once
logged in with the current password carries a signed `homesec_device` cookie and is never slowed
by the global cap, so guessing from elsewhere does not lock the owner out.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from pathlib import Path

from flask import Flask, Response, current_app, request, session
from itsdangerous import BadSignature, URLSafeTimedSerializer

from homesec.system.owner_only import check_private_dir, create_owner_only, read_owner_only

SECRET_NAME = "web-secret.key"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEVICE_COOKIE = "homesec_device"
DEVICE_DAYS = 365

# No inline scripts or styles anywhere: all JS and CSS are files under /static.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'self'; "
       "form-action 'self'; frame-ancestors 'none'")


def load_secret_key(state_dir: Path) -> bytes:
    """The key from state_dir/web-secret.key, created (0600) on first use. Safe when several
    workers start at once: the file appears complete under its final name or not at all. A key
    file another user could read or have planted (a symlink, someone else's file, mode not 0600)
    is refused (homesec.system.owner_only)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    check_private_dir(state_dir)
    path = state_dir / SECRET_NAME
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    tmp = state_dir / f".{SECRET_NAME}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    create_owner_only(tmp, secrets.token_hex(32).encode())
    try:
        os.link(tmp, path)  # fails if another worker won the race: then use its key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    """The stored key; a truncated file is an error, not a silently weak key."""
    key = read_owner_only(path).strip()
    if len(key) < 32:
        raise RuntimeError(f"{path}: secret key too short; delete the file to make a new one")
    return key


def client_addr() -> str:
    """The client's address: the one place that decides it (rate limits, session records,
    trusted networks). Today the peer address, no proxy header trusted: gunicorn faces the LAN.
    Behind nginx, this is where X-Forwarded-For from nginx alone is to be believed."""
    return request.remote_addr or "unknown"


def rate_limit_key(addr: str) -> str:
    """Whom the per-address login limit counts: one address, IPv4-mapped IPv6 as IPv4, no zone.
    Not a whole IPv6 /64: in a home that is every device (and every link-local address is in
    fe80::/64), so one guest would lock out the family. Address rotation is held back by the
    global cap instead (accounts.login_slowed_for)."""
    try:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return addr[:64]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _device_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or b"", salt="homesec-device")


def remember_device(resp: Response, fingerprint: str) -> None:
    """After a successful login: mark this browser as one that knows the current password."""
    resp.set_cookie(DEVICE_COOKIE, _device_serializer().dumps({"fp": fingerprint}),
                    max_age=DEVICE_DAYS * 86400, httponly=True, samesite="Lax",
                    secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")))


def known_device(fingerprint: str | None) -> bool:
    """Whether the request carries a device cookie from a login with the current password."""
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw or fingerprint is None or len(raw) > 400:
        return False
    try:
        data = _device_serializer().loads(raw, max_age=DEVICE_DAYS * 86400)
    except BadSignature:
        return False
    return isinstance(data, dict) and data.get("fp") == fingerprint


def csrf_token() -> str:
    """The session's CSRF token (created on first use)."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_ok() -> bool:
    """True when the request carries the session's CSRF token (header or form field)."""
    expected = session.get("csrf")
    if not isinstance(expected, str):
        return False
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.mimetype in ("application/x-www-form-urlencoded",
                                              "multipart/form-data"):
        given = request.form.get(CSRF_FIELD)
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _headers(resp: Response) -> Response:
    """Security headers on every response; nothing but static files may be cached."""
    h = resp.headers
    h.setdefault("Content-Security-Policy", CSP)
    h["X-Frame-Options"] = "DENY"
    h["X-Content-Type-Options"] = "nosniff"
    h["Referrer-Policy"] = "same-origin"
    if request.endpoint != "static":
        h["Cache-Control"] = "no-store"
        h.pop("Expires", None)
        h.pop("ETag", None)
        h.pop("Last-Modified", None)
    return resp


def init_app(app: Flask) -> None:
    """Register the header hook and make csrf_token() available in templates."""
    app.after_request(_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
