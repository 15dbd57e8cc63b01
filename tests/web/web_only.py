"""A real gunicorn (`homesec web`, two workers) on a free loopback port and a temp state dir, with
no capture daemon, and a raw HTTP client that keeps cookies the way a browser does.

Why without the daemon: these tests make the database unwritable or change the password, which
must not disturb the shared `system` fixture other tests use."""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from homesec.config import Config, load
from homesec.storage.store import Store
from homesec.web import accounts

from .conftest import PASSWORD, free_port

COOKIE = "homesec_session"


@dataclass
class Web:
    """A running `homesec web` and what the tests need to reach it."""

    cfg: Config
    port: int
    token: str
    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str


@dataclass
class Client:
    """One browser: its own cookies (session, device), sent back on every request."""

    port: int
    cookies: dict[str, str] = field(default_factory=dict)
    csrf: str = ""

    def send(self, method: str, path: str, form: dict[str, str] | None = None,
             headers: dict[str, str] | None = None, json_body: bytes | None = None) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        h = dict(headers or {})
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body: bytes | str | None = None
        if form is not None:
            body = urlencode(form)
            h["Content-Type"] = "application/x-www-form-urlencoded"
        elif json_body is not None:
            body = json_body
            h["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        reply = Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode())
        for value in r.headers.get_all("Set-Cookie") or []:
            m = re.match(r"([^=]+)=([^;]*)", value)
            if m:
                if m.group(2) and "Max-Age=0" not in value and "expires=Thu, 01 Jan 1970" \
                        not in value:
                    self.cookies[m.group(1)] = m.group(2)
                else:
                    self.cookies.pop(m.group(1), None)
        conn.close()
        return reply

    def page_csrf(self, path: str = "/") -> Reply:
        """GET a page and keep its CSRF token (the meta tag every page carries)."""
        reply = self.send("GET", path)
        m = re.search(r'name="csrf-token" content="([^"]+)"', reply.body)
        if m:
            self.csrf = m.group(1)
        return reply

    def login(self, password: str = PASSWORD) -> Reply:
        """Through the login form, as a person would."""
        self.page_csrf("/login")
        reply = self.send("POST", "/login", {"password": password, "csrf_token": self.csrf})
        if reply.status == 302:
            self.page_csrf("/")
        return reply


def start_web(root: Path) -> Web:
    """`homesec passwd` then `homesec web` on a fresh state dir; waits until it answers."""
    port = free_port()
    cfg_path = root / "config.toml"
    cfg_path.write_text(f"""
[camera]
source = "demo"
[paths]
state_dir = "{root / 'state'}"
runtime_dir = "{root / 'run'}"
[web]
bind = "127.0.0.1"
port = {port}
workers = 2
threads = 8
""")
    cfg = load(cfg_path)
    exe = [sys.executable, "-m", "homesec.cli"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run([*exe, "passwd", "--config", str(cfg_path)], input=f"{PASSWORD}\n".encode(),
                   check=True, env=env, capture_output=True)
    store = Store(cfg.paths.db_path)
    token = accounts.create_token(store, "tests")[1]
    store.close()
    log = root / "web.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([*exe, "web", "--config", str(cfg_path)], stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    web = Web(cfg, port, token, proc, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"homesec web exited: {log.read_text(errors='replace')}"
        try:
            if Client(port).send("GET", "/login").status == 200:
                return web
        except OSError:
            pass
        time.sleep(0.2)
    stop_web(web)
    raise AssertionError(f"homesec web did not answer: {log.read_text(errors='replace')}")


def stop_web(web: Web) -> None:
    """SIGTERM gunicorn's process group and wait."""
    if web.proc.poll() is None:
        os.killpg(web.proc.pid, signal.SIGTERM)
    try:
        web.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(web.proc.pid, signal.SIGKILL)
        web.proc.wait()

