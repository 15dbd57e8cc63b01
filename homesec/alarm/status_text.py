"""`homesec status`: the alarm state, snooze, next scheduled change and camera health as lines
a person reads on the Pi's console (the same facts as the web UI's home page)."""

from __future__ import annotations

import math
import time

from homesec.config import Config
from homesec.storage.store import Store


def _t(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def lines(cfg: Config, store: Store, now: float | None = None) -> list[str]:
    """What `homesec status` prints."""
    from homesec.alarm.notify import raised
    from homesec.web.overview import arm_json, camera_json, disk_json, schedule_json

    st = store.arm_status()
    now = time.time() if now is None else now
    arm = arm_json(st, now)
    out = [f"alarm: {arm['state']} since {_t(st.changed_ts)} (by {st.changed_by})"]
    if arm["remaining_s"] is not None:
        what = "alert" if arm["state"] == "pending" else "armed"
        out[-1] += f", {what} in {math.ceil(arm['remaining_s'])} s"
    if st.snooze_until is None:
        out.append("snooze: off")
    elif math.isinf(st.snooze_until):
        out.append("snooze: alerts paused until disarmed")
    else:
        out.append(f"snooze: alerts paused until {_t(st.snooze_until)}")
    nxt = schedule_json(cfg, now)
    if nxt:
        import datetime as dt

        from homesec.alarm.schedule import local_zone

        when = dt.datetime.fromtimestamp(nxt["ts"], local_zone(cfg.alarm.timezone))
        out.append(f"next schedule: {nxt['action']} at {when:%Y-%m-%d %H:%M:%S %Z} "
                   f"({nxt['label']})")
    else:
        out.append("next schedule: none (no [[alarm.schedule]] entries)")
    cam = camera_json(cfg, now)
    if not cam["capture_running"]:
        health = "capture not running (start it: systemctl start homesec-capture)"
    elif cam["covered"]:
        health = "camera covered or blinded"
    elif cam["lost_since"] is not None:
        health = f"camera lost since {_t(cam['lost_since'])}: {cam['error'] or ''}".rstrip(": ")
    else:
        health = f"ok, {cam['fps']} fps, last frame {_t(cam['last_frame_ts'])}"
    out.append(f"camera '{cam['name']}': {health}")
    disk = disk_json(cfg)
    if disk["used_pct"] is not None:
        out.append(f"disk: {disk['used_pct']} % used, {disk['free_bytes'] / 1e9:.1f} GB free")
    for cond, since in raised(store).items():
        out.append(f"alerted: {cond.replace('_', ' ')} since {_t(since)}")
    return out
