"""The alarm state machine, cell by cell of its transition table (pure: no database, no clock)."""

from __future__ import annotations

import math

import pytest

from homesec.alarm.machine import (
    INPUTS,
    STATES,
    TABLE,
    AlarmState,
    Input,
    MachineConfig,
    settle,
    step,
)

CFG = MachineConfig(entry_delay_s=30.0, triggered_s=600.0)
NO_ENTRY = MachineConfig(entry_delay_s=0.0, triggered_s=600.0)
T = 10_000.0  # "now" in every case


def state(name: str, snooze: float | None = None) -> AlarmState:
    """A typical stored row for each state, its deadlines still ahead of T."""
    return {
        "disarmed": AlarmState("disarmed", changed_ts=T - 100, changed_by="owner"),
        "arming": AlarmState("arming", deadline_ts=T + 50, armed_ts=T + 50, changed_ts=T - 10,
                             changed_by="owner", snooze_until=snooze),
        "armed": AlarmState("armed", armed_ts=T - 100, changed_ts=T - 100, changed_by="owner",
                            snooze_until=snooze),
        "pending": AlarmState("pending", deadline_ts=T + 20, armed_ts=T - 100, changed_ts=T - 10,
                              changed_by="motion", snooze_until=snooze, event_id=7),
        "triggered": AlarmState("triggered", deadline_ts=T + 300, armed_ts=T - 100,
                                changed_ts=T - 300, changed_by="motion", event_id=7),
    }[name]


INPUT_OF = {
    "arm": Input("arm", by="owner", delay_s=60),
    "disarm": Input("disarm", by="owner"),
    "snooze": Input("snooze", by="owner", until_ts=T + 900),
    "unsnooze": Input("unsnooze", by="owner"),
    "motion": Input("motion", event_id=9, motion_ts=T),
    "tick": Input("tick"),
}

# The state each (state, input) leads to at T with the typical rows above, and the effects.
EXPECTED = {
    ("disarmed", "arm"): ("arming", ()),
    ("disarmed", "disarm"): ("disarmed", ()),
    ("disarmed", "snooze"): ("disarmed", ()),
    ("disarmed", "unsnooze"): ("disarmed", ()),
    ("disarmed", "motion"): ("disarmed", ()),
    ("disarmed", "tick"): ("disarmed", ()),
    ("arming", "arm"): ("arming", ()),
    ("arming", "disarm"): ("disarmed", ()),
    ("arming", "snooze"): ("arming", ()),
    ("arming", "unsnooze"): ("arming", ()),
    ("arming", "motion"): ("arming", ()),
    ("arming", "tick"): ("arming", ()),
    ("armed", "arm"): ("armed", ()),
    ("armed", "disarm"): ("disarmed", ()),
    ("armed", "snooze"): ("armed", ()),
    ("armed", "unsnooze"): ("armed", ()),
    ("armed", "motion"): ("pending", ()),
    ("armed", "tick"): ("armed", ()),
    ("pending", "arm"): ("pending", ()),
    ("pending", "disarm"): ("disarmed", ("cancel",)),
    ("pending", "snooze"): ("armed", ("snoozed",)),
    ("pending", "unsnooze"): ("pending", ()),
    ("pending", "motion"): ("pending", ()),
    ("pending", "tick"): ("pending", ()),
    ("triggered", "arm"): ("triggered", ()),
    ("triggered", "disarm"): ("disarmed", ()),
    ("triggered", "snooze"): ("armed", ()),
    ("triggered", "unsnooze"): ("triggered", ()),
    ("triggered", "motion"): ("triggered", ("alert",)),
    ("triggered", "tick"): ("triggered", ()),
}


def test_table_covers_every_state_and_input() -> None:
    assert set(TABLE) == {(s, i) for s in STATES for i in INPUTS}
    assert set(EXPECTED) == set(TABLE)


@pytest.mark.parametrize(("start", "kind"), sorted(EXPECTED))
def test_every_transition(start: str, kind: str) -> None:
    out = step(state(start), INPUT_OF[kind], T, CFG)
    want, effects = EXPECTED[(start, kind)]
    assert out.state.state == want
    assert out.effects == effects
    assert want in TABLE[(start, kind)], "the table must list what step() does"


@pytest.mark.parametrize(("start", "kind"), sorted(EXPECTED))
def test_no_step_leaves_the_table_at_any_time(start: str, kind: str) -> None:
    """Whatever the time (before, at, long after every deadline), the result is in the table
    of the state reached by the time-driven changes first."""
    for now in (T - 1, T, T + 25, T + 60, T + 400, T + 5000):
        settled = settle(state(start), now, CFG).state
        for cfg in (CFG, NO_ENTRY):
            out = step(state(start), INPUT_OF[kind], now, cfg)
            assert out.state.state in TABLE[(settled.state, kind)] + (settled.state,)


def test_arm_without_delay_is_armed_at_once() -> None:
    out = step(state("disarmed"), Input("arm", by="owner", delay_s=0), T, CFG)
    assert out.state.state == "armed" and out.state.armed_ts == T and out.changed
    assert out.state.changed_by == "owner" and out.state.changed_ts == T


def test_arming_only_a_shorter_delay_moves_the_deadline() -> None:
    longer = step(state("arming"), Input("arm", by="b", delay_s=120), T, CFG)
    assert longer.state.deadline_ts == T + 50 and not longer.changed
    shorter = step(state("arming"), Input("arm", by="b", delay_s=10), T, CFG)
    assert shorter.state.deadline_ts == T + 10 and shorter.state.changed_by == "b"
    now = step(state("arming"), Input("arm", by="b", delay_s=0), T, CFG)
    assert now.state.state == "armed" and now.state.armed_ts == T


def test_exit_delay_ends_armed_at_the_deadline() -> None:
    st = state("arming")
    assert settle(st, T + 49.9, CFG).state.state == "arming"
    out = settle(st, T + 50, CFG)
    assert out.state.state == "armed" and out.state.armed_ts == T + 50 and out.changed


def test_motion_while_arming_or_before_the_armed_time_never_alerts() -> None:
    assert step(state("arming"), INPUT_OF["motion"], T, CFG).event_outcome == "not_armed"
    early = Input("motion", event_id=9, motion_ts=T - 101)  # started before armed_ts
    out = step(state("armed"), early, T, CFG)
    assert out.state.state == "armed" and out.event_outcome == "not_armed"


def test_motion_without_entry_delay_triggers_and_alerts_at_once() -> None:
    out = step(state("armed"), INPUT_OF["motion"], T, NO_ENTRY)
    assert out.state.state == "triggered" and out.effects == ("alert",)
    assert out.alert_event == 9 and out.event_outcome == "alert"
    assert out.state.deadline_ts == T + 600


def test_entry_delay_runs_then_alerts() -> None:
    out = step(state("armed"), INPUT_OF["motion"], T, CFG)
    assert out.state.state == "pending" and out.state.deadline_ts == T + 30
    assert out.event_outcome == "pending" and out.effects == ()
    assert settle(out.state, T + 29.9, CFG).state.state == "pending"
    due = settle(out.state, T + 30, CFG)
    assert due.state.state == "triggered" and due.effects == ("alert",)
    assert due.state.changed_ts == T + 30 and due.state.deadline_ts == T + 630


def test_disarm_during_pending_cancels_the_alert() -> None:
    out = step(state("pending"), Input("disarm", by="owner"), T + 19, CFG)
    assert out.state.state == "disarmed" and out.effects == ("cancel",)
    assert out.state.snooze_until is None and out.state.event_id is None


def test_disarm_after_the_entry_delay_cannot_cancel_the_alert() -> None:
    out = step(state("pending"), Input("disarm", by="owner"), T + 20.5, CFG)
    assert out.state.state == "disarmed" and out.effects == ("alert",)
    assert out.transitions == (("pending", "triggered"), ("triggered", "disarmed"))


def test_arm_while_pending_keeps_the_countdown() -> None:
    st = state("pending")
    out = step(st, Input("arm", by="owner", delay_s=0), T, CFG)
    assert out.state == st and not out.changed
    assert settle(out.state, T + 20, CFG).effects == ("alert",)


def test_triggered_timeout_returns_to_armed() -> None:
    st = state("triggered")
    assert settle(st, T + 299, CFG).state.state == "triggered"
    out = settle(st, T + 300, CFG)
    assert out.state.state == "armed" and out.state.armed_ts == T - 100
    assert out.state.event_id is None and out.effects == ()


def test_motion_while_triggered_alerts_and_extends() -> None:
    out = step(state("triggered"), INPUT_OF["motion"], T, CFG)
    assert out.effects == ("alert",) and out.alert_event == 9
    assert out.state.deadline_ts == T + 600


def test_a_daemon_down_for_long_still_alerts_once_and_settles_armed() -> None:
    out = settle(state("pending"), T + 10_000, CFG)
    assert out.state.state == "armed" and out.effects == ("alert",)


def test_snooze_pauses_alerts_until_its_end() -> None:
    snoozed = step(state("armed"), Input("snooze", by="o", until_ts=T + 900), T, CFG).state
    assert snoozed.snoozed
    out = step(snoozed, INPUT_OF["motion"], T + 1, CFG)
    assert out.state.state == "armed" and out.event_outcome == "snoozed" and not out.effects
    later = step(snoozed, Input("motion", event_id=10, motion_ts=T + 900), T + 900, CFG)
    assert not later.state.snoozed or later.state.state == "pending"
    assert later.state.state == "pending"


def test_snooze_until_disarmed_ends_with_disarm_only() -> None:
    st = step(state("armed"), Input("snooze", by="o"), T, CFG).state
    assert st.snooze_until == math.inf
    assert settle(st, T + 1e9, CFG).state.snoozed
    assert not step(st, Input("disarm", by="o"), T, CFG).state.snoozed


def test_snooze_refused_when_disarmed_or_in_the_past() -> None:
    assert step(state("disarmed"), Input("snooze", by="o"), T, CFG).refused
    assert step(state("armed"), Input("snooze", by="o", until_ts=T - 1), T, CFG).refused


def test_snooze_while_pending_calls_off_the_waiting_alert() -> None:
    out = step(state("pending"), Input("snooze", by="o", until_ts=T + 900), T, CFG)
    assert out.state.state == "armed" and out.effects == ("snoozed",)
    assert settle(out.state, T + 30, CFG).effects == ()


def test_schedule_while_snoozed() -> None:
    """A scheduled arm while armed and snoozed changes nothing (the snooze stays); a scheduled
    disarm disarms and ends the snooze, so the next scheduled arm alerts again."""
    snoozed = step(state("armed"), Input("snooze", by="o"), T, CFG).state
    arm = step(snoozed, Input("arm", by="schedule", delay_s=60), T + 5, CFG)
    assert arm.state == snoozed and not arm.changed
    off = step(snoozed, Input("disarm", by="schedule"), T + 5, CFG)
    assert off.state.state == "disarmed" and not off.state.snoozed
    again = step(off.state, Input("arm", by="schedule", delay_s=0), T + 10, CFG).state
    assert not again.snoozed and step(again, Input("motion", event_id=1, motion_ts=T + 11),
                                      T + 11, NO_ENTRY).effects == ("alert",)


def test_unknown_input_is_an_error() -> None:
    with pytest.raises(ValueError):
        step(state("armed"), Input("explode"), T, CFG)
