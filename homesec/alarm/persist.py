"""The alarm state machine stored in SQLite: read the row, step the machine, write the row and
its consequences (alert rows in the outbox, what became of each event, the audit line) in ONE
transaction.

Why one transaction per decision: the daemon and every web worker are separate processes. A disarm
and the end of the entry delay, or two phones arming at once, must see one outcome, and an alert
that became due is queued in the same commit that records the state "triggered" (nothing lost,
nothing sent twice).
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
import time
from dataclasses import dataclass

from homesec.alarm import schedule
from homesec.alarm.machine import AlarmState, Input, MachineConfig, Outcome, settle, step
from homesec.alarm.schedule import Entry
from homesec.config import Config
from homesec.storage import audit
from homesec.storage.store import ArmStatus, Store

# Inputs made by someone (written to the audit log); motion and ticks are not.
AUDITED = {"arm": "arm", "disarm": "disarm", "snooze": "snooze", "unsnooze": "unsnooze"}


def machine_config(cfg: Config) -> MachineConfig:
    """The machine's times from `[alarm]`."""
    return MachineConfig(entry_delay_s=float(cfg.alarm.entry_delay_s),
                         triggered_s=float(cfg.alarm.triggered_s))


def open_store(cfg: Config) -> Store:
    """A Store whose alarm decides with this config's entry delay and triggered time."""
    store = Store(cfg.paths.db_path)
    store.alarm_cfg = machine_config(cfg)  # type: ignore[attr-defined]
    return store


def machine_cfg(store: Store) -> MachineConfig:
    """The machine's times for this store (set by whoever opened it; defaults otherwise)."""
    return getattr(store, "alarm_cfg", None) or MachineConfig()


def _f(v: float | None) -> float | None:
    return None if v is None else float(v)


def load(conn: sqlite3.Connection) -> tuple[AlarmState, float | None]:
    """The stored state and when the schedule last ran."""
    r = conn.execute("SELECT * FROM arm_state WHERE id = 1").fetchone()
    return AlarmState(
        state=r["state"], deadline_ts=_f(r["deadline_ts"]), armed_ts=_f(r["armed_ts"]),
        changed_ts=float(r["changed_ts"]), changed_by=r["changed_by"],
        snooze_until=_f(r["snooze_until"]), event_id=r["event_id"],
    ), _f(r["schedule_checked_ts"])


def write(conn: sqlite3.Connection, st: AlarmState) -> None:
    """Replace the stored state."""
    conn.execute(
        "UPDATE arm_state SET state = ?, deadline_ts = ?, armed_ts = ?, changed_ts = ?, "
        "changed_by = ?, snooze_until = ?, event_id = ? WHERE id = 1",
        (st.state, st.deadline_ts, st.armed_ts, st.changed_ts, st.changed_by, st.snooze_until,
         st.event_id))


def to_status(st: AlarmState) -> ArmStatus:
    """The machine's state as the Store's ArmStatus (what the web, the CLI and MQTT read)."""
    return ArmStatus(st.state, st.deadline_ts, st.changed_ts, st.changed_by, armed_ts=st.armed_ts,
                     snooze_until=st.snooze_until, event_id=st.event_id)


def status(store: Store, now: float) -> ArmStatus:
    """The state a reader sees at `now` (nothing written)."""
    st, _ = load(store.conn)
    return to_status(settle(st, now, machine_cfg(store)).state)


def _queue_alert(conn: sqlite3.Connection, event_id: int, now: float) -> None:
    conn.execute("INSERT INTO outbox (event_id, created_ts, next_attempt_ts) VALUES (?, ?, ?)",
                 (event_id, now, now))
    conn.execute("UPDATE events SET alarm = 'alert', armed = 1 WHERE id = ?", (event_id,))


def apply_effects(conn: sqlite3.Connection, out: Outcome, now: float) -> list[int]:
    """Carry out what the machine asked for; returns the events whose alert was queued."""
    alerted: list[int] = []
    for effect in out.effects:
        if effect == "alert" and out.alert_event is not None:
            ids = [out.alert_event]
        elif effect == "alert":  # the entry delay ran out: every event waiting in it alerts
            ids = [r[0] for r in conn.execute(
                "SELECT id FROM events WHERE alarm = 'pending' ORDER BY id")]
        elif effect in ("cancel", "snoozed"):
            outcome = "disarmed_in_time" if effect == "cancel" else "snoozed"
            conn.execute("UPDATE events SET alarm = ? WHERE alarm = 'pending'", (outcome,))
            continue
        else:
            raise ValueError(f"unknown alarm effect {effect!r}")
        for eid in ids:
            if eid not in alerted:
                _queue_alert(conn, eid, now)
                alerted.append(eid)
    return alerted


@dataclass
class Applied:
    """What an input did: the state after it, the machine's outcome, alerts queued."""

    status: ArmStatus
    outcome: Outcome
    alerted: list[int]


def apply(store: Store, kind: str, by: str = "", now: float | None = None,
          client: str | None = None, delay_s: float = 0.0, until_ts: float | None = None,
          detail: str | None = None) -> Applied:
    """Step the machine with one input, in one transaction; human inputs are audited when they
    change something (a no-op arm is not a new line: the log stays bounded)."""
    now = time.time() if now is None else now
    with store.transaction() as c:
        st, _ = load(c)
        out = step(st, Input(kind, by=by, delay_s=delay_s, until_ts=until_ts), now,
                   machine_cfg(store))
        if out.changed:
            write(c, out.state)
        alerted = apply_effects(c, out, now)
        new = out.state
        moved = (new.state, new.snooze_until, new.deadline_ts) != (st.state, st.snooze_until,
                                                                   st.deadline_ts)
        if kind in AUDITED and moved and out.refused is None:  # (a repeated disarm: no line)
            audit.record(c, now, AUDITED[kind], by, client,
                         detail or _detail(kind, out.state, now), state=out.state.state)
    return Applied(to_status(out.state), out, alerted)


def _detail(kind: str, st: AlarmState, now: float) -> str | None:
    if kind == "arm" and st.state == "arming" and st.deadline_ts is not None:
        return f"exit delay {st.deadline_ts - now:.0f} s"
    if kind == "snooze" and st.snooze_until is not None:
        if math.isinf(st.snooze_until):
            return "until disarmed"
        return "until " + time.strftime("%H:%M:%S", time.localtime(st.snooze_until))
    return None


def _motion(store: Store, event_id: int, motion_ts: float, now: float) -> tuple[str, bool]:
    """Inside an open transaction: the event's outcome and whether its alert was queued."""
    c = store.conn
    st, _ = load(c)
    out = step(st, Input("motion", event_id=event_id, motion_ts=motion_ts), now,
               machine_cfg(store))
    if out.changed:
        write(c, out.state)
    alerted = apply_effects(c, out, now)
    outcome = out.event_outcome or "not_armed"
    if outcome != "alert":  # (alert: set with the outbox row)
        c.execute("UPDATE events SET alarm = ?, armed = ? WHERE id = ?",
                  (outcome, outcome != "not_armed", event_id))
    return outcome, event_id in alerted


def motion_in_transaction(store: Store, event_id: int, motion_ts: float, now: float) -> bool:
    """A new event (its row just inserted in the caller's transaction) meets the alarm."""
    return _motion(store, event_id, motion_ts, now)[1]


def continued_motion(store: Store, event_id: int, motion_ts: float, now: float,
                     snapshot: str | None = None, thumb: str | None = None) -> str:
    """An event that started before the house was armed goes on moving after it: it meets the
    alarm now, once. Its picture becomes the one taken after arming (`snapshot`) when it
    alerts or waits in the entry delay. Returns the event's outcome."""
    with store.transaction() as c:
        r = c.execute("SELECT alarm FROM events WHERE id = ?", (event_id,)).fetchone()
        if r is None:
            return "gone"
        if r["alarm"] not in (None, "not_armed"):
            return str(r["alarm"])  # already met the alarm
        if snapshot is not None:
            # Before the outbox row, so the email can only ever see the picture from after arming.
            c.execute("UPDATE events SET snapshot = ?, thumb = COALESCE(?, thumb) WHERE id = ?",
                      (snapshot, thumb, event_id))
        outcome, _ = _motion(store, event_id, motion_ts, now)
        if outcome == "not_armed" and snapshot is not None:
            raise _Rollback  # not alertable after all: keep the event as it was
    return outcome


class _Rollback(Exception):
    pass


def continued_motion_safe(store: Store, event_id: int, motion_ts: float, now: float,
                          snapshot: str | None = None, thumb: str | None = None) -> str:
    """`continued_motion`, with "not armed" (the state changed meanwhile) as a plain answer."""
    try:
        return continued_motion(store, event_id, motion_ts, now, snapshot, thumb)
    except _Rollback:
        return "not_armed"


def tick(store: Store, now: float | None = None) -> Applied | None:
    """Apply the time-driven changes due now (exit delay over, entry delay over: the alert,
    triggered over, snooze over). Reads first and writes only when something is due, so the
    daemon can call it several times a second without wearing the card."""
    now = time.time() if now is None else now
    st, _ = load(store.conn)
    if not settle(st, now, machine_cfg(store)).changed:
        return None
    return apply(store, "tick", now=now)


def run_schedule(store: Store, entries: list[Entry], tz: dt.tzinfo, exit_delay_s: float,
                 now: float | None = None) -> Applied | None:
    """Act on the scheduled change due now, if any (see alarm/schedule.py for the clock rules).
    Writes only when a point is due or on the first check, so calling it often costs reads."""
    now = time.time() if now is None else now
    if not entries:
        return None
    _, checked = load(store.conn)
    if checked is not None and schedule.due(entries, tz, checked, now) is None:
        return None
    with store.transaction() as c:
        st, checked = load(c)
        point = schedule.due(entries, tz, checked, now)
        if checked is None or now > checked:
            c.execute("UPDATE arm_state SET schedule_checked_ts = ? WHERE id = 1", (now,))
        if point is None:
            return None
        last_hand = c.execute("SELECT MAX(ts) FROM audit WHERE action IN ('arm', 'disarm')"
                              ).fetchone()[0]
        if last_hand is not None and last_hand > point.ts:
            return None  # someone changed it by hand after the point: that holds
        kind = point.entry.action
        out = step(st, Input(kind, by="schedule", delay_s=exit_delay_s if kind == "arm" else 0),
                   now, machine_cfg(store))
        if out.changed:
            write(c, out.state)
        alerted = apply_effects(c, out, now)
        audit.record(c, now, "schedule", "schedule", None,
                     point.entry.label() + ("" if out.changed else ": already so"),
                     state=out.state.state)
    return Applied(to_status(out.state), out, alerted)
