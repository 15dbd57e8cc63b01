"""A database that cannot be written (immutable files: "disk I/O error", read-only) never costs an
event: records wait in order, spill to the journal, survive a restart, and are all written once
the database takes writes again; the status says since when it has not."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from homesec.camera.base import Frame
from homesec.capture.backlog import Backlog, journal_path
from homesec.capture.daemon import Daemon
from homesec.capture.events import Event
from homesec.capture.recorder import EventRecorder
from homesec.capture.status import read_status
from homesec.config import Config, load
from homesec.storage.store import Store
from homesec.storage.writable import db_paths
from tests.conftest import homesec_cmd, wait_for
from tests.fault_support import Immutable, db_fault_paths, fill, immutable, small_filesystem
from tests.mail_support import FastCrossingCamera, free_port, write_toml
from tests.mail_support import config_dict as mail_config_dict
from tests.test_daemon import LimitedCamera


def _event(cfg: Config, start: float, peak: float = 2.0) -> Event:
    image = np.full((cfg.camera.height, cfg.camera.width, 3), 90, np.uint8)
    return Event(0, 0.0, start, 0, 0.0, start, peak_area_pct=peak, boxes=[(10, 10, 50, 80)],
                 union=(10, 10, 50, 80), best_frame=0, best_wall=start, best_image=image,
                 motion_frames=3)


def _outbox_events(store: Store) -> list[int]:
    return [r[0] for r in store.conn.execute("SELECT event_id FROM outbox ORDER BY id")]


def test_daemon_keeps_an_armed_event_while_the_database_is_immutable(make_config) -> None:
    """The issue's reproduction: armed, the database files and their directory immutable for
    18 s (longer than the old recorder's give-up after 5 attempts, ~15 s) while the person
    crosses (at 0.6 s). The event, its end, its snapshot and its alert are all there afterwards,
    and the status file said "not writable" meanwhile."""
    cfg = make_config(camera={"realtime": True, "fps": 5})
    store = Store(cfg.paths.db_path)
    store.set_arm(True, by="test")
    fault = Immutable(db_fault_paths(cfg.paths.db_path))
    seen: list[dict] = []
    fps = cfg.camera.fps

    class FaultyDiskCamera(LimitedCamera):
        def read(self) -> Frame:
            frame = super().read()
            if frame.index == 1:  # after start-up, before the person crosses
                fault.paths = db_fault_paths(cfg.paths.db_path)
                fault.set()
            elif frame.index == 18 * fps:
                seen.append(read_status(cfg.paths.runtime_dir) or {})
                fault.clear()
            return frame

    c = cfg.camera
    camera = FastCrossingCamera(period_s=20.0, width=c.width, height=c.height,
                                lores_width=c.lores_width, fps=c.fps, realtime=True)
    try:
        Daemon(cfg, camera=FaultyDiskCamera(camera, int(20 * fps))).run()
    finally:
        fault.clear()
    (ev,) = store.events()
    assert ev.armed and ev.end_ts is not None and not ev.interrupted
    assert ev.snapshot and (cfg.paths.media / ev.snapshot).is_file()
    assert _outbox_events(store) == [ev.id]
    (st,) = seen
    assert st["db_ok"] is False and st["db_unwritable_since"] is not None
    assert "homesec.db is not writable" in st["db_error"]
    assert st["events_waiting"] >= 1
    assert not journal_path(cfg.paths.state_dir).exists()  # written, so no longer kept
    store.close()


def test_records_wait_in_the_journal_across_a_restart_and_are_written_in_order(
        make_config) -> None:
    """An event in progress when the database goes bad, a second one during the fault, and a
    restart of the recorder before the database is back: both events end up complete, in order,
    each with its alert; the first one's end was not dropped (not stuck "in progress")."""
    cfg = make_config()
    store = Store(cfg.paths.db_path)
    store.set_arm(True, by="test")
    recorded: list[tuple[str, int]] = []
    rec1 = EventRecorder(cfg, on_recorded=lambda kind, eid: recorded.append((kind, eid)))
    rec1.start()
    t0 = time.time()
    a, b = _event(cfg, t0), _event(cfg, t0 + 10, peak=4.0)
    rec1.put("start", a)
    wait_for(lambda: recorded, what="the first event's start to be written")
    journal = journal_path(cfg.paths.state_dir)
    with immutable(db_fault_paths(cfg.paths.db_path)):
        a.end_wall = t0 + 5
        rec1.put("end", a)
        rec1.put("start", b)
        wait_for(lambda: rec1.health()["events_waiting"] == 2 and journal.exists() and len(
            journal.read_text().splitlines()) == 2, what="two records waiting in the journal")
        health = rec1.health()
        assert health["db_ok"] is False and health["db_unwritable_since"] >= t0
        assert [r["kind"] for r in map(json.loads, journal.read_text().splitlines())] == [
            "end", "start"]
        assert list(cfg.paths.media.rglob("*.jpg")), "the snapshots are kept meanwhile"
        rec1.stop()  # a restart while the database is still not writable
        assert not rec1.is_alive()
        assert [r["kind"] for r in map(json.loads, journal.read_text().splitlines())] == [
            "end", "start"]
        (only,) = store.events()  # reads keep working
        assert only.end_ts is None
    rec2 = EventRecorder(cfg, on_recorded=lambda kind, eid: recorded.append((kind, eid)))
    rec2.start()
    try:
        b.end_wall = t0 + 14
        rec2.put("end", b)
        wait_for(lambda: len(recorded) == 4, what="the journal and the new end to be written")
    finally:
        rec2.stop()
    first, second = sorted(store.events(), key=lambda e: e.id)
    assert (first.start_ts, first.end_ts, first.interrupted) == (t0, t0 + 5, False)
    assert (second.start_ts, second.end_ts, second.peak_area_pct) == (t0 + 10, t0 + 14, 4.0)
    assert second.snapshot and (cfg.paths.media / second.snapshot).is_file()
    assert _outbox_events(store) == [first.id, second.id]
    assert not journal.exists()
    assert rec2.health()["db_ok"] is True
    store.close()


def test_journal_replay_after_a_crash_writes_nothing_twice(make_config) -> None:
    """A crash between a database commit and the journal's update replays records already
    written: the event is found, not added again (and its alert not queued twice)."""
    cfg = make_config()
    store = Store(cfg.paths.db_path)
    store.set_arm(True, by="test")
    t0 = time.time()
    eid, _ = store.add_event(cfg.camera.name, t0, 1.0, [], None, None, None, 2)
    journal = journal_path(cfg.paths.state_dir)
    journal.parent.mkdir(parents=True)
    common = {"camera": cfg.camera.name, "start": t0, "peak": 1.0, "boxes": [], "union": None,
              "frames": 2, "snapshot": None, "thumb": None}
    journal.write_text(json.dumps({**common, "kind": "start", "end": None, "seq": 1}) + "\n"
                       + json.dumps({**common, "kind": "end", "end": t0 + 3, "seq": 2}) + "\n"
                       + '{"kind": "sta')  # torn by the crash
    rec = EventRecorder(cfg)
    rec.start()
    wait_for(lambda: not journal.exists(), what="the journal to be replayed")
    rec.stop()
    (ev,) = store.events()
    assert (ev.id, ev.end_ts, ev.interrupted) == (eid, t0 + 3, False)
    assert _outbox_events(store) == [eid]
    store.close()


def test_backlog_spills_to_the_journal_beyond_its_memory_bound(tmp_path: Path) -> None:
    """Beyond `memory_max` records only the journal holds them; they come back in order."""
    path = tmp_path / "journal" / "events.jsonl"
    path.parent.mkdir()
    bl = Backlog(path, memory_max=3)
    for i in range(10):
        assert bl.append({"n": i})
    assert len(bl) == 10 and len(bl._mem) == 3
    taken = []
    for _ in range(4):
        taken.append(bl.peek()["n"])  # type: ignore[index]
        bl.pop()
    bl.close()  # a restart: the six left are what the journal holds now
    again = Backlog(path, memory_max=3)
    assert again.load() == 6
    while (rec := again.peek()) is not None:
        taken.append(rec["n"])
        again.pop()
    assert taken == list(range(10))
    assert not path.exists()


def test_backlog_refuses_and_counts_only_when_journal_and_memory_are_both_exhausted(
        tmp_path: Path) -> None:
    """The bound, stated: the journal cannot be written (its directory is gone) and memory is
    full: the record is refused and counted (reported in the status), not silently lost."""
    bl = Backlog(tmp_path / "missing" / "events.jsonl", memory_max=2)
    assert bl.append({"n": 1}) and bl.append({"n": 2})  # memory only, journal failing
    assert bl.journal_error
    assert not bl.append({"n": 3})
    assert bl.dropped == 1 and len(bl) == 2


def test_an_end_whose_start_never_reached_the_database_records_the_whole_event(
        make_config) -> None:
    """The end of an event is never dropped: without its start row, the event is written whole."""
    cfg = make_config()
    rec = EventRecorder(cfg)
    rec.start()
    t0 = time.time()
    ev = _event(cfg, t0)
    ev.end_wall = t0 + 2
    try:
        rec.put("end", ev)
        store = Store(cfg.paths.db_path)
        wait_for(lambda: store.events(), what="the event")
    finally:
        rec.stop()
    (row,) = store.events()
    assert row.end_ts == t0 + 2 and row.snapshot
    store.close()


@pytest.mark.slow
def test_real_daemon_survives_all_database_files_immutable_and_writes_everything_after(
        tmp_path: Path) -> None:
    """`chattr +i` on the database, its -wal and -shm files and their directory, with a real
    `homesec run` (mail on, its server down, so the mailer polls the database all along). A
    process that touches SQLite then is killed by SIGBUS (the -shm file is mapped); the daemon
    keeps away from it, keeps capturing, and writes every event once the files are writable."""
    cfg_path = write_toml(tmp_path / "config.toml", {
        **mail_config_dict(tmp_path, "none", free_port(), None),
        "camera": {"source": "demo", "name": "Front door", "width": 640, "height": 360,
                   "lores_width": 320, "fps": 5, "realtime": True},
    })
    cfg = load(cfg_path)
    store = Store(cfg.paths.db_path)
    store.set_arm(True, by="test")
    store.close()  # (this process must not have the database open during the fault)
    log = (tmp_path / "run.log").open("wb")
    proc = subprocess.Popen(homesec_cmd("run", "--config", str(cfg_path)), stdout=log,
                            stderr=subprocess.STDOUT)
    fault = Immutable(db_paths(cfg.paths.db_path))

    def status() -> dict:
        assert proc.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
        return read_status(cfg.paths.runtime_dir) or {}

    try:
        wait_for(lambda: status().get("frames", 0) > 0, 20, what="the daemon's first frame")
        fault.paths = [p for p in db_paths(cfg.paths.db_path) if p.exists()]
        assert len(fault.paths) == 4
        fault.set()
        wait_for(lambda: status().get("db_ok") is False and status()["events_waiting"] >= 2,
                 50, interval=0.2, what="an event (start and end) waiting for the database")
        frames = status()["frames"]
        fault.clear()
        wait_for(lambda: status().get("db_ok") and status()["events_waiting"] == 0, 20,
                 interval=0.2, what="the waiting records to be written")
        assert status()["frames"] > frames  # the camera loop went on
    finally:
        fault.clear()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
        log.close()
    assert code == 0, (tmp_path / "run.log").read_text()[-3000:]
    store = Store(cfg.paths.db_path)
    events = store.events()
    alerts = {r[0] for r in store.conn.execute("SELECT event_id FROM outbox")}
    store.close()
    assert events and all(e.end_ts is not None and not e.interrupted and e.armed for e in events)
    assert alerts == {e.id for e in events}


def test_records_wait_in_memory_while_the_disk_is_full_and_are_written_after(
        tmp_path: Path, make_config) -> None:
    """The state dir's file system is filled by another program: database writes fail (disk
    full) and the journal on it cannot be written either; the records wait in memory, in order,
    and are written once there is room again."""
    with small_filesystem(tmp_path / "state"):
        cfg = make_config(paths={"media_dir": str(tmp_path / "media")})
        store = Store(cfg.paths.db_path)
        store.set_arm(True, by="test")
        recorded: list[tuple[str, int]] = []
        rec = EventRecorder(cfg, on_recorded=lambda kind, eid: recorded.append((kind, eid)))
        rec.start()
        try:
            t0 = time.time()
            a, b = _event(cfg, t0), _event(cfg, t0 + 10)
            rec.put("start", a)
            wait_for(lambda: recorded, what="the first start")
            filler = fill(cfg.paths.state_dir)
            a.end_wall, b.end_wall = t0 + 3, t0 + 12
            for kind, ev in (("end", a), ("start", b), ("end", b)):
                rec.put(kind, ev)
            wait_for(lambda: len(rec.backlog) == 3, what="three records waiting")
            health = rec.health()
            assert health["db_ok"] is False and "full" in health["db_error"]
            assert health["journal_error"] and health["events_refused"] == 0
            filler.unlink()
            wait_for(lambda: len(recorded) == 4, 15, what="the waiting records to be written")
            assert rec.health()["db_ok"] is True
        finally:
            rec.stop()
        first, second = sorted(store.events(), key=lambda e: e.id)
        assert (first.end_ts, second.start_ts, second.end_ts) == (t0 + 3, t0 + 10, t0 + 12)
        assert _outbox_events(store) == [first.id, second.id]
        store.close()
