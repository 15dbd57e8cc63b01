"""Login, sessions, CSRF, bearer tokens, rate limiting, trusted networks, security headers."""

from __future__ import annotations

import os
import socket
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from homesec.config import Config
from homesec.config_schema import as_dict
from homesec.storage.store import Store
from homesec.web import accounts, create_app
from homesec.web.security import SECRET_NAME

from .conftest import PASSWORD, Browser, csrf_from, make_config

API_GETS = ["/api/v1/status", "/api/v1/events", "/api/v1/events/1", "/api/v1/events/1/snapshot.jpg",
            "/api/v1/events/1/thumb.jpg", "/api/v1/live.jpg", "/api/v1/live.mjpg",
            "/api/v1/openapi.json", "/api/v1/events/1/clip.mp4"]
API_WRITES = [("POST", "/api/v1/arm"), ("POST", "/api/v1/disarm"), ("DELETE", "/api/v1/events/1")]
PAGES = ["/", "/events/1", "/tokens", "/history"]
PAGE_WRITES = ["/arm", "/disarm", "/events/1/delete", "/tokens", "/tokens/1/revoke"]


@pytest.mark.parametrize("path", API_GETS)
def test_api_needs_auth(client: FlaskClient, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 401
    assert resp.is_json and "error" in resp.json
    assert "Bearer" in resp.headers["WWW-Authenticate"]


@pytest.mark.parametrize(("method", "path"), API_WRITES)
def test_api_writes_need_auth(client: FlaskClient, store: Store, method: str, path: str) -> None:
    resp = client.open(path, method=method, json={})
    assert resp.status_code == 401
    assert store.arm_status().state == "disarmed"


@pytest.mark.parametrize("path", PAGES)
def test_pages_redirect_to_login(client: FlaskClient, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("path", PAGE_WRITES)
def test_page_posts_need_auth(client: FlaskClient, store: Store, path: str) -> None:
    page = client.get("/login")
    resp = client.post(path, data={"csrf_token": csrf_from(page.data), "name": "x"})
    assert resp.status_code == 401
    assert store.arm_status().state == "disarmed"
    assert accounts.list_tokens(store) == []


def test_login_and_static_are_public(client: FlaskClient) -> None:
    assert client.get("/login").status_code == 200
    for name in ("app.js", "app.css", "manifest.webmanifest", "icon-192.png", "icon.svg"):
        assert client.get(f"/static/{name}").status_code == 200, name


def test_login_logout(client: FlaskClient) -> None:
    b = Browser(client)
    resp = b.login()
    assert resp.status_code == 302 and resp.headers["Location"] == "/"
    assert client.get("/").status_code == 200
    assert b.api("GET", "/status").status_code == 200
    resp = client.post("/logout", data={"csrf_token": b.csrf})
    assert resp.status_code == 302
    assert client.get("/").status_code == 302
    assert b.api("GET", "/status").status_code == 401


def test_login_redirects_only_to_local_paths(client: FlaskClient) -> None:
    page = client.get("/login")
    for bad in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        resp = client.post("/login", data={"password": PASSWORD, "next": bad,
                                           "csrf_token": csrf_from(page.data)})
        assert resp.headers["Location"] == "/"
        client.post("/logout", data={"csrf_token": csrf_from(client.get("/").data)})
        page = client.get("/login")
    resp = client.post("/login", data={"password": PASSWORD, "next": "/tokens",
                                       "csrf_token": csrf_from(page.data)})
    assert resp.headers["Location"] == "/tokens"


def test_wrong_password_refused(client: FlaskClient) -> None:
    resp = Browser(client).login("wrong password")
    assert resp.status_code == 401
    assert b"Wrong password" in resp.data
    assert client.get("/").status_code == 302


def test_login_without_csrf_refused(client: FlaskClient) -> None:
    client.get("/login")
    resp = client.post("/login", data={"password": PASSWORD})
    assert resp.status_code == 400
    assert client.get("/").status_code == 302


def test_session_cookie_flags(client: FlaskClient, cfg: Config) -> None:
    page = client.get("/login")
    resp = client.post("/login", data={"password": PASSWORD, "csrf_token": csrf_from(page.data)})
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Expires=" in cookie  # a lasting login, not a browser-session cookie
    jar = client.get_cookie("homesec_session")
    assert jar is not None and jar.expires is not None
    import datetime as dt

    days = (jar.expires - dt.datetime.now(dt.UTC)).days
    assert cfg.web.session_days - 1 <= days <= cfg.web.session_days


def test_login_rate_limited(client: FlaskClient, store: Store) -> None:
    for _ in range(accounts.LOGIN_MAX_FAILURES):
        assert Browser(client).login("nope nope nope").status_code == 401
    resp = Browser(client).login(PASSWORD)  # even the right password is refused now
    assert resp.status_code == 429
    assert int(resp.headers["Retry-After"]) > 0
    assert client.get("/").status_code == 302
    rows = store.conn.execute("SELECT COUNT(*) FROM login_failures").fetchone()[0]
    assert rows == accounts.LOGIN_MAX_FAILURES


def test_rate_limit_is_per_client(app, store: Store) -> None:  # type: ignore[no-untyped-def]
    bad = app.test_client()
    for _ in range(accounts.LOGIN_MAX_FAILURES):
        page = bad.get("/login", environ_base={"REMOTE_ADDR": "10.0.0.66"})
        bad.post("/login", data={"password": "x" * 9, "csrf_token": csrf_from(page.data)},
                 environ_base={"REMOTE_ADDR": "10.0.0.66"})
    page = bad.get("/login", environ_base={"REMOTE_ADDR": "10.0.0.66"})
    assert bad.post("/login", data={"password": PASSWORD, "csrf_token": csrf_from(page.data)},
                    environ_base={"REMOTE_ADDR": "10.0.0.66"}).status_code == 429
    good = app.test_client()
    assert Browser(good).login().status_code == 302


def test_rate_limit_counts_single_addresses_not_an_ipv6_prefix(app) -> None:  # type: ignore[no-untyped-def]
    """In a home the whole IPv6 /64 (and fe80::/64) is every device: a guest guessing from one
    address must not lock out the family's phones in the same prefix (issue 11, item 8)."""
    def login(addr: str, password: str) -> int:
        c = app.test_client()
        env = {"REMOTE_ADDR": addr}
        token = csrf_from(c.get("/login", environ_base=env).data)
        return c.post("/login", data={"password": password, "csrf_token": token},
                      environ_base=env).status_code

    for guest in ("2001:db8:1:2::66", "fe80::66"):
        for _ in range(accounts.LOGIN_MAX_FAILURES):
            assert login(guest, "wrong guess!") == 401
        assert login(guest, PASSWORD) == 429
    assert login("2001:db8:1:2:aaaa:bbbb:cccc:dddd", PASSWORD) == 302  # same /64, other device
    assert login("fe80::1", PASSWORD) == 302  # link-local neighbour
    assert login("fe80::66%eth0", PASSWORD) == 429  # the guest with a zone is the same address
    for _ in range(accounts.LOGIN_MAX_FAILURES):
        login("10.9.8.7", "wrong guess!")
    assert login("::ffff:10.9.8.7", PASSWORD) == 429  # the same IPv4 client via a '::' socket


def test_parallel_guesses_do_not_beat_the_rate_limit(app, store: Store) -> None:  # type: ignore[no-untyped-def]
    """Twelve wrong passwords sent at once from one address: only LOGIN_MAX_FAILURES of them are
    checked, the rest are refused (429). Checking them all at once would also mean an argon2id
    hash (tens of MiB each) per request in parallel, more than the web service may use."""
    env = {"REMOTE_ADDR": "10.0.0.77"}
    clients = []
    for _ in range(12):
        c = app.test_client()
        clients.append((c, csrf_from(c.get("/login", environ_base=env).data)))
    barrier = threading.Barrier(len(clients))

    def guess(c: FlaskClient, token: str) -> int:
        barrier.wait()
        return c.post("/login", data={"password": "wrong guess!", "csrf_token": token},
                      environ_base=env).status_code

    with ThreadPoolExecutor(len(clients)) as pool:
        codes = list(pool.map(lambda ct: guess(*ct), clients))
    assert sorted(codes) == [401] * accounts.LOGIN_MAX_FAILURES + \
        [429] * (len(clients) - accounts.LOGIN_MAX_FAILURES), codes
    assert store.conn.execute("SELECT COUNT(*) FROM login_failures").fetchone()[0] == \
        accounts.LOGIN_MAX_FAILURES


def test_success_clears_failures(client: FlaskClient, store: Store) -> None:
    for _ in range(accounts.LOGIN_MAX_FAILURES - 1):
        Browser(client).login("nope nope nope")
    assert Browser(client).login().status_code == 302
    assert store.conn.execute("SELECT COUNT(*) FROM login_failures").fetchone()[0] == 0


def test_new_password_logs_browsers_out(browser: Browser, store: Store) -> None:
    assert browser.api("GET", "/status").status_code == 200
    accounts.set_password(store, "another password")
    assert browser.api("GET", "/status").status_code == 401
    assert browser.c.get("/").status_code == 302


def test_no_password_set_means_no_login(tmp_path: Path) -> None:
    c = create_app(make_config(tmp_path)).test_client()
    page = c.get("/login")
    assert b"homesec passwd" in page.data
    resp = c.post("/login", data={"password": "", "csrf_token": csrf_from(page.data)})
    assert resp.status_code == 401
    assert c.get("/").status_code == 302


# ---- CSRF on state-changing requests ----------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "wrong-token"])
def test_api_write_needs_csrf(browser: Browser, store: Store, header: str | None) -> None:
    headers = {} if header is None else {"X-CSRF-Token": header}
    resp = browser.c.post("/api/v1/arm", json={"delay_s": 0}, headers=headers)
    assert resp.status_code == 400
    assert "CSRF" in resp.json["error"]
    assert store.arm_status().state == "disarmed"
    assert browser.api("POST", "/arm", json={"delay_s": 0}).status_code == 200
    assert store.arm_status().state == "armed"


def test_delete_needs_csrf(browser: Browser, store: Store, add_event) -> None:  # type: ignore[no-untyped-def]
    eid = add_event()
    assert browser.c.delete(f"/api/v1/events/{eid}").status_code == 400
    assert store.event(eid) is not None


@pytest.mark.parametrize("path", PAGE_WRITES)
def test_page_forms_need_csrf(browser: Browser, store: Store, path: str) -> None:
    resp = browser.c.post(path, data={"name": "x", "delay_s": "0"})
    assert resp.status_code == 400
    assert store.arm_status().state == "disarmed"
    assert accounts.list_tokens(store) == []


def test_logout_needs_csrf(browser: Browser) -> None:
    assert browser.c.post("/logout").status_code == 400
    assert browser.c.get("/").status_code == 200


def test_logout_is_post_only(browser: Browser) -> None:
    assert browser.c.get("/logout").status_code == 405
    assert browser.c.get("/").status_code == 200


# ---- bearer tokens -----------------------------------------------------------------------------


def test_token_auth_without_csrf(client: FlaskClient, store: Store, token: str) -> None:
    h = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/status", headers=h).status_code == 200
    resp = client.post("/api/v1/arm", json={"delay_s": 0}, headers=h)
    assert resp.status_code == 200
    st = store.arm_status()
    assert st.state == "armed" and st.changed_by == "token:script"
    assert store.conn.execute("SELECT by FROM arm_log ORDER BY id DESC").fetchone()[0] == \
        "token:script"


@pytest.mark.parametrize("header", ["Bearer hs_notatoken", "Bearer ", "Basic b3duZXI6eA==",
                                    "hs_notatoken", "Bearer " + "x" * 500])
def test_bad_token_refused(client: FlaskClient, store: Store, header: str) -> None:
    resp = client.post("/api/v1/arm", json={"delay_s": 0}, headers={"Authorization": header})
    assert resp.status_code == 401
    assert store.arm_status().state == "disarmed"


def test_bad_token_refused_even_with_session(browser: Browser) -> None:
    resp = browser.api("GET", "/status", headers={"Authorization": "Bearer hs_wrong",
                                                  "X-CSRF-Token": browser.csrf})
    assert resp.status_code == 401


def test_revoked_token_refused(client: FlaskClient, store: Store, token: str) -> None:
    h = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/status", headers=h).status_code == 200
    (info,) = accounts.list_tokens(store)
    assert info.last_used_ts is not None
    accounts.revoke_token(store, info.id)
    assert client.get("/api/v1/status", headers=h).status_code == 401


def test_tokens_stored_hashed(store: Store, token: str) -> None:
    dump = "\n".join(store.conn.iterdump())
    assert token not in dump
    assert token[3:] not in dump


# ---- auth off, trusted networks ---------------------------------------------------------------


def test_trusted_network_skips_login(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path, trust_networks=["192.168.1.0/24"]))
    c = app.test_client()
    assert c.get("/", environ_base={"REMOTE_ADDR": "192.168.1.20"}).status_code == 200
    assert c.get("/", environ_base={"REMOTE_ADDR": "::ffff:192.168.1.20"}).status_code == 200
    assert c.get("/", environ_base={"REMOTE_ADDR": "192.168.2.20"}).status_code == 302
    assert c.get("/").status_code == 302  # 127.0.0.1 is not trusted unless listed
    # still no cross-site writes: the CSRF token is required
    resp = c.post("/api/v1/arm", json={}, environ_base={"REMOTE_ADDR": "192.168.1.20"})
    assert resp.status_code == 400


def test_trusted_network_needs_a_host_name_of_the_appliance(tmp_path: Path) -> None:
    """DNS rebinding: a page from evil.example whose name now points at the appliance runs in a
    phone of the trusted network. Its requests name evil.example and must not skip the login."""
    cfg = make_config(tmp_path, trust_networks=["192.168.1.0/24"])
    store = Store(cfg.paths.db_path)
    accounts.set_password(store, PASSWORD)
    store.close()
    app = create_app(cfg)
    c = app.test_client()
    env = {"REMOTE_ADDR": "192.168.1.20"}
    for ok in ("http://192.168.1.5:8080", "http://[fd00::5]:8080", "http://homesec.local:8080",
               "http://HomeSec.local.:8080", f"http://{socket.gethostname()}:8080"):
        assert c.get("/", base_url=ok, environ_base=env).status_code == 200, ok
    evil = "http://evil.example:8080"
    assert c.get("/", base_url=evil, environ_base=env).status_code == 302
    assert c.get("/api/v1/status", base_url=evil, environ_base=env).status_code == 401
    b = Browser(app.test_client())  # the owner can still log in under any name
    page = b.c.get("/login", base_url=evil, environ_base=env)
    assert b.c.post("/login", base_url=evil, environ_base=env, data={
        "password": PASSWORD, "csrf_token": csrf_from(page.data)}).status_code == 302


def test_auth_off_still_refuses_foreign_host_names(tmp_path: Path) -> None:
    """auth = false is meant for the home LAN, not for any web page a phone in it opens."""
    c = create_app(make_config(tmp_path, auth=False)).test_client()
    assert c.get("/", base_url="http://192.168.1.5:8080").status_code == 200
    assert c.get("/", base_url="http://homesec.local:8080").status_code == 200
    assert c.get("/", base_url="http://evil.example:8080").status_code == 302
    assert c.get("/api/v1/status", base_url="http://evil.example:8080").status_code == 401


def test_trust_networks_validated(tmp_path: Path) -> None:
    from homesec.config import ConfigError

    with pytest.raises(ConfigError, match="CIDR"):
        make_config(tmp_path, trust_networks=["192.168.1.0/33"])


def test_auth_off(tmp_path: Path) -> None:
    c = create_app(make_config(tmp_path, auth=False)).test_client()
    home = c.get("/")
    assert home.status_code == 200
    assert c.post("/api/v1/arm", json={"delay_s": 0}).status_code == 400  # CSRF still required
    resp = c.post("/api/v1/arm", json={"delay_s": 0},
                  headers={"X-CSRF-Token": csrf_from(home.data)})
    assert resp.status_code == 200 and resp.json["state"] == "armed"


# ---- headers, secret key ----------------------------------------------------------------------


def test_security_headers(browser: Browser) -> None:
    for path in ("/", "/tokens", "/api/v1/status", "/login"):
        h = browser.c.get(path).headers
        csp = h["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert h["X-Frame-Options"] == "DENY"
        assert h["Cache-Control"] == "no-store"
        assert h["X-Content-Type-Options"] == "nosniff"


def test_no_inline_scripts_or_styles(browser: Browser, add_event) -> None:  # type: ignore[no-untyped-def]
    import re

    eid = add_event()
    for path in ("/", f"/events/{eid}", "/tokens", "/login"):
        html = browser.c.get(path).data.decode()
        for tag in re.findall(r"<script[^>]*>", html):
            assert "src=" in tag, f"inline script on {path}"
        assert "<style" not in html and " style=" not in html and " onclick=" not in html


def test_no_external_assets(browser: Browser) -> None:
    import re

    html = browser.c.get("/").data.decode()
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert url.startswith("/"), url
    css = browser.c.get("/static/app.css").data.decode()
    assert "http" not in css and "@import" not in css


def test_secret_key_file(cfg: Config) -> None:
    key_path = cfg.paths.state_dir / SECRET_NAME
    a1 = create_app(cfg)
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    a2 = create_app(cfg)  # a second worker or a restart: same key, so cookies stay valid
    assert a1.secret_key == a2.secret_key
    assert len(a1.secret_key) >= 32
    assert str(a1.secret_key) not in repr(as_dict(cfg))


def test_create_app_reads_config_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What gunicorn runs: `homesec.web:create_app()` with the config from $HOMESEC_CONFIG."""
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text(f'[paths]\nstate_dir = "{tmp_path / "s"}"\nruntime_dir = "{tmp_path / "r"}"\n'
                        "[alarm]\nexit_delay_s = 7\n[web]\nauth = false\n")
    monkeypatch.setenv("HOMESEC_CONFIG", str(cfg_file))
    c = create_app().test_client()
    assert c.get("/api/v1/status").json["exit_delay_s"] == 7
    assert (tmp_path / "s" / SECRET_NAME).exists()
