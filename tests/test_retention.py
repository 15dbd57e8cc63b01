"""Retention: old events go with their files; the media stay under their size budget (oldest
clips first, then snapshots, rows kept); a disk filled by our media is freed oldest first; a disk
filled by something else does not cost the history (issue 11, item 3); events whose alert has not
been sent, and events in progress, keep their media."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from homesec.capture.recorder import EventRecorder
from homesec.config import EventsConfig, StorageConfig
from homesec.storage.clips import add_clip, clips_of
from homesec.storage.retention import REPORT_NAME, media_bytes, prune
from homesec.storage.store import Store

DAY = 86400.0
KB = 1000


def add(store: Store, media: Path, start: float, finished: bool = True, clip_kb: int = 0,
        snap_kb: int = 0) -> int:
    """An event with a snapshot + thumbnail (and a clip of clip_kb) on disk."""
    rel = f"d/{int(start)}.jpg"
    (media / "d").mkdir(parents=True, exist_ok=True)
    (media / rel).write_bytes(b"j" * max(4, snap_kb * KB))
    (media / (rel + ".t")).write_bytes(b"thumb")
    eid, _ = store.add_event("cam", start, 1.0, [], None, rel, rel + ".t", 3)
    if finished:
        store.finish_event(eid, start + 5, 1.0, [], None, None, None, 3)
    if clip_kb:
        crel = f"d/{int(start)}.clip1.mp4"
        (media / crel).write_bytes(b"c" * clip_kb * KB)
        add_clip(store, eid, 1, crel, start - 3, start + 10, clip_kb * KB, 100, 0)
    return eid


def no_disk_rule(_p: Path) -> tuple[int, int]:
    return 10**12, 10**12


def test_events_older_than_keep_days_are_deleted_with_their_files(tmp_path: Path) -> None:
    store, media = Store(tmp_path / "db"), tmp_path / "media"
    now = time.time()
    old = add(store, media, now - 40 * DAY, clip_kb=1)
    recent = add(store, media, now - 2 * DAY)
    rep = prune(store, media, EventsConfig(keep_days=30, min_free_pct=0), now=now)
    assert rep.events_deleted == 1
    assert store.event(old) is None and store.event(recent) is not None
    assert not (media / f"d/{int(now - 40 * DAY)}.jpg").exists()
    assert not (media / f"d/{int(now - 40 * DAY)}.clip1.mp4").exists()
    assert (media / f"d/{int(now - 2 * DAY)}.jpg").exists()


def test_unsent_alerts_and_open_events_are_kept(tmp_path: Path) -> None:
    store, media = Store(tmp_path / "db"), tmp_path / "media"
    now = time.time()
    store.set_arm(True, by="t", now=now - 41 * DAY)  # (events before the armed time never alert)
    alerted = add(store, media, now - 40 * DAY)  # its alert is still pending in the outbox
    store.set_arm(False, by="t")
    in_progress = add(store, media, now - 40 * DAY + 1, finished=False)
    cfg = EventsConfig(keep_days=30, min_free_pct=0)
    assert prune(store, media, cfg, now=now).events_deleted == 0
    assert store.event(alerted) and store.event(in_progress)
    # A tiny budget does not touch their pictures either.
    rep = prune(store, media, cfg, now=now, storage=StorageConfig(max_gb=1e-9))
    assert rep.snapshots_deleted == 0 and store.event(alerted).snapshot is not None
    store.conn.execute("UPDATE outbox SET status = 'sent'")
    assert prune(store, media, cfg, now=now).events_deleted == 1
    assert store.event(alerted) is None


def test_size_budget_removes_oldest_clips_first_then_snapshots_rows_stay(tmp_path: Path) -> None:
    store, media = Store(tmp_path / "db"), tmp_path / "media"
    now = time.time()
    ids = [add(store, media, now - DAY + i * 60, clip_kb=100, snap_kb=10) for i in range(40)]
    budget = 1.5e-3  # GB = 1.5 MB; each event takes ~110 kB
    rep = prune(store, media, EventsConfig(min_free_pct=0), now=now,
                storage=StorageConfig(max_gb=budget), disk=no_disk_rule)
    assert media_bytes(media) <= budget * 1e9
    assert store.count_events() == 40, "event rows must stay"
    with_clip = [i for i in ids if clips_of(store, i)]
    assert with_clip == ids[len(ids) - len(with_clip):], "the newest clips must survive"
    assert rep.clips_deleted == 40 - len(with_clip) > 0
    # Clips go before any snapshot: every event still has its picture, until clips are gone.
    assert all(store.event(i).snapshot for i in ids)
    gone = store.event(ids[0])
    assert gone.media_deleted_ts is not None and gone.to_json()["media_deleted"]
    assert store.event(ids[-1]).media_deleted_ts is None
    # A budget smaller than the pictures alone: then the oldest snapshots go too.
    rep = prune(store, media, EventsConfig(min_free_pct=0), now=now,
                storage=StorageConfig(max_gb=0.2e-3), disk=no_disk_rule)
    assert media_bytes(media) <= 0.2e-3 * 1e9 and rep.snapshots_deleted > 0
    assert store.event(ids[0]).snapshot is None and store.count_events() == 40


def test_many_events_under_a_budget_with_the_recorder_sweep(tmp_path: Path, make_config) -> None:
    """The periodic sweep of the real recorder keeps a budget as events keep coming."""
    cfg = make_config(storage={"max_gb": 0.5e-3}, events={"min_free_pct": 0})
    store = Store(cfg.paths.db_path)
    now = time.time()
    for i in range(30):
        add(store, cfg.paths.media, now - 3600 + i * 60, clip_kb=50)
    rec = EventRecorder(cfg)
    rec.start()
    rec.stop()
    assert media_bytes(cfg.paths.media) <= 0.5e-3 * 1e9
    assert store.count_events() == 30
    report = json.loads((cfg.paths.runtime_dir / REPORT_NAME).read_text())
    assert report["budget_bytes"] == 500_000 and report["clips_deleted"] > 0


def test_low_disk_frees_our_oldest_media_until_there_is_room(tmp_path: Path) -> None:
    store, media = Store(tmp_path / "db"), tmp_path / "media"
    now = time.time()
    ids = [add(store, media, now - DAY + i, clip_kb=10) for i in range(30)]
    total = 1_000_000

    def disk(_p: Path) -> tuple[int, int]:  # a small disk our media fill: 300 kB of clips
        return total - media_bytes(media) - 600_000, total

    rep = prune(store, media, EventsConfig(min_free_pct=15), now=now, disk=disk)
    free, _ = disk(media)
    assert free >= 0.15 * total and not rep.full_other_reason
    kept = [i for i in ids if clips_of(store, i)]
    assert kept == ids[30 - len(kept):] and 0 < len(kept) < 30  # the newest survive
    assert store.count_events() == 30


def _small_fs(tmp_path: Path, mb: int) -> Path:
    """A real size-limited file system (ext4 image on a loop device), or skip."""
    if os.geteuid() != 0 or not shutil.which("mkfs.ext4"):
        pytest.skip("needs root and mkfs.ext4 to make a small file system")
    img, mnt = tmp_path / "fs.img", tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["truncate", "-s", f"{mb}M", str(img)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(img)], check=True)
    if subprocess.run(["mount", "-o", "loop", str(img), str(mnt)]).returncode != 0:
        pytest.skip("cannot mount a loop device here")
    return mnt


def test_disk_filled_by_another_program_does_not_cost_the_history(tmp_path: Path,
                                                                 caplog) -> None:
    mnt = _small_fs(tmp_path, 16)
    try:
        media, runtime = mnt / "media", tmp_path / "run"
        store = Store(tmp_path / "db")
        now = time.time()
        ids = [add(store, media, now - DAY + i, clip_kb=20) for i in range(32)]
        # Another program fills the disk until 3 % is free: our 0.7 MB cannot give back 7 %.
        free, total = shutil.disk_usage(mnt)[2], shutil.disk_usage(mnt)[0]
        with open(mnt / "someone-elses.bin", "wb") as f:
            f.write(b"\0" * int(free - 0.03 * total))
        cfg = EventsConfig(min_free_pct=10)
        for _ in range(3):
            rep = prune(store, media, cfg, now=now, runtime_dir=runtime)
        assert rep.full_other_reason
        assert store.count_events() == 32 and all(clips_of(store, i) for i in ids)
        assert rep.clips_deleted == 0 and rep.snapshots_deleted == 0
        told = [r for r in caplog.records if "full for another reason" in r.getMessage()]
        assert len(told) == 1, "said once, not at every sweep"
        assert json.loads((runtime / REPORT_NAME).read_text())["full_other_reason"] is True
        # When our own media are what fills it, the sweep frees it again.
        (mnt / "someone-elses.bin").unlink()
        big = [add(store, media, now - DAY + 100 + i, clip_kb=1000) for i in range(13)]
        rep = prune(store, media, cfg, now=now, runtime_dir=runtime)
        assert not rep.full_other_reason and rep.clips_deleted > 0
        assert shutil.disk_usage(mnt).free >= 0.1 * shutil.disk_usage(mnt).total
        assert clips_of(store, big[-1]) and store.count_events() == 45
    finally:
        subprocess.run(["umount", str(mnt)])
