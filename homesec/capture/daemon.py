"""The capture daemon: camera -> MotionDetector -> EventTracker -> recorder (store + snapshots),
plus the live frame, the status file and the systemd watchdog.

Why the recorder is a thread: JPEG encoding and SQLite commits take tens of milliseconds on a Pi
and an SD card can stall for longer; the capture loop hands events to a queue and goes on with the
next frame. Why a camera supervisor: USB cameras get unplugged, RTSP streams drop, libcamera
hiccups; the daemon must come back by itself, reporting "camera lost since T" meanwhile.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homesec.camera import Camera, CameraError, EndOfStream, Frame, make_camera
from homesec.capture.events import Event, EventTracker
from homesec.capture.live import LivePublisher
from homesec.capture.motion import MotionDetector
from homesec.capture.snapshot import save_snapshot
from homesec.capture.status import write_status
from homesec.config import Config
from homesec.storage.retention import prune
from homesec.storage.store import Store
from homesec.system.sdnotify import Notifier

log = logging.getLogger("homesec.capture.daemon")

SWEEP_EVERY_S = 3600.0  # retention sweep: at start-up, then hourly
RECORD_ATTEMPTS = 5  # each waits out the 10 s busy timeout, then 1, 2, 4, 8 s more


@dataclass
class _Job:
    kind: str  # "start" | "end"
    event: Event
    snapshot: dict[str, Any]


def _event_fields(ev: Event) -> dict[str, Any]:
    """A copy of what the recorder needs, taken in the capture thread (the tracker mutates ev)."""
    return {
        "image": ev.best_image, "boxes": list(ev.boxes), "best_wall": ev.best_wall,
        "start_wall": ev.start_wall, "end_wall": ev.end_wall, "peak": ev.peak_area_pct,
        "union": list(ev.union) if ev.union else None, "frames": ev.motion_frames,
    }


class EventRecorder(threading.Thread):
    """Writes event rows and snapshot files from a queue, in order, off the capture thread."""

    def __init__(self, cfg: Config, on_recorded: Callable[[str, int], None] | None = None
                 ) -> None:
        super().__init__(name="recorder", daemon=True)
        self.cfg = cfg
        self.q: queue.Queue[_Job | None] = queue.Queue()
        self.on_recorded = on_recorded
        self._keys: dict[int, str] = {}

    def put(self, kind: str, ev: Event) -> None:
        """Queue a start or end of an event."""
        self.q.put(_Job(kind, ev, _event_fields(ev)))

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the queued jobs, then end the thread."""
        self.q.put(None)
        self.join(timeout)

    def _open_store(self) -> Store:
        """The database, retried until it opens (a locked or briefly unreadable file): events
        wait in the queue meanwhile, none is dropped."""
        delay = 1.0
        while True:
            try:
                return Store(self.cfg.paths.db_path)
            except sqlite3.Error as exc:
                log.error("recorder cannot open the database (%s); retrying in %g s", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _sweep(self, store: Store, media: Path) -> None:
        try:
            prune(store, media, self.cfg.events)
        except (OSError, sqlite3.Error) as exc:
            log.error("retention sweep failed: %s", exc)

    def run(self) -> None:
        media = self.cfg.paths.media
        media.mkdir(parents=True, exist_ok=True)
        store = self._open_store()
        next_sweep = 0.0
        try:
            while True:
                if time.monotonic() >= next_sweep:
                    self._sweep(store, media)
                    next_sweep = time.monotonic() + SWEEP_EVERY_S
                try:
                    job = self.q.get(timeout=max(0.1, next_sweep - time.monotonic()))
                except queue.Empty:
                    continue
                if job is None:
                    break
                self._record_retrying(store, media, job)
        finally:
            store.close()

    def _record_retrying(self, store: Store, media: Path, job: _Job) -> None:
        """Record a job; a database locked for longer than the busy timeout (someone holding a
        write transaction open) is waited out a few more times before the event is given up."""
        for attempt in range(RECORD_ATTEMPTS):
            try:
                self._record(store, media, job)
                return
            except sqlite3.OperationalError as exc:
                if attempt + 1 == RECORD_ATTEMPTS:
                    log.error("event %s not recorded, database unusable: %s", job.kind, exc)
                    return
                log.warning("database busy (%s); retrying the event %s", exc, job.kind)
                time.sleep(min(2.0**attempt, 10.0))
            except Exception:
                log.exception("could not record event (%s)", job.kind)
                return

    def _record(self, store: Store, media: Path, job: _Job) -> None:
        ev, f = job.event, job.snapshot
        key = self._keys.get(id(ev))
        if key is None:
            t = f["start_wall"]
            key = time.strftime("%H%M%S", time.localtime(t)) + f"-{int(t * 1000) % 1000:03d}"
            self._keys[id(ev)] = key
        snap = thumb = None
        if f["image"] is not None:
            ev_cfg = self.cfg.events
            try:
                snap, thumb = save_snapshot(media, key, f["image"], f["boxes"], f["best_wall"],
                                            self.cfg.camera.name, ev_cfg.snapshot_quality,
                                            ev_cfg.thumb_width, day_of=f["start_wall"])
            except (OSError, ValueError) as exc:
                # Disk full, media dir gone, encoder failure: the event row and its alert matter
                # more than the picture, so they are still written (without a snapshot). A full
                # disk also triggers the retention sweep, so the next event has room again.
                log.error("snapshot of the event not saved (%s); recording the event without it",
                          exc)
                if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                    self._sweep(store, media)
        if job.kind == "start":
            ev.id, armed = store.add_event(self.cfg.camera.name, f["start_wall"], f["peak"],
                                           f["boxes"], f["union"], snap, thumb, f["frames"])
            log.info("event %d started%s (%.1f%% of the frame changed)", ev.id,
                     ", alert queued" if armed else "", f["peak"])
        else:
            self._keys.pop(id(ev), None)  # (an id() may be reused by a later event object)
            if ev.id is None:
                return
            store.finish_event(ev.id, f["end_wall"], f["peak"], f["boxes"], f["union"], snap,
                               thumb, f["frames"])
            log.info("event %d ended after %.1f s", ev.id, f["end_wall"] - f["start_wall"])
        if self.on_recorded is not None and ev.id is not None:
            self.on_recorded(job.kind, ev.id)


class CameraSupervisor:
    """Reads frames; on failure closes, waits with exponential backoff, reopens. Never raises
    CameraError; returns None when asked to stop or when a finite source ends."""

    def __init__(self, camera: Camera, stop: threading.Event, max_backoff_s: float,
                 on_wait: Callable[[], None] | None = None) -> None:
        self.camera = camera
        self.on_wait = on_wait
        self.stop = stop
        self.max_backoff_s = max_backoff_s
        self.is_open = False
        self.lost_since: float | None = None
        self.last_error: str | None = None
        self.reopens = 0
        self.ended = False

    def _lost(self, err: str) -> None:
        if self.lost_since is None:
            self.lost_since = time.time()
            log.warning("camera lost: %s", err)
        self.last_error = err
        self.is_open = False
        try:
            self.camera.close()
        except Exception as exc:  # a broken device may fail to close too; we reopen anyway
            log.debug("closing the failed camera: %s", exc)

    def _wait(self, seconds: float) -> None:
        if self.on_wait is not None:
            self.on_wait()
        self.stop.wait(seconds)

    def read(self) -> Frame | None:
        """The next frame, reopening as long as needed."""
        backoff = 0.5
        while not self.stop.is_set():
            if not self.is_open:
                try:
                    self.camera.open()
                    self.is_open = True
                except CameraError as exc:
                    self._lost(str(exc))
                    self._wait(backoff)
                    backoff = min(backoff * 2, self.max_backoff_s)
                    continue
            try:
                frame = self.camera.read()
            except EndOfStream:
                self.ended = True
                return None
            except CameraError as exc:
                self._lost(str(exc))
                self._wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            if self.lost_since is not None:
                log.warning("camera back after %.1f s", time.time() - self.lost_since)
                self.reopens += 1
                self.lost_since = None
                self.last_error = None
            return frame
        return None

    def close(self) -> None:
        """Release the camera."""
        if self.is_open:
            self.is_open = False
            self.camera.close()


class Daemon:
    """Wires the capture loop; `run()` blocks until `stop` is set or a finite source ends."""

    def __init__(self, cfg: Config, camera: Camera | None = None,
                 stop: threading.Event | None = None, notifier: Notifier | None = None) -> None:
        self.cfg = cfg
        self.stop = stop or threading.Event()
        self.camera = camera if camera is not None else make_camera(cfg.camera)
        self.notifier = notifier or Notifier()
        self.detector = MotionDetector(cfg.motion, fps=cfg.camera.fps)
        self.tracker = EventTracker(cfg.events)
        self.supervisor = CameraSupervisor(self.camera, self.stop, cfg.camera.reconnect_max_s,
                                           on_wait=lambda: self.write_status(force=True))
        self.live = LivePublisher(cfg.paths.runtime_dir)
        self.recorder = EventRecorder(cfg)
        self.workers: list[Any] = []  # background workers with start()/stop() (mailer, ...)
        self.frames = 0
        self.started_ts = time.time()
        self._frame_times: deque[float] = deque(maxlen=64)
        self._last_status = 0.0
        self._last_ping = 0.0
        self._ready_sent = False

    # ---- start-up steps, in order ----------------------------------------------------------

    def init_dirs(self) -> None:
        """Create the state, media and runtime directories."""
        for d in (self.cfg.paths.state_dir, self.cfg.paths.media, self.cfg.paths.runtime_dir):
            d.mkdir(parents=True, exist_ok=True)

    def init_store(self) -> None:
        """Migrate the database and close events a crash left open."""
        store = Store(self.cfg.paths.db_path)
        try:
            n = store.close_interrupted()
            if n:
                log.warning("closed %d event(s) left open by an earlier crash", n)
        finally:
            store.close()

    def start_workers(self) -> None:
        """Start the recorder and any other background workers."""
        self.recorder.start()
        self.workers.append(self.live)
        if self.cfg.mail.enabled:
            from homesec.alerts.worker import OutboxWorker

            self.workers.append(OutboxWorker(self.cfg, self.stop))
        for w in self.workers:
            w.start()

    # ---- the loop --------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Health for the web UI: frame rate, last frame, camera lost since when."""
        times = self._frame_times
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and (
            times[-1] > times[0]) else 0.0
        sup = self.supervisor
        return {
            "pid": os.getpid(), "started_ts": self.started_ts,
            "updated_ts": time.time(), "frames": self.frames, "fps": round(fps, 2),
            "last_frame_ts": times[-1] if times else None,
            "camera": self.cfg.camera.name, "camera_ok": sup.lost_since is None and sup.is_open,
            "camera_lost_since": sup.lost_since, "camera_error": sup.last_error,
            "camera_reopens": sup.reopens,
            "event_in_progress": self.tracker.current is not None,
        }

    def write_status(self, force: bool = False) -> None:
        """Replace status.json in the runtime dir (tmpfs under systemd) once a second."""
        now = time.monotonic()
        if not force and now - self._last_status < 1.0:
            return
        self._last_status = now
        try:
            write_status(self.cfg.paths.runtime_dir, self.status())
        except OSError as exc:
            log.warning("cannot write status: %s", exc)

    def _watchdog(self) -> None:
        """READY=1 after the first frame; WATCHDOG=1 only from here, i.e. while frames arrive."""
        if not self._ready_sent:
            self.notifier.notify("READY=1\nSTATUS=capturing")
            self._ready_sent = True
        now = time.monotonic()
        if now - self._last_ping >= 1.0:
            self._last_ping = now
            self.notifier.notify("WATCHDOG=1")

    def handle_frame(self, frame: Frame) -> None:
        """Everything done with one frame."""
        self.frames += 1
        self._frame_times.append(time.time())
        result = self.detector.update(frame.luma)
        upd = self.tracker.update(frame, result)
        if upd.started is not None:
            self.recorder.put("start", upd.started)
        if upd.ended is not None:
            self.recorder.put("end", upd.ended)
        if self.live.due():
            self.live.submit(frame.color())  # encoded in the live thread, never here
        self._watchdog()

    def run(self) -> None:
        """Start up, loop over frames until stopped, shut down cleanly."""
        self.init_dirs()
        self.init_store()
        self.start_workers()
        log.info("capturing from %s source", self.cfg.camera.source)
        try:
            while not self.stop.is_set():
                frame = self.supervisor.read()
                if frame is None:
                    if self.supervisor.lost_since is not None:
                        self.write_status(force=True)
                    break
                self.handle_frame(frame)
                self.write_status()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Close the current event, drain the recorder, stop workers, release the camera."""
        self.notifier.notify("STOPPING=1")
        ended = self.tracker.finish()
        if ended is not None:
            self.recorder.put("end", ended)
        self.stop.set()
        if self.recorder.is_alive():
            self.recorder.stop()
        for w in self.workers:
            w.stop()
        self.supervisor.close()
        self.write_status(force=True)
        log.info("stopped after %d frames", self.frames)
