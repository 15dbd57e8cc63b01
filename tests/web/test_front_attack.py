"""What a hostile client on the home network tries against the nginx front as deploy.sh installs
it (a real nginx on a loopback port, a real gunicorn behind it on its Unix socket), beyond what
test_front_nginx.py covers:

- nginx's own answers (its error pages, and media files, whose X-Accel-Redirect answer loses the
  app's headers) carry the same security headers as the app's pages: no framing, no sniffing;
- scheme headers that gunicorn would read (X-Forwarded-Ssl, X-Forwarded-Protocol) cannot turn an
  API call into gunicorn's own HTML 400;
- a Range the file cannot satisfy is a JSON 416 on /api/ paths, like nginx's other errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from homesec.config import load
from tests.web.conftest import free_port
from tests.web.front_support import Front, nginx_available, write_front_config
from tests.web.test_front_nginx import Client, seed

pytestmark = pytest.mark.skipif(not nginx_available(), reason="needs nginx (apt-get install nginx)")

SECURITY = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin"}


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Front, str, int, Path]]:
    """The default front (plain HTTP) with a password, a token and one event with a snapshot."""
    root = tmp_path_factory.mktemp("attack")
    cfg = load(write_front_config(root, free_port()))
    token, eid, snap = seed(cfg)
    f = Front(root, root / "config.toml", cfg).start()
    yield f, token, eid, snap
    f.stop()


def assert_protected(headers: object, what: str) -> None:
    """The browser protections every answer needs, each header once."""
    for name, value in SECURITY.items():
        got = headers.get_all(name) or []  # type: ignore[attr-defined]
        assert got == [value], (what, name, got)
    csp = headers.get_all("Content-Security-Policy") or []  # type: ignore[attr-defined]
    assert len(csp) == 1 and "frame-ancestors 'none'" in csp[0], (what, csp)


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("GET", "/_homesec_media/x.jpg", None, 404),  # the internal location, asked directly
    ("GET", "/x/" + "a" * 5000, None, 414),
    ("GET", "/api/v1/" + "a" * 5000, None, 414),
    ("POST", "/login", "x" * 100_000, 413),
])
def test_nginx_error_pages_carry_security_headers(front: tuple[Front, str, int, Path], method: str,
                                                  path: str, body: str | None, status: int) -> None:
    f, _, _, _ = front
    got, headers, _ = Client(f).request(method, path, body=body, auth=False)
    assert got == status
    assert_protected(headers, path[:40])


def test_media_sent_by_nginx_carries_security_headers(front: tuple[Front, str, int, Path]) -> None:
    """A snapshot opened in a tab of its own, or framed by another site: the same headers as
    the page that links it, though nginx (not the app) sends its bytes."""
    f, token, eid, snap = front
    status, headers, body = Client(f, token).request("GET", f"/api/v1/events/{eid}/snapshot.jpg")
    assert status == 200 and body == snap.read_bytes()
    assert_protected(headers, "snapshot")
    # The app's own pages keep exactly one copy of each header (nginx adds none to them).
    status, headers, _ = Client(f).request("GET", "/login", auth=False)
    assert status == 200
    assert_protected(headers, "login page")


@pytest.mark.parametrize("header", ["X-Forwarded-Ssl: on", "X-Forwarded-Protocol: ssl",
                                    "X-Forwarded-Proto: https"])
def test_scheme_headers_from_a_client_do_not_reach_gunicorn(front: tuple[Front, str, int, Path],
                                                            header: str) -> None:
    """gunicorn reads several scheme headers; one from the client that contradicts nginx's
    X-Forwarded-Proto made gunicorn answer its own HTML 400 "Contradictory scheme headers", on
    API paths too, and arming failed."""
    f, token, _, _ = front
    name, _, value = header.partition(": ")
    status, headers, body = Client(f, token).request("POST", "/api/v1/arm", body={"delay_s": 30},
                                                     headers={name: value})
    assert status == 200, body[:300]
    assert headers["Content-Type"] == "application/json"
    status, _, body = Client(f, token).request("POST", "/api/v1/disarm", body={})
    assert status == 200 and json.loads(body)["state"] == "disarmed", body


@pytest.mark.parametrize("rng", ["bytes=999999999-", "bytes=-0", "bytes=5-1", "bytes=abc"])
def test_unsatisfiable_range_is_json_on_api_paths(front: tuple[Front, str, int, Path],
                                                  rng: str) -> None:
    f, token, eid, snap = front
    status, headers, body = Client(f, token).request(
        "GET", f"/api/v1/events/{eid}/snapshot.jpg", headers={"Range": rng})
    if status == 200:  # a server may ignore a Range it cannot read (RFC 9110): the whole file
        assert body == snap.read_bytes()
        return
    assert status == 416, (rng, status)
    assert headers["Content-Type"] == "application/json", body[:200]
    assert json.loads(body)["status"] == 416
    assert snap.read_bytes()[:50] not in body
    assert_protected(headers, rng)


def _login(f: Front, password: str, source: str, headers: dict[str, str] | None = None) -> int:
    """One password login through nginx from the loopback address `source` (fresh form and
    cookie each time, as a guessing script does); the answer's status."""
    import http.client
    import re
    import urllib.parse

    def conn() -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", f.cfg.web.port, timeout=15,
                                          source_address=(source, 0))

    c = conn()
    try:
        c.request("GET", "/login")
        r = c.getresponse()
        page = r.read().decode()
        cookie = (r.getheader("Set-Cookie") or "").split(";")[0]
    finally:
        c.close()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf, page[:300]
    form = urllib.parse.urlencode({"csrf_token": csrf.group(1), "password": password})
    c = conn()
    try:
        c.request("POST", "/login", body=form, headers={
            "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded", **(headers or {})})
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def test_forwarded_for_neither_dodges_nor_aims_the_login_limit(tmp_path: Path) -> None:
    """A guesser on 127.0.0.2 that writes a new X-Forwarded-For (or X-Real-IP) into every
    request is still counted as 127.0.0.2 and locked out after 5 failures; naming the owner's
    address (127.0.0.1) in the header does not lock the owner out."""
    from tests.web.conftest import PASSWORD

    cfg = load(write_front_config(tmp_path, free_port()))
    seed(cfg)
    f = Front(tmp_path, tmp_path / "config.toml", cfg).start()
    try:
        spoofs = [{"X-Forwarded-For": "127.0.0.1"}, {"X-Forwarded-For": "10.0.0.7, 127.0.0.1"},
                  {"X-Real-IP": "127.0.0.1"}, {"X-Forwarded-For": "192.168.1.20"},
                  {"Forwarded": "for=127.0.0.1"}]
        for headers in spoofs:
            assert _login(f, "wrong password", "127.0.0.2", headers) == 401
        for headers in [*spoofs, {"X-Forwarded-For": "10.99.0.1"}]:
            assert _login(f, PASSWORD, "127.0.0.2", headers) == 429, headers
        assert _login(f, PASSWORD, "127.0.0.1") == 302  # the owner's address was never counted
    finally:
        f.stop()


def test_a_token_in_the_query_string_is_refused_and_never_logged(
        front: tuple[Front, str, int, Path]) -> None:
    """A script that puts its token in the URL (?token=, ?access_token=) is refused, and the
    token is written neither to nginx's access log nor to gunicorn's."""
    import time

    f, token, _, _ = front
    for query in (f"token={token}", f"access_token={token}", f"auth={token}&next=/x"):
        status, _, body = Client(f).request("GET", f"/api/v1/status?{query}", auth=False)
        assert status == 401, body
    access = f.root / "nginx-access.log"
    deadline = time.monotonic() + 10
    while "/api/v1/status" not in (access.read_text() if access.exists() else ""):
        assert time.monotonic() < deadline, "nginx logged no request"
        time.sleep(0.05)
    for log in (access, f.root / "gunicorn.log"):
        assert token not in log.read_text(), log.name


def test_https_redirect_never_points_at_a_host_the_client_named(tmp_path: Path) -> None:
    """Plain HTTP to the HTTPS port is redirected; with a Host header that is no name of this
    appliance, the redirect goes to the address the request came in on, not to that host."""
    import http.client

    from tests.web.test_front_nginx import make_cert

    cert, key = make_cert(tmp_path)
    cfg = load(write_front_config(tmp_path, free_port(), tls_cert=cert, tls_key=key))
    f = Front(tmp_path, tmp_path / "config.toml", cfg).start()
    port = cfg.web.port
    try:
        for host, expected in [("evil.example", "127.0.0.1"), ("evil.example.:80", "127.0.0.1"),
                               ("homesec.local", "homesec.local"), ("127.0.0.1", "127.0.0.1"),
                               ("localhost", "localhost"), ("x.local.evil.example", "127.0.0.1")]:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                c.request("GET", "/login?next=/", headers={"Host": host})
                r = c.getresponse()
                r.read()
            finally:
                c.close()
            assert r.status == 301, (host, r.status)
            assert r.headers["Location"] == f"https://{expected}:{port}/login?next=/", host
    finally:
        f.stop()
