"""Health and tamper conditions as alerts in the durable outbox, at most once per condition until
it clears.

A condition ("camera_covered", "camera_lost", "disk_low") is a row in `health_alerts` while it
holds; raising it again changes nothing, clearing it deletes the row, so the next time it
happens is a new alert. Tamper conditions (covered) alert only while the house is armed; health
ones (lost, disk) also while disarmed. The outbox row carries its own subject and text (kind
'health'), and goes out as an email of its own through the same worker, retries and Message-ID
rules as motion alerts.
"""

from __future__ import annotations

import time

from homesec.alarm import persist
from homesec.storage.store import Store

TAMPER = {"camera_covered"}  # only while armed


def raise_condition(store: Store, condition: str, since_ts: float, title: str, body: str,
                    now: float | None = None) -> bool:
    """Queue the alert for `condition` unless it is already raised (or it is a tamper condition
    and the house is not armed). Returns whether an alert was queued."""
    now = time.time() if now is None else now
    with store.transaction() as c:
        if c.execute("SELECT 1 FROM health_alerts WHERE condition = ?", (condition,)).fetchone():
            return False
        if condition in TAMPER and not persist.status(store, now).armed:
            return False
        c.execute("INSERT INTO health_alerts (condition, since_ts, alerted_ts) VALUES (?, ?, ?)",
                  (condition, since_ts, now))
        state = persist.status(store, now)
        c.execute("INSERT INTO outbox (event_id, created_ts, next_attempt_ts, kind, title, body) "
                  "VALUES (NULL, ?, ?, 'health', ?, ?)",
                  (now, now, title, body + "\n\n" + state_line(state.state, state.changed_ts,
                                                                 state.changed_by)))
    return True


def clear_condition(store: Store, condition: str) -> bool:
    """The condition ended: the next occurrence alerts again. Returns whether it was raised."""
    with store.transaction() as c:
        cur = c.execute("DELETE FROM health_alerts WHERE condition = ?", (condition,))
    return cur.rowcount > 0


def raised(store: Store) -> dict[str, float]:
    """Conditions currently raised, with since when (for `homesec status` and the UI)."""
    return {r[0]: r[1] for r in store.conn.execute(
        "SELECT condition, since_ts FROM health_alerts ORDER BY condition")}


def state_line(state: str, changed_ts: float, changed_by: str) -> str:
    """'Alarm: armed since 14:02:11 (by owner)': the state line of every alert email (the same
    words as alerts/compose.alarm_line, which the motion emails use)."""
    return f"Alarm: {state} since {time.strftime('%H:%M:%S', time.localtime(changed_ts))} " \
           f"(by {changed_by})"
