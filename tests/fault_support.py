"""Real faults for the durability tests: a database made unwritable with `chattr +i`.

Why not the `-shm` file: SQLite maps it into memory, and on ext4 a write into a mapped immutable
file raises SIGBUS in every process that has the database open (readers too), which no program
survives; that is a different fault (a crash, covered by the journal's replay on restart). The
database file, its `-wal` file and their directory are what a full, failing or read-only disk
takes away: writes then fail with "disk I/O error" and new connections are read-only.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def chattr_works(folder: Path) -> str | None:
    """None when `chattr +i` works in `folder`, else why not (not root, file system without
    the flag)."""
    if shutil.which("chattr") is None:
        return "chattr is not installed (e2fsprogs)"
    probe = folder / ".chattr-probe"
    probe.write_text("x")
    try:
        r = subprocess.run(["chattr", "+i", str(probe)], capture_output=True, text=True)
        if r.returncode != 0:
            return f"chattr +i not possible here: {r.stderr.strip()}"
        try:
            probe.write_text("y")
        except PermissionError:
            return None
        return "chattr +i did not make the file immutable here"
    finally:
        subprocess.run(["chattr", "-i", str(probe)], capture_output=True)
        probe.unlink()


def db_fault_paths(db_path: Path) -> list[Path]:
    """The database file, its -wal file (when there is one) and their directory."""
    wal = db_path.with_name(db_path.name + "-wal")
    return [p for p in (db_path, wal) if p.exists()] + [db_path.parent]


@contextlib.contextmanager
def immutable(paths: list[Path]) -> Iterator[None]:
    """`chattr +i` on `paths` for the duration of the block (always undone)."""
    reason = chattr_works(paths[-1].parent)
    if reason:
        pytest.skip(f"cannot make the database unwritable: {reason}")
    subprocess.run(["chattr", "+i", *map(str, paths)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=True)


class Immutable:
    """`chattr +i` that a test switches on and off from a callback (a camera read)."""

    def __init__(self, paths: list[Path]) -> None:
        reason = chattr_works(paths[-1].parent)
        if reason:
            pytest.skip(f"cannot make the database unwritable: {reason}")
        self.paths = paths
        self.on = False

    def set(self) -> None:
        subprocess.run(["chattr", "+i", *map(str, self.paths)], check=True)
        self.on = True

    def clear(self) -> None:
        if self.on:
            subprocess.run(["chattr", "-i", *map(str, self.paths)], check=True)
            self.on = False


@contextlib.contextmanager
def small_filesystem(mountpoint: Path, size: str = "4m") -> Iterator[Path]:
    """A size-limited tmpfs mounted at `mountpoint` for the block (needs root; else skip)."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                        str(mountpoint)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small file system for the test: {r.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def fill(folder: Path) -> Path:
    """Fill the file system holding `folder` with one file (another program's); returns it."""
    filler = folder / "someone-elses-file"
    with open(filler, "wb") as f:
        chunk = b"\0" * 65536
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError:
            pass
    return filler
