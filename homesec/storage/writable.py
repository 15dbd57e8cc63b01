"""Can the database files be written at all? Asked without writing anything (an SD card wears)
and without touching SQLite, by the capture daemon's threads before each database job.

Why not simply try: SQLite maps the `-shm` file into memory, and on ext4 a write into a mapped
file that became immutable (`chattr +i`) is answered with SIGBUS, which kills the whole process
(camera loop included); even closing or reopening the connection touches the mapping. So a
thread that sees the files refuse writes keeps away from SQLite until they take writes again
(a fresh process maps the file read-only and is safe). `os.access` also sees a read-only mount
and missing permissions; it cannot see a lock or a failing disk: those show as errors of the
write itself, which the callers handle too.
"""

from __future__ import annotations

import os
from pathlib import Path


def db_paths(db_path: Path) -> list[Path]:
    """The database file, its -wal and -shm files and their directory."""
    return [db_path, db_path.with_name(db_path.name + "-wal"),
            db_path.with_name(db_path.name + "-shm"), db_path.parent]


def unwritable_reason(db_path: Path) -> str | None:
    """None when every existing database file (and the directory) can be written, else which
    one cannot."""
    for path in db_paths(db_path):
        if path.exists() and not os.access(path, os.W_OK):
            return (f"{path.name} is not writable (read-only file system, immutable file or "
                    f"permissions)")
    return None
