"""The alarm machine as the store persists it: one transaction per decision against a real
SQLite file, the events' outcomes, the outbox rows, the audit lines, the migration."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from homesec.alarm import persist
from homesec.alarm.machine import MachineConfig
from homesec.storage import audit
from homesec.storage.store import MIGRATIONS, Store, statements


def store_with(tmp_path: Path, entry_delay_s: float = 30.0) -> Store:
    s = Store(tmp_path / "homesec.db")
    s.alarm_cfg = MachineConfig(entry_delay_s=entry_delay_s, triggered_s=600.0)  # type: ignore[attr-defined]
    return s


def event(s: Store, ts: float) -> int:
    eid, _ = s.add_event("cam", ts, 1.0, [], None, "a.jpg", "a.t.jpg", 3, now=ts)
    return eid


def outbox_events(s: Store) -> list[int]:
    return [r[0] for r in s.conn.execute("SELECT event_id FROM outbox ORDER BY id")]


def test_entry_delay_then_alert_for_every_waiting_event(tmp_path: Path) -> None:
    s = store_with(tmp_path)
    s.arm("owner", now=0.0)
    a, b = event(s, 100.0), event(s, 110.0)
    assert s.arm_status(now=111.0).state == "pending" and outbox_events(s) == []
    assert s.event(a).alarm == "pending" and s.event(b).alarm == "pending"  # type: ignore[union-attr]
    assert persist.tick(s, now=129.9) is None
    done = persist.tick(s, now=130.0)
    assert done is not None and done.alerted == [a, b] and outbox_events(s) == [a, b]
    assert s.arm_status(now=130.0).state == "triggered"
    assert persist.tick(s, now=131.0) is None  # nothing twice


def test_disarm_within_the_entry_delay_marks_the_event(tmp_path: Path) -> None:
    s = store_with(tmp_path)
    s.arm("owner", now=0.0)
    a = event(s, 100.0)
    assert s.set_arm(False, by="owner", now=129.0, client="10.0.0.2").state == "disarmed"
    assert persist.tick(s, now=200.0) is None
    assert outbox_events(s) == [] and s.event(a).alarm == "disarmed_in_time"  # type: ignore[union-attr]
    row = audit.page(s)[0]
    assert (row.action, row.who, row.client, row.state) == ("disarm", "owner", "10.0.0.2",
                                                            "disarmed")


def test_disarm_after_the_entry_delay_cannot_cancel_the_alert(tmp_path: Path) -> None:
    s = store_with(tmp_path)
    s.arm("owner", now=0.0)
    a = event(s, 100.0)
    s.set_arm(False, by="owner", now=130.5)  # the daemon's tick had not run yet
    assert outbox_events(s) == [a] and s.event(a).alarm == "alert"  # type: ignore[union-attr]


def test_no_entry_delay_alerts_in_the_event_transaction(tmp_path: Path) -> None:
    s = store_with(tmp_path, entry_delay_s=0)
    s.arm("owner", now=0.0)
    eid, queued = s.add_event("cam", 50.0, 1.0, [], None, None, None, 3, now=50.0)
    assert queued and outbox_events(s) == [eid] and s.event(eid).armed  # type: ignore[union-attr]


def test_snoozed_events_are_recorded_not_alerted(tmp_path: Path) -> None:
    s = store_with(tmp_path, entry_delay_s=0)
    s.arm("owner", now=0.0)
    done = persist.apply(s, "snooze", by="owner", now=10.0, until_ts=10.0 + 900, client="c")
    assert done.status.snooze_until == 910.0
    a = event(s, 20.0)
    assert s.event(a).alarm == "snoozed" and outbox_events(s) == []  # type: ignore[union-attr]
    b = event(s, 911.0)  # the snooze is over
    assert outbox_events(s) == [b]


def test_event_running_when_armed_meets_the_alarm_once(tmp_path: Path) -> None:
    s = store_with(tmp_path, entry_delay_s=0)
    a = event(s, 100.0)
    assert s.event(a).alarm == "not_armed"  # type: ignore[union-attr]
    s.arm("owner", now=105.0)
    # motion of the same event after the armed time, with a picture from after arming
    assert persist.continued_motion_safe(s, a, 106.0, 106.1, "after.jpg", "after.t.jpg") == "alert"
    ev = s.event(a)
    assert ev is not None and ev.snapshot == "after.jpg" and ev.alarm == "alert" and ev.armed
    assert persist.continued_motion_safe(s, a, 107.0, 107.1, "later.jpg", None) == "alert"
    assert outbox_events(s) == [a] and s.event(a).snapshot == "after.jpg"  # type: ignore[union-attr]


def test_continued_motion_before_the_armed_time_changes_nothing(tmp_path: Path) -> None:
    s = store_with(tmp_path, entry_delay_s=0)
    a = event(s, 100.0)
    s.arm("owner", delay_s=60, now=101.0)  # exit delay until 161
    assert persist.continued_motion_safe(s, a, 150.0, 150.0, "x.jpg", None) == "not_armed"
    ev = s.event(a)
    assert ev is not None and ev.snapshot == "a.jpg" and outbox_events(s) == []


def test_tick_writes_only_when_something_is_due(tmp_path: Path) -> None:
    s = store_with(tmp_path)
    s.arm("owner", delay_s=10, now=0.0)
    before = s.conn.total_changes
    for t in (1.0, 5.0, 9.9):
        assert persist.tick(s, now=t) is None
    assert s.conn.total_changes == before
    assert persist.tick(s, now=10.0) is not None
    assert s.conn.total_changes > before


def test_migration_keeps_the_state_and_moves_arm_log_into_audit(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    for i in range(2):
        for stmt in statements(MIGRATIONS[i]):
            conn.execute(stmt)
    conn.execute("PRAGMA user_version=2")
    conn.execute("UPDATE arm_state SET state = 'arming', deadline_ts = 1060, changed_ts = 1000, "
                 "changed_by = 'alice'")
    conn.executemany("INSERT INTO arm_log (state, deadline_ts, ts, by) VALUES (?, ?, ?, ?)",
                     [("armed", 900, 900, "bob"), ("disarmed", None, 950, "carol"),
                      ("arming", 1060, 1000, "alice")])
    conn.close()
    s = Store(db)
    st = s.arm_status(now=1001.0)
    assert (st.state, st.deadline_ts, st.armed_ts, st.changed_by) == ("arming", 1060.0, 1060.0,
                                                                      "alice")
    assert s.arm_status(now=1061.0).state == "armed"
    rows = [(r.action, r.who, r.state) for r in reversed(audit.page(s))]
    assert rows == [("arm", "bob", "armed"), ("disarm", "carol", "disarmed"),
                    ("arm", "alice", "arming")]
    old_view = s.conn.execute("SELECT state, by FROM arm_log ORDER BY id").fetchall()
    assert [tuple(r) for r in old_view] == [("armed", "bob"), ("disarmed", "carol"),
                                            ("arming", "alice")]
    s.close()


def test_audit_pruned_with_the_events_retention(tmp_path: Path) -> None:
    s = store_with(tmp_path)
    with s.transaction() as c:
        audit.record(c, 1000.0, "arm", "old")
        audit.record(c, 1000.0 + 40 * 86400, "disarm", "new")
    assert audit.prune(s, keep_days=30, now=1000.0 + 41 * 86400) == 1
    assert [r.who for r in audit.page(s)] == ["new"]
