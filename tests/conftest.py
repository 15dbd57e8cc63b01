"""Shared fixtures: a config in a temp dir, the repo paths, running the real `homesec` command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from homesec.config import Config, parse

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
DEV_CLIPS = SHARED / "data" / "dev"


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05,
             what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def config_dict(tmp_path: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A config dict for a demo-camera daemon with every path under tmp_path."""
    data: dict[str, Any] = {
        "camera": {"source": "demo", "name": "Test cam", "realtime": False, "fps": 15,
                   "width": 640, "height": 360},
        "paths": {"state_dir": str(tmp_path / "state"), "runtime_dir": str(tmp_path / "run")},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return data


def write_config(tmp_path: Path, **sections: dict[str, Any]) -> Path:
    """Write config_dict(...) as TOML and return its path."""
    lines = []
    for section, values in config_dict(tmp_path, **sections).items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml(value)}")
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """Build a validated Config for a demo camera with paths under tmp_path."""
    def build(**sections: dict[str, Any]) -> Config:
        return parse(config_dict(tmp_path, **sections))
    return build


def homesec_cmd(*args: str) -> list[str]:
    """argv for the real `homesec` command in this interpreter."""
    return [sys.executable, "-m", "homesec", *args]


def run_homesec(*args: str, timeout: float = 120.0, **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run `homesec ARGS` to completion, capturing output."""
    env = {**os.environ, **kw.pop("env", {})}
    return subprocess.run(homesec_cmd(*args), capture_output=True, text=True, timeout=timeout,
                          env=env, **kw)


@pytest.fixture
def fake_picamera2(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The picamera2 fake (tests/fakes/picamera2), freshly imported; knobs reset after."""
    from tests.picamera_support import fresh_fake_picamera2

    yield from fresh_fake_picamera2(monkeypatch)
