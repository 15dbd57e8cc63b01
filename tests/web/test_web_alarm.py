"""The alarm in the web UI and API: snooze, the audit log (each action once, with who and where;
paged), the arm/disarm rate limit, arming while capture is not running, a killed daemon."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from homesec.storage import audit
from homesec.storage.store import Store
from homesec.web import create_app
from homesec.web.overview import arm_json
from tests.web.conftest import PASSWORD, Browser, csrf_from, make_config, start_system, stop_system


def test_arm_json_for_pending_and_triggered() -> None:
    from homesec.storage.store import ArmStatus

    pending = ArmStatus("pending", deadline_ts=1030.0, changed_ts=1000.0, changed_by="motion",
                        armed_ts=900.0, event_id=4)
    j = arm_json(pending, now=1010.0)
    assert j["state"] == "pending" and j["armed"] and j["remaining_s"] == 20.0
    assert j["delay_s"] == 30.0 and j["event_id"] == 4
    assert arm_json(pending, now=1030.0)["state"] == "triggered"
    snoozed = ArmStatus("armed", None, 1000.0, "owner", armed_ts=1000.0,
                        snooze_until=float("inf"))
    j = arm_json(snoozed, now=1001.0)
    assert j["snoozed"] and j["snooze_until"] is None and j["snooze_until_disarmed"]


def test_snooze_from_the_api(browser: Browser, store: Store) -> None:
    assert browser.api("POST", "/snooze", json={"duration": "15m"}).status_code == 409
    browser.api("POST", "/arm", json={"delay_s": 0})
    t = time.time()
    j = browser.api("POST", "/snooze", json={"duration": "15m"}).json
    assert j["state"] == "armed" and j["snoozed"] and abs(j["snooze_until"] - (t + 900)) < 5
    j = browser.api("POST", "/snooze", json={"duration": "1h"}).json
    assert abs(j["snooze_until"] - (t + 3600)) < 5
    j = browser.api("POST", "/snooze", json={"duration": "until_disarmed"}).json
    assert j["snoozed"] and j["snooze_until_disarmed"] and j["snooze_until"] is None
    st = browser.api("GET", "/status").json["arm"]
    assert st["snooze_until_disarmed"]
    j = browser.api("DELETE", "/snooze").json
    assert not j["snoozed"] and j["state"] == "armed"
    browser.api("POST", "/snooze", json={"duration": "until_disarmed"})
    assert browser.api("POST", "/disarm").json["snoozed"] is False


@pytest.mark.parametrize("body", ['{"duration": "2h"}', '{"duration": 15}', "{}",
                                  '{"duration": "15m", "x": 1}', "[]", "nope"])
def test_snooze_bad_body_changes_nothing(browser: Browser, store: Store, body: str) -> None:
    browser.api("POST", "/arm", json={"delay_s": 0})
    before = store.arm_status()
    n = len(audit.page(store, limit=200))
    resp = browser.api("POST", "/snooze", data=body, content_type="application/json")
    assert resp.status_code == 400 and resp.is_json and resp.json["error"]
    assert store.arm_status() == before and len(audit.page(store, limit=200)) == n


def test_snooze_buttons_on_the_home_page(browser: Browser, store: Store) -> None:
    page = browser.c.get("/").data.decode()
    assert 'id="snooze-form"' in page and re.search(r'id="snooze-form"[^>]*\bhidden', page)
    browser.api("POST", "/arm", json={"delay_s": 0})
    page = browser.c.get("/").data.decode()
    assert not re.search(r'id="snooze-form"[^>]*\bhidden', page)
    resp = browser.c.post("/snooze", data={"duration": "1h", "csrf_token": browser.csrf})
    assert resp.status_code == 302
    page = browser.c.get("/").data.decode()
    assert "alerts snoozed until" in page
    st = store.arm_status()
    assert st.snooze_until is not None and st.snooze_until > time.time() + 3500
    browser.c.post("/snooze", data={"duration": "resume", "csrf_token": browser.csrf})
    assert store.arm_status().snooze_until is None


def _token_form(browser: Browser, name: str) -> int:
    page = browser.c.get("/tokens")
    resp = browser.c.post("/tokens", data={"name": name, "csrf_token": csrf_from(page.data)})
    assert resp.status_code == 200, resp.data[:300]
    ids = re.findall(rb'/tokens/(\d+)/revoke', resp.data)
    return max(int(i) for i in ids)


def test_audit_has_each_action_once_with_who_and_where(browser: Browser, app: Flask,
                                                       store: Store) -> None:
    browser.api("POST", "/arm", json={"delay_s": 5})
    browser.api("POST", "/arm", json={"delay_s": 5})  # no change: no second line
    browser.api("POST", "/snooze", json={"duration": "15m"})
    browser.api("DELETE", "/snooze")
    browser.api("POST", "/disarm")
    tid = _token_form(browser, "shortcut")
    page = browser.c.get("/tokens")
    assert browser.c.post(f"/tokens/{tid}/revoke",
                          data={"csrf_token": csrf_from(page.data)}).status_code == 302
    guesser = app.test_client()
    guesser.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    for _ in range(7):
        login = guesser.get("/login")
        guesser.post("/login", data={"password": "wrong", "csrf_token": csrf_from(login.data)})
    home = browser.c.get("/")
    browser.c.post("/logout", data={"csrf_token": csrf_from(home.data)})

    entries = browser_audit(app)
    actions = [e["action"] for e in reversed(entries)]
    assert actions == ["login", "arm", "snooze", "unsnooze", "disarm", "token_create",
                       "token_revoke", "login_failures", "logout", "login"], actions
    by = {e["action"]: e for e in entries}
    for action in ("arm", "snooze", "disarm", "token_create", "token_revoke", "logout"):
        assert by[action]["client"] == "127.0.0.1", by[action]
        assert by[action]["who"].startswith("owner"), by[action]
    assert by["login_failures"]["client"] == "192.0.2.7"
    assert "7" not in by["login_failures"]["detail"] and "5 failed" in by["login_failures"]["detail"]
    assert by["arm"]["state"] == "arming" and by["arm"]["detail"] == "exit delay 5 s"
    assert "shortcut" in by["token_create"]["detail"]


def browser_audit(app: Flask) -> list[dict[str, Any]]:
    """The audit log through the API, as a fresh login sees it (that login is the newest line)."""
    b = Browser(app.test_client())
    b.login(PASSWORD)
    resp = b.api("GET", "/audit?limit=200")
    assert resp.status_code == 200
    return resp.json["entries"]


def test_audit_pages(browser: Browser, store: Store) -> None:
    with store.transaction() as c:
        for i in range(119):
            audit.record(c, 1000.0 + i, "arm", f"token:t{i}", "10.0.0.1")
    seen = []
    url = "/audit"
    for want in (50, 50, 20):  # 119 + the browser's own login line
        page = browser.c.get(url)
        assert page.status_code == 200
        html = page.data.decode()
        rows = re.findall(r"<tr><td>", html)
        assert len(rows) == want
        seen += re.findall(r"token:t(\d+)", html)
        m = re.search(r'href="(/audit\?before=\d+)" id="older"', html)
        if want == 20:
            assert m is None
        else:
            assert m is not None
            url = m.group(1)
    assert sorted(int(s) for s in seen) == list(range(119))
    api = browser.api("GET", "/audit?limit=100").json
    assert len(api["entries"]) == 100 and api["next_before"] == api["entries"][-1]["id"]
    rest = browser.api("GET", f"/audit?limit=100&before={api['next_before']}").json
    assert len(rest["entries"]) == 20 and rest["next_before"] is None
    assert browser.api("GET", "/audit?before=abc").status_code == 400
    assert browser.c.get("/audit?before=%D9%A2").status_code == 400


def test_arm_disarm_rate_limited_per_client(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    cfg.alarm.arm_requests_per_min = 5
    from homesec.web import accounts

    store = Store(cfg.paths.db_path)
    secret = accounts.create_token(store, "loop")[1]
    app = create_app(cfg)
    c = app.test_client()
    h = {"Authorization": f"Bearer {secret}"}
    codes = [c.post("/api/v1/arm" if i % 2 == 0 else "/api/v1/disarm", json={"delay_s": 0}
                    if i % 2 == 0 else None, headers=h).status_code for i in range(40)]
    assert codes[:5] == [200] * 5 and set(codes[5:]) == {429}
    resp = c.post("/api/v1/disarm", headers=h)
    assert resp.status_code == 429 and resp.is_json and "too many" in resp.json["error"]
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    # the log grew by the five accepted changes only
    assert store.conn.execute("SELECT COUNT(*) FROM audit WHERE action IN ('arm', 'disarm')"
                              ).fetchone()[0] == 5
    assert store.conn.execute("SELECT COUNT(*) FROM request_hits").fetchone()[0] == 5
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "192.0.2.9"
    assert other.post("/api/v1/arm", json={"delay_s": 0}, headers=h).status_code == 200
    store.close()


def test_arming_warns_when_capture_is_not_running(browser: Browser) -> None:
    resp = browser.api("POST", "/arm", json={"delay_s": 0})
    assert resp.status_code == 200 and resp.json["state"] == "armed"
    assert "capture not running" in resp.json["warning"]
    page = browser.c.get("/").data.decode()
    assert "capture not running" in page
    assert re.search(r'id="capture-warning"(?![^>]*hidden)', page)


def test_killed_daemon_shows_capture_not_running(tmp_path: Path) -> None:
    """SIGKILL the real capture daemon: within 15 s the API and the page say capture is not
    running (not "camera lost"), and arming still works, with a warning."""
    system = start_system(tmp_path)
    try:
        code, st = system.request("POST", "/arm", {"delay_s": 0})
        assert code == 200 and st["warning"] is None
        system.request("POST", "/disarm", {})
        run = system.procs.pop("run")
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
        t0 = time.monotonic()

        def says_not_running() -> bool:
            return system.request("GET", "/status")[1]["camera"]["capture_running"] is False

        system.wait_for("capture not running", says_not_running, 15)
        assert time.monotonic() - t0 < 15
        cam = system.request("GET", "/status")[1]["camera"]
        assert cam["error"] == "capture not running" and cam["lost_since"] is None
        code, st = system.request("POST", "/arm", {"delay_s": 0})
        assert code == 200 and st["state"] == "armed" and "capture not running" in st["warning"]
        b = Browser(create_app(system.cfg).test_client())
        b.login(PASSWORD)
        page = b.c.get("/").data.decode()
        assert "capture not running" in page and "Capture not running: no live view." in page
    finally:
        stop_system(system)


def test_event_page_says_disarmed_in_time(browser: Browser, store: Store, add_event) -> None:
    from homesec.alarm.machine import MachineConfig

    store.alarm_cfg = MachineConfig(entry_delay_s=30)  # type: ignore[attr-defined]
    store.arm("owner", delay_s=0, now=time.time() - 5)
    eid = add_event()
    assert store.arm_status().state == "pending"
    browser.api("POST", "/disarm")
    page = browser.c.get(f"/events/{eid}").data.decode()
    assert "disarmed in time: no alert" in page
    assert browser.api("GET", f"/events/{eid}").json["alarm"] == "disarmed_in_time"


def test_logout_everywhere_is_audited(browser: Browser, app: Flask) -> None:
    home = browser.c.get("/")
    resp = browser.c.post("/logout/everywhere", data={"csrf_token": csrf_from(home.data)})
    assert resp.status_code == 302
    entries = browser_audit(app)
    ended = [e for e in entries if e["action"] == "logout"]
    assert len(ended) == 1 and ended[0]["detail"] == "everywhere"
    assert ended[0]["client"] == "127.0.0.1" and ended[0]["who"].startswith("owner")
