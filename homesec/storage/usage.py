"""What the media take and what retention keeps, as the home page and `GET /status` show it.

Why from the sweep's report: walking the media folder on every page view would cost the web
workers disk reads; the capture daemon's sweep (hourly and after each clip) already measured it.
"""

from __future__ import annotations

from typing import Any

from homesec.config import Config
from homesec.storage import clips as clipdb
from homesec.storage.retention import GB, read_report
from homesec.storage.store import Store


def storage_json(cfg: Config, store: Store) -> dict[str, Any]:
    """Our media bytes, the budget, bytes of clips per day, how many days of clips fit, and
    whether the disk is full for a reason that is not ours."""
    rep = read_report(cfg.paths.runtime_dir) or {}
    per_day = clipdb.clip_bytes_per_day(store)
    media = rep.get("media_bytes")
    budget = int(cfg.storage.max_gb * GB) if cfg.storage.max_gb > 0 else None
    room = None  # bytes the media may grow to: the budget, or what the disk leaves them
    if rep.get("total_bytes"):
        disk_room = (rep.get("media_bytes") or 0) + rep["free_bytes"] - int(
            cfg.events.min_free_pct / 100.0 * rep["total_bytes"])
        room = max(0, disk_room) if budget is None else max(0, min(budget, disk_room))
    fit_days = None
    if room is not None and per_day > 0:
        fit_days = min(cfg.events.keep_days, room / per_day)
    return {
        "media_bytes": media, "budget_bytes": budget, "clip_bytes_per_day": round(per_day),
        "clip_days_kept": clipdb.clip_days(store), "clip_days_fit": (
            round(fit_days, 1) if fit_days is not None else None),
        "keep_days": cfg.events.keep_days,
        "full_other_reason": bool(rep.get("full_other_reason")),
        "swept_ts": rep.get("ts"),
    }
