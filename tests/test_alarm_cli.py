"""`homesec status` (the real command): alarm state, snooze, next schedule, camera health."""

from __future__ import annotations

import json
import time
from pathlib import Path

from homesec.alarm import persist
from homesec.config import load
from homesec.storage.store import Store
from tests.conftest import run_homesec


def test_status_prints_state_snooze_schedule_and_health(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"""
[camera]
source = "demo"
name = "Porch"
[paths]
state_dir = "{tmp_path / 'state'}"
runtime_dir = "{tmp_path / 'run'}"
[alarm]
timezone = "Europe/Berlin"
schedule = [{{ action = "disarm", time = "07:00" }}]
""")
    res = run_homesec("status", "--config", str(path))
    assert res.returncode == 2 and "no database" in res.stderr
    cfg = load(path)
    store = Store(cfg.paths.db_path)
    store.arm("owner (192.0.2.1)", delay_s=0)
    persist.apply(store, "snooze", by="owner", until_ts=float("inf"))
    store.close()
    res = run_homesec("status", "--config", str(path))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "alarm: armed since" in out and "owner (192.0.2.1)" in out
    assert "snooze: alerts paused until disarmed" in out
    assert "next schedule: disarm at " in out and " 07:00:00" in out
    assert "camera 'Porch': capture not running" in out
    cfg.paths.runtime_dir.mkdir(parents=True)
    now = time.time()
    (cfg.paths.runtime_dir / "status.json").write_text(json.dumps({
        "updated_ts": now, "fps": 14.5, "last_frame_ts": now, "camera": "Porch",
        "camera_ok": True, "camera_lost_since": None}))
    res = run_homesec("status", "--config", str(path))
    assert "camera 'Porch': ok, 14.5 fps" in res.stdout
