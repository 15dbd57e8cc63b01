"""The capture daemon's memory is closed to other processes of its own user (the web service runs
as the same user): once marked undumpable, /proc/PID/environ and /proc/PID/mem of the daemon
cannot be opened by another unprivileged process of that user. A control process that did not
call make_undumpable() stays readable, so the test shows the call is what closes it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

NOBODY = 65534
# The system's interpreter: the one running the tests may live where nobody cannot read (~root).
# hardening.py needs only the standard library.
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
HOLDER = ("import sys, time; sys.path.insert(0, sys.argv[1]); "
          "from homesec.system.hardening import make_undumpable; "
          "ok = make_undumpable() if sys.argv[2] == '1' else True; "
          "print('ready' if ok else 'failed', flush=True); time.sleep(60)")


def start_as_nobody(undumpable: bool) -> subprocess.Popen[str]:
    try:
        p = subprocess.Popen([PYTHON, "-c", HOLDER, str(REPO), "1" if undumpable else "0"],
                             user=NOBODY, group=NOBODY, extra_groups=[], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={"SECRET_IN_ENV": "app-password"})
    except PermissionError as exc:
        pytest.skip(f"cannot run Python as user nobody here: {exc}")
    line = p.stdout.readline().strip() if p.stdout else ""
    if line != "ready":
        p.kill()
        err = p.communicate()[1]
        pytest.skip(f"cannot run Python as user nobody here: {line} {err[-500:]}")
    return p


def read_as_nobody(path: str) -> subprocess.CompletedProcess[str]:
    code = f"print(open({path!r}, 'rb').read(200))"
    return subprocess.run([PYTHON, "-c", code], user=NOBODY, group=NOBODY, extra_groups=[],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (runs processes as user nobody)")
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_undumpable_daemon_hides_its_memory_from_the_same_user() -> None:
    control = start_as_nobody(undumpable=False)
    daemon = start_as_nobody(undumpable=True)
    try:
        res = read_as_nobody(f"/proc/{control.pid}/environ")
        assert res.returncode == 0 and "app-password" in res.stdout, res.stderr
        for name in ("environ", "mem"):
            res = read_as_nobody(f"/proc/{daemon.pid}/{name}")
            assert res.returncode != 0 and "PermissionError" in res.stderr, (name, res.stdout)
    finally:
        for p in (control, daemon):
            p.kill()
            p.communicate()
