"""The capture daemon's health, handed to the web UI as `status.json` in the runtime directory.

Why a file in the runtime dir (tmpfs under systemd) and not SQLite: it changes every second, and
writing it to the SD card would wear the card for nothing. Kept free of OpenCV and numpy so the web
workers, which read it, do not pay for them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from homesec.system.atomic import write_atomic

STATUS_NAME = "status.json"
# The daemon rewrites the file every second while its loop runs (and on every reconnect attempt);
# this much silence means it is stuck or gone. Generous, so a busy Pi Zero is not called dead.
STALE_AFTER_S = 10.0


def write_status(runtime_dir: Path, status: dict[str, Any]) -> None:
    """Replace the status file."""
    write_atomic(runtime_dir / STATUS_NAME, json.dumps(status).encode())


def read_status(runtime_dir: Path, now: float | None = None) -> dict[str, Any] | None:
    """The daemon's last status, or None when it has not written one.

    An old file means the loop is stuck (a camera read that never returns) or the daemon is gone:
    then the status says `stale` and the camera counts as lost since the last frame, whatever the
    file claims.
    """
    try:
        status = json.loads((runtime_dir / STATUS_NAME).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    now = time.time() if now is None else now
    status["stale"] = now - float(status.get("updated_ts") or 0) > STALE_AFTER_S
    if status["stale"]:
        status["camera_ok"] = False
        if status.get("camera_lost_since") is None:
            status["camera_lost_since"] = status.get("last_frame_ts") or status.get("updated_ts")
            status["camera_error"] = "no frames: the capture daemon is stuck or not running"
    return status
