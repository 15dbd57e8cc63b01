"""Event files on disk, reached only through paths resolved inside the media directory.

Why: the database holds paths relative to the media dir; a damaged or tampered row (`../../etc`)
must never make the web process or the retention sweep read or delete a file elsewhere.
"""

from __future__ import annotations

import logging
from pathlib import Path

from homesec.storage.store import EventRow

log = logging.getLogger("homesec.storage.media")


def resolve(media_dir: Path, rel: str | None) -> Path | None:
    """The absolute path of `rel` if it lies inside media_dir, else None."""
    if not rel:
        return None
    root = media_dir.resolve()
    path = (root / rel).resolve()
    if path == root or not path.is_relative_to(root):
        log.warning("refusing a media path outside %s: %r", root, rel)
        return None
    return path


def remove_event_files(media_dir: Path, ev: EventRow) -> list[str]:
    """Delete the event's snapshot, thumbnail and clips; returns the relative paths removed."""
    removed = []
    for rel in (ev.snapshot, ev.thumb, *ev.clip_paths):
        path = resolve(media_dir, rel)
        if path is None:
            continue
        try:
            path.unlink()
            removed.append(str(rel))
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot delete %s: %s", path, exc)
    return removed
