"""The real labelled clips: `homesec analyze --json` (the real CLI, as a subprocess) with the
default config must detect every labelled motion interval and raise no false alarm.

Scored exactly as ../shared/tools/score_clips.py scores them (its own functions are used, loaded
with runpy): an event is judged by its start; one starting in a quiet interval, not within 2 s of
motion, is a false alarm; a motion interval is detected when a valid event overlaps it.
"""

from __future__ import annotations

import json
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
DEV = SHARED / "data" / "dev"
LABELS = DEV / "labels.json"
SCORER = SHARED / "tools" / "score_clips.py"


def _clips() -> list[dict[str, Any]]:
    if not LABELS.is_file():
        return []
    return json.loads(LABELS.read_text())["clips"]


def _homesec() -> list[str]:
    """The installed `homesec` command of this environment."""
    exe = Path(sys.executable).parent / "homesec"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("homesec")
    if found is None:
        pytest.fail("the `homesec` command is not installed (pip install -e .)")
    return [found]


@pytest.fixture(scope="module")
def scorer() -> dict[str, Any]:
    """score_clips.py's functions (parse_events, score_clip)."""
    if not SCORER.is_file():
        pytest.skip(f"scoring tool not found: {SCORER}")
    return runpy.run_path(str(SCORER))


@pytest.mark.skipif(not LABELS.is_file(), reason=f"labelled dev clips not present ({LABELS})")
@pytest.mark.parametrize("clip", _clips(), ids=lambda c: c["id"])
def test_clip(clip: dict[str, Any], scorer: dict[str, Any]) -> None:
    video = DEV / clip["file"]
    assert video.exists(), f"{video} listed in labels.json but missing"
    proc = subprocess.run(
        [*_homesec(), "analyze", str(video), "--fps", format(float(clip["fps"]), "g"), "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    events, bad = scorer["parse_events"](proc.stdout)
    assert bad == 0, f"malformed event lines in:\n{proc.stdout}"
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["type"] == "summary" and summary["frames"] > 0
    per_interval, false_alarms = scorer["score_clip"](clip, events)
    missed = [p["interval"] for p in per_interval if not p["detected"]]
    assert not missed, f"{clip['id']}: motion missed in {missed}; events {events}"
    assert not false_alarms, f"{clip['id']}: false alarm(s) {false_alarms}; notes: {clip['notes']}"
