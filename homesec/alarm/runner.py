"""The daemon's alarm thread: time-driven changes, schedules and health alerts, off the capture loop.

Four times a second it applies what time alone changes (exit delay over, entry delay over = the
alert, triggered over, snooze over), acts on a due schedule point, turns health conditions
(camera covered, camera lost, disk nearly full) into outbox alerts, and publishes the alarm
state it read (`view`) for the capture loop, which must never wait for SQLite. Every step reads
first and writes only when something is due (the SD card). A database error is logged and the
step retried next time: nothing is decided from a stale state.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable

from homesec.alarm import health, notify, persist
from homesec.alarm.persist import open_store
from homesec.alarm.schedule import entries_from_config, local_zone
from homesec.config import Config
from homesec.storage.store import ArmStatus, Store

log = logging.getLogger("homesec.alarm.runner")

STEP_S = 0.25
DISK_EVERY_S = 60.0


class AlarmThread(threading.Thread):
    """Started and stopped by the daemon (it has start()/stop() like the other workers)."""

    def __init__(self, cfg: Config, lost_since: Callable[[], float | None],
                 stop_event: threading.Event | None = None) -> None:
        super().__init__(name="alarm", daemon=True)
        self.cfg = cfg
        self.lost_since = lost_since
        self.shared_stop = stop_event or threading.Event()
        self._stop_now = threading.Event()
        self.view: ArmStatus | None = None  # read by the capture loop (one attribute: atomic)
        self.covered_since: float | None = None  # set by the capture loop (wall time)
        self.entries = entries_from_config(cfg.alarm.schedule)
        self.zone = local_zone(cfg.alarm.timezone)
        self._next_disk = 0.0

    def stop(self, timeout: float = 2.0) -> None:
        """End after the current step."""
        self._stop_now.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        store: Store | None = None
        try:
            while not (self._stop_now.is_set() or self.shared_stop.is_set()):
                try:
                    if store is None:
                        store = open_store(self.cfg)
                    self.step(store)
                except sqlite3.Error as exc:
                    log.error("alarm: database error (retrying): %s", exc)
                    self._stop_now.wait(1.0)
                self._stop_now.wait(STEP_S)
        finally:
            if store is not None:
                store.close()

    def step(self, store: Store, now: float | None = None) -> None:
        """One round: time-driven changes, schedule, health, publish the view."""
        now = time.time() if now is None else now
        done = persist.tick(store, now)
        if done is not None:
            for a, b in done.outcome.transitions:
                log.info("alarm: %s -> %s", a, b)
            if done.alerted:
                log.warning("alarm triggered: alert queued for event(s) %s", done.alerted)
        sched = persist.run_schedule(store, self.entries, self.zone, self.cfg.alarm.exit_delay_s,
                                     now)
        if sched is not None:
            log.info("schedule: alarm now %s", sched.status.state)
        self.view = persist.status(store, now)
        self.check_health(store, now)

    def check_health(self, store: Store, now: float) -> None:
        """Raise or clear the health and tamper conditions."""
        name = self.cfg.camera.name
        covered = self.covered_since
        if covered is not None:
            notify.raise_condition(store, "camera_covered", covered,
                                   f"Camera covered at {name}",
                                   f"The picture of {name} went uniform (covered or blinded) at "
                                   f"{_clock(covered)} and has stayed so.", now)
        elif "camera_covered" in self._raised(store):
            notify.clear_condition(store, "camera_covered")
        lost = self.lost_since()
        if health.camera_lost_for(lost, now) > self.cfg.alarm.camera_lost_alert_s:
            assert lost is not None
            notify.raise_condition(store, "camera_lost", lost, f"{name} camera lost since "
                                   f"{_clock(lost)}", f"No picture from {name} since "
                                   f"{_clock(lost)}; homesec keeps trying to reopen it.", now)
        elif lost is None and "camera_lost" in self._raised(store):
            notify.clear_condition(store, "camera_lost")
        if now >= self._next_disk:
            self._next_disk = now + DISK_EVERY_S
            self.check_disk(store, now)

    def check_disk(self, store: Store, now: float) -> None:
        """Disk nearly full (below alarm.disk_alert_free_pct)."""
        path = self.cfg.paths.media if self.cfg.paths.media.exists() else self.cfg.paths.state_dir
        try:
            du = shutil.disk_usage(path)
        except OSError:
            return
        free = 100.0 * du.free / du.total if du.total else 100.0
        if health.disk_low(free, self.cfg.alarm.disk_alert_free_pct):
            notify.raise_condition(store, "disk_low", now, f"Disk nearly full at {self.cfg.camera.name}",
                                   f"Only {free:.1f} % of the disk holding {path} is free "
                                   f"({du.free / 1e9:.1f} GB).", now)
        elif "disk_low" in self._raised(store):
            notify.clear_condition(store, "disk_low")

    def _raised(self, store: Store) -> dict[str, float]:
        return notify.raised(store)


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))
