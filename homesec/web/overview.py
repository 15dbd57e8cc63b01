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
    if state == "arming" and st.deadline_ts is not None:
        delay = max(0.0, st.deadline_ts - st.changed_ts)
        left = st.deadline_ts - now
        if left <= 0:
            state = "armed"
        else:
            # rounded up: a page counting down from it never shows ARMED before the deadline
            remaining = min(math.ceil(left * 10) / 10, delay)
    return {"state": state, "armed": state == "armed", "deadline_ts": st.deadline_ts,
            "remaining_s": remaining, "delay_s": delay, "changed_ts": st.changed_ts,
            "changed_by": st.changed_by}


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
        return {"name": cfg.camera.name, "daemon": "not running", "ok": False, "fps": 0.0,
                "frames_lost": 0, "last_frame_ts": None, "lost_since": None,
                "error": "no status from the daemon", "updated_ts": None, "clips": None}
    stale = st["stale"]
    lost = st.get("camera_lost_since")
    return {
        "name": st.get("camera", cfg.camera.name),
        "daemon": "stale" if stale else "running",
        "ok": bool(st.get("camera_ok")) and not stale,
        "fps": 0.0 if stale else st.get("fps", 0.0),
        "frames_lost": int(st.get("frames_lost") or 0),  # dropped by the camera: slow consumer
        "last_frame_ts": st.get("last_frame_ts"),
        "lost_since": lost,
        "error": st.get("camera_error") or ("no news from the daemon" if stale else None),
        "updated_ts": st.get("updated_ts"),
        "clips": st.get("clips"),
    }


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
    }
