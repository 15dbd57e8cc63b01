"""Schedules with a fake clock, in a real time zone (Europe/Berlin) across both DST changes, and
the rules for a clock that jumps (alarm/schedule.py), against a real SQLite store."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from homesec.alarm import persist
from homesec.alarm.schedule import Entry, due, next_point, points
from homesec.config import ConfigError, parse
from homesec.storage import audit
from homesec.storage.store import Store

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC


def utc(*args: int) -> float:
    return dt.datetime(*args, tzinfo=UTC).timestamp()


ARM_2300 = Entry("arm", 23, 0)
DISARM_0700 = Entry("disarm", 7, 0)


def test_points_follow_local_time_across_spring_and_autumn() -> None:
    # EU summer time 2026: starts Sun 29 March 01:00 UTC, ends Sun 25 October 01:00 UTC.
    spring = points([ARM_2300], BERLIN, utc(2026, 3, 27), utc(2026, 3, 31))
    assert [p.ts for p in spring] == [utc(2026, 3, 27, 22), utc(2026, 3, 28, 22),
                                      utc(2026, 3, 29, 21), utc(2026, 3, 30, 21)]
    autumn = points([ARM_2300], BERLIN, utc(2026, 10, 24), utc(2026, 10, 26))
    assert [p.ts for p in autumn] == [utc(2026, 10, 24, 21), utc(2026, 10, 25, 22)]


def test_a_time_skipped_by_the_clock_acts_when_the_clock_jumps_past_it() -> None:
    entry = Entry("arm", 2, 30)  # 02:30 does not exist in Berlin on 29 March 2026
    got = points([entry], BERLIN, utc(2026, 3, 28, 12), utc(2026, 3, 29, 12))
    assert [p.ts for p in got] == [utc(2026, 3, 29, 1, 30)]  # = 03:30 summer time


def test_a_time_that_occurs_twice_acts_once() -> None:
    entry = Entry("disarm", 2, 30)  # 02:30 happens twice in Berlin on 25 October 2026
    got = points([entry], BERLIN, utc(2026, 10, 24, 12), utc(2026, 10, 25, 12))
    assert [p.ts for p in got] == [utc(2026, 10, 25, 0, 30)]  # the first (summer time) one


def test_days_of_the_week_and_the_next_change() -> None:
    weekdays = Entry("disarm", 7, 0, days=(0, 1, 2, 3, 4))
    fri_evening = utc(2026, 3, 27, 20)  # Friday
    nxt = next_point([weekdays, ARM_2300], BERLIN, fri_evening)
    assert nxt is not None and nxt.entry is ARM_2300 and nxt.ts == utc(2026, 3, 27, 22)
    after = next_point([weekdays], BERLIN, utc(2026, 3, 27, 7))
    assert after is not None and after.ts == utc(2026, 3, 30, 5)  # Monday 07:00 summer time


def test_due_never_on_first_check_nor_while_the_clock_is_behind() -> None:
    now = utc(2026, 3, 27, 22, 0, 1)
    assert due([ARM_2300], BERLIN, None, now) is None
    assert due([ARM_2300], BERLIN, now + 60, now) is None
    got = due([ARM_2300], BERLIN, now - 2, now)
    assert got is not None and got.entry is ARM_2300


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "homesec.db")
    yield s
    s.close()


def tick(store: Store, now: float):
    return persist.run_schedule(store, [ARM_2300, DISARM_0700], BERLIN, 0, now=now)


def test_schedule_arms_and_disarms_across_a_dst_change(store: Store) -> None:
    t = utc(2026, 3, 28, 12)
    assert tick(store, t) is None  # first check: remembers the time only
    assert tick(store, utc(2026, 3, 28, 21, 59)) is None
    assert store.arm_status(now=utc(2026, 3, 28, 22)).state == "disarmed"
    applied = tick(store, utc(2026, 3, 28, 22, 0, 0))
    assert applied is not None and applied.status.state == "armed"
    assert applied.status.changed_by == "schedule"
    # 07:00 on Sunday is 05:00 UTC now (summer time began at 01:00 UTC), not 06:00 UTC
    assert tick(store, utc(2026, 3, 29, 4, 59)) is None
    assert store.arm_status().state == "armed"
    applied = tick(store, utc(2026, 3, 29, 5, 0, 5))
    assert applied is not None and applied.status.state == "disarmed"
    assert tick(store, utc(2026, 3, 29, 6, 0, 5)) is None  # nothing more at 06:00 UTC
    rows = [(r.action, r.who) for r in audit.page(store)]
    assert rows[:2] == [("schedule", "schedule"), ("schedule", "schedule")]


def test_manual_change_holds_until_the_next_scheduled_one(store: Store) -> None:
    tick(store, utc(2026, 3, 27, 12))
    tick(store, utc(2026, 3, 27, 22, 0, 1))
    assert store.arm_status().state == "armed"
    store.set_arm(False, by="owner", now=utc(2026, 3, 27, 22, 30))
    for minute in range(31, 60, 7):
        tick(store, utc(2026, 3, 27, 22, minute))
    assert store.arm_status().state == "disarmed"  # not re-armed by the 23:00 point
    store.arm("owner", now=utc(2026, 3, 28, 4))
    tick(store, utc(2026, 3, 28, 6, 0, 1))  # 07:00 CET
    assert store.arm_status().state == "disarmed"


def test_clock_jumping_back_does_nothing_twice(store: Store) -> None:
    tick(store, utc(2026, 3, 27, 21, 50))
    tick(store, utc(2026, 3, 27, 22, 0, 1))
    store.set_arm(False, by="owner", now=utc(2026, 3, 27, 22, 5))
    # NTP steps the clock back 15 minutes: the 23:00 point is passed again, and must not re-arm
    tick(store, utc(2026, 3, 27, 21, 50))
    tick(store, utc(2026, 3, 27, 22, 0, 30))
    assert store.arm_status(now=utc(2026, 3, 27, 22, 1)).state == "disarmed"
    assert sum(r.action == "schedule" for r in audit.page(store)) == 1


def test_clock_jumping_forward_acts_once_on_the_latest_missed_point(store: Store) -> None:
    tick(store, utc(2026, 3, 27, 12))
    # The box was off (or its clock wrong) from Friday noon to Sunday noon: 23:00, 07:00, 23:00,
    # 07:00 all passed; the latest is the Sunday 07:00 disarm, acted on once.
    store.arm("owner", now=utc(2026, 3, 27, 12, 1))
    applied = tick(store, utc(2026, 3, 29, 10))
    assert applied is not None and applied.status.state == "disarmed"
    assert sum(r.action == "schedule" for r in audit.page(store)) == 1


def test_schedule_config_is_checked() -> None:
    cfg = parse({"alarm": {"timezone": "Europe/Berlin", "schedule": [
        {"action": "arm", "time": "23:00"}, {"action": "disarm", "time": "07:30",
                                             "days": ["mon", "fri"]}]}})
    assert cfg.alarm.schedule[1].days == ["mon", "fri"]
    for bad in ({"action": "arm", "time": "25:00"}, {"action": "boom", "time": "10:00"},
                {"action": "arm", "time": "7:00"}, {"action": "arm", "time": "10:00",
                                                    "days": ["someday"]},
                {"action": "arm", "time": "10:00", "extra": 1}):
        with pytest.raises(ConfigError, match=r"alarm\.schedule"):
            parse({"alarm": {"schedule": [bad]}})
    with pytest.raises(ConfigError, match=r"alarm\.timezone"):
        parse({"alarm": {"timezone": "Mars/Olympus"}})
