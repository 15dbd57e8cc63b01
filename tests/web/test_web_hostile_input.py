"""Inputs from the hostile test of issue 11 (items 11-14) that must be a 4xx, never a 500."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from homesec.storage.store import Store

from .conftest import PASSWORD, Browser, csrf_from


@pytest.fixture
def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(("method", "path"), [("POST", "/api/v1/arm"),
                                              ("POST", "/api/v1/disarm"),
                                              ("DELETE", "/api/v1/events/{eid}")])
@pytest.mark.parametrize("body", ["[" * 15000, '{"a":' * 5000, "[" * 15000 + "]" * 15000],
                         ids=["open-arrays", "open-objects", "balanced"])
def test_deeply_nested_json_is_400(client: FlaskClient, store: Store, bearer: dict[str, str],
                                   add_event: Callable[..., int], method: str, path: str,
                                   body: str) -> None:
    eid = add_event()
    assert len(body) < 16 * 1024 * 2  # under the cap or just over it: 400 or 413, never 500
    resp = client.open(path.format(eid=eid), method=method, data=body,
                       headers={**bearer, "Content-Type": "application/json"})
    assert resp.status_code in (400, 413), resp.data[:200]
    assert resp.is_json and "error" in resp.json
    assert store.arm_status().state == "disarmed"
    assert store.event(eid) is not None


@pytest.mark.parametrize("body", ['{"delay_s": NaN}', '{"delay_s": Infinity}',
                                  '{"delay_s": -Infinity}', "NaN"])
def test_non_json_constants_are_400(client: FlaskClient, store: Store, bearer: dict[str, str],
                                    body: str) -> None:
    resp = client.post("/api/v1/arm", data=body,
                       headers={**bearer, "Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.is_json
    assert store.arm_status().state == "disarmed"


@pytest.mark.parametrize("path", ["/", "/login", "/events/1", "/tokens", "/nowhere",
                                  "/api/v1/status", "/api/v1/events"])
@pytest.mark.parametrize("host", ["a" * 300, "a" * 64 + ".local", "x..y"],
                         ids=["300-chars", "long-label", "empty-label"])
def test_bad_host_header_is_400_with_a_working_error_page(app: Flask, browser: Browser,
                                                          token: str, path: str,
                                                          host: str) -> None:
    for headers in ({}, {"Authorization": f"Bearer {token}"}):
        resp = browser.c.get(path, headers={"Host": host, **headers})
        assert 400 <= resp.status_code < 500, (resp.status_code, resp.data[:300])
        if path.startswith("/api/"):
            assert resp.is_json and "error" in resp.json
        else:
            assert b"<h1>" in resp.data and b"Traceback" not in resp.data
    anon = app.test_client().get(path, headers={"Host": host})
    assert 400 <= anon.status_code < 500


@pytest.mark.parametrize("target", ["/tokens\r\nSet-Cookie: evil=1", "/tokens\nX: y", "/\r",
                                    "/tokens\x00", "/tokens\t", "/\u2028x", "/caf\u00e9"])
def test_next_with_control_characters_goes_home(client: FlaskClient, target: str) -> None:
    page = client.get("/login", query_string={"next": target})
    assert page.status_code == 200
    assert target.encode() not in page.data
    resp = client.post("/login", data={"password": PASSWORD, "next": target,
                                       "csrf_token": csrf_from(page.data)})
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/"
    assert "evil" not in resp.headers.get("Set-Cookie", "")
    assert client.get("/").status_code == 200


@pytest.mark.parametrize("digits", ["%D9%A2", "%EF%BC%92", "%E0%A5%A8", "2%D9%A0", "%F0%9D%9F%90"],
                         ids=["arabic-indic-2", "fullwidth-2", "devanagari-2", "2-arabic-0",
                              "math-bold-2"])
def test_event_ids_are_ascii_digits_only(browser: Browser, store: Store, bearer: dict[str, str],
                                         add_event: Callable[..., int], digits: str) -> None:
    ids = [add_event(ts=1_700_000_000 + i) for i in range(20)]
    assert 2 in ids and 20 in ids
    c = browser.c
    for path in (f"/api/v1/events/{digits}", f"/api/v1/events/{digits}/snapshot.jpg",
                 f"/api/v1/events/{digits}/thumb.jpg"):
        resp = c.get(path, headers=bearer)
        assert resp.status_code in (400, 404), path
        assert resp.is_json
    resp = c.delete(f"/api/v1/events/{digits}", headers=bearer)
    assert resp.status_code in (400, 404) and resp.is_json
    assert c.get(f"/events/{digits}").status_code in (400, 404)
    resp = c.post(f"/events/{digits}/delete", data={"csrf_token": browser.csrf})
    assert resp.status_code in (400, 404)
    assert [e.id for e in store.events(limit=100)] == sorted(ids, reverse=True)
    assert c.get("/api/v1/events/2", headers=bearer).status_code == 200  # ASCII still works
