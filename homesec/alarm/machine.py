"""The alarm as a state machine: one table of transitions, pure (no I/O, no clock of its own).

States (the names the UI, the API, the status file, the emails and Home Assistant use):
- `disarmed`: events are recorded, nothing alerts.
- `arming`: the exit delay runs until `deadline_ts`; motion is recorded, nothing alerts.
- `armed`: motion that starts (or goes on) after `armed_ts` is an intrusion.
- `pending`: the entry delay runs until `deadline_ts`; disarming now cancels the alert.
- `triggered`: the alert went out; until `deadline_ts` (alarm.triggered_s after the trigger, moved
  on by new motion), then back to `armed`.

Snooze is not a state but a flag on the armed states ("pause alerts for 15 min / 1 h / until
disarmed"): motion is recorded and nothing alerts. `snooze_until` is a time, or `math.inf` for
"until disarmed"; disarming always ends it.

Why pure: the daemon and every web worker decide with the same code, inside the same SQLite
transaction that reads and writes the state (see Store.alarm_step), so two phones tapping at once
or a disarm racing the end of the entry delay see one outcome. Time-driven changes (exit delay
over, entry delay over, triggered over, snooze over) are applied by `settle` before any input, so
a disarm that arrives after the entry delay ended cannot cancel an alert that was due.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

STATES = ("disarmed", "arming", "armed", "pending", "triggered")
ARMED_STATES = ("armed", "pending", "triggered")  # alerts can go out (unless snoozed)
INPUTS = ("arm", "disarm", "snooze", "unsnooze", "motion", "tick")
UNTIL_DISARMED = math.inf


@dataclass(frozen=True)
class MachineConfig:
    """The times the machine needs (from `[alarm]`)."""

    entry_delay_s: float = 0.0
    triggered_s: float = 600.0


@dataclass(frozen=True)
class AlarmState:
    """What is stored (one row): the state and the times that drive it."""

    state: str = "disarmed"
    deadline_ts: float | None = None  # arming: exit deadline; pending: entry; triggered: end
    armed_ts: float | None = None  # when the current armed period began (or begins: arming)
    changed_ts: float = 0.0
    changed_by: str = "install"
    snooze_until: float | None = None
    event_id: int | None = None  # the event that started pending / triggered

    @property
    def snoozed(self) -> bool:
        """Alerts paused (the caller settles the state first, so an expired snooze is gone)."""
        return self.snooze_until is not None


@dataclass(frozen=True)
class Input:
    """One input: `kind` in INPUTS. `by` for the human-made ones, `delay_s` for arm,
    `until_ts` for snooze, `event_id` + `motion_ts` for motion."""

    kind: str
    by: str = ""
    delay_s: float = 0.0
    until_ts: float | None = None
    event_id: int | None = None
    motion_ts: float | None = None


@dataclass(frozen=True)
class Outcome:
    """The new state and what the store must do about it.

    `effects`: "alert" (queue alerts for the event(s) waiting in the entry delay, or for
    `alert_event`), "cancel" (the waiting events were disarmed in time), "snoozed" (the waiting
    events' alert was called off by a snooze). `event_outcome`: for a motion input, what becomes
    of that event ("alert", "pending", "snoozed", "not_armed"). `changed`: the stored row must be
    written. `refused`: why the input was not accepted (nothing changed)."""

    state: AlarmState
    effects: tuple[str, ...] = ()
    alert_event: int | None = None
    event_outcome: str | None = None
    changed: bool = False
    refused: str | None = None
    transitions: tuple[tuple[str, str], ...] = field(default=())


# The table: (state, input) -> the states it can lead to. `step` implements it; the unit test
# walks every cell and checks `step` never leaves it. Time-driven rows are `tick`.
TABLE: dict[tuple[str, str], tuple[str, ...]] = {
    ("disarmed", "arm"): ("arming", "armed"),  # delay > 0 -> arming, 0 -> armed
    ("disarmed", "disarm"): ("disarmed",),
    ("disarmed", "snooze"): ("disarmed",),  # refused: nothing to pause
    ("disarmed", "unsnooze"): ("disarmed",),
    ("disarmed", "motion"): ("disarmed",),  # recorded only
    ("disarmed", "tick"): ("disarmed",),
    ("arming", "arm"): ("arming", "armed"),  # only a shorter delay moves the deadline
    ("arming", "disarm"): ("disarmed",),
    ("arming", "snooze"): ("arming",),
    ("arming", "unsnooze"): ("arming",),
    ("arming", "motion"): ("arming",),  # the owner walking out: recorded only
    ("arming", "tick"): ("arming", "armed"),  # armed at the exit deadline
    ("armed", "arm"): ("armed",),  # re-arming never opens a new exit delay
    ("armed", "disarm"): ("disarmed",),
    ("armed", "snooze"): ("armed",),
    ("armed", "unsnooze"): ("armed",),
    ("armed", "motion"): ("armed", "pending", "triggered"),  # snoozed / entry delay / at once
    ("armed", "tick"): ("armed",),  # (a snooze may end)
    ("pending", "arm"): ("pending",),  # arming again does not cancel the running entry delay
    ("pending", "disarm"): ("disarmed",),  # disarmed in time: no alert
    ("pending", "snooze"): ("armed",),  # the waiting alert is called off, alerts paused
    ("pending", "unsnooze"): ("pending",),
    ("pending", "motion"): ("pending",),  # waits with the first event
    ("pending", "tick"): ("pending", "triggered"),  # the entry delay ran out: alert
    ("triggered", "arm"): ("triggered",),
    ("triggered", "disarm"): ("disarmed",),
    ("triggered", "snooze"): ("armed",),
    ("triggered", "unsnooze"): ("triggered",),
    ("triggered", "motion"): ("triggered",),  # alerts at once, the period starts again
    ("triggered", "tick"): ("triggered", "armed"),  # alarm.triggered_s over
}


def _with(st: AlarmState, now: float, by: str | None, **kw: object) -> AlarmState:
    return replace(st, changed_ts=now, changed_by=by if by is not None else st.changed_by, **kw)


def settle(st: AlarmState, now: float, cfg: MachineConfig) -> Outcome:
    """Apply every time-driven change due at `now` (a 'tick'): exit delay over, entry delay over
    (the alert), triggered over, snooze over. Chains (arming -> armed) in one call."""
    effects: list[str] = []
    trans: list[tuple[str, str]] = []
    changed = False
    if st.snooze_until is not None and now >= st.snooze_until:
        st, changed = replace(st, snooze_until=None), True
    if st.state == "arming" and st.deadline_ts is not None and now >= st.deadline_ts:
        trans.append(("arming", "armed"))
        st = replace(st, state="armed", armed_ts=st.deadline_ts, deadline_ts=None,
                     changed_ts=st.deadline_ts, changed_by=st.changed_by)
        changed = True
    if st.state == "pending" and st.deadline_ts is not None and now >= st.deadline_ts:
        trans.append(("pending", "triggered"))
        t = st.deadline_ts
        st = replace(st, state="triggered", deadline_ts=t + cfg.triggered_s, changed_ts=t,
                     changed_by="entry delay over")
        effects.append("alert")
        changed = True
    if st.state == "triggered" and st.deadline_ts is not None and now >= st.deadline_ts:
        trans.append(("triggered", "armed"))
        st = replace(st, state="armed", deadline_ts=None, event_id=None,
                     changed_ts=st.deadline_ts, changed_by="alarm.triggered_s over")
        changed = True
    return Outcome(st, tuple(effects), changed=changed, transitions=tuple(trans))


def step(st: AlarmState, inp: Input, now: float, cfg: MachineConfig) -> Outcome:
    """The state after `inp` at `now`, time-driven changes first (see `settle`)."""
    if inp.kind not in INPUTS:
        raise ValueError(f"unknown alarm input {inp.kind!r}")
    settled = settle(st, now, cfg)
    out = _input(settled.state, inp, now, cfg)
    return Outcome(
        out.state, settled.effects + out.effects, out.alert_event, out.event_outcome,
        settled.changed or out.changed, out.refused, settled.transitions + out.transitions,
    )


def _input(st: AlarmState, inp: Input, now: float, cfg: MachineConfig) -> Outcome:
    s, kind = st.state, inp.kind
    if kind == "tick":
        return Outcome(st)
    if kind == "arm":
        delay = max(0.0, inp.delay_s)
        if s == "disarmed" or (s == "arming" and st.deadline_ts is not None
                               and now + delay < st.deadline_ts):
            if delay > 0:
                new = _with(st, now, inp.by, state="arming", deadline_ts=now + delay,
                            armed_ts=now + delay, event_id=None)
            else:
                new = _with(st, now, inp.by, state="armed", deadline_ts=None, armed_ts=now,
                            event_id=None)
            return Outcome(new, changed=True, transitions=((s, new.state),))
        return Outcome(st)  # already arming (no sooner), armed, pending or triggered
    if kind == "disarm":
        effects = ("cancel",) if s == "pending" else ()
        if s == "disarmed" and st.snooze_until is None:
            # Nothing changes for the alarm, but who/when is written again: a disarm made here
            # must win over an older arm made on another unit (the MQTT site's stamp rule).
            return Outcome(_with(st, now, inp.by), changed=True)
        new = _with(st, now, inp.by, state="disarmed", deadline_ts=None, armed_ts=None,
                    snooze_until=None, event_id=None)
        return Outcome(new, effects, changed=True, transitions=((s, "disarmed"),))
    if kind == "snooze":
        if s == "disarmed":
            return Outcome(st, refused="not armed: there are no alerts to pause")
        until = inp.until_ts if inp.until_ts is not None else UNTIL_DISARMED
        if until <= now:
            return Outcome(st, refused="the snooze must end in the future")
        if s in ("pending", "triggered"):
            new = _with(st, now, inp.by, state="armed", deadline_ts=None, snooze_until=until,
                        event_id=None)
            return Outcome(new, ("snoozed",) if s == "pending" else (), changed=True,
                           transitions=((s, "armed"),))
        # (the state did not change: changed_ts/changed_by still say who armed)
        return Outcome(replace(st, snooze_until=until), changed=True)
    if kind == "unsnooze":
        if st.snooze_until is None:
            return Outcome(st)
        return Outcome(replace(st, snooze_until=None), changed=True)
    # motion: an event started, or a running event goes on moving after the house was armed
    t = inp.motion_ts if inp.motion_ts is not None else now
    if s in ("disarmed", "arming") or st.armed_ts is None or t < st.armed_ts:
        return Outcome(st, event_outcome="not_armed")
    if st.snoozed:
        return Outcome(st, event_outcome="snoozed")
    if s == "armed":
        if cfg.entry_delay_s > 0:
            new = _with(st, now, "motion", state="pending", deadline_ts=now + cfg.entry_delay_s,
                        event_id=inp.event_id)
            return Outcome(new, event_outcome="pending", changed=True,
                           transitions=(("armed", "pending"),))
        new = _with(st, now, "motion", state="triggered", deadline_ts=now + cfg.triggered_s,
                    event_id=inp.event_id)
        return Outcome(new, ("alert",), alert_event=inp.event_id, event_outcome="alert",
                       changed=True, transitions=(("armed", "triggered"),))
    if s == "pending":
        return Outcome(st, event_outcome="pending")
    # triggered: alert this one too (the outbox folds alerts into digests), period starts again
    new = replace(st, deadline_ts=now + cfg.triggered_s)
    return Outcome(new, ("alert",), alert_event=inp.event_id, event_outcome="alert", changed=True)


def view(st: AlarmState, now: float, cfg: MachineConfig) -> AlarmState:
    """The state as a reader sees it at `now` (time-driven changes applied, nothing written)."""
    return settle(st, now, cfg).state
