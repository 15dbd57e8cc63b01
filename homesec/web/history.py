"""The event history as the UI and the API show it: pages of events with their clips, day
filters in the box's local time zone, and the numbers a person reads (duration, objects) rather
than the detector's (changed area in %).

Why the box's time zone: "what happened on Tuesday night" means the house's Tuesday, whatever
the phone's clock says; the server turns a day into [local midnight, next local midnight).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from homesec.storage.clips import ClipRow, clips_by_event, clips_of
from homesec.storage.store import EventRow, Store


class DayError(ValueError):
    """A day or time that cannot be read (the API answers 400)."""


# Days a query may name: the day after the last one must still be a date, and mktime must be
# able to place them (9999-12-31 was a 500: its next day overflows `date`).
DAY_YEARS = range(1970, 5000)


def parse_day(raw: str) -> float:
    """Local midnight of 'YYYY-MM-DD' as a Unix time."""
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        raise DayError(f"not a day (YYYY-MM-DD): {raw[:40]!r}") from None
    if day.year not in DAY_YEARS:
        raise DayError(f"day out of range (years {DAY_YEARS.start} to {DAY_YEARS.stop - 1}): "
                       f"{raw[:40]!r}")
    try:
        return time.mktime((day.year, day.month, day.day, 0, 0, 0, 0, 0, -1))
    except (OverflowError, OSError, ValueError):
        raise DayError(f"day out of range: {raw[:40]!r}") from None


def parse_bound(raw: str | None, end: bool) -> float | None:
    """`since` / `until` from a query: a Unix time in seconds, or a local day 'YYYY-MM-DD'
    (for `until`, a day means up to the end of that day)."""
    if raw is None or raw == "":
        return None
    if not raw.isascii():  # float() and date parsing would take other scripts' digits
        raise DayError("a time is written with ASCII digits")
    if len(raw) == 10 and raw[4] == "-":
        start = parse_day(raw)
        return start + _day_length(raw) if end else start
    try:
        value = float(raw)
    except ValueError:
        raise DayError(f"not a time (Unix seconds or YYYY-MM-DD): {raw[:40]!r}") from None
    if not 0 <= value < 1e11:
        raise DayError("time out of range")
    return value


def _day_length(raw: str) -> float:
    """Seconds from local midnight to the next (23 or 25 h on a clock change)."""
    day = dt.date.fromisoformat(raw) + dt.timedelta(days=1)
    nxt = time.mktime((day.year, day.month, day.day, 0, 0, 0, 0, 0, -1))
    return nxt - parse_day(raw)


def clip_url(event_id: int, part: int) -> str:
    """Where the browser finds a clip."""
    base = f"/api/v1/events/{event_id}/clip.mp4"
    return base if part == 1 else f"{base}?part={part}"


def with_clips(ev_json: dict[str, Any], clips: list[ClipRow]) -> dict[str, Any]:
    """The event JSON plus its clips, duration and number of objects."""
    out = dict(ev_json)
    out["clips"] = [{**c.to_json(), "url": clip_url(c.event_id, c.part)} for c in clips]
    out["has_clip"] = bool(clips)
    out["clip_url"] = clip_url(clips[0].event_id, 1) if clips else None
    end = ev_json.get("end_ts")
    out["duration_s"] = round(end - ev_json["start_ts"], 1) if end is not None else None
    out["objects"] = len(ev_json.get("boxes") or [])
    out["dropped_frames"] = sum(c.dropped_frames for c in clips)
    return out


def event_page_json(store: Store, ev: EventRow, base: dict[str, Any]) -> dict[str, Any]:
    """One event with clips."""
    return with_clips(base, clips_of(store, ev.id))


def page(store: Store, rows: list[EventRow], base: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A page of events with their clips (one query for all)."""
    by_id = clips_by_event(store, [r.id for r in rows])
    return [with_clips(b, by_id[r.id]) for r, b in zip(rows, base, strict=True)]


def neighbours(store: Store, event_id: int) -> tuple[int | None, int | None]:
    """(older, newer) event ids next to this one."""
    older = store.conn.execute("SELECT MAX(id) FROM events WHERE id < ?", (event_id,)).fetchone()
    newer = store.conn.execute("SELECT MIN(id) FROM events WHERE id > ?", (event_id,)).fetchone()
    return older[0], newer[0]


def newer_page_start(store: Store, first_id: int, limit: int, since: float | None,
                     until: float | None) -> int | None:
    """The `before` value that shows the page of newer events above `first_id` (None: this is
    the newest page; 0 means "from the top")."""
    rows = store.conn.execute(
        "SELECT id FROM events WHERE id > ? AND (? IS NULL OR start_ts >= ?)"
        " AND (? IS NULL OR start_ts < ?) ORDER BY id LIMIT ?",
        (first_id, since, since, until, until, limit + 1)).fetchall()
    if not rows:
        return None
    if len(rows) <= limit:
        return 0
    return int(rows[limit - 1][0]) + 1 if limit else None
