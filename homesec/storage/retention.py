"""The retention sweep: old events go, and the disk never fills up with pictures.

Why: an appliance runs for years on an SD card. Without a limit the media folder grows until the
card is full, and then nothing is recorded at all, which is the one failure a security camera must
not have. Events older than `events.keep_days` are deleted with their files, and while the disk has
less than `events.min_free_pct` free, the oldest are deleted too. An event still in progress, or
whose alert email has not gone out yet, is never deleted: the alert needs its picture.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from homesec.config import EventsConfig
from homesec.storage import audit
from homesec.storage.media import remove_event_files
from homesec.storage.store import Store

log = logging.getLogger("homesec.storage.retention")

BATCH = 50  # events per transaction when deleting by age
DISK_BATCH = 10  # when freeing space: small steps, so no more goes than needed


def free_pct(path: Path) -> float:
    """Free space of the file system holding `path`, in percent."""
    du = shutil.disk_usage(path)
    return 100.0 * du.free / du.total if du.total else 100.0


def _delete(store: Store, media: Path, before_ts: float | None, limit: int) -> int:
    """Delete one batch of prunable events; returns how many."""
    n = 0
    for ev in store.prunable_events(before_ts, limit):
        if store.delete_event(ev.id) is not None:
            remove_event_files(media, ev)
            n += 1
    return n


def prune(store: Store, media: Path, cfg: EventsConfig, now: float | None = None,
          disk_free_pct: Callable[[Path], float] = free_pct) -> int:
    """Run the sweep once; returns how many events were deleted."""
    now = time.time() if now is None else now
    deleted = 0
    while (n := _delete(store, media, now - cfg.keep_days * 86400.0, BATCH)) > 0:
        deleted += n
    if deleted:
        log.info("deleted %d event(s) older than %g days", deleted, cfg.keep_days)
    if cfg.min_free_pct > 0 and media.exists():
        freed = 0
        while disk_free_pct(media) < cfg.min_free_pct:
            n = _delete(store, media, None, DISK_BATCH)
            if n == 0:
                log.warning("disk below %g%% free and no event left that may be deleted",
                            cfg.min_free_pct)
                break
            freed += n
        if freed:
            log.warning("disk below %g%% free: deleted the %d oldest event(s)", cfg.min_free_pct,
                        freed)
        deleted += freed
    audit.prune(store, cfg.keep_days, now)  # the audit log is kept as long as the events
    return deleted
