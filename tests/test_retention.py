"""Retention: old events go with their pictures; a filling disk is freed oldest first; events
whose alert has not been sent, and events in progress, stay."""

from __future__ import annotations

import time
from pathlib import Path

from homesec.capture.recorder import EventRecorder
from homesec.config import EventsConfig
from homesec.storage.retention import prune
from homesec.storage.store import Store

DAY = 86400.0


def add(store: Store, media: Path, start: float, finished: bool = True) -> int:
    rel = f"d/{int(start)}.jpg"
    (media / "d").mkdir(parents=True, exist_ok=True)
    (media / rel).write_bytes(b"jpeg")
    (media / (rel + ".t")).write_bytes(b"thumb")
    eid, _ = store.add_event("cam", start, 1.0, [], None, rel, rel + ".t", 3)
    if finished:
        store.finish_event(eid, start + 5, 1.0, [], None, None, None, 3)
    return eid


def test_events_older_than_keep_days_are_deleted_with_their_files(tmp_path: Path) -> None:
    store, media = Store(tmp_path / "db"), tmp_path / "media"
    now = time.time()
    old = add(store, media, now - 40 * DAY)
    recent = add(store, media, now - 2 * DAY)
    deleted = prune(store, media, EventsConfig(keep_days=30, min_free_pct=0), now=now)
    assert deleted == 1
    assert store.event(old) is None and store.event(recent) is not None
    assert not (media / f"d/{int(now - 40 * DAY)}.jpg").exists()
    assert (media / f"d/{int(now - 2 * DAY)}.jpg").exists()


def test_unsent_alerts_and_open_events_are_kept(tmp_path: Path) -> None:
    store, media = Store(tmp_path / "db"), tmp_path / "media"
    now = time.time()
    store.set_arm(True, by="t", now=now - 41 * DAY)  # (events before the armed time never alert)
    alerted = add(store, media, now - 40 * DAY)  # its alert is still pending in the outbox
    store.set_arm(False, by="t")
    in_progress = add(store, media, now - 40 * DAY + 1, finished=False)
    assert prune(store, media, EventsConfig(keep_days=30, min_free_pct=0), now=now) == 0
    assert store.event(alerted) and store.event(in_progress)
    store.conn.execute("UPDATE outbox SET status = 'sent'")
    assert prune(store, media, EventsConfig(keep_days=30, min_free_pct=0), now=now) == 1
    assert store.event(alerted) is None


def test_low_disk_deletes_oldest_first_until_there_is_room(tmp_path: Path) -> None:
    store, media = Store(tmp_path / "db"), tmp_path / "media"
    now = time.time()
    ids = [add(store, media, now - DAY + i) for i in range(30)]

    def free_pct(_path: Path) -> float:  # each event's files take 1 % of this small disk
        return 100.0 - store.count_events()

    deleted = prune(store, media, EventsConfig(keep_days=30, min_free_pct=85), now=now,
                    disk_free_pct=free_pct)
    assert store.count_events() <= 15 and deleted == 30 - store.count_events()
    remaining = sorted(e.id for e in store.events(limit=100))
    assert remaining == ids[30 - len(remaining):]  # the newest survive


def test_recorder_sweeps_at_start(tmp_path: Path, make_config) -> None:
    cfg = make_config(events={"keep_days": 1, "min_free_pct": 0})
    store = Store(cfg.paths.db_path)
    old = add(store, cfg.paths.media, time.time() - 3 * DAY)
    rec = EventRecorder(cfg)
    rec.start()
    rec.stop()
    assert store.event(old) is None
