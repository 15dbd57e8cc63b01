"""The nginx front as deploy.sh installs it (issue 11, items 9, 10, 15, 16): a real nginx on a
loopback port with the site homesec.system.nginx generates, in front of a real gunicorn started
with `homesec web --behind-nginx` on its Unix socket.

- 200 slow or idle connections do not stop arm and disarm from answering (how fast they answer
  is measured in benchmarks/slow_clients.py, not here);
- the client address the app sees is the real peer, and an X-Forwarded-For a client writes is
  not believed; without --behind-nginx the app believes no forwarding header at all;
- media files leave through X-Accel-Redirect (gunicorn sends no bytes of them), with ranges,
  after the app checked the login; nginx's internal media location is not reachable directly;
- nginx's own errors (414, 431, 413, 403, 502) are JSON on /api/ paths, HTML elsewhere;
- HTTPS with web.tls_cert/web.tls_key: plain HTTP on the port redirects to HTTPS, the login
  cookie is Secure;
- web.allow_networks: other addresses get 403.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from homesec.capture.snapshot import save_snapshot
from homesec.config import Config, load
from homesec.storage.store import Store
from homesec.system.nginx import MEDIA_PREFIX, socket_path
from homesec.web import accounts, create_app
from tests.web.conftest import PASSWORD, free_port
from tests.web.front_support import (
    Front,
    SlowClients,
    nginx_available,
    start_front,
    write_front_config,
)

pytestmark = pytest.mark.skipif(not nginx_available(), reason="needs nginx (apt-get install nginx)")


def seed(cfg: Config) -> tuple[str, int, Path]:
    """Owner password, a bearer token and one event with a snapshot; (token, event id, file)."""
    store = Store(cfg.paths.db_path)
    try:
        accounts.set_password(store, PASSWORD)
        token = accounts.create_token(store, "tests")[1]
        cfg.paths.media.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(1)
        img = rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)  # noise: a big JPEG
        snap, thumb = save_snapshot(cfg.paths.media, "ev1", img, [(10, 10, 50, 50)], 1.7e9, "T", 95, 160)
        eid, _ = store.add_event("T", 1.7e9, 2.6, [[10, 10, 50, 50]], [10, 10, 50, 50], snap, thumb, 5)
    finally:
        store.close()
    return token, eid, cfg.paths.media / snap


class Client:
    """Plain requests to the front (http.client: full control over what is sent)."""

    def __init__(self, front: Front, token: str = "", context: ssl.SSLContext | None = None) -> None:
        self.front = front
        self.token = token
        self.context = context

    def conn(self, timeout: float = 10) -> http.client.HTTPConnection:
        port = self.front.cfg.web.port
        if self.front.scheme == "https":
            return http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=self.context)
        return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                auth: bool = True, timeout: float = 10) -> tuple[int, http.client.HTTPMessage, bytes]:
        h = dict(headers or {})
        if auth and self.token:
            h.setdefault("Authorization", f"Bearer {self.token}")
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        c = self.conn(timeout)
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            return r.status, r.headers, r.read()
        finally:
            c.close()


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Front, str, int, Path]]:
    """The default front (plain HTTP); clients from 10.9.0.0/16 would skip the login."""
    root = tmp_path_factory.mktemp("front")
    port = free_port()
    cfg = load(write_front_config(root, port, trust_networks=["10.9.0.0/16"]))
    token, eid, snap = seed(cfg)
    front = Front(root, root / "config.toml", cfg).start()
    yield front, token, eid, snap
    front.stop()


def test_slow_and_idle_clients_do_not_stall_arm_and_disarm(plain: tuple[Front, str, int, Path]) -> None:
    front, token, _, _ = plain
    api = Client(front, token)
    # 100 connections that send nothing, 100 that dribble a header line each second: enough to
    # take every one of gunicorn's 2 x 16 threads several times over were they reaching it.
    with SlowClients("127.0.0.1", front.cfg.web.port, idle=100, slow=100, interval_s=1.0) as attack:
        assert attack.open_count() == 200  # the attack is on while we arm and disarm
        status, _, body = api.request("POST", "/api/v1/arm", {"delay_s": 0})
        assert status == 200, body
        status, _, body = api.request("GET", "/api/v1/status")
        assert status == 200 and json.loads(body)["arm"]["state"] == "armed", body
        status, _, body = api.request("POST", "/api/v1/disarm", {})
        assert status == 200, body
        status, _, body = api.request("GET", "/api/v1/status")
        assert json.loads(body)["arm"]["state"] == "disarmed", body
        assert attack.open_count() > 0, "the slow clients were dropped before the test ran"


def test_forwarded_for_from_a_client_is_not_believed(plain: tuple[Front, str, int, Path]) -> None:
    """trust_networks = 10.9.0.0/16 lets those clients in without login: a client on 127.0.0.1
    claiming to be 10.9.9.9 must still be asked to log in."""
    front, _, _, _ = plain
    anon = Client(front)
    for header in ("X-Forwarded-For", "X-Real-IP", "Forwarded"):
        value = "for=10.9.9.9" if header == "Forwarded" else "10.9.9.9"
        status, _, body = anon.request("GET", "/api/v1/status", headers={header: value}, auth=False)
        assert status == 401, (header, body)


def test_media_leaves_through_nginx_after_the_login_check(plain: tuple[Front, str, int, Path]) -> None:
    front, token, eid, snap = plain
    api = Client(front, token)
    whole = snap.read_bytes()
    status, headers, body = api.request("GET", f"/api/v1/events/{eid}/snapshot.jpg")
    assert status == 200 and body == whole
    assert headers["Content-Type"] == "image/jpeg" and headers["Cache-Control"] == "no-store"
    assert "X-Accel-Redirect" not in headers
    # Seeking (a video player, iOS): nginx answers ranges.
    status, headers, body = api.request("GET", f"/api/v1/events/{eid}/snapshot.jpg",
                                        headers={"Range": "bytes=100-199"})
    assert status == 206 and body == whole[100:200], headers
    assert headers["Content-Range"] == f"bytes 100-199/{len(whole)}"
    # No login, no file; and nginx's internal location cannot be asked for directly.
    status, _, body = Client(front).request("GET", f"/api/v1/events/{eid}/snapshot.jpg", auth=False)
    assert status == 401 and whole[:50] not in body
    status, _, body = api.request("GET", f"{MEDIA_PREFIX}{snap.name}")
    assert status == 404 and whole[:50] not in body
    # gunicorn itself only points nginx at the file: it sends none of its bytes.
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(socket_path(front.cfg)))
        s.sendall(f"GET /api/v1/events/{eid}/snapshot.jpg HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n".encode())
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert re.search(rb"(?im)^X-Accel-Redirect: " + re.escape(MEDIA_PREFIX.encode()), head), head
    assert rest == b"", "gunicorn sent the file's bytes itself"


@pytest.mark.parametrize(("path", "headers", "status"), [
    ("/api/v1/" + "a" * 5000, {}, 414),
    ("/api/v1/status", {"X-Big": "b" * 5000}, 431),
])
def test_front_errors_are_json_on_api_paths(plain: tuple[Front, str, int, Path], path: str,
                                            headers: dict[str, str], status: int) -> None:
    front, _, _, _ = plain
    got, h, body = Client(front).request("GET", path, headers=headers, auth=False)
    assert got == status
    assert h["Content-Type"] == "application/json"
    assert json.loads(body)["status"] == status and json.loads(body)["error"]
    # The same error on a page path is a small HTML page.
    got, h, body = Client(front).request("GET", path.replace("/api/v1/", "/x/"), headers=headers,
                                         auth=False)
    assert got == status and h["Content-Type"].startswith("text/html")


def test_many_headers_are_refused_as_json_not_gunicorns_html(plain: tuple[Front, str, int, Path]) -> None:
    """60 small headers pass nginx's size limits; gunicorn (limit 50 when run alone) must not
    answer with its HTML 431 behind nginx."""
    front, token, _, _ = plain
    headers = {f"X-H{i}": "1" for i in range(60)}
    status, h, body = Client(front, token).request("GET", "/api/v1/status", headers=headers)
    assert status == 200 and h["Content-Type"] == "application/json", body


def test_big_bodies_are_refused_with_json(plain: tuple[Front, str, int, Path]) -> None:
    front, token, _, _ = plain
    api = Client(front, token)
    for size in (20_000, 200_000):  # the app's own 413, then nginx's
        status, h, body = api.request("POST", "/api/v1/arm", headers={"Content-Type": "application/json"},
                                      body={"delay_s": 0, "pad": "x" * size})
        assert status == 413 and h["Content-Type"] == "application/json", (size, body[:200])
        assert json.loads(body)["status"] == 413
    status, _, body = api.request("GET", "/api/v1/status")
    assert json.loads(body)["arm"]["state"] == "disarmed"


def test_gunicorn_down_is_a_json_502(tmp_path: Path) -> None:
    front = start_front(tmp_path, free_port())
    try:
        front.procs["gunicorn"].terminate()
        front.procs["gunicorn"].wait(timeout=15)
        status, h, body = Client(front).request("GET", "/api/v1/status", auth=False)
        assert status == 502 and h["Content-Type"] == "application/json"
        assert "homesec-web" in json.loads(body)["error"]
    finally:
        front.stop()


def test_only_allowed_networks_get_an_answer(tmp_path: Path) -> None:
    front = start_front(tmp_path, free_port(), allow_networks=["192.0.2.0/24"])
    try:
        status, h, body = Client(front).request("GET", "/api/v1/status", auth=False)
        assert status == 403 and h["Content-Type"] == "application/json", body
        assert "allow_networks" in json.loads(body)["error"]
        status, h, _ = Client(front).request("GET", "/login", auth=False)
        assert status == 403 and h["Content-Type"].startswith("text/html")
    finally:
        front.stop()


def make_cert(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=homesec.test", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.mark.skipif(subprocess.run(["which", "openssl"], capture_output=True).returncode != 0,
                    reason="needs openssl")
def test_https_redirects_plain_http_and_marks_the_cookie_secure(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    port = free_port()
    front = start_front(tmp_path, port, tls_cert=cert, tls_key=key)
    try:
        token, _, _ = seed(front.cfg)
        ctx = ssl.create_default_context(cafile=str(cert))
        secure = Client(front, token, context=ctx)
        status, _, body = secure.request("GET", "/api/v1/status")
        assert status == 200 and "arm" in json.loads(body)
        # Plain HTTP to the same port: a redirect to the HTTPS address, nothing else.
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/login?next=/", headers={"Host": f"127.0.0.1:{port}"})
        r = c.getresponse()
        assert r.status == 301 and r.headers["Location"] == f"https://127.0.0.1:{port}/login?next=/"
        c.close()
        # Log in over HTTPS: the session cookie carries Secure (and HttpOnly, as before).
        status, h, page = secure.request("GET", "/login", auth=False)
        cookie = h["Set-Cookie"].split(";")[0]
        token = re.search(rb'name="csrf_token" value="([^"]+)"', page)
        assert token, page[:500]
        form = urllib.parse.urlencode({"password": PASSWORD, "csrf_token": token.group(1).decode()})
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
        c.request("POST", "/login", body=form, headers={
            "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse()
        r.read()
        c.close()
        assert r.status == 302, r.status
        cookies = [v for k, v in r.getheaders() if k.lower() == "set-cookie"]
        assert cookies and all("; Secure" in v for v in cookies), cookies
    finally:
        front.stop()


def test_without_nginx_no_forwarding_header_is_believed(tmp_path: Path) -> None:
    """`homesec web` alone (demo, tests): X-Forwarded-For is a client's word, ignored; behind
    nginx (where it is nginx's, replaced on every request) it is the client address."""
    from tests.web.conftest import make_config

    cfg = make_config(tmp_path, trust_networks=["10.9.0.0/16"])
    seed(cfg)
    direct = create_app(cfg).test_client()
    resp = direct.get("/api/v1/status", headers={"X-Forwarded-For": "10.9.9.9"},
                      environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert resp.status_code == 401
    proxied = create_app(cfg, behind_proxy=True).test_client()
    resp = proxied.get("/api/v1/status", headers={"X-Forwarded-For": "10.9.9.9"},
                       environ_base={"REMOTE_ADDR": ""})
    assert resp.status_code == 200
