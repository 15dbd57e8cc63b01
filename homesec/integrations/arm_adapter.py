"""The one place the MQTT integration touches the alarm's storage API.

Why an adapter: the alarm (states disarmed / arming / armed / pending / triggered, entry delay,
audit log) is growing in homesec/alarm/ at the same time; everything MQTT needs from it is here,
in four small methods, so re-pointing them is the whole of the work when that API changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from homesec.integrations.site import SiteArm
from homesec.storage.store import Store

# Our alarm states -> Home Assistant's alarm_control_panel states.
HA_STATES = {"disarmed": "disarmed", "arming": "arming", "armed": "armed_away",
             "pending": "pending", "triggered": "triggered"}


@dataclass(frozen=True)
class LocalArm:
    """This unit's arm state as stored in its SQLite file."""

    state: str
    deadline_ts: float | None
    changed_ts: float
    changed_by: str

    @property
    def key(self) -> tuple[float, str]:
        """Changes whenever anybody writes the state (even to the same value)."""
        return (self.changed_ts, self.changed_by)

    @property
    def initial(self) -> bool:
        """Never set by anybody (the row the first migration wrote): a new unit joining a site
        takes the site's state instead of imposing its own."""
        return self.changed_by == "install"

    @property
    def ha_state(self) -> str:
        """What Home Assistant's alarm panel shows."""
        return HA_STATES.get(self.state, "disarmed")


class ArmAdapter:
    """Reads and writes this unit's arm state for the MQTT client."""

    def __init__(self, store: Store, exit_delay_s: float) -> None:
        self.store = store
        self.exit_delay_s = exit_delay_s

    def read(self, now: float | None = None) -> LocalArm:
        """The state now (an 'arming' past its deadline reads as 'armed')."""
        st = self.store.arm_status(now)
        return LocalArm(st.state, st.deadline_ts, st.changed_ts, st.changed_by)

    def apply_remote(self, arm: SiteArm, by: str) -> LocalArm:
        """Take over a change made elsewhere, with its own time stamp, so the local history
        shows when it was made and where (`by`, e.g. "unit garage: web"). Returns what was
        written (not a fresh read, which could already show a later local change)."""
        if arm.state == "disarmed":
            self.store.set_arm(False, by=by, now=arm.ts)
        else:
            delay = max(0.0, (arm.deadline_ts or arm.ts) - arm.ts) if arm.state == "arming" else 0.0
            self.store.set_arm(True, by=by, delay_s=delay, now=arm.ts)
        return LocalArm(arm.state, arm.deadline_ts, arm.ts, by)

    def command(self, action: str, by: str) -> LocalArm:
        """ARM_AWAY (with this unit's exit delay; already armed stays armed) or DISARM."""
        if action == "ARM_AWAY":
            self.store.arm(by, delay_s=self.exit_delay_s)
        else:
            self.store.set_arm(False, by=by)
        return self.read()
