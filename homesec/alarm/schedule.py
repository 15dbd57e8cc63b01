"""Arm/disarm schedules (`[[alarm.schedule]]`) in the box's local time zone.

A schedule entry is a point in local time on some days of the week ("arm at 23:00 Mon-Fri").
The schedule acts only at its points, so a manual change holds until the next scheduled one.

Time zones and clocks, and why each rule:
- Points are computed with zoneinfo for each calendar day, so a point follows the local clock
  across DST changes (23:00 stays 23:00 local, the UTC instant moves by an hour).
- A time that does not exist that day (02:30 on the spring-forward night) acts at the moment the
  clocks jump past it (03:30 new time): PEP 495's fold=0 mapping. A time that occurs twice (the
  autumn night) acts at its first occurrence only.
- The daemon remembers (in the database) the time it last checked. A clock that jumps back
  (NTP correcting a fast clock) acts on nothing until it passes that time again: nothing is done
  twice. A clock that jumps forward (a Pi without RTC setting its time after boot), or a daemon
  that was stopped for a while, acts once on the latest point it missed (the state the schedule
  asks for now), unless someone armed or disarmed by hand after that point. Points more than
  LOOKBACK_S in the past are never acted on.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LOOKBACK_S = 7 * 86400.0


@dataclass(frozen=True)
class Entry:
    """One schedule line: `action` ("arm"/"disarm") at `hour:minute` on `days` (0 = Monday)."""

    action: str
    hour: int
    minute: int
    days: tuple[int, ...] = tuple(range(7))

    def label(self) -> str:
        """'arm at 23:00 mon-fri' style, for the audit log and the UI."""
        names = ",".join(DAYS[d] for d in self.days) if len(self.days) < 7 else "every day"
        return f"{self.action} at {self.hour:02d}:{self.minute:02d} ({names})"


@dataclass(frozen=True)
class Point:
    """A scheduled change at an instant."""

    ts: float
    entry: Entry


def local_zone(name: str = "") -> dt.tzinfo:
    """The named zone, or the box's zone (/etc/localtime), or UTC when neither is known."""
    if name:
        return ZoneInfo(name)
    try:
        with Path("/etc/localtime").open("rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError, ZoneInfoNotFoundError):
        return dt.UTC


def points(entries: list[Entry], tz: dt.tzinfo, start_ts: float, end_ts: float) -> list[Point]:
    """Every scheduled instant in (start_ts, end_ts], in time order."""
    if not entries or end_ts <= start_ts:
        return []
    first = dt.datetime.fromtimestamp(start_ts, tz).date() - dt.timedelta(days=1)
    last = dt.datetime.fromtimestamp(end_ts, tz).date() + dt.timedelta(days=1)
    out: list[Point] = []
    day = first
    while day <= last:
        for e in entries:
            if day.weekday() not in e.days:
                continue
            # fold=0: a time in the spring gap maps past the jump; a repeated time to its first
            # occurrence (see the module docstring).
            ts = dt.datetime(day.year, day.month, day.day, e.hour, e.minute, tzinfo=tz).timestamp()
            if start_ts < ts <= end_ts:
                out.append(Point(ts, e))
        day += dt.timedelta(days=1)
    out.sort(key=lambda p: p.ts)
    return out


def due(entries: list[Entry], tz: dt.tzinfo, checked_ts: float | None, now: float
        ) -> Point | None:
    """The one point to act on now: the latest in (checked_ts, now], never older than
    LOOKBACK_S; None on the first check or while the clock is behind `checked_ts`."""
    if checked_ts is None or now <= checked_ts:
        return None
    found = points(entries, tz, max(checked_ts, now - LOOKBACK_S), now)
    return found[-1] if found else None


def next_point(entries: list[Entry], tz: dt.tzinfo, now: float) -> Point | None:
    """The next scheduled change after `now` (what the UI shows)."""
    found = points(entries, tz, now, now + 8 * 86400.0)
    return found[0] if found else None


def entries_from_config(items: list[object]) -> list[Entry]:
    """Entries from the validated `[[alarm.schedule]]` models (see config.ScheduleConfig)."""
    out = []
    for it in items:
        hh, mm = str(it.time).split(":")
        days = tuple(DAYS.index(d) for d in it.days)
        out.append(Entry(str(it.action), int(hh), int(mm), days))
    return out
