"""The retention sweep: old events go, the media stay within their budget, and the disk never
fills up with our own files.

Why: an appliance runs for years on an SD card. Without a limit the media folder grows until the
card is full, and then nothing is recorded at all, which is the one failure a security camera must
not have. Three rules, in order:

1. Events older than `events.keep_days` are deleted with their files.
2. The media (clips, snapshots) stay under `storage.max_gb`: the oldest clips go first, then the
   oldest snapshots; the event rows stay in the history, marked "media deleted".
3. While the disk has less than `events.min_free_pct` free, the oldest media go the same way, but
   only when deleting our own files can bring the free space back above the limit. When something
   else filled the disk (a log, a download), deleting the whole history would not help: the sweep
   then deletes nothing, says so once in the log, and the status and the UI show "disk full for
   another reason" (issue 11).

An event still in progress, or whose alert email has not gone out yet, is never touched: the alert
needs its picture. Each sweep leaves a report (`retention.json` in the runtime dir) that the web UI
shows: what our media take, what the budget keeps, bytes per day.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from homesec.config import Config, EventsConfig, StorageConfig
from homesec.storage import audit
from homesec.storage import clips as clipdb
from homesec.storage.media import remove_event_files, resolve
from homesec.storage.store import Store
from homesec.system.atomic import write_atomic

log = logging.getLogger("homesec.storage.retention")

BATCH = 50  # events per transaction when deleting by age
DISK_BATCH = 10  # when freeing space: small steps, so no more goes than needed
REPORT_NAME = "retention.json"
GB = 1e9

DiskUsage = Callable[[Path], tuple[int, int]]  # (free bytes, total bytes)


def disk_usage(path: Path) -> tuple[int, int]:
    """Free and total bytes of the file system holding `path`."""
    du = shutil.disk_usage(path)
    return du.free, du.total


def free_pct(path: Path) -> float:
    """Free space of the file system holding `path`, in percent."""
    free, total = disk_usage(path)
    return 100.0 * free / total if total else 100.0


def media_bytes(media: Path) -> int:
    """What our own files under the media dir take (the bytes we could give back)."""
    total = 0
    stack = [media]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(Path(entry.path))
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


@dataclass
class SweepReport:
    """What one sweep saw and did (written for the web UI)."""

    ts: float
    media_bytes: int
    free_bytes: int
    total_bytes: int
    budget_bytes: int | None
    min_free_pct: float
    events_deleted: int = 0
    clips_deleted: int = 0
    snapshots_deleted: int = 0
    full_other_reason: bool = False


def _size(media: Path, rel: str | None) -> int:
    path = resolve(media, rel)
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


def _unlink(media: Path, rel: str | None) -> int:
    """Remove one media file; returns the bytes given back."""
    path = resolve(media, rel)
    if path is None:
        return 0
    try:
        size = path.stat().st_size
        path.unlink()
        return size
    except FileNotFoundError:
        return 0
    except OSError as exc:
        log.warning("cannot delete %s: %s", path, exc)
        return 0


def _free_oldest(store: Store, media: Path, report: SweepReport) -> int:
    """Delete the oldest clip, or when no clip may go, the oldest snapshot; returns the bytes
    freed (0: nothing left that may be deleted)."""
    for clip in clipdb.oldest_deletable_clips(store, 1):
        clipdb.delete_clip_row(store, clip.id)
        report.clips_deleted += 1
        return max(_unlink(media, clip.path), 1)
    for event_id, snap, thumb in clipdb.oldest_snapshot_events(store, 1):
        clipdb.clear_snapshot(store, event_id)
        report.snapshots_deleted += 1
        return max(_unlink(media, snap) + _unlink(media, thumb), 1)
    return 0


def _deletable_bytes(store: Store, media: Path) -> int:
    """Bytes that deleting every clip and snapshot the rules allow would give back."""
    total = int(store.conn.execute(
        f"SELECT COALESCE(SUM(c.bytes), 0) FROM clips c JOIN events e ON e.id = c.event_id"
        f" WHERE {clipdb.DELETABLE}").fetchone()[0])
    for r in store.conn.execute(
            f"SELECT e.snapshot, e.thumb FROM events e WHERE {clipdb.DELETABLE}"
            " AND (e.snapshot IS NOT NULL OR e.thumb IS NOT NULL)"):
        total += _size(media, r[0]) + _size(media, r[1])
    return total


def _delete_old(store: Store, media: Path, before_ts: float, limit: int) -> int:
    n = 0
    for ev in store.prunable_events(before_ts, limit):
        deleted = store.delete_event(ev.id)
        if deleted is not None:
            remove_event_files(media, deleted)
            n += 1
    return n


def _previous(runtime_dir: Path | None) -> dict[str, Any]:
    if runtime_dir is None:
        return {}
    try:
        return json.loads((runtime_dir / REPORT_NAME).read_text())
    except (OSError, ValueError):
        return {}


def prune(store: Store, media: Path, cfg: EventsConfig, now: float | None = None,
          storage: StorageConfig | None = None, disk: DiskUsage = disk_usage,
          runtime_dir: Path | None = None) -> SweepReport:
    """Run the sweep once (the three rules of the module docstring); returns what it did."""
    now = time.time() if now is None else now
    storage = storage or StorageConfig()
    deleted_old = 0
    while (n := _delete_old(store, media, now - cfg.keep_days * 86400.0, BATCH)) > 0:
        deleted_old += n
    if deleted_old:
        log.info("deleted %d event(s) older than %g days", deleted_old, cfg.keep_days)
    used = media_bytes(media) if media.exists() else 0
    free, total = disk(media) if media.exists() else (0, 0)
    budget = int(storage.max_gb * GB) if storage.max_gb > 0 else None
    report = SweepReport(now, used, free, total, budget, cfg.min_free_pct,
                         events_deleted=deleted_old)

    if budget is not None:
        while used > budget:
            freed = _free_oldest(store, media, report)
            if freed == 0:
                log.warning("media take %.2f GB, over storage.max_gb = %g, and nothing left that "
                            "may be deleted", used / GB, storage.max_gb)
                break
            used -= freed

    if cfg.min_free_pct > 0 and total > 0:
        need = int(cfg.min_free_pct / 100.0 * total) - free
        if need > 0:
            if _deletable_bytes(store, media) < need:
                report.full_other_reason = True
                if not _previous(runtime_dir).get("full_other_reason"):
                    log.error("disk %s below %g%% free, and deleting all our media would not "
                              "give back enough: the disk is full for another reason; the "
                              "history is kept", media, cfg.min_free_pct)
            else:
                freed_total = 0
                while freed_total < need:
                    freed = _free_oldest(store, media, report)
                    if freed == 0:
                        break
                    freed_total += freed
                used -= freed_total
                free, total = disk(media)
    audit.prune(store, cfg.keep_days, now)  # the audit log is kept as long as the events
    report.media_bytes = max(0, used)
    report.free_bytes = free
    if report.clips_deleted or report.snapshots_deleted:
        log.warning("retention: removed %d clip(s) and %d snapshot(s) (event rows kept)",
                    report.clips_deleted, report.snapshots_deleted)
    if runtime_dir is not None:
        try:
            runtime_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(runtime_dir / REPORT_NAME, json.dumps(asdict(report)).encode())
        except OSError as exc:
            log.warning("cannot write the retention report: %s", exc)
    return report


def sweep(store: Store, cfg: Config, now: float | None = None) -> SweepReport:
    """The sweep with the whole config (what the recorder and the clip index call)."""
    return prune(store, cfg.paths.media, cfg.events, now=now, storage=cfg.storage,
                 runtime_dir=cfg.paths.runtime_dir)


def read_report(runtime_dir: Path) -> dict[str, Any] | None:
    """The last sweep's report, or None."""
    got = _previous(runtime_dir)
    return got or None
