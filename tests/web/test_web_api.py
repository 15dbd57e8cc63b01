"""Every /api/v1 route through the Flask test client, with bad inputs refused and nothing changed."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from homesec.capture.live import LIVE_NAME, WANTED_NAME
from homesec.config import Config
from homesec.storage.store import Store
from homesec.web import MAX_BODY_BYTES

from .conftest import Browser

AddEvent = Callable[..., int]


def test_status(browser: Browser, add_event: AddEvent, cfg: Config) -> None:
    st = browser.api("GET", "/status").json
    assert st["arm"]["state"] == "disarmed"
    assert st["exit_delay_s"] == 30
    assert st["camera"]["daemon"] == "not running" and st["camera"]["ok"] is False
    assert st["last_event"] is None
    assert 0 < st["disk"]["used_pct"] < 100
    eid = add_event()
    st = browser.api("GET", "/status").json
    assert st["last_event"]["id"] == eid
    assert st["last_event"]["thumb_url"] == f"/api/v1/events/{eid}/thumb.jpg"


def test_status_camera_health_from_daemon_file(browser: Browser, cfg: Config) -> None:
    run = cfg.paths.runtime_dir
    run.mkdir(parents=True)
    now = time.time()
    (run / "status.json").write_text(json.dumps({
        "updated_ts": now, "fps": 14.9, "last_frame_ts": now - 0.1, "camera": "Porch",
        "camera_ok": True, "camera_lost_since": None, "camera_error": None, "frames_lost": 3}))
    cam = browser.api("GET", "/status").json["camera"]
    assert cam == {"name": "Porch", "daemon": "running", "capture_running": True, "ok": True,
                   "fps": 14.9, "frames_lost": 3, "last_frame_ts": now - 0.1, "lost_since": None,
                   "error": None, "updated_ts": now, "clips": None, "covered": False}
    (run / "status.json").write_text(json.dumps({
        "updated_ts": now, "fps": 0.0, "last_frame_ts": now - 60, "camera": "Porch",
        "camera_ok": False, "camera_lost_since": now - 50, "camera_error": "device gone"}))
    cam = browser.api("GET", "/status").json["camera"]
    assert cam["ok"] is False and cam["lost_since"] == now - 50 and cam["error"] == "device gone"
    page = browser.c.get("/").data.decode()
    assert "camera lost since" in page
    (run / "status.json").write_text(json.dumps({
        "updated_ts": now - 60, "fps": 15, "camera_ok": True, "camera": "Porch"}))
    cam = browser.api("GET", "/status").json["camera"]
    assert cam["daemon"] == "stale" and cam["ok"] is False and cam["fps"] == 0.0
    # a silent daemon is not a lost camera: the owner must restart the capture service
    assert cam["capture_running"] is False and cam["error"] == "capture not running"
    assert cam["lost_since"] is None
    page = browser.c.get("/").data.decode()
    assert "capture not running" in page and "camera lost since" not in page


@pytest.mark.parametrize(("body", "state", "remaining"), [
    (None, "arming", 30.0),          # default: alarm.exit_delay_s
    ({}, "arming", 30.0),
    ({"delay_s": 0}, "armed", None),
    ({"delay_s": 3}, "arming", 3.0),
    ({"delay_s": 2.5}, "arming", 2.5),
    ({"delay_s": None}, "arming", 30.0),
])
def test_arm(browser: Browser, store: Store, body: object, state: str,
             remaining: float | None) -> None:
    kw = {} if body is None else {"json": body}
    resp = browser.api("POST", "/arm", **kw)
    assert resp.status_code == 200, resp.json
    assert resp.json["state"] == state
    assert resp.json["remaining_s"] == pytest.approx(remaining, abs=0.5)
    assert resp.json["changed_by"].startswith("owner (")
    st = store.arm_status()
    assert st.state == state
    if remaining:
        assert st.deadline_ts is not None
        assert abs(st.deadline_ts - time.time() - remaining) < 2


def test_seconds_left_never_exceed_the_delay_asked() -> None:
    """A status request that took its time before reading the state (a loaded machine) once
    reported 3.5 s left of a 3 s delay, and the page showed "armed in 4 s"."""
    from homesec.storage.store import ArmStatus
    from homesec.web.overview import arm_json

    st = ArmStatus("arming", deadline_ts=1003.0, changed_ts=1000.0, changed_by="owner")
    assert arm_json(st, now=999.2)["remaining_s"] == 3.0  # `now` from before the arm
    assert arm_json(st, now=1000.96)["remaining_s"] == 2.1  # rounded up: never ARMED early
    done = arm_json(st, now=1003.0)
    assert done["state"] == "armed" and done["armed"] and done["remaining_s"] is None


def test_exit_delay_enforced_from_stored_deadline(browser: Browser, store: Store) -> None:
    browser.api("POST", "/arm", json={"delay_s": 1})
    deadline = store.arm_status().deadline_ts
    assert deadline is not None
    assert store.arm_status(now=deadline - 0.01).state == "arming"
    assert store.arm_status(now=deadline).armed
    # another process (a restarted worker) reads the same deadline
    other = Store(store.path)
    assert other.arm_status(now=deadline + 0.1).armed
    other.close()
    st = browser.api("GET", "/status").json["arm"]
    assert st["deadline_ts"] == deadline


def test_arm_when_armed_changes_nothing(browser: Browser, store: Store) -> None:
    browser.api("POST", "/arm", json={"delay_s": 0})
    before = store.arm_status()
    resp = browser.api("POST", "/arm", json={"delay_s": 60})
    assert resp.json["state"] == "armed"
    assert store.arm_status() == before


def test_shorter_delay_while_arming(browser: Browser, store: Store) -> None:
    browser.api("POST", "/arm", json={"delay_s": 60})
    assert browser.api("POST", "/arm", json={"delay_s": 100}).json["remaining_s"] > 55
    assert browser.api("POST", "/arm", json={"delay_s": 0}).json["state"] == "armed"


def test_disarm_cancels_pending_arm(browser: Browser, store: Store) -> None:
    browser.api("POST", "/arm", json={"delay_s": 60})
    resp = browser.api("POST", "/disarm")
    assert resp.status_code == 200 and resp.json["state"] == "disarmed"
    st = store.arm_status(now=time.time() + 120)
    assert st.state == "disarmed" and st.deadline_ts is None
    log = [r[0] for r in store.conn.execute("SELECT state FROM arm_log ORDER BY id")]
    assert log == ["arming", "disarmed"]


BAD_ARM_BODIES = [
    ("not json", "application/json"),
    ("[1, 2]", "application/json"),
    ('"arm"', "application/json"),
    ("{\"delay_s\": \"10\"}", "application/json"),
    ("{\"delay_s\": true}", "application/json"),
    ("{\"delay_s\": -1}", "application/json"),
    ("{\"delay_s\": 3601}", "application/json"),
    ("{\"delay_s\": 1e999}", "application/json"),
    ("{\"delay_s\": NaN}", "application/json"),
    ("{\"delay_s\": [5]}", "application/json"),
    ("{\"delay\": 5}", "application/json"),
    ("{\"delay_s\": 5, \"extra\": 1}", "application/json"),
    ("delay_s=5", "application/x-www-form-urlencoded"),
    ("{\"delay_s\": 5}", "text/plain"),
    ("\xff\xfe", "application/json"),
]


@pytest.mark.parametrize(("body", "ctype"), BAD_ARM_BODIES)
def test_arm_bad_body(browser: Browser, store: Store, body: str, ctype: str) -> None:
    before = store.arm_status()
    resp = browser.api("POST", "/arm", data=body.encode("latin-1"), content_type=ctype)
    assert resp.status_code == 400, resp.data
    assert resp.is_json and resp.json["error"]
    assert store.arm_status() == before
    assert store.conn.execute("SELECT COUNT(*) FROM arm_log").fetchone()[0] == 0


@pytest.mark.parametrize("body", ['{"now": true}', "[]", "junk"])
def test_disarm_bad_body(browser: Browser, store: Store, body: str) -> None:
    browser.api("POST", "/arm", json={"delay_s": 0})
    resp = browser.api("POST", "/disarm", data=body, content_type="application/json")
    assert resp.status_code == 400
    assert store.arm_status().armed


def test_huge_body_refused(browser: Browser, store: Store) -> None:
    body = json.dumps({"delay_s": 1, "pad": "x" * (MAX_BODY_BYTES + 10)})
    resp = browser.api("POST", "/arm", data=body, content_type="application/json")
    assert resp.status_code == 413
    assert resp.is_json
    assert store.arm_status().state == "disarmed"


@pytest.mark.parametrize(("method", "path"), [("GET", "/arm"), ("GET", "/disarm"),
                                              ("PUT", "/status"), ("POST", "/events")])
def test_wrong_method(browser: Browser, store: Store, method: str, path: str) -> None:
    resp = browser.api(method, path)
    assert resp.status_code == 405 and resp.is_json
    assert store.arm_status().state == "disarmed"


def test_unknown_api_path_is_json_404(browser: Browser) -> None:
    resp = browser.api("GET", "/nope")
    assert resp.status_code == 404 and resp.is_json


# ---- events -----------------------------------------------------------------------------------


def test_events_list_and_paging(browser: Browser, add_event: AddEvent) -> None:
    ids = [add_event(ts=1_700_000_000 + i * 60) for i in range(5)]
    data = browser.api("GET", "/events").json
    assert [e["id"] for e in data["events"]] == ids[::-1]
    assert data["next_before"] is None
    page1 = browser.api("GET", "/events?limit=2").json
    assert [e["id"] for e in page1["events"]] == ids[:2:-1][:2]
    page2 = browser.api("GET", f"/events?limit=2&before={page1['next_before']}").json
    assert [e["id"] for e in page2["events"]] == [ids[2], ids[1]]
    ev = page1["events"][0]
    assert ev["snapshot_url"] == f"/api/v1/events/{ev['id']}/snapshot.jpg"
    assert ev["boxes"] == [[200, 100, 60, 100]]
    assert ev["in_progress"] is False


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=abc", "limit=1.5",
                                   "before=0", "before=-3", "before=x", "limit=99999999999999999999"])
def test_events_bad_query(browser: Browser, query: str) -> None:
    resp = browser.api("GET", f"/events?{query}")
    assert resp.status_code == 400 and resp.is_json


def test_event_get_and_pictures(browser: Browser, add_event: AddEvent) -> None:
    eid = add_event()
    ev = browser.api("GET", f"/events/{eid}").json
    assert ev["id"] == eid and ev["has_snapshot"] is True
    snap = browser.api("GET", f"/events/{eid}/snapshot.jpg")
    thumb = browser.api("GET", f"/events/{eid}/thumb.jpg")
    for r in (snap, thumb):
        assert r.status_code == 200 and r.mimetype == "image/jpeg"
        assert r.data[:2] == b"\xff\xd8"
        assert r.headers["Cache-Control"] == "no-store"
    assert len(thumb.data) < len(snap.data)


@pytest.mark.parametrize("path", ["/events/999", "/events/999/snapshot.jpg",
                                  "/events/999/thumb.jpg", "/events/abc", "/events/-1",
                                  "/events/1.5", f"/events/{10**30}",
                                  f"/events/{10**30}/snapshot.jpg"])
def test_unknown_event(browser: Browser, path: str) -> None:
    resp = browser.api("GET", path)
    assert resp.status_code == 404 and resp.is_json


def test_ids_beyond_sqlite_range_are_unknown_not_500(browser: Browser) -> None:
    """An id too big for SQLite's 64-bit integers is simply no such event or token."""
    huge = 2**63
    assert browser.api("DELETE", f"/events/{huge}").status_code == 404
    assert browser.c.get(f"/events/{huge}").status_code == 404
    assert browser.c.post(f"/events/{huge}/delete", data={"csrf_token": browser.csrf}
                          ).status_code == 404
    assert browser.c.post(f"/tokens/{huge}/revoke", data={"csrf_token": browser.csrf}
                          ).status_code == 404


def test_delete_event_removes_files(browser: Browser, add_event: AddEvent, store: Store,
                                    cfg: Config) -> None:
    keep = add_event()
    eid = add_event()
    ev = store.event(eid)
    assert ev is not None and ev.snapshot and ev.thumb
    files = [cfg.paths.media / ev.snapshot, cfg.paths.media / ev.thumb]
    assert all(f.exists() for f in files)
    resp = browser.api("DELETE", f"/events/{eid}")
    assert resp.status_code == 200
    assert resp.json == {"deleted": eid, "files_removed": [ev.snapshot, ev.thumb]}
    assert store.event(eid) is None
    assert not any(f.exists() for f in files)
    assert store.event(keep) is not None
    assert browser.api("DELETE", f"/events/{eid}").status_code == 404
    assert browser.api("GET", f"/events/{eid}/snapshot.jpg").status_code == 404


def test_delete_event_in_progress_refused(browser: Browser, add_event: AddEvent,
                                          store: Store) -> None:
    eid = add_event(finished=False)
    resp = browser.api("DELETE", f"/events/{eid}")
    assert resp.status_code == 409
    assert store.event(eid) is not None


def test_delete_never_leaves_media_dir(browser: Browser, store: Store, cfg: Config,
                                       tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    cfg.paths.media.mkdir(parents=True, exist_ok=True)
    rel = "../../victim.txt"
    assert (cfg.paths.media / rel).resolve() == victim.resolve()
    eid, _ = store.add_event("Test", time.time(), 1.0, [], None, rel, "/etc/hostname", 1)
    store.finish_event(eid, time.time(), 1.0, [], None, None, None, 1)
    assert browser.api("GET", f"/events/{eid}/snapshot.jpg").status_code == 404
    assert browser.api("GET", f"/events/{eid}/thumb.jpg").status_code == 404
    resp = browser.api("DELETE", f"/events/{eid}")
    assert resp.status_code == 200 and resp.json["files_removed"] == []
    assert victim.read_text() == "precious"


# ---- live -------------------------------------------------------------------------------------


def _jpeg() -> bytes:
    import cv2
    import numpy as np

    ok, buf = cv2.imencode(".jpg", np.full((36, 64, 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


def test_live_jpg(browser: Browser, cfg: Config) -> None:
    run = cfg.paths.runtime_dir
    run.mkdir(parents=True)
    data = _jpeg()
    (run / LIVE_NAME).write_bytes(data)
    resp = browser.api("GET", "/live.jpg")
    assert resp.status_code == 200 and resp.mimetype == "image/jpeg"
    assert resp.data == data
    assert resp.headers["Cache-Control"] == "no-store"
    assert (run / WANTED_NAME).exists()  # the daemon was asked for frames


def test_live_jpg_without_daemon(browser: Browser, cfg: Config) -> None:
    resp = browser.api("GET", "/live.jpg")
    assert resp.status_code == 503 and resp.is_json


def test_live_mjpg(browser: Browser, cfg: Config) -> None:
    run = cfg.paths.runtime_dir
    run.mkdir(parents=True)
    data = _jpeg()
    (run / LIVE_NAME).write_bytes(data)
    resp = browser.api("GET", "/live.mjpg", buffered=False)
    assert resp.status_code == 200
    assert resp.mimetype == "multipart/x-mixed-replace"
    assert resp.headers["Cache-Control"] == "no-store"
    it = iter(resp.response)
    chunk = b""
    while data not in chunk:
        chunk += next(it)
    assert b"Content-Type: image/jpeg" in chunk
    resp.close()


def test_live_mjpg_viewer_cap(app: Flask, browser: Browser, cfg: Config) -> None:
    slots = app.extensions["homesec_live_slots"]
    taken = 0
    while slots.acquire(blocking=False):
        taken += 1
    try:
        resp = browser.api("GET", "/live.mjpg")
        assert resp.status_code == 503 and resp.is_json
    finally:
        for _ in range(taken):
            slots.release()
    assert taken == cfg.web.threads - 4


def test_mjpeg_releases_slot_on_close(app: Flask, browser: Browser, cfg: Config) -> None:
    cfg.paths.runtime_dir.mkdir(parents=True)
    (cfg.paths.runtime_dir / LIVE_NAME).write_bytes(_jpeg())
    slots = app.extensions["homesec_live_slots"]
    for _ in range(3):
        resp = browser.api("GET", "/live.mjpg", buffered=False)
        next(iter(resp.response))
        resp.close()
    free = 0
    while slots.acquire(blocking=False):
        free += 1
    assert free == cfg.web.threads - 4


# ---- documentation ----------------------------------------------------------------------------


def test_openapi_documents_every_route(app: Flask, browser: Browser) -> None:
    spec = browser.api("GET", "/openapi.json").json
    assert spec["openapi"].startswith("3.")
    documented = {(path, m.upper()) for path, ops in spec["paths"].items() for m in ops}
    served = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = rule.rule.removeprefix("/api/v1").replace("<int:event_id>", "{event_id}")
        for m in rule.methods or ():
            if m not in ("HEAD", "OPTIONS"):
                served.add((path, m))
    assert served == documented


def test_mjpeg_stream_has_a_max_duration(cfg: Config) -> None:
    from homesec.web.stream import mjpeg

    run = cfg.paths.runtime_dir
    run.mkdir(parents=True)
    (run / LIVE_NAME).write_bytes(_jpeg())
    t0 = time.monotonic()
    parts = [p for p in mjpeg(run, max_s=5) if p]
    took = time.monotonic() - t0
    # It ends (the upper bound only has to tell "ends" from "runs on": a loaded machine is slow).
    assert 5 <= took < 15
    # the first frame, then the same frame again every 2 s so a vanished client is noticed
    assert 2 <= len(parts) <= 3


def test_mjpeg_stream_gives_up_without_frames(cfg: Config) -> None:
    from homesec.web.stream import mjpeg

    t0 = time.monotonic()
    parts = [p for p in mjpeg(cfg.paths.runtime_dir, max_s=60, no_frame_s=0.5) if p]
    assert parts == [] and time.monotonic() - t0 < 10  # gives up long before max_s


def test_mjpeg_never_streams_a_stopped_daemons_last_frame(cfg: Config) -> None:
    """The runtime dir outlives the daemon: its last live.jpg, an hour old, is not 'live'."""
    from homesec.web.stream import mjpeg

    run = cfg.paths.runtime_dir
    run.mkdir(parents=True)
    (run / LIVE_NAME).write_bytes(_jpeg())
    hour_ago = time.time() - 3600
    os.utime(run / LIVE_NAME, (hour_ago, hour_ago))
    t0 = time.monotonic()
    parts = [p for p in mjpeg(run, max_s=60, no_frame_s=0.5) if p]
    assert parts == [] and time.monotonic() - t0 < 10  # gives up long before max_s
