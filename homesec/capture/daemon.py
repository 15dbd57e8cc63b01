"""The capture daemon: camera -> MotionDetector -> EventTracker -> recorder (store + snapshots),
plus the live frame, the status file and the systemd watchdog.

Why the recorder is a thread: JPEG encoding and SQLite commits take tens of milliseconds on a Pi
and an SD card can stall for longer; the capture loop hands events to a queue and goes on with the
next frame. Why a camera supervisor: USB cameras get unplugged, RTSP streams drop, libcamera
hiccups; the daemon must come back by itself, reporting "camera lost since T" meanwhile.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections import deque
from typing import Any

from homesec.alarm.health import CoverWatch
from homesec.alarm.runner import AlarmThread
from homesec.alarm.running import ArmedWatch
from homesec.camera import Camera, Frame, make_camera
from homesec.capture.events import EventTracker
from homesec.capture.frame_rate import FrameRateMeter
from homesec.capture.live import LivePublisher
from homesec.capture.motion import MotionDetector, use_one_opencv_thread
from homesec.capture.recorder import EventRecorder
from homesec.capture.recording import make_clip_recorder
from homesec.capture.status import write_status
from homesec.capture.supervisor import CameraSupervisor
from homesec.config import Config
from homesec.storage.store import Store
from homesec.system.sdnotify import Notifier

log = logging.getLogger("homesec.capture.daemon")


class Daemon:
    """Wires the capture loop; `run()` blocks until `stop` is set or a finite source ends."""

    def __init__(self, cfg: Config, camera: Camera | None = None,
                 stop: threading.Event | None = None, notifier: Notifier | None = None) -> None:
        self.cfg = cfg
        self.stop = stop or threading.Event()
        self.camera = camera if camera is not None else make_camera(cfg.camera,
                                                                    cfg.motion.detect_width)
        self.notifier = notifier or Notifier()
        self.detector = MotionDetector(cfg.motion, fps=cfg.camera.fps)
        self.frame_rate = FrameRateMeter()  # the detector follows the rate frames really come at
        self.tracker = EventTracker(cfg.events)
        self.supervisor = CameraSupervisor(self.camera, self.stop, cfg.camera.reconnect_max_s,
                                           on_wait=lambda: self.write_status(force=True))
        self.live = LivePublisher(cfg.paths.runtime_dir)
        self.recorder = EventRecorder(cfg)
        self.clips = make_clip_recorder(cfg, self.camera, sweep=self._clip_sweep)
        # The alarm: its thread (ticks, schedules, health alerts) and the loop's pure watches.
        self.alarm = AlarmThread(cfg, lambda: self.supervisor.lost_since, self.stop)
        self.armed_watch = ArmedWatch(cfg.events.confirm_s)
        self.cover = CoverWatch(hold_s=cfg.alarm.covered_alert_s)
        self.workers: list[Any] = []  # background workers with start()/stop() (mailer, ...)
        self.frames = 0
        self.started_ts = time.time()
        self._frame_times: deque[float] = deque(maxlen=64)
        self._last_status = 0.0
        self._last_ping = 0.0
        self._ready_sent = False

    def _clip_sweep(self, store: Store) -> None:
        """Retention after each clip (run in the clip index thread)."""
        from homesec.storage.retention import sweep

        sweep(store, self.cfg)

    # ---- start-up steps, in order ----------------------------------------------------------

    def init_dirs(self) -> None:
        """Create the state, media and runtime directories."""
        for d in (self.cfg.paths.state_dir, self.cfg.paths.media, self.cfg.paths.runtime_dir):
            d.mkdir(parents=True, exist_ok=True)
        from homesec.system.owner_only import check_private_dir

        check_private_dir(self.cfg.paths.state_dir)  # nobody else may plant files there

    def init_store(self) -> None:
        """Migrate the database. (The recorder closes events a crash left open, after replaying
        its journal, which may hold their ends.) A database that cannot be opened now does not
        stop the camera: the recorder keeps the events until it can."""
        try:
            Store(self.cfg.paths.db_path).close()
        except sqlite3.Error as exc:
            log.error("database not usable at start-up (%s); capturing anyway", exc)

    def start_workers(self) -> None:
        """Start the recorder and any other background workers."""
        if self.cfg.mqtt.enabled:  # Home Assistant and the other units (homesec/integrations/)
            from homesec.integrations.mqtt import MqttBridge

            bridge = MqttBridge(self.cfg, self.stop)
            bridge.attach(self.recorder, self.clips.index if self.clips is not None else None)
            self.workers.append(bridge)
        self.recorder.start()
        self.workers.append(self.live)
        if self.clips is not None:
            self.workers.append(self.clips)
        self.workers.append(self.alarm)
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
            "frames_lost": int(getattr(self.camera, "frames_lost", 0)),
            "detector_fps": self.detector.fps,
            "event_in_progress": self.tracker.current is not None,
            "clips": self.clips.stats() if self.clips is not None else {"enabled": False},
            **self.recorder.health(),  # database writable? event records waiting?
            "alarm": self.alarm.view.state if self.alarm.view is not None else None,
            "camera_covered": self.cover.covered,
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
        self.frame_rate.add(frame.mono_s)
        if self.frames % 32 == 0 and self.tracker.current is None:
            fps = self.frame_rate.retune(self.detector.fps)
            if fps is not None:
                log.info("frames arrive at %.2f fps, not %.2f: detector retuned", fps,
                         self.detector.fps)
                self.detector = MotionDetector(self.cfg.motion, fps=fps)
        result = self.detector.update(frame.luma)
        upd = self.tracker.update(frame, result)
        if upd.started is not None:
            self.recorder.put("start", upd.started)
        if self.armed_watch.update(self.tracker.current, frame, result, self.alarm.view):
            self.recorder.put("armed", self.tracker.current)  # type: ignore[arg-type]
        if upd.ended is not None:
            self.recorder.put("end", upd.ended)
        if self.clips is not None:
            self.clips.submit(frame)  # encoded in the clips thread, never here
            if upd.started is not None:
                self.clips.event_started(upd.started)
            if upd.ended is not None:
                self.clips.event_ended(upd.ended, frame.mono_s)
        cover = self.cover.update(frame.luma, frame.mono_s)
        if cover is not None:
            log.warning("camera picture %s", "uniform: covered or blinded" if cover == "covered"
                        else "has structure again")
            self.alarm.covered_since = (frame.wall_s - self.cover.hold_s if cover == "covered"
                                        else None)
        if self.live.due():
            self.live.submit(frame.color())  # encoded in the live thread, never here
        self._watchdog()

    def run(self) -> None:
        """Start up, loop over frames until stopped, shut down cleanly."""
        use_one_opencv_thread()
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
            if self.clips is not None:
                self.clips.event_ended(ended, ended.end_mono)
        self.stop.set()
        if self.recorder.is_alive():
            self.recorder.stop()
        for w in self.workers:
            w.stop()
        self.supervisor.close()
        self.write_status(force=True)
        log.info("stopped after %d frames", self.frames)
