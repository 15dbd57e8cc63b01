"""Sessions that really end, tokens that need a fresh password, a login limit that one guest
cannot turn against the family (issue 11, items 6, 7 and 8)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask import Flask
from flask.testing import FlaskClient

from homesec.config import Config
from homesec.storage.store import Store
from homesec.web import accounts, create_app, sessions
from homesec.web.security import DEVICE_COOKIE

from .conftest import PASSWORD, Browser, System, csrf_from, make_config

COOKIE = "homesec_session"


class Clock:
    """A settable clock for the session and login-limit code (Flask's cookie signing keeps the
    real time, so what these tests see is the server-side record)."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    fake = SimpleNamespace(time=c.time)
    monkeypatch.setattr(sessions, "time", fake)
    monkeypatch.setattr(accounts, "time", fake)
    return c


def copy_of(app: Flask, browser: Browser) -> Browser:
    """Another client holding a copy of the browser's session cookie (a stolen cookie)."""
    cookie = browser.c.get_cookie(COOKIE)
    assert cookie is not None
    thief = Browser(app.test_client())
    thief.c.set_cookie(COOKIE, cookie.value)
    thief.csrf = browser.csrf  # the CSRF token travels inside the same signed cookie
    return thief


def login_as(app: Flask, user_agent: str, addr: str = "127.0.0.1") -> Browser:
    """A browser logged in with its own user agent and address."""
    c = app.test_client()
    c.environ_base.update({"HTTP_USER_AGENT": user_agent, "REMOTE_ADDR": addr})
    b = Browser(c)
    assert b.login().status_code == 302
    return b


# ---- item 6: server-side sessions --------------------------------------------------------------


def test_copied_cookie_stops_working_after_logout(app: Flask, browser: Browser,
                                                  store: Store) -> None:
    thief = copy_of(app, browser)
    assert thief.api("GET", "/status").status_code == 200  # a copy works while the login lives
    assert thief.api("POST", "/arm", json={"delay_s": 0}).status_code == 200
    assert browser.c.post("/logout", data={"csrf_token": browser.csrf}).status_code == 302
    assert thief.api("GET", "/status").status_code == 401
    assert thief.api("POST", "/disarm").status_code == 401
    assert store.arm_status().state == "armed"  # the copy could not disarm
    page = thief.c.get("/")
    assert page.status_code == 302 and page.headers["Location"].startswith("/login")
    assert store.conn.execute("SELECT COUNT(*) FROM web_sessions").fetchone()[0] == 0


def test_session_lifetime_is_absolute(app: Flask, cfg: Config, store: Store,
                                      clock: Clock) -> None:
    b = login_as(app, "phone")
    (rec,) = sessions.list_active(store)
    assert rec.expires_ts == pytest.approx(rec.created_ts + cfg.web.session_days * 86400)
    for day in (1, 10, 29):  # used every few days: the end does not move
        clock.now = rec.created_ts + day * 86400
        assert b.api("GET", "/status").status_code == 200
    (later,) = sessions.list_active(store, now=clock.now)
    assert later.expires_ts == rec.expires_ts
    assert later.last_seen_ts == pytest.approx(clock.now)
    clock.now = rec.expires_ts + 1
    assert b.api("GET", "/status").status_code == 401
    assert b.c.get("/").status_code == 302


def test_log_out_everywhere(app: Flask, store: Store, token: str) -> None:
    phone, laptop = login_as(app, "phone"), login_as(app, "laptop")
    resp = phone.c.post("/logout/everywhere", data={"csrf_token": phone.csrf})
    assert resp.status_code == 302
    for b in (phone, laptop):
        assert b.api("GET", "/status").status_code == 401
    assert sessions.list_active(store) == []
    # API tokens are not sessions: they stay until revoked
    h = {"Authorization": f"Bearer {token}"}
    assert app.test_client().get("/api/v1/status", headers=h).status_code == 200


def test_new_password_ends_every_session(app: Flask, store: Store) -> None:
    phone = login_as(app, "phone")
    thief = copy_of(app, phone)
    accounts.set_password(store, "a brand new password")
    assert phone.api("GET", "/status").status_code == 401
    assert thief.api("GET", "/status").status_code == 401
    assert sessions.list_active(store) == []


def test_sessions_listed_with_revoke(app: Flask, store: Store) -> None:
    phone = login_as(app, "Phone Browser 1.0", "192.168.1.20")
    laptop = login_as(app, "Laptop Browser 2.0", "192.168.1.30")
    page = phone.c.get("/tokens").data.decode()
    assert "Phone Browser 1.0" in page and "Laptop Browser 2.0" in page
    assert "192.168.1.30" in page and "(this device)" in page
    laptop_id = next(s.id for s in sessions.list_active(store) if s.user_agent.startswith("Lap"))
    resp = phone.c.post(f"/sessions/{laptop_id}/revoke", data={"csrf_token": phone.csrf})
    assert resp.status_code == 302
    assert laptop.api("GET", "/status").status_code == 401
    assert phone.api("GET", "/status").status_code == 200
    assert "Laptop Browser 2.0" not in phone.c.get("/tokens").data.decode()
    assert phone.c.post("/sessions/999/revoke", data={"csrf_token": phone.csrf}
                        ).status_code == 404


def test_session_record_keeps_no_secret_and_no_control_characters(app: Flask,
                                                                  store: Store) -> None:
    b = login_as(app, "evil\r\nX-Injected: 1\x00" + "A" * 500)
    (rec,) = sessions.list_active(store)
    assert "\r" not in rec.user_agent and "\n" not in rec.user_agent and "\x00" not in rec.user_agent
    assert len(rec.user_agent) <= sessions.USER_AGENT_MAX
    cookie = b.c.get_cookie(COOKIE)
    assert cookie is not None
    from flask.sessions import SecureCookieSessionInterface

    secret = SecureCookieSessionInterface().get_signing_serializer(app).loads(cookie.value)["sid"]
    dump = "\n".join(store.conn.iterdump())
    assert secret not in dump


def test_login_replaces_the_session_it_came_from(app: Flask, store: Store) -> None:
    """Logging in again (to confirm the password) starts a new record and ends the old one."""
    b = login_as(app, "phone")
    old = copy_of(app, b)
    page = b.c.get("/login")
    assert page.status_code == 302  # a live session is sent on, not shown the form
    resp = b.c.post("/login", data={"password": PASSWORD, "csrf_token": b.csrf})
    assert resp.status_code == 302
    assert len(sessions.list_active(store)) == 1
    assert old.api("GET", "/status").status_code == 401


# ---- item 7: tokens need a fresh password ------------------------------------------------------


def _trusted_app(tmp_path: Path, **web: object) -> tuple[Flask, Store]:
    c = make_config(tmp_path, **web)
    s = Store(c.paths.db_path)
    accounts.set_password(s, PASSWORD)
    return create_app(c), s


@pytest.mark.parametrize("web", [{"trust_networks": ["192.168.1.0/24"]}, {"auth": False}],
                         ids=["trusted-network", "auth-off"])
def test_client_without_a_login_cannot_create_or_revoke_tokens(tmp_path: Path,
                                                               web: dict[str, object]) -> None:
    app, store = _trusted_app(tmp_path, **web)
    info, _ = accounts.create_token(store, "existing")
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = "192.168.1.20"
    page = c.get("/tokens")
    assert page.status_code == 200  # let in to look...
    assert b'id="reauth-password"' in page.data and b'id="token-create"' not in page.data
    csrf = csrf_from(page.data)
    resp = c.post("/tokens", data={"csrf_token": csrf, "name": "minted"})
    assert resp.status_code == 403  # ...but not to mint a credential
    assert c.post(f"/tokens/{info.id}/revoke", data={"csrf_token": csrf}).status_code == 403
    assert [t.name for t in accounts.list_tokens(store)] == ["existing"]
    # the password makes it a real login, and then it may
    resp = c.post("/login", data={"csrf_token": csrf, "password": PASSWORD, "next": "/tokens"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/tokens"
    csrf = csrf_from(c.get("/tokens").data)
    assert c.post("/tokens", data={"csrf_token": csrf, "name": "minted"}).status_code == 200
    store.close()


def test_token_changes_need_a_password_entry_within_ten_minutes(app: Flask, store: Store,
                                                                clock: Clock) -> None:
    b = login_as(app, "phone")
    info, _ = accounts.create_token(store, "existing")
    clock.now += sessions.REAUTH_S + 1
    assert b.c.post("/tokens", data={"csrf_token": b.csrf, "name": "late"}).status_code == 403
    assert b.c.post(f"/tokens/{info.id}/revoke", data={"csrf_token": b.csrf}).status_code == 403
    assert [t.name for t in accounts.list_tokens(store)] == ["existing"]
    page = b.c.get("/tokens").data
    assert b'id="reauth-password"' in page  # the page asks for the password again
    resp = b.c.post("/login", data={"csrf_token": b.csrf, "password": "wrong password",
                                    "next": "/tokens"})
    assert resp.status_code == 401
    assert b.c.post("/tokens", data={"csrf_token": b.csrf, "name": "late"}).status_code == 403
    resp = b.c.post("/login", data={"csrf_token": b.csrf, "password": PASSWORD,
                                    "next": "/tokens"})
    assert resp.headers["Location"] == "/tokens"
    b.csrf = csrf_from(b.c.get("/tokens").data)
    assert b.c.post("/tokens", data={"csrf_token": b.csrf, "name": "late"}).status_code == 200
    assert b.c.post(f"/tokens/{info.id}/revoke", data={"csrf_token": b.csrf}).status_code == 302
    assert [t.name for t in accounts.list_tokens(store)] == ["late"]


def test_token_cannot_mint_tokens(client: FlaskClient, store: Store, token: str) -> None:
    resp = client.post("/tokens", data={"name": "child"},
                       headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 403
    assert [t.name for t in accounts.list_tokens(store)] == ["script"]


# ---- homesec passwd ----------------------------------------------------------------------------


def _cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def _passwd(cfg_file: Path, *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "homesec.cli", "passwd", "--config",
                           str(cfg_file), *args], input=stdin, capture_output=True, text=True,
                          timeout=60, env=_cli_env())


@pytest.fixture
def cfg_file(cfg: Config, tmp_path: Path) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(f'[paths]\nstate_dir = "{cfg.paths.state_dir}"\n'
                 f'runtime_dir = "{cfg.paths.runtime_dir}"\n')
    return p


def test_passwd_ends_sessions_and_revoke_all_ends_tokens(app: Flask, cfg_file: Path,
                                                         store: Store, token: str) -> None:
    phone = login_as(app, "phone")
    h = {"Authorization": f"Bearer {token}"}
    r = _passwd(cfg_file, stdin="the second password\n")
    assert r.returncode == 0, r.stderr
    assert "1 API token(s) still valid" in r.stdout and "--revoke-all" in r.stdout
    assert phone.api("GET", "/status").status_code == 401
    assert app.test_client().get("/api/v1/status", headers=h).status_code == 200
    r = _passwd(cfg_file, "--revoke-all", stdin="the third password\n")
    assert r.returncode == 0, r.stderr
    assert "1 API token(s) revoked" in r.stdout
    assert app.test_client().get("/api/v1/status", headers=h).status_code == 401
    assert accounts.list_tokens(store) == []


def _run_on_a_terminal(argv: list[str], answers: list[tuple[str, str]]) -> tuple[int, str]:
    """Run `argv` on a pseudo-terminal, answering each prompt (text to wait for, reply)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes the command
        os.execve(sys.executable, argv, _cli_env())
    seen = ""
    pending = list(answers)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 1024).decode(errors="replace")
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
        while pending and pending[0][0] in seen:
            prompt, reply = pending.pop(0)
            seen = seen.replace(prompt, f"<{prompt}>", 1)
            os.write(fd, reply.encode())
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), seen


def test_passwd_on_a_terminal_offers_to_revoke_tokens(cfg_file: Path, store: Store,
                                                      token: str) -> None:
    code, out = _run_on_a_terminal(
        [sys.executable, "-m", "homesec.cli", "passwd", "--config", str(cfg_file)],
        [("New web password:", "terminal password\n"), ("Again:", "terminal password\n"),
         ("Also revoke all 1 API token(s)?", "y\n")])
    assert code == 0, out
    assert "1 API token(s) revoked" in out
    assert accounts.list_tokens(store) == []
    assert accounts.verify_password(store, "terminal password")


# ---- item 8: login limit per address, global slow-down -----------------------------------------


def _attempt(app: Flask, addr: str, password: str,
             client: FlaskClient | None = None) -> tuple[int, FlaskClient]:
    c = client or app.test_client()
    env = {"REMOTE_ADDR": addr}
    token = csrf_from(c.get("/login", environ_base=env).data)
    resp = c.post("/login", data={"password": password, "csrf_token": token}, environ_base=env)
    return resp.status_code, c


def _guess_from_many_addresses(app: Flask, n: int) -> None:
    """Wrong guesses from `n` addresses of one /64 (what rotating privacy addresses allow)."""
    for i in range(n):
        code, _ = _attempt(app, f"2001:db8:1:2::{i + 0x100:x}", "wrong guess!")
        assert code == 401


def test_global_cap_slows_unknown_devices_but_never_locks_out(app: Flask, store: Store,
                                                              clock: Clock) -> None:
    _guess_from_many_addresses(app, accounts.LOGIN_GLOBAL_MAX_FAILURES)
    # Over the cap: a guess from yet another address is not even checked...
    code, _ = _attempt(app, "2001:db8:1:2::ffff", "another guess")
    assert code == 429
    count = store.conn.execute("SELECT COUNT(*) FROM login_failures").fetchone()[0]
    assert count == accounts.LOGIN_GLOBAL_MAX_FAILURES
    # ...and so is the owner's new phone, but only for a few seconds
    c = app.test_client()
    env = {"REMOTE_ADDR": "192.168.1.44"}
    resp = c.post("/login", data={"password": PASSWORD,
                                  "csrf_token": csrf_from(c.get("/login", environ_base=env).data)},
                  environ_base=env)
    assert resp.status_code == 429
    wait = int(resp.headers["Retry-After"])
    assert 1 <= wait <= accounts.LOGIN_SLOW_INTERVAL_S
    assert b"slowed" in resp.data
    clock.now += wait
    code, _ = _attempt(app, "192.168.1.44", PASSWORD, client=c)
    assert code == 302


def test_known_device_is_not_slowed_by_others_guessing(app: Flask, clock: Clock) -> None:
    code, phone = _attempt(app, "192.168.1.20", PASSWORD)
    assert code == 302 and phone.get_cookie(DEVICE_COOKIE) is not None
    b = Browser(phone)
    b.csrf = csrf_from(phone.get("/", environ_base={"REMOTE_ADDR": "192.168.1.20"}).data)
    phone.post("/logout", data={"csrf_token": b.csrf})
    _guess_from_many_addresses(app, accounts.LOGIN_GLOBAL_MAX_FAILURES)
    assert _attempt(app, "192.168.1.21", PASSWORD)[0] == 429  # a new device waits
    assert _attempt(app, "192.168.1.20", PASSWORD, client=phone)[0] == 302  # the phone does not


def test_device_cookie_from_an_old_password_is_not_known(app: Flask, store: Store,
                                                         clock: Clock) -> None:
    code, old = _attempt(app, "192.168.1.20", PASSWORD)
    assert code == 302
    accounts.set_password(store, "the next password")
    _guess_from_many_addresses(app, accounts.LOGIN_GLOBAL_MAX_FAILURES)
    assert _attempt(app, "192.168.1.20", "the next password", client=old)[0] == 429


def test_forged_device_cookie_is_not_known(app: Flask, clock: Clock) -> None:
    _guess_from_many_addresses(app, accounts.LOGIN_GLOBAL_MAX_FAILURES)
    c = app.test_client()
    c.set_cookie(DEVICE_COOKIE, "eyJmcCI6ImFiYyJ9.Zz.forged")
    assert _attempt(app, "192.168.1.50", PASSWORD, client=c)[0] == 429


def test_global_cap_lets_one_guess_through_per_interval(app: Flask, store: Store,
                                                        clock: Clock) -> None:
    """An attacker with endless addresses gets LOGIN_SLOW_INTERVAL_S per guess, however fast
    they ask."""
    _guess_from_many_addresses(app, accounts.LOGIN_GLOBAL_MAX_FAILURES)
    checked = 0
    for step in range(12):
        clock.now += 1.0
        code, _ = _attempt(app, f"2001:db8:1:2::{step + 0x1000:x}", "wrong guess!")
        assert code in (401, 429)
        checked += code == 401
    assert checked <= 12 // accounts.LOGIN_SLOW_INTERVAL_S + 1


def test_passwd_forgets_failed_logins(app: Flask, cfg_file: Path, store: Store) -> None:
    """The owner is never locked out for good: `homesec passwd` on the device always works and
    wipes the failures, so the next login from any device is checked at once."""
    _guess_from_many_addresses(app, accounts.LOGIN_GLOBAL_MAX_FAILURES)
    for _ in range(accounts.LOGIN_MAX_FAILURES):
        _attempt(app, "192.168.1.44", "wrong guess!")
    assert _attempt(app, "192.168.1.44", PASSWORD)[0] == 429
    r = _passwd(cfg_file, stdin="owner resets it\n")
    assert r.returncode == 0, r.stderr
    assert _attempt(app, "192.168.1.44", "owner resets it")[0] == 302


# ---- the same under real gunicorn (two worker processes share the records) ----------------------


def test_copied_cookie_dies_at_logout_under_gunicorn(system: System) -> None:
    import http.client
    import re
    from urllib.parse import urlencode

    def send(method: str, path: str, cookie: str | None = None, form: dict[str, str] | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection("127.0.0.1", system.cfg.web.port, timeout=10)
        h = dict(headers or {})
        if cookie:
            h["Cookie"] = f"{COOKIE}={cookie}"
        body = None
        if form is not None:
            body = urlencode(form)
            h["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        out = (r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode())
        conn.close()
        return out

    def cookie_of(headers: dict[str, str]) -> str:
        m = re.search(rf"{COOKIE}=([^;]+)", headers.get("set-cookie", ""))
        assert m, headers
        return m.group(1)

    _, h, page = send("GET", "/login")
    anon = cookie_of(h)
    csrf = csrf_from(page.encode())
    code, h, _ = send("POST", "/login", anon, {"password": PASSWORD, "csrf_token": csrf})
    assert code == 302
    cookie = cookie_of(h)
    code, _, page = send("GET", "/", cookie)
    assert code == 200
    csrf = csrf_from(page.encode())
    copy = cookie  # what a thief took before the logout
    api = {"X-CSRF-Token": csrf}
    assert send("GET", "/api/v1/status", copy)[0] == 200
    assert send("POST", "/api/v1/disarm", copy, headers=api)[0] == 200
    assert send("POST", "/logout", cookie, {"csrf_token": csrf})[0] == 302
    for _ in range(6):  # both gunicorn workers, whichever answers
        assert send("GET", "/api/v1/status", copy)[0] == 401
        assert send("POST", "/api/v1/arm", copy, headers=api)[0] == 401
        code, h, _ = send("GET", "/", copy)
        assert code == 302 and h["location"].startswith("/login")


def test_logged_in_while_the_database_is_locked(app: Flask, cfg: Config, clock: Clock) -> None:
    """Being logged in needs no write: with another connection holding the write lock, the
    once-a-minute last-seen update is skipped and the request answers (item 4's rule)."""
    b = login_as(app, "phone")
    clock.now += sessions.SEEN_EVERY_S + 1
    blocker = Store(cfg.paths.db_path)
    blocker.conn.execute("BEGIN IMMEDIATE")
    try:
        assert b.api("GET", "/status").status_code == 200
        assert b.c.get("/").status_code == 200
    finally:
        blocker.conn.execute("ROLLBACK")
        blocker.close()


def test_login_and_logout_need_a_writable_database(app: Flask, cfg: Config,
                                                   store: Store) -> None:
    """A login or a guess that cannot be recorded is not checked (503, nothing counted), and a
    logout that cannot end the record says so instead of pretending (the copy would live on)."""
    b = login_as(app, "phone")
    other = Browser(app.test_client())
    csrf = csrf_from(other.c.get("/login").data)
    blocker = Store(cfg.paths.db_path)
    blocker.conn.execute("PRAGMA busy_timeout=0")
    store.conn.execute("PRAGMA busy_timeout=0")
    blocker.conn.execute("BEGIN IMMEDIATE")
    try:
        import homesec.storage.store as store_mod

        with pytest.MonkeyPatch.context() as mp:  # fail fast instead of the 10 s busy wait
            real = store_mod.connect
            mp.setattr(store_mod, "connect", lambda path, timeout_s=10.0: real(path, 0.2))
            resp = other.c.post("/login", data={"password": "wrong guess!", "csrf_token": csrf})
            assert resp.status_code == 503 and b"cannot be written" in resp.data
            resp = other.c.post("/login", data={"password": PASSWORD, "csrf_token": csrf})
            assert resp.status_code == 503
            assert b.c.post("/logout", data={"csrf_token": b.csrf}).status_code == 503
            assert b.api("GET", "/status").status_code == 200  # still logged in, as it says
    finally:
        blocker.conn.execute("ROLLBACK")
        blocker.close()
    assert store.conn.execute("SELECT COUNT(*) FROM login_failures").fetchone()[0] == 0
    assert b.c.post("/logout", data={"csrf_token": b.csrf}).status_code == 302
    assert b.api("GET", "/status").status_code == 401
