"""Every /api/v1 route against bad input, in one parametrized test (issue 11, "Tests").

Each case must answer 4xx with a JSON error body and change nothing: the database (every table,
compared row by row; only last-seen/last-used times may move) and the media dir (every file by
name, size and content) are the same before and after. The inputs: no or bad credentials, stolen
or forged cookies, missing CSRF, an unusable Host header, wrong methods, ids that are not ASCII
row ids, query parameters out of range, and bodies that are nested too deep, not JSON, not an
object, of the wrong type, too big, with unknown keys, NaN, huge numbers, or sent as another
content type. The routes come from the app itself: a new route that is not listed here fails
test_every_api_route_is_fuzzed until it is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from homesec.capture.snapshot import save_snapshot
from homesec.config import Config
from homesec.storage.store import Store
from homesec.web import accounts, create_app

from .conftest import PASSWORD, Browser, csrf_from, make_config

# (method, path under /api/v1); {event_id} is a finished event with snapshot files
ROUTES = [
    ("GET", "/status"), ("POST", "/arm"), ("POST", "/disarm"), ("GET", "/events"),
    ("GET", "/events/{event_id}"), ("DELETE", "/events/{event_id}"),
    ("GET", "/events/{event_id}/snapshot.jpg"), ("GET", "/events/{event_id}/thumb.jpg"),
    ("GET", "/live.jpg"), ("GET", "/live.mjpg"), ("GET", "/openapi.json"),
]
# Columns that a refused request may still touch (best-effort bookkeeping, not state).
VOLATILE_COLUMNS = {"last_seen_ts", "last_used_ts"}
# Tables that record refused requests on purpose (an audit log of failed attempts).
LOG_TABLE_PREFIXES = ("audit",)

BAD_TOKENS = {
    "no-credentials": None,
    "unknown-token": "Bearer hs_" + "A" * 43,
    "revoked-token": "REVOKED",
    "token-plus-a-char": "VALIDx",
    "token-uppercased": "VALID_UPPER",
    "not-bearer": "Basic b3duZXI6eA==",
    "bearer-no-space": "Bearerhs_x",
    "bearer-tab": "Bearer\ths_x",
    "empty-bearer": "Bearer ",
    "huge-token": "Bearer hs_" + "A" * 20000,
    "non-ascii-token": "Bearer hs_\u00e9\u00e9",
    "sql-in-token": "Bearer hs_' OR 1=1 --",
}
BAD_IDS = {
    "arabic-indic-digit": "%D9%A2", "fullwidth-digit": "%EF%BC%91", "zero": "0", "negative": "-1",
    "beyond-int64": str(2**64), "30-digits": "9" * 30, "5000-digits": "9" * 5000,
    "decimal": "1.5", "exponent": "1e3", "hex": "0x1", "plus": "+1", "letters": "abc",
    "nul": "%00", "space": "%201", "slash": "1%2F2", "no-such-event": "987654",
}
BAD_QUERIES = {
    "limit-letters": {"limit": "abc"}, "limit-zero": {"limit": "0"},
    "limit-negative": {"limit": "-1"}, "limit-huge": {"limit": "9" * 30},
    "limit-5000-digits": {"limit": "9" * 5000}, "limit-nan": {"limit": "NaN"},
    "limit-float": {"limit": "1.5"}, "limit-arabic-digit": {"limit": "\u0662"},
    "limit-underscore": {"limit": "1_0"}, "limit-spaces": {"limit": " 5 "},
    "before-huge": {"before": str(2**63)}, "before-zero": {"before": "0"},
    "before-fullwidth": {"before": "\uff11"},
}
JSON = "application/json"
BAD_BODIES: dict[str, tuple[bytes, str]] = {
    "nested-arrays": (b"[" * 15000, JSON),
    "nested-objects": (b'{"a":' * 5000, JSON),
    "nan-literal": (b'{"delay_s": NaN}', JSON),
    "infinity-literal": (b'{"delay_s": Infinity}', JSON),
    "overflow-to-inf": (b'{"delay_s": 1e309}', JSON),
    "huge-number": (b'{"delay_s": 1e100}', JSON),
    "huge-int": (b'{"delay_s": ' + b"9" * 5000 + b"}", JSON),
    "negative": (b'{"delay_s": -1}', JSON),
    "too-long": (b'{"delay_s": 3601}', JSON),
    "string-number": (b'{"delay_s": "5"}', JSON),
    "bool": (b'{"delay_s": true}', JSON),
    "list-value": (b'{"delay_s": [5]}', JSON),
    "object-value": (b'{"delay_s": {"s": 5}}', JSON),
    "unknown-key": (b'{"delay_s": 5, "armed": true}', JSON),
    "only-unknown-key": (b'{"state": "armed"}', JSON),
    "duplicate-key-last-bad": (b'{"delay_s": 5, "delay_s": "x"}', JSON),
    "array": (b"[]", JSON),
    "null": (b"null", JSON),
    "string": (b'"arm"', JSON),
    "number": (b"5", JSON),
    "truncated": (b'{"delay_s": 5', JSON),
    "trailing-garbage": (b'{"delay_s": 5} x', JSON),
    "invalid-utf8": (b'{"delay_s": "\xff\xfe"}', JSON),
    "lone-surrogate": (b'{"delay_s": 5, "\\ud800": 1}', JSON),
    "too-big": (b'{"delay_s": 5, "pad": "' + b"x" * 20000 + b'"}', JSON),
    "json-as-text-plain": (b'{"delay_s": 5}', "text/plain"),
    "json-as-form": (b'{"delay_s": 5}', "application/x-www-form-urlencoded"),
    "form-body": (b"delay_s=5", "application/x-www-form-urlencoded"),
    "multipart": (b"--b\r\nContent-Disposition: form-data; name=\"delay_s\"\r\n\r\n5\r\n--b--\r\n",
                  "multipart/form-data; boundary=b"),
    "no-content-type": (b'{"delay_s": 5}', ""),
}
CSRF_ATTACKS = {"session-without-csrf": None, "session-wrong-csrf": "not-the-token",
                "session-empty-csrf": ""}
COOKIE_ATTACKS = ("copied-cookie-after-logout", "forged-cookie", "cookie-of-another-appliance")


@dataclass
class Case:
    """One bad request against one route."""

    method: str
    route: str
    auth: str = "token"  # "token", a BAD_TOKENS key, a COOKIE_ATTACKS entry, or a CSRF attack
    event_id: str = "{eid}"
    body: tuple[bytes, str] | None = None
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def _cases() -> Iterator[Any]:
    for method, route in ROUTES:
        rid = f"{method} {route}"
        for name in BAD_TOKENS:
            yield pytest.param(Case(method, route, auth=name), id=f"{rid} [{name}]")
        for name in COOKIE_ATTACKS:
            yield pytest.param(Case(method, route, auth=name), id=f"{rid} [{name}]")
        yield pytest.param(Case(method, route, headers={"Host": "h" * 300}),
                           id=f"{rid} [host-300-chars]")
        yield pytest.param(Case(method, route, headers={"Host": "a" * 64 + ".local"}),
                           id=f"{rid} [host-label-64]")
        for wrong in ("PUT", "PATCH", "POST" if method != "POST" else "GET"):
            if not (wrong == "POST" and route == "/events/{event_id}"):
                yield pytest.param(Case(wrong, route), id=f"{rid} [method-{wrong}]")
        if "{event_id}" in route:
            for name, value in BAD_IDS.items():
                yield pytest.param(Case(method, route, event_id=value), id=f"{rid} [id-{name}]")
        if route == "/events":
            for name, query in BAD_QUERIES.items():
                yield pytest.param(Case(method, route, query=query), id=f"{rid} [{name}]")
        if method in ("POST", "DELETE"):
            for name, body in BAD_BODIES.items():  # none of them is a body any route accepts
                yield pytest.param(Case(method, route, body=body), id=f"{rid} [body-{name}]")
            for name in CSRF_ATTACKS:
                yield pytest.param(Case(method, route, auth=name), id=f"{rid} [{name}]")


@dataclass
class World:
    """One appliance state shared by every case (each case must leave it as it found it)."""

    cfg: Config
    app: Flask
    eid: int
    token: str
    revoked: str
    stale_cookie: str
    foreign_cookie: str
    session_cookie: str
    session_csrf: str


def _event(cfg: Config, store: Store, ts: float) -> int:
    img = np.full((360, 640, 3), 90, np.uint8)
    img[100:200, 200:260] = 220
    cfg.paths.media.mkdir(parents=True, exist_ok=True)
    snap, thumb = save_snapshot(cfg.paths.media, f"ev{int(ts)}", img, [(200, 100, 60, 100)], ts,
                                "Fuzz", 85, 160)
    eid, _ = store.add_event("Fuzz", ts, 2.6, [[200, 100, 60, 100]], [200, 100, 60, 100], snap,
                             thumb, 5)
    store.finish_event(eid, ts + 3, 2.6, [[200, 100, 60, 100]], [200, 100, 60, 100], snap, thumb, 9)
    return eid


def _logged_in(app: Flask) -> tuple[FlaskClient, str]:
    b = Browser(app.test_client())
    assert b.login().status_code == 302
    return b.c, b.csrf


def _cookie(c: FlaskClient) -> str:
    jar = c.get_cookie("homesec_session")
    assert jar is not None
    return jar.value


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("fuzz")
    cfg = make_config(root)
    store = Store(cfg.paths.db_path)
    accounts.set_password(store, PASSWORD)
    eid = _event(cfg, store, 1_700_000_000)
    _event(cfg, store, 1_700_000_100)
    token = accounts.create_token(store, "fuzz")[1]
    revoked_info, revoked = accounts.create_token(store, "gone")
    accounts.revoke_token(store, revoked_info.id)
    store.close()
    app = create_app(cfg)
    stale, csrf = _logged_in(app)
    stale_cookie = _cookie(stale)
    stale.post("/logout", data={"csrf_token": csrf})
    other_cfg = make_config(root / "other")
    other_store = Store(other_cfg.paths.db_path)
    accounts.set_password(other_store, PASSWORD)
    other_store.close()
    foreign, _ = _logged_in(create_app(other_cfg))
    live, live_csrf = _logged_in(app)
    return World(cfg, app, eid, token, revoked, stale_cookie, _cookie(foreign), _cookie(live),
                 live_csrf)


def db_snapshot(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, without the columns a refused request may touch."""
    store = Store(path)
    try:
        tables = [r[0] for r in store.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        out = {}
        for t in tables:
            if t.startswith(LOG_TABLE_PREFIXES):
                continue
            cur = store.conn.execute(f'SELECT * FROM "{t}" ORDER BY rowid')
            keep = [i for i, d in enumerate(cur.description) if d[0] not in VOLATILE_COLUMNS]
            out[t] = [tuple(row[i] for i in keep) for row in cur.fetchall()]
        return out
    finally:
        store.close()


def media_snapshot(media: Path) -> dict[str, str]:
    """Every file under the media dir: relative name -> size and SHA-256."""
    return {str(p.relative_to(media)): f"{p.stat().st_size}:{hashlib.sha256(p.read_bytes()).hexdigest()}"
            for p in sorted(media.rglob("*")) if p.is_file()}


def _send(world: World, case: Case) -> Any:
    c = world.app.test_client()
    headers: dict[str, str] = dict(case.headers)
    auth = case.auth
    if auth == "token":
        headers["Authorization"] = f"Bearer {world.token}"
    elif auth in BAD_TOKENS:
        value = BAD_TOKENS[auth]
        value = {"REVOKED": f"Bearer {world.revoked}", "VALIDx": f"Bearer {world.token}x",
                 "VALID_UPPER": f"Bearer {world.token.upper()}"}.get(str(value), value)
        if value is not None:
            headers["Authorization"] = value
    elif auth in COOKIE_ATTACKS:
        cookie = {"copied-cookie-after-logout": world.stale_cookie,
                  "forged-cookie": "eyJzaWQiOiJ4In0.AAAAAA.forged",
                  "cookie-of-another-appliance": world.foreign_cookie}[auth]
        c.set_cookie("homesec_session", cookie)
        headers["X-CSRF-Token"] = world.session_csrf
    elif auth in CSRF_ATTACKS:
        c.set_cookie("homesec_session", world.session_cookie)
        if CSRF_ATTACKS[auth] is not None:
            headers["X-CSRF-Token"] = str(CSRF_ATTACKS[auth])
    path = "/api/v1" + case.route.replace("{event_id}", case.event_id.replace(
        "{eid}", str(world.eid)))
    kw: dict[str, Any] = {"method": case.method, "headers": headers, "query_string": case.query}
    if case.body is not None:
        data, ctype = case.body
        kw["data"] = data
        if ctype:
            headers["Content-Type"] = ctype
    elif case.method in ("POST", "DELETE", "PUT", "PATCH"):
        kw["json"] = {}  # the only body these routes accept as harmless; auth must stop them
    return c.open(path, **kw)


@pytest.mark.parametrize("case", list(_cases()))
def test_bad_request_is_4xx_json_and_changes_nothing(world: World, case: Case) -> None:
    db_before = db_snapshot(world.cfg.paths.db_path)
    media_before = media_snapshot(world.cfg.paths.media)
    resp = _send(world, case)
    try:
        assert 400 <= resp.status_code < 500, (resp.status_code, resp.data[:300])
        assert resp.is_json, resp.data[:300]
        assert isinstance(resp.json, dict) and isinstance(resp.json.get("error"), str)
    finally:
        resp.close()
    assert db_snapshot(world.cfg.paths.db_path) == db_before
    assert media_snapshot(world.cfg.paths.media) == media_before


@pytest.mark.parametrize(("method", "route"), ROUTES)
def test_the_same_requests_with_good_input_work(world: World, method: str, route: str) -> None:
    """The control: with a valid token (or session and CSRF token) and no bad input the routes
    answer, so the refusals above are the bad input's doing, not a broken fixture."""
    if method == "DELETE":
        pytest.skip("a good DELETE changes the world the other cases share")
    for auth in ("token", "session"):
        c = world.app.test_client()
        headers = {"Authorization": f"Bearer {world.token}"} if auth == "token" else {
            "X-CSRF-Token": world.session_csrf}
        if auth == "session":
            c.set_cookie("homesec_session", world.session_cookie)
        path = "/api/v1" + route.replace("{event_id}", str(world.eid))
        kw: dict[str, Any] = {"json": {"delay_s": 3600}} if route == "/arm" else {}
        resp = c.open(path, method=method, headers=headers, **kw)
        expected = (200, 503) if route.startswith("/live") else (200,)  # no daemon here
        assert resp.status_code in expected, (auth, resp.status_code, resp.data[:200])
        resp.close()
    store = Store(world.cfg.paths.db_path)
    store.set_arm(False, by="fuzz test reset")  # leave the shared world disarmed
    store.close()


def test_every_api_route_is_fuzzed(world: World) -> None:
    served = set()
    for rule in world.app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = rule.rule.removeprefix("/api/v1").replace("<int:event_id>", "{event_id}")
            served |= {(m, path) for m in rule.methods or () if m not in ("HEAD", "OPTIONS")}
    assert served == set(ROUTES)


def test_openapi_lists_the_same_routes(world: World) -> None:
    spec = json.loads((Path(__file__).parents[2] / "homesec/web/openapi.json").read_text())
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert documented == set(ROUTES)


def test_session_of_the_world_is_live(world: World) -> None:
    c = world.app.test_client()
    c.set_cookie("homesec_session", world.session_cookie)
    assert c.get("/api/v1/status").status_code == 200
    assert csrf_from(c.get("/").data) == world.session_csrf
