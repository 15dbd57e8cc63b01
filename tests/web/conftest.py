"""Fixtures for the web tests: an app on a fresh state dir (Flask test client), and a real system
(capture daemon on the demo scene + gunicorn on a free loopback port) for integration tests."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from homesec.capture.snapshot import save_snapshot
from homesec.config import Config, parse
from homesec.storage.store import Store
from homesec.web import accounts, create_app

PASSWORD = "correct horse battery"


def make_config(root: Path, **web: Any) -> Config:
    """A config with everything under `root`."""
    return parse({
        "camera": {"source": "demo", "width": 640, "height": 360, "fps": 10},
        "paths": {"state_dir": str(root / "state"), "runtime_dir": str(root / "run")},
        "alarm": {"exit_delay_s": 30},
        "web": {"bind": "127.0.0.1", **web},
    })


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    """Config on a fresh temp dir, owner password set."""
    c = make_config(tmp_path)
    store = Store(c.paths.db_path)
    accounts.set_password(store, PASSWORD)
    store.close()
    return c


@pytest.fixture
def app(cfg: Config) -> Flask:
    """The app under test."""
    return create_app(cfg)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """An anonymous browser."""
    return app.test_client()


@pytest.fixture
def store(cfg: Config) -> Iterator[Store]:
    """Direct access to the same database, for checking what changed."""
    s = Store(cfg.paths.db_path)
    yield s
    s.close()


def csrf_from(html: bytes) -> str:
    """The CSRF token in a rendered page."""
    m = re.search(rb'name="csrf-token" content="([^"]+)"', html)
    assert m, "page has no CSRF token"
    return m.group(1).decode()


class Browser:
    """A logged-in test client that sends the CSRF header like app.js does."""

    def __init__(self, client: FlaskClient) -> None:
        self.c = client
        self.csrf = ""

    def login(self, password: str = PASSWORD) -> Any:
        """Log in through the form."""
        page = self.c.get("/login")
        token = csrf_from(page.data)
        resp = self.c.post("/login", data={"password": password, "csrf_token": token})
        home = self.c.get("/")
        if home.status_code == 200:
            self.csrf = csrf_from(home.data)
        return resp

    def api(self, method: str, path: str, **kw: Any) -> Any:
        """An API call with the page's CSRF token."""
        headers = kw.pop("headers", {})
        headers.setdefault("X-CSRF-Token", self.csrf)
        return self.c.open(f"/api/v1{path}", method=method, headers=headers, **kw)


@pytest.fixture
def browser(client: FlaskClient) -> Browser:
    """A logged-in browser."""
    b = Browser(client)
    resp = b.login()
    assert resp.status_code == 302
    return b


@pytest.fixture
def token(store: Store) -> str:
    """A valid bearer token."""
    return accounts.create_token(store, "script")[1]


@pytest.fixture
def add_event(cfg: Config, store: Store) -> Callable[..., int]:
    """Store a finished event with real snapshot files; returns its id."""
    def add(ts: float | None = None, finished: bool = True) -> int:
        ts = time.time() if ts is None else ts
        img = np.full((360, 640, 3), 90, np.uint8)
        img[100:200, 200:260] = 220
        boxes = [(200, 100, 60, 100)]
        cfg.paths.media.mkdir(parents=True, exist_ok=True)
        key = f"ev{int(ts * 1000)}"
        snap, thumb = save_snapshot(cfg.paths.media, key, img, boxes, ts, "Test", 85, 160)
        eid, _ = store.add_event("Test", ts, 2.6, [list(b) for b in boxes], [200, 100, 60, 100],
                                 snap, thumb, 5)
        if finished:
            store.finish_event(eid, ts + 3, 2.6, [list(b) for b in boxes], [200, 100, 60, 100],
                               snap, thumb, 9)
        return eid
    return add


# ---- a real system: daemon + gunicorn --------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class System:
    """A running daemon + web server, and how to talk to them."""

    root: Path
    config_path: Path
    cfg: Config
    url: str
    token: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def request(self, method: str, path: str, body: Any = None, timeout: float = 10.0
                ) -> tuple[int, Any]:
        """An API call with the bearer token; (status, parsed JSON)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}/api/v1{path}", data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float) -> Any:
        """Poll `check` until it returns something truthy, or fail naming `what`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, p in self.procs.items():
                assert p.poll() is None, f"{name} exited: {self.log(name)}"
            got = check()
            if got:
                return got
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")

    def log(self, name: str) -> str:
        """The tail of a process's log."""
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def start_system(root: Path) -> System:
    """Start `homesec run` and `homesec web` (real processes) on a temp state dir."""
    port = free_port()
    cfg_path = root / "config.toml"
    cfg_path.write_text(f"""
[camera]
source = "demo"
width = 640
height = 360
fps = 10
realtime = true
[paths]
state_dir = "{root / 'state'}"
runtime_dir = "{root / 'run'}"
[alarm]
exit_delay_s = 30
[web]
bind = "127.0.0.1"
port = {port}
workers = 2
threads = 16
""")
    from homesec.config import load

    cfg = load(cfg_path)
    exe = [sys.executable, "-m", "homesec.cli"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run([*exe, "passwd", "--config", str(cfg_path)], input=f"{PASSWORD}\n".encode(),
                   check=True, env=env, capture_output=True)
    store = Store(cfg.paths.db_path)
    token = accounts.create_token(store, "tests")[1]
    store.close()
    system = System(root, cfg_path, cfg, f"http://127.0.0.1:{port}", token)
    for name in ("run", "web"):
        log = open(root / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        system.procs[name] = subprocess.Popen([*exe, name, "--config", str(cfg_path)],
                                              stdout=log, stderr=subprocess.STDOUT, env=env,
                                              start_new_session=True)

    def ready() -> bool:
        try:
            code, st = system.request("GET", "/status", timeout=2)
        except OSError:
            return False
        return code == 200 and st["camera"]["daemon"] == "running"

    try:
        system.wait_for("daemon and web server up", ready, 30)
    except BaseException:
        stop_system(system)
        raise
    return system


def stop_system(system: System) -> None:
    """SIGTERM both processes (their whole process groups) and wait."""
    for p in system.procs.values():
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in system.procs.values():
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """One real daemon + gunicorn shared by the integration and browser tests."""
    s = start_system(tmp_path_factory.mktemp("system"))
    yield s
    stop_system(s)
