"""Process-level hardening the capture daemon applies to itself at start.

Why: the web service runs as the same user (they share the SQLite database and the runtime dir),
and a process may read the memory (/proc/PID/mem), environment and open files of any other
process of its own user. The capture daemon holds the SMTP password in memory after reading its
credential, so a compromised web worker could take it from there even though systemd hides the
credential file from the web unit (InaccessiblePaths=). A process that is not "dumpable" has
those /proc files owned by root and refuses ptrace-style access from other unprivileged
processes (proc(5), PR_SET_DUMPABLE in prctl(2)); it also writes no core dump with the password.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3

log = logging.getLogger(__name__)


def make_undumpable() -> bool:
    """Mark this process not dumpable (Linux); False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            log.warning("could not mark the process undumpable (errno %d)", ctypes.get_errno())
            return False
        return bool(libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0)
    except OSError as exc:
        log.warning("could not mark the process undumpable: %s", exc)
        return False
