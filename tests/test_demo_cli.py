"""`homesec demo` refuses a busy port instead of running with someone else's server as its UI."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.conftest import run_homesec


def test_demo_on_a_busy_port_says_so(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = run_homesec("demo", "--dir", str(tmp_path / "d"), "--port", str(port),
                          "--seconds", "1", timeout=60)
    assert res.returncode == 2
    assert f"port {port}" in res.stderr and "in use" in res.stderr
    assert not (tmp_path / "d" / "state").exists()  # nothing started


def test_analyze_output_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import DEV_CLIPS

    clip = DEV_CLIPS / "beweging-walking-to.h264"
    if not clip.exists():
        import pytest

        pytest.skip(f"dev clip not present: {clip}")
    res = subprocess.run(f"{sys.executable} -m homesec analyze {clip} --fps 25 --json | head -1",
                         shell=True, capture_output=True, text=True, timeout=120)
    assert res.stdout.count("\n") == 1
    assert "Traceback" not in res.stderr
