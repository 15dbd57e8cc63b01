"""The web while the database cannot be written (its files and directory immutable, its disk
full, or its write lock held by another program beyond the busy timeout): reads keep working (a
token's last-used time is best effort); every route that writes answers 503, JSON under /api/ and
an error page elsewhere, never 500, and nothing in the database or the media dir changes."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

import homesec.storage.store as store_mod
from homesec.capture.snapshot import save_snapshot
from homesec.config import Config
from homesec.config_schema import replace
from homesec.storage.store import Store
from homesec.web import accounts, create_app, sessions
from tests.fault_support import db_fault_paths, fill, immutable, small_filesystem

from .conftest import PASSWORD, Browser, make_config
from .web_only import Client, Web, start_web, stop_web


def test_token_reads_work_while_the_database_is_not_writable(
        client: FlaskClient, cfg: Config, store: Store, token: str, add_event) -> None:  # type: ignore[no-untyped-def]
    eid = add_event()
    h = {"Authorization": f"Bearer {token}"}
    (before,) = accounts.list_tokens(store)
    assert before.last_used_ts is None  # so the request below wants to record its use
    with immutable(db_fault_paths(cfg.paths.db_path)):
        status = client.get("/api/v1/status", headers=h)
        assert status.status_code == 200, status.get_data(as_text=True)
        assert status.get_json()["arm"]["state"] == "disarmed"
        events = client.get("/api/v1/events", headers=h)
        assert events.status_code == 200
        assert [e["id"] for e in events.get_json()["events"]] == [eid]
        assert client.get("/api/v1/status", headers={
            "Authorization": "Bearer hs_wrong"}).status_code == 401  # still checked
    assert client.get("/api/v1/status", headers=h).status_code == 200
    (after,) = accounts.list_tokens(store)
    assert after.last_used_ts is not None  # recorded again once the database takes writes


def test_status_and_home_page_say_since_when_the_database_is_not_writable(
        client: FlaskClient, cfg: Config, token: str) -> None:
    import json
    import time

    run = cfg.paths.runtime_dir
    run.mkdir(parents=True)
    now = time.time()
    since = now - 75
    (run / "status.json").write_text(json.dumps({
        "updated_ts": now, "fps": 5.0, "camera_ok": True, "camera": "Porch",
        "db_ok": False, "db_unwritable_since": since, "db_error": "disk I/O error",
        "events_waiting": 3, "events_refused": 0}))
    h = {"Authorization": f"Bearer {token}"}
    db = client.get("/api/v1/status", headers=h).get_json()["database"]
    assert db == {"ok": False, "unwritable_since": since, "error": "disk I/O error",
                  "waiting": 3, "refused": 0}
    page = client.get("/", headers=h).get_data(as_text=True)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
    assert f"database not writable since {stamp} (3 event records waiting)" in page
    (run / "status.json").write_text(json.dumps({
        "updated_ts": now, "camera_ok": True, "db_ok": True, "db_unwritable_since": None,
        "events_waiting": 0}))
    assert client.get("/api/v1/status", headers=h).get_json()["database"]["ok"] is True
    assert "database not writable" not in client.get("/", headers=h).get_data(as_text=True)


# ---- every route that writes: 503 (JSON or a page), never 500, nothing changed ----------------


@dataclass
class Route:
    """One writing route, how a user's client calls it, and what it answers when it works."""

    method: str
    path: str
    body: dict[str, Any] | None = None  # JSON for the API, the form (plus csrf_token) for pages
    ok: tuple[int, ...] = (200, 302)
    as_token: bool = False  # sent with the bearer token instead of the session cookie


API_WRITES = [
    Route("POST", "/api/v1/arm", {"delay_s": 0}),
    Route("POST", "/api/v1/arm", {"delay_s": 0}, as_token=True),
    Route("POST", "/api/v1/disarm", {}),
    Route("POST", "/api/v1/disarm", {}, as_token=True),
    Route("POST", "/api/v1/snooze", {"duration": "15m"}),
    Route("DELETE", "/api/v1/snooze", {}),
    Route("DELETE", "/api/v1/events/{eid}", {}),
    Route("DELETE", "/api/v1/events/{eid}", {}, as_token=True),
]
PAGE_WRITES = [
    Route("POST", "/arm", {"delay_s": "0"}),
    Route("POST", "/disarm", {}),
    Route("POST", "/snooze", {"duration": "1h"}),
    Route("POST", "/snooze", {"duration": "resume"}),
    Route("POST", "/events/{eid}/delete", {}),
    Route("POST", "/tokens", {"name": "new phone"}),
    Route("POST", "/tokens/{tid}/revoke", {}),
    Route("POST", "/sessions/{other}/revoke", {}),
    Route("POST", "/logout/everywhere", {}),
    Route("POST", "/logout", {}),
    Route("POST", "/login", {"password": PASSWORD}),
    Route("POST", "/password", {"current_password": PASSWORD, "new_password": "a new secret 2",
                                "new_password2": "a new secret 2"}),
]
FAULTS = ["immutable", "disk full", "locked"]
# What the JSON answer names as the cause (SQLite says "readonly" or "disk I/O error" for an
# immutable file, depending on which file refuses first).
CAUSES = {"immutable": {"read-only", "I/O error"}, "disk full": {"disk full"},
          "locked": {"locked"}}


@dataclass
class World:
    """An armed house with one finished event (files on disk), a token, a second logged-in
    device and this browser's fresh login session."""

    cfg: Config
    app: Flask
    store: Store
    browser: Browser
    token: str
    ids: dict[str, int]


def _world(cfg: Config) -> World:
    store = Store(cfg.paths.db_path)  # held open, as the daemon does: the -wal file stays
    accounts.set_password(store, PASSWORD)
    token = accounts.create_token(store, "script")[1]
    app = create_app(cfg)
    other = Browser(app.test_client())
    assert other.login().status_code == 302
    browser = Browser(app.test_client())
    assert browser.login().status_code == 302
    eid = _finished_event(cfg, store)
    store.arm("test", delay_s=0)
    (other_session, _) = sorted(s.id for s in sessions.list_active(store))
    (tid,) = [t.id for t in accounts.list_tokens(store)]
    return World(cfg, app, store, browser, token,
                 {"eid": eid, "tid": tid, "other": other_session})


def _finished_event(cfg: Config, store: Store) -> int:
    ts = time.time() - 60
    img = np.full((360, 640, 3), 90, np.uint8)
    cfg.paths.media.mkdir(parents=True, exist_ok=True)
    snap, thumb = save_snapshot(cfg.paths.media, "ev1", img, [(200, 100, 60, 100)], ts, "Test",
                                85, 160)
    eid, _ = store.add_event("Test", ts, 2.6, [[200, 100, 60, 100]], [200, 100, 60, 100], snap,
                             thumb, 5)
    store.finish_event(eid, ts + 3, 2.6, [[200, 100, 60, 100]], [200, 100, 60, 100], snap,
                       thumb, 9)
    return eid


@pytest.fixture(params=FAULTS)
def fault(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Which fault; for "disk full" the state dir is a small tmpfs of its own."""
    if request.param == "disk full":
        with small_filesystem(tmp_path / "state"):
            yield request.param
    else:
        yield request.param


@pytest.fixture
def world(fault: str, tmp_path: Path) -> Iterator[World]:
    cfg = make_config(tmp_path)
    cfg = replace(cfg, paths=replace(cfg.paths, media_dir=tmp_path / "media"))  # media off the
    # small file system
    w = _world(cfg)
    yield w
    w.store.close()


@contextlib.contextmanager
def unwritable(kind: str, w: World) -> Iterator[None]:
    """The database cannot be written for the block; checks that the fault is real."""
    db = w.cfg.paths.db_path
    if kind == "immutable":
        with immutable(db_fault_paths(db)):
            _assert_refuses_writes(w.store)
            yield
    elif kind == "disk full":
        w.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # a write must grow the WAL
        filler = fill(w.cfg.paths.state_dir)
        try:
            _assert_refuses_writes(w.store)
            yield
        finally:
            filler.unlink()
    else:  # another program holds the write lock longer than the web's busy timeout
        blocker = Store(db)
        blocker.conn.execute("BEGIN IMMEDIATE")
        real = store_mod.connect
        try:
            with pytest.MonkeyPatch.context() as mp:  # 0.2 s instead of the 10 s busy wait
                mp.setattr(store_mod, "connect", lambda path, timeout_s=10.0: real(path, 0.2))
                w.store.conn.execute("PRAGMA busy_timeout=0")
                _assert_refuses_writes(w.store)
                yield
        finally:
            blocker.conn.execute("ROLLBACK")
            blocker.close()
            w.store.conn.execute("PRAGMA busy_timeout=10000")


def _assert_refuses_writes(store: Store) -> None:
    with pytest.raises(sqlite3.OperationalError), store.transaction() as c:
        c.execute("INSERT INTO request_hits (bucket, client, ts) VALUES ('probe', 'x', 0)")


def db_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, every column."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall() for t in tables}
    finally:
        conn.close()


def media_files(media: Path) -> dict[str, int]:
    return {str(p.relative_to(media)): p.stat().st_size for p in media.rglob("*") if p.is_file()}


def _send(w: World, route: Route) -> Any:
    path = route.path.format(**w.ids)
    if route.path.startswith("/api/"):
        if route.as_token:
            return w.app.test_client().open(path, method=route.method, json=route.body,
                                            headers={"Authorization": f"Bearer {w.token}"})
        return w.browser.c.open(path, method=route.method, json=route.body,
                                headers={"X-CSRF-Token": w.browser.csrf})
    return w.browser.c.open(path, method=route.method,
                            data={**(route.body or {}), "csrf_token": w.browser.csrf})


def _route_id(r: Route) -> str:
    return f"{r.method} {r.path}{' token' if r.as_token else ''}"


@pytest.mark.parametrize("route", API_WRITES, ids=_route_id)
def test_api_write_answers_503_json_and_changes_nothing(world: World, fault: str,
                                                        route: Route) -> None:
    before, files = db_rows(world.cfg.paths.db_path), media_files(world.cfg.paths.media)
    with unwritable(fault, world):
        resp = _send(world, route)
    assert resp.status_code == 503, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["status"] == 503 and "database is not writable" in body["error"]
    assert "nothing was changed" in body["error"]
    assert body["cause"] in CAUSES[fault]
    assert int(resp.headers["Retry-After"]) > 0
    assert db_rows(world.cfg.paths.db_path) == before
    assert media_files(world.cfg.paths.media) == files
    again = _send(world, route)  # the same request works once the database takes writes
    assert again.status_code in route.ok, again.get_data(as_text=True)
    assert db_rows(world.cfg.paths.db_path) != before


@pytest.mark.parametrize("route", PAGE_WRITES, ids=_route_id)
def test_page_write_answers_a_503_page_and_changes_nothing(world: World, fault: str,
                                                           route: Route) -> None:
    before, files = db_rows(world.cfg.paths.db_path), media_files(world.cfg.paths.media)
    with unwritable(fault, world):
        resp = _send(world, route)
    assert resp.status_code == 503, resp.get_data(as_text=True)
    assert resp.mimetype == "text/html"
    text = resp.get_data(as_text=True)
    assert "cannot be written" in text or "database is not writable" in text, text
    assert "Internal Server Error" not in text
    assert int(resp.headers["Retry-After"]) > 0
    assert db_rows(world.cfg.paths.db_path) == before
    assert media_files(world.cfg.paths.media) == files
    again = _send(world, route)
    assert again.status_code in route.ok, again.get_data(as_text=True)
    assert db_rows(world.cfg.paths.db_path) != before


def test_every_writing_route_is_covered(app: Flask) -> None:
    """A new POST/DELETE route must be added to the lists above (fails until it is)."""
    covered = {(r.method, re.sub(r"\{\w+\}", "<id>", r.path)) for r in API_WRITES + PAGE_WRITES}
    for rule in app.url_map.iter_rules():
        for method in (rule.methods or set()) & {"POST", "DELETE", "PUT", "PATCH"}:
            path = re.sub(r"<int:\w+>", "<id>", rule.rule)
            assert (method, path) in covered, f"{method} {rule.rule} is not tested unwritable"


@pytest.mark.parametrize("fault", ["immutable"], indirect=True)
def test_reads_keep_working_while_writes_are_refused(world: World, fault: str) -> None:
    """Pages and API reads need no write: they answer 200 under the same fault."""
    h = {"Authorization": f"Bearer {world.token}"}
    eid = world.ids["eid"]
    with unwritable(fault, world):
        for path in ("/", "/history", f"/events/{eid}", "/tokens", "/audit"):
            assert world.browser.c.get(path).status_code == 200, path
        for path in ("/api/v1/status", "/api/v1/events", f"/api/v1/events/{eid}",
                     f"/api/v1/events/{eid}/thumb.jpg", "/api/v1/audit"):
            assert world.app.test_client().get(path, headers=h).status_code == 200, path
            assert world.browser.c.get(path).status_code == 200, path


def _no_open_connection(cfg: Config) -> None:
    """Every connection is closed: SQLite has removed the -wal and -shm files."""
    wal = cfg.paths.db_path.with_name(cfg.paths.db_path.name + "-wal")
    assert not wal.exists(), "a connection is still open"


def _refused_unchecked(app: Flask, browser: Browser, token: str) -> None:
    """Neither the session cookie nor the token gets a page, an answer or a change."""
    page = browser.c.get("/")
    assert page.status_code == 503 and page.mimetype == "text/html"
    assert "database cannot be read" in page.get_data(as_text=True), page.get_data(as_text=True)[-600:]
    for headers in ({}, {"Authorization": f"Bearer {token}"}):
        c = browser.c if not headers else app.test_client()
        got = c.get("/api/v1/status", headers=headers)
        assert got.status_code == 503, got.get_data(as_text=True)
        assert "database cannot be read" in got.get_json()["error"]
        posted = c.post("/api/v1/disarm", json={}, headers={**headers,
                                                           "X-CSRF-Token": browser.csrf})
        assert posted.status_code == 503 and "not writable" in posted.get_json()["error"]


def test_session_that_cannot_be_checked_is_not_let_through(
        app: Flask, cfg: Config, browser: Browser) -> None:
    """No -wal file and an immutable directory: SQLite cannot open the database at all, so
    the session cannot be validated; the request is refused with 503, not served."""
    s = Store(cfg.paths.db_path)
    token = accounts.create_token(s, "script")[1]
    s.close()
    _no_open_connection(cfg)
    with immutable([cfg.paths.db_path, cfg.paths.db_path.parent]):
        _refused_unchecked(app, browser, token)
    assert browser.c.get("/").status_code == 200  # the same session, once it can be checked


def test_damaged_database_is_503_not_500(app: Flask, cfg: Config, browser: Browser) -> None:
    s = Store(cfg.paths.db_path)
    token = accounts.create_token(s, "script")[1]
    s.close()
    _no_open_connection(cfg)
    saved = cfg.paths.db_path.read_bytes()
    cfg.paths.db_path.write_bytes(b"this is not a database file" * 200)
    try:
        _refused_unchecked(app, browser, token)
    finally:
        cfg.paths.db_path.write_bytes(saved)
    assert browser.c.get("/").status_code == 200


def test_other_sqlite_errors_stay_500(app: Flask, browser: Browser,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug (here a missing table) is not dressed up as a database outage."""
    from homesec.web import api

    def broken(*_a: Any, **_k: Any) -> Any:
        raise sqlite3.OperationalError("no such table: nowhere")

    monkeypatch.setattr(api, "status", broken)
    resp = browser.api("GET", "/status")
    assert resp.status_code == 500 and resp.get_json()["status"] == 500


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    """A gunicorn of its own (no daemon) on this test's state dir."""
    w = start_web(tmp_path)
    yield w
    stop_web(w)


def test_under_gunicorn_writes_answer_503_and_reads_work(web: Web) -> None:
    """The same with the real server: two worker processes, real HTTP."""
    import json

    store = Store(web.cfg.paths.db_path)  # held open, as the daemon does
    try:
        phone = Client(web.port)
        assert phone.login().status == 302
        bearer = {"Authorization": f"Bearer {web.token}"}
        before = db_rows(web.cfg.paths.db_path)
        with immutable(db_fault_paths(web.cfg.paths.db_path)):
            for _ in range(4):  # whichever worker answers
                api = Client(web.port).send("POST", "/api/v1/arm", headers=bearer,
                                            json_body=b'{"delay_s": 0}')
                assert api.status == 503, api.body
                assert api.headers["content-type"] == "application/json"
                assert "not writable" in json.loads(api.body)["error"]
                assert int(api.headers["retry-after"]) > 0
                page = phone.send("POST", "/arm", {"delay_s": "0", "csrf_token": phone.csrf})
                assert page.status == 503 and "Nothing was changed" in page.body, page.body
                assert "text/html" in page.headers["content-type"]
                status = Client(web.port).send("GET", "/api/v1/status", headers=bearer)
                assert status.status == 200
                assert json.loads(status.body)["arm"]["state"] == "disarmed"
                assert phone.send("GET", "/").status == 200
        assert db_rows(web.cfg.paths.db_path) == before
        assert "Traceback" not in web.log.read_text(errors="replace")
        assert phone.send("POST", "/arm", {"delay_s": "0", "csrf_token": phone.csrf}).status == 302
        assert store.arm_status().state == "armed"
    finally:
        store.close()


def test_openapi_documents_the_503_of_every_api_write() -> None:
    import json

    from homesec.web import db_errors

    spec = json.loads((Path(__file__).parents[2] / "homesec/web/openapi.json").read_text())
    for route in API_WRITES:
        path = route.path.removeprefix("/api/v1").replace("{eid}", "{event_id}")
        assert "503" in spec["paths"][path][route.method.lower()]["responses"], route.path
    enum = spec["components"]["schemas"]["Error"]["properties"]["cause"]["enum"]
    assert set(enum) == set(db_errors.EXPLAIN) == set(db_errors.CAUSES.values())
