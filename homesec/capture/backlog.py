"""Event records waiting for the database, in order: in memory up to a bound, and in a journal
file in the state dir, so that a database which cannot be written (locked, read-only, disk I/O
errors, an immutable file) for minutes, or across a restart, loses no event record.

Why a journal file next to the database and not only memory: the daemon may be stopped or
restarted (systemd watchdog, an upgrade, a power cut) while the database is still unwritable;
the records come back from the journal on the next start. It is written only while the database
refuses writes, so an SD card pays for it only during a fault.

The bound: at most `memory_max` records are held in memory (a record is a few hundred bytes: the
snapshot is already a file by then). Beyond it, records live only in the journal and are read
back from it, in order, as the database takes the ones before them. Only when the journal cannot
be written either (its file system full or read-only as well) *and* memory is full are new
records refused; they are counted (`dropped`) and reported in the status, never silently lost.

Replaying is idempotent on the recorder's side (a start already in the database is found by its
camera and start time, an end is an UPDATE), so a crash between a database commit and the
journal's update only writes a record twice, never loses one.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from pathlib import Path
from typing import Any

from homesec.system.atomic import write_atomic

log = logging.getLogger("homesec.capture.backlog")

JOURNAL_DIR = "journal"
JOURNAL_NAME = "events.jsonl"
MEMORY_MAX = 2000  # records; ~1 MB on a Pi. Hours of events during an outage.

Record = dict[str, Any]


def journal_path(state_dir: Path) -> Path:
    """Where the recorder's journal lives (its own directory: an immutable state dir still lets
    the file in it be created and removed)."""
    return state_dir / JOURNAL_DIR / JOURNAL_NAME


class Backlog:
    """An ordered queue of records the database has not taken yet (`peek`, `pop` when written).

    Used by one thread only (the recorder)."""

    def __init__(self, path: Path, memory_max: int = MEMORY_MAX) -> None:
        self.path = path
        self.memory_max = memory_max
        self._mem: deque[Record] = deque()
        self._disk_only = 0  # records after those in memory, held only by the journal
        self._boundary = 0  # seq of the last record that went into memory (older: taken)
        self._next_seq = 1
        self.dropped = 0  # refused at the bound (journal unwritable and memory full)
        self.journal_error: str | None = None  # why the journal could not be written, if so

    def __len__(self) -> int:
        return len(self._mem) + self._disk_only

    def prepare_dir(self) -> None:
        """Create the journal's directory while the state dir can still be written."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.error("cannot create the journal directory %s: %s", self.path.parent, exc)

    # ---- adding ------------------------------------------------------------------------------

    def append(self, record: Record) -> bool:
        """Queue a record after every other one; False when it had to be refused (bound)."""
        record = {**record, "seq": self._next_seq}
        spilling = self._disk_only > 0 or len(self._mem) >= self.memory_max
        journaled = self._write_journal(record)
        if spilling and not journaled:
            self.dropped += 1
            log.error("event record refused: the database, the journal (%s) and the memory "
                      "bound (%d records) are all exhausted; %d refused so far",
                      self.journal_error, self.memory_max, self.dropped)
            return False
        self._next_seq += 1
        if spilling:
            self._disk_only += 1
        else:
            self._mem.append(record)
            self._boundary = record["seq"]
        return True

    def _write_journal(self, record: Record) -> bool:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            if self.journal_error is None:
                log.error("cannot write the event journal %s (%s): records waiting for the "
                          "database are kept in memory only", self.path, exc)
            self.journal_error = str(exc)
            return False
        self.journal_error = None
        return True

    # ---- taking ------------------------------------------------------------------------------

    def peek(self) -> Record | None:
        """The oldest record, or None when nothing waits."""
        if not self._mem and self._disk_only:
            self._refill()
        return self._mem[0] if self._mem else None

    def pop(self) -> None:
        """The oldest record is in the database now. An empty backlog removes its journal."""
        if self._mem:
            self._mem.popleft()
        if not self._mem and not self._disk_only:
            self._remove_journal()

    def _refill(self) -> None:
        """Read the next records that only the journal holds (after the last one taken)."""
        got: list[Record] = []
        for rec in self._read_journal():
            if rec["seq"] > self._boundary and len(got) < self.memory_max:
                got.append(rec)
        if not got:  # the journal lost them (deleted by hand): nothing more to read
            log.error("the event journal no longer holds %d record(s) it was given",
                      self._disk_only)
            self.dropped += self._disk_only
            self._disk_only = 0
            return
        self._mem.extend(got)
        self._boundary = got[-1]["seq"]
        self._disk_only = max(0, self._disk_only - len(got))

    # ---- the journal across restarts ---------------------------------------------------------

    def load(self) -> int:
        """Take in what an earlier run left in the journal (before anything new is appended).
        Returns how many records wait."""
        records = self._read_journal()
        if not records:
            return 0
        self._next_seq = max(r["seq"] for r in records) + 1
        self._mem.extend(records[: self.memory_max])
        self._boundary = self._mem[-1]["seq"]
        self._disk_only = len(records) - len(self._mem)
        log.warning("%d event record(s) from the journal wait for the database", len(records))
        return len(records)

    def close(self) -> None:
        """Leave only what still waits in the journal (for the next start), or remove it."""
        if not self:
            self._remove_journal()
            return
        rest = list(self._mem)
        if self._disk_only:
            rest += [r for r in self._read_journal() if r["seq"] > self._boundary]
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rest)
        try:
            write_atomic(self.path, data.encode())
        except OSError as exc:
            # The old journal stays (replaying records already written is harmless); records it
            # never held (the journal failed when they came) end with this process.
            log.error("cannot rewrite the event journal %s: %s", self.path, exc)
            return
        log.warning("%d event record(s) left in the journal %s for the next start", len(rest),
                    self.path)

    def _read_journal(self) -> list[Record]:
        """The journal's records in order; a torn last line (a crash mid-write) is cut off so the
        next append starts on a line of its own."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.error("cannot read the event journal %s: %s", self.path, exc)
            return []
        end = data.rfind(b"\n") + 1
        if end < len(data):
            log.warning("event journal ends in a torn line (a crash mid-write); cutting it off")
            try:
                os.truncate(self.path, end)
            except OSError as exc:
                log.error("cannot cut the torn line off the journal: %s", exc)
        out: list[Record] = []
        for line in data[:end].splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                log.error("unreadable line in the event journal skipped: %.80r", line)
                continue
            if isinstance(rec, dict) and isinstance(rec.get("seq"), int):
                out.append(rec)
        return out

    def _remove_journal(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError:  # a directory that refuses unlinking: an empty file says the same
            try:
                if self.path.exists():
                    os.truncate(self.path, 0)
            except OSError as exc:
                log.error("cannot empty the event journal %s: %s", self.path, exc)
