"""The clips table: which finished MP4 files belong to which event, and the queries that the web
UI and the retention sweep ask about media.

Why a row is written only once the file is complete and renamed: a listed clip must always decode,
even after a SIGKILL in the middle of writing one (see capture/recording.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from homesec.storage.store import Store, row_id_ok


@dataclass
class ClipRow:
    """One stored clip file."""

    id: int
    event_id: int
    part: int
    path: str
    start_ts: float
    end_ts: float
    bytes: int
    frames: int
    dropped_frames: int

    @property
    def duration_s(self) -> float:
        """Seconds of video."""
        return max(0.0, self.end_ts - self.start_ts)

    def to_json(self) -> dict[str, Any]:
        """For the API (no file system path: the URL is the way to the file)."""
        return {"part": self.part, "start_ts": self.start_ts, "end_ts": self.end_ts,
                "duration_s": round(self.duration_s, 2), "bytes": self.bytes,
                "frames": self.frames, "dropped_frames": self.dropped_frames,
                "url": f"/api/v1/events/{self.event_id}/clip.mp4?part={self.part}"}


def _row(r: Any) -> ClipRow:
    return ClipRow(id=r["id"], event_id=r["event_id"], part=r["part"], path=r["path"],
                   start_ts=r["start_ts"], end_ts=r["end_ts"], bytes=r["bytes"],
                   frames=r["frames"], dropped_frames=r["dropped_frames"])


def add_clip(store: Store, event_id: int, part: int, path: str, start_ts: float, end_ts: float,
             size: int, frames: int, dropped: int) -> int | None:
    """Register a complete clip file; None when the event row is gone (deleted meanwhile)."""
    with store.transaction() as c:
        if c.execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone() is None:
            return None
        cur = c.execute(
            "INSERT OR REPLACE INTO clips (event_id, part, path, start_ts, end_ts, bytes, frames,"
            " dropped_frames, created_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (event_id, part, path, start_ts, end_ts, size, frames, dropped, time.time()))
    return int(cur.lastrowid or 0)


def clips_of(store: Store, event_id: int) -> list[ClipRow]:
    """The event's clips in order."""
    if not row_id_ok(event_id):
        return []
    rows = store.conn.execute("SELECT * FROM clips WHERE event_id = ? ORDER BY part",
                              (event_id,)).fetchall()
    return [_row(r) for r in rows]


def clips_by_event(store: Store, event_ids: list[int]) -> dict[int, list[ClipRow]]:
    """Clips of many events at once (for a page of the history)."""
    out: dict[int, list[ClipRow]] = {i: [] for i in event_ids}
    if not event_ids:
        return out
    marks = ",".join("?" * len(event_ids))
    for r in store.conn.execute(f"SELECT * FROM clips WHERE event_id IN ({marks}) ORDER BY part",
                                event_ids):
        out[r["event_id"]].append(_row(r))
    return out


# What the sweep may remove: finished events whose alert is not waiting to be sent.
DELETABLE = ("e.end_ts IS NOT NULL AND NOT EXISTS (SELECT 1 FROM outbox o WHERE"
              " o.event_id = e.id AND o.status = 'pending')")


def oldest_deletable_clips(store: Store, limit: int) -> list[ClipRow]:
    """Oldest first: clips of events the sweep may touch."""
    rows = store.conn.execute(
        f"SELECT c.* FROM clips c JOIN events e ON e.id = c.event_id WHERE {DELETABLE}"
        " ORDER BY c.start_ts LIMIT ?", (limit,)).fetchall()
    return [_row(r) for r in rows]


def oldest_snapshot_events(store: Store, limit: int) -> list[tuple[int, str | None, str | None]]:
    """Oldest first: (event id, snapshot, thumb) of deletable events that still have pictures
    and no clip left (clips go first)."""
    rows = store.conn.execute(
        f"SELECT e.id, e.snapshot, e.thumb FROM events e WHERE {DELETABLE}"
        " AND (e.snapshot IS NOT NULL OR e.thumb IS NOT NULL)"
        " AND NOT EXISTS (SELECT 1 FROM clips c WHERE c.event_id = e.id)"
        " ORDER BY e.start_ts LIMIT ?", (limit,)).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def delete_clip_row(store: Store, clip_id: int) -> None:
    """Forget a clip (its file is removed by the caller) and mark its event."""
    with store.transaction() as c:
        r = c.execute("SELECT event_id FROM clips WHERE id = ?", (clip_id,)).fetchone()
        c.execute("DELETE FROM clips WHERE id = ?", (clip_id,))
        if r is not None:
            c.execute("UPDATE events SET media_deleted_ts = COALESCE(media_deleted_ts, ?)"
                      " WHERE id = ?", (time.time(), r[0]))


def clear_snapshot(store: Store, event_id: int) -> None:
    """The event keeps its row; its pictures are gone."""
    with store.transaction() as c:
        c.execute("UPDATE events SET snapshot = NULL, thumb = NULL,"
                  " media_deleted_ts = COALESCE(media_deleted_ts, ?) WHERE id = ?",
                  (time.time(), event_id))


def clip_bytes_per_day(store: Store, days: float = 7.0, now: float | None = None) -> float:
    """Average bytes of clips recorded per day over the last `days` (0 without clips)."""
    now = time.time() if now is None else now
    r = store.conn.execute("SELECT COALESCE(SUM(bytes), 0), MIN(start_ts) FROM clips"
                           " WHERE start_ts >= ?", (now - days * 86400.0,)).fetchone()
    total, first = int(r[0]), r[1]
    if not total or first is None:
        return 0.0
    span_days = max((now - first) / 86400.0, 1.0)  # a first hour must not read as a whole day
    return total / span_days


def clip_days(store: Store, now: float | None = None) -> float | None:
    """How many days back the oldest clip still kept reaches (None without clips)."""
    now = time.time() if now is None else now
    r = store.conn.execute("SELECT MIN(start_ts) FROM clips").fetchone()
    return None if r[0] is None else max(0.0, (now - r[0]) / 86400.0)
