"""The capture daemon on the demo scene: events with snapshots, recovery, clean and dirty stops."""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from homesec.camera.base import CameraError, EndOfStream, Frame
from homesec.camera.demo import DemoCamera, crossing_intervals
from homesec.capture.daemon import Daemon
from homesec.capture.events import Event
from homesec.capture.recorder import EventRecorder
from homesec.capture.status import read_status
from homesec.config import Config
from homesec.storage.store import Store
from tests.conftest import homesec_cmd, wait_for, write_config


class LimitedCamera:
    """A demo camera that ends after `frames` frames, like a file."""

    def __init__(self, cam: DemoCamera, frames: int) -> None:
        self.cam, self.left = cam, frames

    def open(self) -> None:
        self.cam.open()

    def read(self) -> Frame:
        if self.left <= 0:
            raise EndOfStream("done")
        self.left -= 1
        return self.cam.read()

    def close(self) -> None:
        self.cam.close()


class FlakyCamera:
    """Fails mid-stream at frame `fail_at`, then refuses to open `refusals` times, then works."""

    def __init__(self, cam: DemoCamera, fail_at: int, refusals: int) -> None:
        self.cam, self.fail_at, self.refusals = cam, fail_at, refusals
        self.reads = 0
        self.failed = False
        self.opens = 0

    def open(self) -> None:
        self.opens += 1
        if self.failed and self.refusals > 0:
            self.refusals -= 1
            raise CameraError("no such device")
        self.cam.open()

    def read(self) -> Frame:
        self.reads += 1
        if self.reads == self.fail_at:
            self.failed = True
            raise CameraError("device unplugged")
        return self.cam.read()

    def close(self) -> None:
        self.cam.close()


def demo_camera(cfg: Config) -> DemoCamera:
    c = cfg.camera
    return DemoCamera(c.width, c.height, c.lores_width, c.fps, c.seed, realtime=c.realtime)


def test_events_recorded_with_snapshots(make_config) -> None:
    cfg = make_config()
    seconds = 62.0  # crossings at 5, 25 and 45 s; the lamp goes on at 40 s and off at 60 s
    cam = LimitedCamera(demo_camera(cfg), int(seconds * cfg.camera.fps))
    Daemon(cfg, camera=cam).run()

    store = Store(cfg.paths.db_path)
    events = sorted(store.events(limit=100), key=lambda e: e.start_ts)
    crossings = crossing_intervals(seconds)
    assert len(events) == len(crossings), [(e.start_ts, e.end_ts) for e in events]
    first_wall = None
    for ev, (c0, _c1) in zip(events, crossings, strict=True):
        assert ev.end_ts is not None and not ev.interrupted
        if first_wall is None:
            first_wall = ev.start_ts - c0  # scene time 0 in wall-clock terms (approximately)
        assert abs((ev.start_ts - first_wall) - c0) < 1.5
        assert ev.boxes, "event without boxes"
        # Boxes are in snapshot (main stream) coordinates: the walking figure is ~45% as tall
        # as the frame, and every box lies inside the frame.
        for x, y, w, h in ev.boxes:
            assert x >= 0 and y >= 0 and x + w <= cfg.camera.width and y + h <= cfg.camera.height
        assert max(h for _x, _y, _w, h in ev.boxes) > 0.3 * cfg.camera.height
        ux, uy, uw, uh = ev.union_box
        assert ux >= 0 and uy >= 0 and ux + uw <= cfg.camera.width and uy + uh <= cfg.camera.height
        snap = cv2.imread(str(cfg.paths.media / ev.snapshot))
        thumb = cv2.imread(str(cfg.paths.media / ev.thumb))
        assert snap is not None and snap.shape[:2] == (cfg.camera.height, cfg.camera.width)
        assert thumb is not None and thumb.shape[1] <= cfg.events.thumb_width


def test_light_switch_alone_makes_no_event(make_config) -> None:
    cfg = make_config()
    cam = DemoCamera(cfg.camera.width, cfg.camera.height, 320, cfg.camera.fps, 1, realtime=False)
    # Start at 32 s of scene time: nobody crosses between 29 s and 45 s; the lamp goes on at 40 s.
    cam._index = int(32 * cfg.camera.fps)
    Daemon(cfg, camera=LimitedCamera(cam, int(12 * cfg.camera.fps))).run()
    assert Store(cfg.paths.db_path).count_events() == 0


def test_failing_source_is_recovered_without_restart(make_config) -> None:
    cfg = make_config(camera={"reconnect_max_s": 0.5})
    flaky = FlakyCamera(demo_camera(cfg), fail_at=40, refusals=3)
    stop = threading.Event()
    daemon = Daemon(cfg, camera=flaky, stop=stop)
    thread = threading.Thread(target=daemon.run)
    thread.start()
    try:
        lost = wait_for(lambda: (s := read_status(cfg.paths.runtime_dir)) and
                        s["camera_lost_since"] and s, what="'camera lost' in the status")
        assert lost["camera_ok"] is False and "unplugged" in (lost["camera_error"] or
                                                              "no such device")
        back = wait_for(lambda: (s := read_status(cfg.paths.runtime_dir)) and
                        s["camera_ok"] and s["frames"] > 100 and s, what="camera back")
        assert back["camera_lost_since"] is None and back["camera_reopens"] == 1
        assert flaky.opens == 1 + 3 + 1
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def start_daemon(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    cfg_path = write_config(tmp_path, camera={"realtime": True, "fps": 15})
    proc = subprocess.Popen(homesec_cmd("run", "--config", str(cfg_path)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, tmp_path / "state" / "homesec.db"


def open_event_rows(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT id, end_ts FROM events WHERE end_ts IS NULL").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def test_sigterm_stops_promptly_and_closes_the_event(tmp_path: Path) -> None:
    proc, db = start_daemon(tmp_path)
    try:
        # The first person crosses at 5 s of scene time (real time here).
        wait_for(lambda: open_event_rows(db), timeout=20, what="an event in progress")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        # Well inside systemd's stop timeout; no queue join or camera wait of several seconds
        # (the bound is loose so a loaded machine passes; a hang takes 10 s or more).
        assert time.monotonic() - t0 < 5.0
        assert proc.returncode == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    store = Store(db)
    (ev,) = store.events()
    assert ev.end_ts is not None and not ev.interrupted and ev.snapshot
    assert (tmp_path / "state" / "media" / ev.snapshot).is_file()
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["event_in_progress"] is False


def test_sigkill_mid_event_leaves_a_readable_history(tmp_path: Path) -> None:
    proc, db = start_daemon(tmp_path)
    try:
        wait_for(lambda: open_event_rows(db), timeout=20, what="an event in progress")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1
    conn.close()
    # The next start closes the dangling event and marks it interrupted.
    proc, _ = start_daemon(tmp_path)
    try:
        wait_for(lambda: not open_event_rows(db) and Store(db).events(), timeout=15,
                 what="the interrupted event to be closed")
    finally:
        proc.terminate()
        proc.wait(timeout=5)
    (ev, *_) = Store(db).events()[::-1]
    assert ev.interrupted and ev.end_ts == ev.start_ts


@pytest.mark.parametrize("signame", ["SIGINT"])
def test_sigint_also_stops_cleanly(tmp_path: Path, signame: str) -> None:
    proc, _db = start_daemon(tmp_path)
    try:
        wait_for(lambda: (tmp_path / "run" / "status.json").exists(), what="first status")
        proc.send_signal(getattr(signal, signame))
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_status_goes_stale_when_the_loop_stops_writing(make_config) -> None:
    cfg = make_config()
    cam = LimitedCamera(demo_camera(cfg), 30)
    Daemon(cfg, camera=cam).run()
    fresh = read_status(cfg.paths.runtime_dir)
    assert fresh is not None and fresh["frames"] == 30 and not fresh["stale"]
    later = read_status(cfg.paths.runtime_dir, now=fresh["updated_ts"] + 60)
    assert later["stale"] and later["camera_ok"] is False
    assert later["camera_lost_since"] == fresh["last_frame_ts"]


def _full_disk_at(path: Path) -> Path:
    """Make the writer's temporary file for `path` a link to /dev/full, so writing it fails with
    a real ENOSPC (write_atomic writes `.<name>.<pid>.tmp` next to the target)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.symlink_to("/dev/full")
    return tmp


def test_write_atomic_on_a_full_disk_leaves_nothing_behind(tmp_path: Path) -> None:
    from homesec.system.atomic import write_atomic

    target = tmp_path / "snap.jpg"
    tmp = _full_disk_at(target)
    with pytest.raises(OSError) as err:
        write_atomic(target, b"x" * 100_000)
    assert err.value.errno == errno.ENOSPC
    assert not target.exists() and not tmp.is_symlink() and not tmp.exists()
    assert list(tmp_path.iterdir()) == []


def test_event_and_alert_recorded_when_the_snapshot_cannot_be_saved(make_config) -> None:
    """Disk full while an event starts: the event row and its alert are still written; the
    picture comes with the event's end once there is room again."""
    cfg = make_config()
    store = Store(cfg.paths.db_path)
    store.set_arm(True, by="test")
    recorded: list[tuple[str, int]] = []
    recorder = EventRecorder(cfg, on_recorded=lambda kind, eid: recorded.append((kind, eid)))
    start = time.time()
    image = np.full((cfg.camera.height, cfg.camera.width, 3), 80, np.uint8)
    ev = Event(0, 0.0, start, 0, 0.0, start, peak_area_pct=3.0, boxes=[(10, 10, 50, 80)],
               union=(10, 10, 50, 80), best_frame=0, best_wall=start, best_image=image,
               motion_frames=3)
    # The recorder's file name for this event (HHMMSS-ms of its start, under the day's folder).
    key = time.strftime("%H%M%S", time.localtime(start)) + f"-{int(start * 1000) % 1000:03d}"
    day = cfg.paths.media / time.strftime("%Y-%m-%d", time.localtime(start))
    _full_disk_at(day / f"{key}.jpg")
    recorder.start()
    try:
        recorder.put("start", ev)
        wait_for(lambda: recorded, what="the event start to be recorded despite the full disk")
        (row,) = store.events()
        assert row.snapshot is None and row.end_ts is None
        assert store.conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 1
        ev.end_wall = start + 4
        recorder.put("end", ev)  # the failed write cleaned up after itself: there is room now
        wait_for(lambda: len(recorded) == 2, what="the event end")
    finally:
        recorder.stop()
    (row,) = store.events()
    assert row.end_ts == pytest.approx(start + 4)
    assert row.snapshot and (cfg.paths.media / row.snapshot).is_file()
    assert not [p for p in day.iterdir() if p.name.endswith(".tmp")]
    store.close()


def test_event_across_midnight_keeps_one_pair_of_files(make_config) -> None:
    """The best picture of an event that began before midnight comes after it: it replaces the
    event's files instead of leaving the first ones, unreferenced, in yesterday's folder."""
    import datetime as dt

    cfg = make_config()
    midnight = dt.datetime.combine(dt.date.today(), dt.time()).timestamp()  # local midnight
    start = midnight - 1.5
    recorded: list[tuple[str, int]] = []
    recorder = EventRecorder(cfg, on_recorded=lambda kind, eid: recorded.append((kind, eid)))
    image = np.full((cfg.camera.height, cfg.camera.width, 3), 80, np.uint8)
    ev = Event(0, 0.0, start, 0, 0.0, start, peak_area_pct=1.0, boxes=[(10, 10, 50, 80)],
               union=(10, 10, 50, 80), best_frame=0, best_wall=start, best_image=image,
               motion_frames=3)
    recorder.start()
    try:
        recorder.put("start", ev)
        wait_for(lambda: recorded, what="the event start")
        ev.peak_area_pct, ev.best_wall, ev.end_wall = 5.0, midnight + 2.0, midnight + 3.0
        ev.best_image = image + 100
        recorder.put("end", ev)
        wait_for(lambda: len(recorded) == 2, what="the event end")
    finally:
        recorder.stop()
    store = Store(cfg.paths.db_path)
    (row,) = store.events()
    store.close()
    files = sorted(str(p.relative_to(cfg.paths.media)) for p in cfg.paths.media.rglob("*.jpg"))
    assert files == sorted([row.snapshot, row.thumb]), files
    assert cv2.imread(str(cfg.paths.media / row.snapshot)).mean() > 150  # the better picture


def test_event_waits_out_a_locked_database(make_config) -> None:
    """Someone holds a write lock for longer than SQLite's 10 s busy timeout: the event still
    lands. (Real time at 5 fps: the person crosses at 5 s, the lock goes at 21 s.)"""
    cfg = make_config(camera={"realtime": True, "fps": 5})
    Store(cfg.paths.db_path).close()
    blocker = sqlite3.connect(cfg.paths.db_path, isolation_level=None, check_same_thread=False)
    release = threading.Timer(20.0, lambda: blocker.execute("COMMIT"))

    class LockingCamera(LimitedCamera):
        def read(self) -> Frame:
            frame = super().read()
            if frame.index == 5:  # after start-up, before the person crosses
                blocker.execute("BEGIN IMMEDIATE")
                release.start()
            return frame

    try:
        Daemon(cfg, camera=LockingCamera(demo_camera(cfg), int(24 * cfg.camera.fps))).run()
    finally:
        release.join()
    (ev,) = Store(cfg.paths.db_path).events()
    assert ev.end_ts is not None and ev.snapshot
