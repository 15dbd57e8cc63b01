"""Whatever sits at the config path, `homesec check-config` (and so the daemon and every web
worker, which read it the same way) answers within seconds with one line naming the file and
exit status 2: never a traceback, never a hang, never a read that fills the memory.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from homesec.config import ConfigError, load
from tests.conftest import run_homesec


def check(path: Path) -> str:
    """check-config's one-line answer for `path` (fails the test on a hang or a traceback)."""
    try:
        res = run_homesec("check-config", str(path), timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"check-config hangs on {path.name}")
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr[-500:])
    assert "Traceback" not in res.stderr, res.stderr[-800:]
    line = res.stderr.strip()
    assert "\n" not in line and str(path) in line, line
    return line


@pytest.mark.parametrize(("content", "expected"), [
    (b"[camera]\nname = \"Garage\"\nlabel = \"\xff\xfe\"\n", "line 3: not UTF-8"),
    (os.urandom(3000).replace(b"\n", b"x") + b"\xff", "not UTF-8"),
    (b"a = " + b"[" * 100_000 + b"]" * 100_000 + b"\n", "nested too deeply"),
    (b"#" * (2 * 1024 * 1024), "larger than 1024 KiB"),
])
def test_hostile_config_bytes_are_one_clear_line(tmp_path: Path, content: bytes,
                                                 expected: str) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(content)
    assert expected in check(path)
    with pytest.raises(ConfigError, match=expected):
        load(path)


def test_a_fifo_at_the_config_path_does_not_hang(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    os.mkfifo(path)
    assert "not a regular file" in check(path)


def test_a_link_to_dev_zero_is_not_read_for_ever(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.symlink_to("/dev/zero")
    assert "not a regular file" in check(path)


def test_a_link_to_a_real_config_still_works(tmp_path: Path) -> None:
    real = tmp_path / "real.toml"
    real.write_text('[camera]\nsource = "demo"\n')
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    assert load(link).camera.source == "demo"
