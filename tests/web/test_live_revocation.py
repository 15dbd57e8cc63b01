"""A live stream ends when the credential that opened it ends (real daemon on the demo camera,
real gunicorn): a revoked token, or a session ended by "log out everywhere" or a new password,
stops watching within seconds, not after web.live_max_s (15 min).
"""

from __future__ import annotations

import re
import socket
import time
import urllib.parse
import urllib.request
from urllib.parse import urlsplit

from homesec.storage.store import Store
from homesec.web import accounts, sessions
from tests.web.conftest import PASSWORD, System

BOUNDARY = b"--homesecframe"


def open_stream(system: System, header: str) -> socket.socket:
    """A live-view request with `header` (Authorization or Cookie); returns the socket once the
    first frame has arrived."""
    u = urlsplit(system.url)
    s = socket.create_connection((u.hostname, u.port), timeout=10)
    s.sendall(f"GET /api/v1/live.mjpg HTTP/1.1\r\nHost: {u.netloc}\r\n{header}\r\n"
              "Connection: close\r\n\r\n".encode())
    got = b""
    deadline = time.monotonic() + 20
    while BOUNDARY not in got:
        assert time.monotonic() < deadline, f"no frame: {got[:300]!r}"
        chunk = s.recv(65536)
        assert chunk, f"stream closed before a frame: {got[:300]!r}"
        got += chunk
    assert got.startswith(b"HTTP/1.1 200"), got[:200]
    return s


def ends_within(s: socket.socket, seconds: float) -> bool:
    """Whether the server ends the stream (EOF) within `seconds` (frames keep coming until)."""
    deadline = time.monotonic() + seconds
    s.settimeout(1.0)
    while time.monotonic() < deadline:
        try:
            if not s.recv(65536):
                return True
        except TimeoutError:
            pass
    return False


def login_cookie(system: System) -> str:
    """Log in with the password over HTTP; the session cookie as a Cookie header."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    page = opener.open(f"{system.url}/login", timeout=10).read().decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    form = urllib.parse.urlencode({"csrf_token": csrf.group(1), "password": PASSWORD}).encode()
    opener.open(f"{system.url}/login", data=form, timeout=10).read()
    jar = opener.handlers[[type(h).__name__ for h in opener.handlers].index(
        "HTTPCookieProcessor")].cookiejar  # type: ignore[attr-defined]
    cookie = next(c for c in jar if c.name == "homesec_session")
    return f"Cookie: homesec_session={cookie.value}"


def test_revoked_token_stops_its_live_stream(system: System) -> None:
    store = Store(system.cfg.paths.db_path)
    try:
        info, secret = accounts.create_token(store, "live viewer")
        keep = open_stream(system, f"Authorization: Bearer {system.token}")
        gone = open_stream(system, f"Authorization: Bearer {secret}")
        accounts.revoke_token(store, info.id)  # as `homesec token revoke` does
        assert ends_within(gone, 15), "the revoked token kept watching"
        assert not ends_within(keep, 3), "a valid token's stream ended too"
        keep.close()
        gone.close()
    finally:
        store.close()


def test_ended_session_stops_its_live_stream(system: System) -> None:
    cookie = login_cookie(system)
    s = open_stream(system, cookie)
    store = Store(system.cfg.paths.db_path)
    try:
        mine = max(sessions.list_active(store), key=lambda r: r.id)  # the login just made
        assert sessions.revoke(store, mine.id)
    finally:
        store.close()
    assert ends_within(s, 15), "the logged-out session kept watching"
    s.close()
