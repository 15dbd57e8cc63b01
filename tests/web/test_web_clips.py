"""Clips over HTTP: range requests as browsers and iOS need them, behind the same auth, with
paths from the database only; the events API lists clips and filters by day."""

from __future__ import annotations

import time
from collections.abc import Callable

from flask.testing import FlaskClient

from homesec.config import Config
from homesec.storage.store import Store
from tests.clip_support import add_event_clip

from .conftest import Browser

AddEvent = Callable[..., int]


def test_clip_is_served_with_range_requests(browser: Browser, client: FlaskClient,
                                            add_event: AddEvent, cfg: Config,
                                            store: Store) -> None:
    eid = add_event()
    path = add_event_clip(store, cfg.paths.media, eid)
    data = path.read_bytes()
    size = len(data)
    url = f"/events/{eid}/clip.mp4"
    whole = browser.api("GET", url)
    assert whole.status_code == 200 and whole.mimetype == "video/mp4"
    assert whole.data == data and whole.headers["Accept-Ranges"] == "bytes"
    part = browser.api("GET", url, headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 100-1099/{size}"
    assert part.data == data[100:1100]
    tail = browser.api("GET", url, headers={"Range": "bytes=-500"})
    assert tail.status_code == 206 and tail.data == data[-500:]
    assert tail.headers["Content-Range"] == f"bytes {size - 500}-{size - 1}/{size}"
    # What Safari sends first: the first two bytes.
    probe = browser.api("GET", url, headers={"Range": "bytes=0-1"})
    assert probe.status_code == 206 and probe.data == data[:2]
    past = browser.api("GET", url, headers={"Range": f"bytes={size}-"})
    assert past.status_code == 416
    assert browser.api("GET", f"/events/{eid}/clip.mp4?part=2").status_code == 404
    assert browser.api("GET", f"/events/{eid}/clip.mp4?part=x").status_code == 400
    # No login, no clip: not the bytes, not a range of them.
    anon = client.application.test_client()
    for headers in ({}, {"Range": "bytes=0-99"}):
        resp = anon.get(f"/api/v1{url}", headers=headers)
        assert resp.status_code == 401 and data[:100] not in resp.data


def test_clip_path_comes_only_from_the_database(browser: Browser, add_event: AddEvent,
                                                cfg: Config, store: Store) -> None:
    eid = add_event()
    secret = cfg.paths.state_dir / "secret.mp4"
    secret.write_bytes(b"not yours")
    store.conn.execute("INSERT INTO clips (event_id, part, path, start_ts, end_ts, bytes,"
                       " frames, created_ts) VALUES (?, 1, '../secret.mp4', 0, 1, 9, 1, 0)",
                       (eid,))
    resp = browser.api("GET", f"/events/{eid}/clip.mp4")
    assert resp.status_code == 404 and b"not yours" not in resp.data
    assert browser.api("GET", "/events/999/clip.mp4").status_code == 404


def test_events_list_clip_fields_and_day_filter(browser: Browser, add_event: AddEvent,
                                                cfg: Config, store: Store) -> None:
    day1 = time.mktime((2026, 3, 10, 23, 30, 0, 0, 0, -1))  # local time of the box
    day2 = time.mktime((2026, 3, 11, 0, 30, 0, 0, 0, -1))
    a, b = add_event(ts=day1), add_event(ts=day2)
    add_event_clip(store, cfg.paths.media, b)
    evs = browser.api("GET", "/events").json["events"]
    by_id = {e["id"]: e for e in evs}
    assert by_id[b]["has_clip"] and by_id[b]["clip_url"] == f"/api/v1/events/{b}/clip.mp4"
    (clip,) = by_id[b]["clips"]
    assert clip["part"] == 1 and clip["bytes"] > 0 and clip["duration_s"] > 2
    assert not by_id[a]["has_clip"] and by_id[a]["clips"] == []
    assert by_id[a]["duration_s"] == 3.0 and by_id[a]["objects"] == 1
    assert by_id[a]["media_deleted"] is False
    one = browser.api("GET", "/events?since=2026-03-11&until=2026-03-11").json["events"]
    assert [e["id"] for e in one] == [b]
    other = browser.api("GET", "/events?until=2026-03-10").json["events"]
    assert [e["id"] for e in other] == [a]
    ts = browser.api("GET", f"/events?since={day1 + 1}").json["events"]
    assert [e["id"] for e in ts] == [b]
    assert browser.api("GET", f"/events/{b}").json["clips"][0]["frames"] == clip["frames"]
    for bad in ("since=yesterday", "until=2026-13-01", "since=1e300", "since=nan"):
        resp = browser.api("GET", f"/events?{bad}")
        assert resp.status_code == 400 and "error" in resp.json, bad
