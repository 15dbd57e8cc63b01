"""The history pages: 60 events paged through newest first, the day picker, previous/next on
the event page, local times with durations and objects instead of area %, the clip badge and
the <video> element."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from homesec.config import Config
from homesec.storage.store import Store
from tests.clip_support import add_event_clip

from .conftest import Browser

AddEvent = Callable[..., int]


def _ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'data-event-id="(\d+)"', html)]


def _link(html: str, link_id: str) -> str | None:
    m = re.search(rf'id="{link_id}" href="([^"]+)"', html)
    return m.group(1).replace("&amp;", "&") if m else None


def test_history_pages_through_60_events_and_the_day_picker(browser: Browser,
                                                            add_event: AddEvent) -> None:
    base = time.mktime((2026, 4, 1, 12, 0, 0, 0, 0, -1))
    ids = [add_event(ts=base + (i // 10) * 86400 + i * 60) for i in range(60)]  # 10 a day
    seen: list[int] = []
    url: str | None = "/history"
    pages = 0
    while url:
        html = browser.c.get(url).data.decode()
        got = _ids(html)
        assert got == sorted(got, reverse=True), "newest first"
        seen += got
        pages += 1
        url = _link(html, "older")
        assert pages < 10
    assert seen == list(reversed(ids)) and pages == 3
    # ... and back again with "newer".
    html = browser.c.get(f"/history?before={ids[20]}").data.decode()
    assert _ids(html)[0] == ids[19]
    newer = browser.c.get(_link(html, "newer")).data.decode()
    assert _ids(newer) == list(reversed(ids[20:40]))
    top = browser.c.get(_link(newer, "newer")).data.decode()
    assert _ids(top) == list(reversed(ids[40:60])) and _link(top, "newer") is None
    # The day picker finds a given day (the box's local day).
    day = browser.c.get("/history?day=2026-04-03").data.decode()
    assert _ids(day) == list(reversed(ids[20:30])) and "History of 2026-04-03" in day
    assert _link(day, "older") is None
    empty = browser.c.get("/history?day=2025-01-01").data.decode()
    assert _ids(empty) == [] and "No events on 2025-01-01" in empty
    assert browser.c.get("/history?day=tuesday").status_code == 400
    assert browser.c.get("/history?before=%D9%A2").status_code == 400


def test_rows_show_duration_objects_alert_and_clip_badge(browser: Browser, add_event: AddEvent,
                                                         cfg: Config, store: Store) -> None:
    plain = add_event(ts=time.time() - 120)
    store.set_arm(True, by="t", now=time.time() - 90)  # (armed before the event started)
    with_clip = add_event(ts=time.time() - 60)
    store.set_arm(False, by="t")
    add_event_clip(store, cfg.paths.media, with_clip)
    for url in ("/", "/history"):
        html = browser.c.get(url).data.decode()
        rows = dict(zip(_ids(html), re.findall(r'<span class="ev-meta">(.*?)</span>\s*</a>',
                                                html, re.S), strict=True))
        assert "clip-badge" in rows[with_clip] and "alerted" in rows[with_clip]
        assert "clip-badge" not in rows[plain] and "alerted" not in rows[plain]
        assert "3 s" in rows[plain] and "1 object" in rows[plain]
        assert "%" not in rows[plain], "the changed-area percentage is not for users"
        assert time.strftime("%Y-%m-%d %H:%M", time.localtime(time.time() - 120)) in html


def test_event_page_video_and_previous_next(browser: Browser, add_event: AddEvent,
                                            cfg: Config, store: Store) -> None:
    a, b, c = (add_event(ts=time.time() - 300 + i) for i in range(3))
    add_event_clip(store, cfg.paths.media, b)
    add_event_clip(store, cfg.paths.media, b, part=2)
    html = browser.c.get(f"/events/{b}").data.decode()
    m = re.search(r'<video class="clip" id="clip"[^>]*>', html, re.S)
    assert m and f'src="/api/v1/events/{b}/clip.mp4"' in m.group(0)
    assert "playsinline" in m.group(0) and "controls" in m.group(0)
    assert f"/api/v1/events/{b}/clip.mp4?part=2" in html and "part 2" in html
    assert _link(html, "older") == f"/events/{a}" and _link(html, "newer") == f"/events/{c}"
    first = browser.c.get(f"/events/{a}").data.decode()
    assert _link(first, "older") is None and "<video" not in first
    assert "Largest motion" not in html and "Duration" in html
    # Deleting the event removes its clip files too.
    paths = [cfg.paths.media / f"clips/{b}.clip{p}.mp4" for p in (1, 2)]
    assert all(p.exists() for p in paths)
    page = browser.c.get(f"/events/{b}")
    token = re.search(rb'name="csrf_token" value="([^"]+)"', page.data).group(1).decode()
    assert browser.c.post(f"/events/{b}/delete", data={"csrf_token": token}).status_code == 302
    assert not any(p.exists() for p in paths)


def test_home_shows_disk_use_retention_and_disk_full_for_another_reason(
        browser: Browser, cfg: Config) -> None:
    import json

    run = cfg.paths.runtime_dir
    run.mkdir(parents=True, exist_ok=True)
    (run / "retention.json").write_text(json.dumps({
        "ts": time.time(), "media_bytes": 2_500_000_000, "free_bytes": 1_000_000,
        "total_bytes": 100_000_000_000, "budget_bytes": None, "min_free_pct": 10.0,
        "full_other_reason": True}))
    html = browser.c.get("/").data.decode()
    assert "2.5 GB" in html and "disk full for another reason" in html
    st = browser.api("GET", "/status").json["storage"]
    assert st["full_other_reason"] is True and st["media_bytes"] == 2_500_000_000
