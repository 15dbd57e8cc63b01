"""The status the home page and `GET /api/v1/status` show: arm state, camera health, last event,
disk use.

Camera health comes from the daemon's status file (it owns the camera; the web only reads). A
status file that has not been rewritten for a while means the daemon is stopped or stuck, which
the owner must see as clearly as "camera lost".
"""

from __future__ import annotations

import math
import shutil
import time
from typing import Any

from homesec.capture.status import read_status
from homesec.config import Config
from homesec.integrations import units
from homesec.storage.store import ArmStatus, EventRow, Store
from homesec.storage.usage import storage_json


def arm_json(st: ArmStatus, now: float) -> dict[str, Any]:
    """The arm state as JSON, with the seconds left while arming.

    `now` must be taken after `st` was read: a request that took its time before reading (a busy
    machine, a lock) would otherwise report more seconds left than there are. The seconds left
    never exceed the exit delay that was asked for (`delay_s`), whatever the clocks did."""
    state, remaining, delay = st.state, None, None
    if state in ("arming", "pending") and st.deadline_ts is not None:
        # (pending: the entry delay; same rules, the page counts down to the alert)
        delay = max(0.0, st.deadline_ts - st.changed_ts)
        left = st.deadline_ts - now
        if left <= 0:
            state = "armed" if state == "arming" else "triggered"
        else:
            # rounded up: a page counting down from it never shows ARMED before the deadline
            remaining = min(math.ceil(left * 10) / 10, delay)
    snooze = st.snooze_until
    until_disarmed = snooze is not None and math.isinf(snooze)
    armed = state in ("armed", "pending", "triggered")
    # deadline_ts keeps its meaning (when the exit delay ends / ended): the entry delay and the
    # triggered period have fields of their own.
    exit_deadline = st.deadline_ts if st.state == "arming" else st.armed_ts if armed else None
    return {"state": state, "armed": armed,
            "deadline_ts": exit_deadline, "remaining_s": remaining, "delay_s": delay,
            "entry_deadline_ts": st.deadline_ts if st.state == "pending" else None,
            "triggered_until_ts": st.deadline_ts if st.state == "triggered" else None,
            "changed_ts": st.changed_ts, "changed_by": st.changed_by, "armed_ts": st.armed_ts,
            "snoozed": snooze is not None,
            "snooze_until": None if snooze is None or until_disarmed else snooze,
            "snooze_until_disarmed": until_disarmed, "event_id": st.event_id}


def event_json(ev: EventRow) -> dict[str, Any]:
    """An event with the URLs of its pictures."""
    out = ev.to_json()
    base = f"/api/v1/events/{ev.id}"
    out["snapshot_url"] = f"{base}/snapshot.jpg" if ev.snapshot else None
    out["thumb_url"] = f"{base}/thumb.jpg" if ev.thumb else None
    return out


def camera_json(cfg: Config, now: float) -> dict[str, Any]:
    """Health from the daemon's status file."""
    st = read_status(cfg.paths.runtime_dir, now=now)
    if st is None:
        return {"name": cfg.camera.name, "daemon": "not running", "capture_running": False,
                "ok": False, "fps": 0.0, "frames_lost": 0, "last_frame_ts": None,
                "lost_since": None, "error": NOT_RUNNING, "updated_ts": None, "covered": False,
                "clips": None}
    stale = st["stale"]
    # A silent daemon is not a lost camera: say what the owner must fix (the capture service).
    lost = None if stale else st.get("camera_lost_since")
    return {
        "name": st.get("camera", cfg.camera.name),
        "daemon": "stale" if stale else "running",
        "capture_running": not stale,
        "ok": bool(st.get("camera_ok")) and not stale,
        "fps": 0.0 if stale else st.get("fps", 0.0),
        "frames_lost": int(st.get("frames_lost") or 0),  # dropped by the camera: slow consumer
        "last_frame_ts": st.get("last_frame_ts"),
        "lost_since": lost,
        "error": NOT_RUNNING if stale else st.get("camera_error"),
        "updated_ts": st.get("updated_ts"),
        "clips": st.get("clips"),
        "covered": bool(st.get("camera_covered")) and not stale,
    }


NOT_RUNNING = "capture not running"


def capture_warning(cfg: Config, now: float) -> str | None:
    """The warning an arm answer carries when nothing is watching (arming is still allowed)."""
    cam = camera_json(cfg, now)
    if not cam["capture_running"]:
        return "capture not running: the alarm is armed but nothing is watching"
    if cam["lost_since"] is not None:
        return "the camera is lost: the alarm is armed but nothing is watching"
    return None


def schedule_json(cfg: Config, now: float) -> dict[str, Any] | None:
    """The next scheduled change, if any."""
    from homesec.alarm.schedule import entries_from_config, local_zone, next_point

    entries = entries_from_config(cfg.alarm.schedule)
    if not entries:
        return None
    nxt = next_point(entries, local_zone(cfg.alarm.timezone), now)
    return None if nxt is None else {"ts": nxt.ts, "action": nxt.entry.action,
                                     "label": nxt.entry.label()}


def database_json(cfg: Config, now: float) -> dict[str, Any]:
    """Whether the capture daemon can write the database (from its status file): when it cannot,
    events wait in its journal, and the owner must see "database not writable since T". `ok` is
    None when the daemon is not running (nobody knows)."""
    st = read_status(cfg.paths.runtime_dir, now=now)
    if st is None or st["stale"] or "db_ok" not in st:
        return {"ok": None, "unwritable_since": None, "error": None, "waiting": None}
    return {"ok": bool(st["db_ok"]), "unwritable_since": st.get("db_unwritable_since"),
            "error": st.get("db_error"), "waiting": st.get("events_waiting"),
            "refused": st.get("events_refused", 0)}


def disk_json(cfg: Config) -> dict[str, Any]:
    """Use of the file system holding the media directory."""
    path = cfg.paths.media if cfg.paths.media.exists() else cfg.paths.state_dir
    try:
        du = shutil.disk_usage(path)
    except OSError:
        return {"path": str(path), "total_bytes": None, "free_bytes": None, "used_pct": None}
    return {"path": str(path), "total_bytes": du.total, "free_bytes": du.free,
            "used_pct": round(100.0 * du.used / du.total, 1) if du.total else None}


def status(cfg: Config, store: Store) -> dict[str, Any]:
    """Everything the home page shows at a glance."""
    arm = store.arm_status()
    now = time.time()  # after the read: see arm_json
    last = store.events(limit=1)
    return {
        "server_ts": now,
        "arm": arm_json(arm, now),
        "exit_delay_s": cfg.alarm.exit_delay_s,
        "camera": camera_json(cfg, now),
        "database": database_json(cfg, now),
        "last_event": event_json(last[0]) if last else None,
        "disk": disk_json(cfg),
        "mqtt": units.web_json(cfg.mqtt.enabled, cfg.paths.runtime_dir, store.conn),
        "storage": storage_json(cfg, store),
        "next_schedule": schedule_json(cfg, now),
        "health": {k: v for k, v in raised_conditions(store).items()},
    }


def raised_conditions(store: Store) -> dict[str, float]:
    """Health and tamper conditions alerted and not yet cleared (alarm/notify.py)."""
    from homesec.alarm.notify import raised

    return raised(store)
