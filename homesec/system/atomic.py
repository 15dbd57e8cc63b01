"""Atomic file replacement, shared by every writer whose readers live in another process."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes to `path` via a temporary file in the same directory and rename: a reader
    sees the old file or the new one, never half of one, even if the writer dies mid-write.

    A failed write (disk full) removes its temporary file: a full disk must not be filled further
    by half-written leftovers that nothing ever cleans up."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
