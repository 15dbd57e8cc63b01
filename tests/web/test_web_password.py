"""Changing the web password in the web UI (the form on the Sessions & tokens page): the rules and
hash of `homesec passwd`, CSRF, the login's rate limit; every other session ends, this browser
goes on with a new session, API tokens stay, an audit line is written; a wrong current password
changes nothing and says so."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from homesec.storage import audit
from homesec.storage.store import Store
from homesec.web import accounts, create_app, sessions

from .conftest import PASSWORD, Browser, csrf_from, make_config
from .web_only import Client, Web, start_web, stop_web

NEW = "a brand new passphrase"
COOKIE = "homesec_session"


def login_as(app: Flask, user_agent: str, addr: str = "127.0.0.1",
             password: str = PASSWORD) -> Browser:
    c = app.test_client()
    c.environ_base.update({"HTTP_USER_AGENT": user_agent, "REMOTE_ADDR": addr})
    b = Browser(c)
    assert b.login(password).status_code == 302
    return b


def copy_of(app: Flask, browser: Browser) -> Browser:
    """Another client holding a copy of the browser's session cookie (a stolen cookie)."""
    cookie = browser.c.get_cookie(COOKIE)
    assert cookie is not None
    thief = Browser(app.test_client())
    thief.c.set_cookie(COOKIE, cookie.value)
    thief.csrf = browser.csrf
    return thief


def change(b: Browser, current: str = PASSWORD, new: str = NEW, again: str | None = None,
           csrf: str | None = None) -> Any:
    return b.c.post("/password", data={
        "current_password": current, "new_password": new,
        "new_password2": new if again is None else again,
        "csrf_token": b.csrf if csrf is None else csrf})


def state(store: Store) -> tuple[Any, ...]:
    """What a refused change must leave as it was."""
    return (accounts.password_hash(store),
            [s.id for s in sessions.list_active(store)],
            [t.id for t in accounts.list_tokens(store)],
            [r.action for r in audit.page(store) if r.action == "password_change"])


def test_settings_page_has_the_form_and_says_tokens_stay(browser: Browser) -> None:
    page = browser.c.get("/tokens").get_data(as_text=True)
    assert 'action="/password"' in page
    for name in ("current_password", "new_password", "new_password2", "csrf_token"):
        assert f'name="{name}"' in page
    assert f'minlength="{accounts.MIN_PASSWORD_LEN}"' in page
    assert "tokens keep working" in page and "logs out every other device" in page


def test_change_ends_other_sessions_keeps_this_one_and_tokens(app: Flask, store: Store,
                                                              token: str) -> None:
    phone = login_as(app, "phone")
    laptop = login_as(app, "laptop", "127.0.0.2")
    stolen = copy_of(app, phone)
    (old_id,) = [s.id for s in sessions.list_active(store) if s.user_agent == "phone"]
    old_hash = accounts.password_hash(store)

    resp = change(phone)
    assert resp.status_code == 302 and resp.headers["Location"] == "/tokens"
    page = phone.c.get("/tokens").get_data(as_text=True)
    assert "Password changed. 1 other device(s) logged out" in page
    assert "API tokens still work" in page

    # this browser goes on, with a new session record (new id, new CSRF token)
    (now,) = sessions.list_active(store)
    assert now.id != old_id and now.user_agent == "phone"
    phone.csrf = csrf_from(phone.c.get("/").data)
    assert phone.api("POST", "/arm", json={"delay_s": 0}).status_code == 200
    # every other device and every copy of the old cookie is logged out
    for other in (laptop, stolen):
        assert other.api("GET", "/status").status_code == 401
        assert other.api("POST", "/disarm").status_code == 401
        assert other.c.get("/").headers["Location"].startswith("/login")
    assert store.arm_status().state == "armed"  # nobody logged out could disarm
    # API tokens stay
    assert app.test_client().get("/api/v1/status", headers={
        "Authorization": f"Bearer {token}"}).status_code == 200
    # the old password no longer logs in, the new one does; argon2id hash
    new_hash = accounts.password_hash(store)
    assert new_hash != old_hash and new_hash.startswith("$argon2id$")
    assert Browser(app.test_client()).login(PASSWORD).status_code == 401
    assert Browser(app.test_client()).login(NEW).status_code == 302
    (entry,) = [r for r in audit.page(store) if r.action == "password_change"]
    assert entry.who.startswith("owner") and entry.client == "127.0.0.1"
    assert "1 other session(s) ended" in (entry.detail or "")
    assert PASSWORD not in json.dumps(entry.to_json()) and NEW not in json.dumps(entry.to_json())


def test_new_session_counts_as_a_fresh_password_entry(app: Flask) -> None:
    """Typing the current password is a password entry: tokens may be made right after."""
    phone = login_as(app, "phone")
    assert change(phone).status_code == 302
    resp = phone.c.post("/tokens", data={"name": "after change",
                                         "csrf_token": csrf_from(phone.c.get("/tokens").data)})
    assert resp.status_code == 200 and "after change" in resp.get_data(as_text=True)


@pytest.mark.parametrize(("current", "new", "again", "status", "says"), [
    ("not the password", NEW, None, 401, "The current password is wrong. Nothing was changed."),
    (PASSWORD, NEW, NEW + "x", 400, "The two new passwords differ. Nothing was changed."),
    (PASSWORD, "short", None, 400, f"at least {accounts.MIN_PASSWORD_LEN} characters"),
    (PASSWORD, "x" * (accounts.MAX_PASSWORD_LEN + 1), None, 400, "at most"),
    ("", NEW, None, 401, "The current password is wrong"),
])
def test_refused_change_changes_nothing_and_says_so(app: Flask, store: Store, current: str,
                                                    new: str, again: str | None, status: int,
                                                    says: str) -> None:
    phone = login_as(app, "phone")
    laptop = login_as(app, "laptop")
    before = state(store)
    resp = change(phone, current, new, again)
    assert resp.status_code == status
    text = resp.get_data(as_text=True)
    assert says in text and 'id="password-error"' in text
    assert state(store) == before
    for b in (phone, laptop):  # nobody was logged out
        assert b.api("GET", "/status").status_code == 200
    failures = store.conn.execute("SELECT COUNT(*) FROM login_failures").fetchone()[0]
    assert failures == (1 if status == 401 else 0)  # only a checked password counts
    assert Browser(app.test_client()).login(PASSWORD).status_code == 302


def test_needs_the_csrf_token(app: Flask, store: Store) -> None:
    phone = login_as(app, "phone")
    before = state(store)
    assert change(phone, csrf="").status_code == 400
    assert change(phone, csrf="forged").status_code == 400
    assert state(store) == before


def test_rate_limited_like_login(app: Flask, store: Store) -> None:
    """Five wrong current passwords from one address: the sixth try, even with the right
    password, is refused (429), and so is a login from that address: one limiter."""
    phone = login_as(app, "phone")
    for _ in range(accounts.LOGIN_MAX_FAILURES):
        assert change(phone, "guess guess").status_code == 401
    before = state(store)
    resp = change(phone)
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) > 0
    assert "Too many wrong passwords" in resp.get_data(as_text=True)
    assert state(store) == before
    other = Browser(app.test_client())
    assert other.login(PASSWORD).status_code == 429
    elsewhere = login_as(app, "laptop", "127.0.0.9")  # another address is not blocked
    assert change(elsewhere).status_code == 302


def test_only_a_login_session_may_change_it(app: Flask, client: FlaskClient, store: Store,
                                            token: str, tmp_path: Path) -> None:
    form = {"current_password": PASSWORD, "new_password": NEW, "new_password2": NEW}
    before = state(store)
    resp = client.post("/password", data=form, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 403
    anon = Browser(client)
    anon.csrf = csrf_from(client.get("/login").data)
    assert client.post("/password", data={**form, "csrf_token": anon.csrf}).status_code == 401
    assert state(store) == before
    # a client let in by its network has typed no password: no form, and 403
    cfg = make_config(tmp_path / "trusted", trust_networks=["127.0.0.0/8"])
    s = Store(cfg.paths.db_path)
    accounts.set_password(s, PASSWORD)
    trusted = create_app(cfg).test_client()
    page = trusted.get("/tokens")
    assert page.status_code == 200 and 'action="/password"' not in page.get_data(as_text=True)
    resp = trusted.post("/password", data={**form, "csrf_token": csrf_from(page.data)})
    assert resp.status_code == 403
    assert accounts.verify_password(s, PASSWORD)
    s.close()


# ---- the same under real gunicorn (two worker processes share the records) ----------------------


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    w = start_web(tmp_path)
    yield w
    stop_web(w)


def test_password_change_under_gunicorn(web: Web) -> None:
    phone, laptop = Client(web.port), Client(web.port)
    assert phone.login().status == 302 and laptop.login().status == 302
    copy = Client(web.port, cookies=dict(phone.cookies), csrf=phone.csrf)  # taken before
    phone.page_csrf("/tokens")
    wrong = phone.send("POST", "/password", {"current_password": "nope nope", "new_password": NEW,
                                             "new_password2": NEW, "csrf_token": phone.csrf})
    assert wrong.status == 401 and "Nothing was changed" in wrong.body
    assert laptop.send("GET", "/api/v1/status").status == 200
    done = phone.send("POST", "/password", {"current_password": PASSWORD, "new_password": NEW,
                                            "new_password2": NEW, "csrf_token": phone.csrf})
    assert done.status == 302, done.body
    assert phone.cookies[COOKIE] != copy.cookies[COOKIE]
    page = phone.page_csrf("/tokens")
    assert page.status == 200 and "Password changed" in page.body
    bearer = {"Authorization": f"Bearer {web.token}"}
    for _ in range(6):  # both workers, whichever answers
        assert phone.send("GET", "/api/v1/status").status == 200
        for gone in (laptop, copy):
            assert gone.send("GET", "/api/v1/status").status == 401
            assert gone.send("POST", "/api/v1/arm", headers={"X-CSRF-Token": gone.csrf},
                             json_body=b"{}").status == 401
            r = gone.send("GET", "/")
            assert r.status == 302 and r.headers["location"].startswith("/login")
        assert Client(web.port).send("GET", "/api/v1/status", headers=bearer).status == 200
    assert phone.send("POST", "/arm", {"delay_s": "0", "csrf_token": phone.csrf}).status == 302
    assert Client(web.port).login(PASSWORD).status == 401
    assert Client(web.port).login(NEW).status == 302
    entries = json.loads(Client(web.port).send("GET", "/api/v1/audit", headers=bearer).body)
    changes = [e for e in entries["entries"] if e["action"] == "password_change"]
    assert len(changes) == 2  # `homesec passwd` at set-up, then the web form
    assert re.search(r"web UI; 1 other session\(s\) ended", changes[0]["detail"])
