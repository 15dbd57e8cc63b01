"""The site's shared arm state as it travels over MQTT, and the rule that settles conflicts.

Pure code (no network, no database), so the rule can be tested on its own.

The rule: every change carries a stamp `(ts, unit)`; the larger stamp wins (later time first,
then the larger unit name on a tie), on every unit, so all units end in the same state whatever
order the messages arrive in. A unit stamps a change of its own with its clock, but never lower
than just above the stamp it currently holds: a change made *after* seeing another one always wins
over it, even on a unit whose clock is behind. Only truly concurrent changes (made before either
unit heard of the other) are decided by the clocks; there a unit whose clock runs ahead wins by
the amount it is ahead. A stamp further in the future than `max_clock_skew_s` (a unit with a
clock gone wrong, or a stale retained message from one) is refused, so it cannot pin the site's
state for hours.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

SITE_STATES = ("disarmed", "arming", "armed")
COMMANDS = ("ARM_AWAY", "DISARM")
STAMP_STEP_S = 0.001  # a local change is stamped at least this much above the stamp it replaces
MAX_FIELD = 200  # longest text accepted in a message field


class BadMessage(ValueError):
    """A message that is ignored (one log line, nothing changes); the text says why."""


@dataclass(frozen=True)
class SiteArm:
    """One version of the site's arm state."""

    state: str  # one of SITE_STATES
    deadline_ts: float | None  # end of the exit delay while arming
    ts: float  # the stamp: when the change was made (see the module docstring)
    unit: str  # the unit where it was made
    by: str  # who made it there ("web", "Home Assistant", a token name, ...)

    @property
    def stamp(self) -> tuple[float, str]:
        """What conflicts are decided on: later ts wins, then the larger unit name."""
        return (self.ts, self.unit)

    def same_state(self, other: SiteArm) -> bool:
        """Equal for the alarm (an exit deadline a second apart counts as the same)."""
        if self.state != other.state:
            return False
        if self.state != "arming":
            return True
        a, b = self.deadline_ts, other.deadline_ts
        return a is not None and b is not None and abs(a - b) <= 1.0

    def payload(self, site: str) -> bytes:
        """The retained message on homesec/<site>/arm."""
        return json.dumps({"site": site, "state": self.state, "deadline_ts": self.deadline_ts,
                           "ts": self.ts, "unit": self.unit, "by": self.by}).encode()


def site_state(local_state: str) -> str:
    """The part of a unit's alarm state that the site shares: pending and triggered are one unit's
    business (its entry delay, its siren); for the site they are 'armed'."""
    if local_state in ("pending", "triggered"):
        return "armed"
    return local_state if local_state in SITE_STATES else "disarmed"


def next_stamp(held: SiteArm | None, clock_ts: float) -> float:
    """The stamp of a change made here now: our clock, but above the stamp we hold."""
    if held is None:
        return clock_ts
    return max(clock_ts, held.ts + STAMP_STEP_S)


def wins(new: SiteArm, held: SiteArm | None) -> bool:
    """Whether `new` replaces `held`."""
    return held is None or new.stamp > held.stamp


def _text(data: dict[str, Any], key: str, required: bool = True) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value or len(value) > MAX_FIELD:
        raise BadMessage(f"'{key}' must be a non-empty string")
    return value


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadMessage(f"'{key}' must be a number")
    return float(value)


def parse_site_arm(payload: bytes, site: str, now: float, max_clock_skew_s: float) -> SiteArm:
    """A message from homesec/<site>/arm, checked; BadMessage says what is wrong with it."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise BadMessage("not JSON") from None
    if not isinstance(data, dict):
        raise BadMessage("not a JSON object")
    if data.get("site") != site:
        raise BadMessage(f"for site {data.get('site')!r}, this unit is in site {site!r}")
    state = data.get("state")
    if state not in SITE_STATES:
        raise BadMessage(f"unknown state {state!r} (expected one of {', '.join(SITE_STATES)})")
    ts = _number(data.get("ts"), "ts")
    if ts > now + max_clock_skew_s:
        raise BadMessage(f"stamped {ts - now:.0f} s in the future (more than mqtt.max_clock_skew_s"
                         f" = {max_clock_skew_s:g}): a clock is wrong")
    deadline = data.get("deadline_ts")
    deadline = None if deadline is None else _number(deadline, "deadline_ts")
    if state == "arming" and deadline is None:
        raise BadMessage("'arming' needs deadline_ts")
    return SiteArm(state, deadline if state == "arming" else None, ts, _text(data, "unit"),
                   _text(data, "by", required=False) or "?")


@dataclass(frozen=True)
class Command:
    """An arm/disarm command, as Home Assistant sends it (or a person with mosquitto_pub)."""

    action: str  # one of COMMANDS
    code: str | None = None  # the PIN, when Home Assistant's command_template sends one

    def __repr__(self) -> str:
        return f"Command({self.action!r}, code={'***' if self.code else None})"


def parse_command(payload: bytes) -> Command:
    """`ARM_AWAY` / `DISARM` (Home Assistant's default payloads), or the JSON our
    command_template makes: {"action": "DISARM", "code": "1234"}."""
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BadMessage("not UTF-8 text") from None
    action: Any = text
    code = None
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise BadMessage("not valid JSON") from None
        action = data.get("action") if isinstance(data, dict) else None
        code = data.get("code") if isinstance(data, dict) else None
        code = str(code) if isinstance(code, str | int) and not isinstance(code, bool) else None
    if action not in COMMANDS:
        shown = action if isinstance(action, str) else text
        raise BadMessage(f"unknown command {shown[:40]!r} (expected {' or '.join(COMMANDS)})")
    return Command(str(action), code or None)
