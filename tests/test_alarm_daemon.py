"""The alarm with the real daemon on the demo source and a real SMTP server (aiosmtpd on
127.0.0.1): an event running when the house becomes armed, the owner walking out during the exit
delay, the entry delay (disarmed in time or not), the camera covered, the camera lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from homesec.camera.base import CameraError, Frame
from homesec.camera.demo import CROSSING_START_S, DemoCamera
from homesec.capture.daemon import Daemon
from homesec.config import Config, parse
from homesec.storage.store import Store
from tests.conftest import wait_for
from tests.mail_support import FastCrossingCamera, SmtpServer, config_dict

FPS = 15


class WalkingCamera(DemoCamera):
    """Nobody for `lead_s`, then a person who keeps walking to and fro in view."""

    def __init__(self, lead_s: float = 1.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.lead_s = lead_s

    def scene_time(self, t: float) -> float:
        if t < self.lead_s:
            return 2.0  # the stock scene's quiet, lamp-off stretch
        phase = ((t - self.lead_s) / 6.0) % 2.0
        tri = phase if phase <= 1.0 else 2.0 - phase  # 0 -> 1 -> 0: across and back
        return CROSSING_START_S + 0.6 + 2.8 * tri  # progress 0.15 .. 0.85: always in view


class BlackoutCamera(FastCrossingCamera):
    """The quiet demo room, then (from `black_at` s) a covered lens: nearly black, no texture."""

    def __init__(self, black_at: float, **kw: Any) -> None:
        super().__init__(period_s=20.0, lead_s=5.0, **kw)  # nobody crosses during the test
        self.black_at = black_at
        self.rng = np.random.default_rng(3)

    def read(self) -> Frame:
        f = super().read()
        if f.index / self.fps < self.black_at:
            return f
        luma = np.clip(self.rng.normal(4.0, 1.5, f.luma.shape), 0, 255).astype(np.uint8)
        w, h = f.size
        return Frame(index=f.index, mono_s=f.mono_s, wall_s=f.wall_s, luma=luma,
                     _color_fn=lambda: np.zeros((h, w, 3), np.uint8), size=f.size)


class UnpluggedCamera(FastCrossingCamera):
    """Works for `works_s` seconds, then the device is gone for good."""

    def __init__(self, works_s: float, **kw: Any) -> None:
        super().__init__(period_s=20.0, lead_s=5.0, **kw)
        self.works_s = works_s
        self.gone = False

    def open(self) -> None:
        if self.gone:
            raise CameraError("no such device")
        super().open()

    def read(self) -> Frame:
        if self._index / self.fps >= self.works_s:
            self.gone = True
            raise CameraError("device unplugged")
        return super().read()


class DaemonThread:
    """The capture daemon in-process (its frame counter is readable), stopped at teardown."""

    def __init__(self, cfg: Config, camera: Any) -> None:
        self.daemon = Daemon(cfg, camera=camera)
        self.thread = threading.Thread(target=self.daemon.run, daemon=True)

    def start(self) -> DaemonThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.daemon.stop.set()
        self.thread.join(15)
        assert not self.thread.is_alive()

    def wait_frames(self, n: int, timeout: float = 20.0) -> None:
        """Poll until the loop has handled `n` more frames (time passing, observably)."""
        target = self.daemon.frames + n
        wait_for(lambda: self.daemon.frames >= target, timeout, what=f"{n} more frames")


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    srv = SmtpServer("plain", None).start()  # type: ignore[arg-type]  # (no TLS: no certs)
    yield srv
    srv.stop()


@pytest.fixture
def running() -> Iterator[list[DaemonThread]]:
    items: list[DaemonThread] = []
    yield items
    for d in items:
        d.stop()


def make_cfg(tmp_path: Path, smtp: SmtpServer, **alarm: Any) -> Config:
    data = config_dict(tmp_path, "none", smtp.port, None)
    data["events"] = {"confirm_s": 0.2, "post_motion_s": 3.0}
    data["alarm"].update(alarm)
    return parse(data)


def camera(cls: type, cfg: Config, **kw: Any) -> Any:
    c = cfg.camera
    return cls(width=c.width, height=c.height, lores_width=c.lores_width, fps=c.fps,
               realtime=True, **kw)


def start(running: list[DaemonThread], cfg: Config, cam: Any) -> DaemonThread:
    d = DaemonThread(cfg, cam).start()
    running.append(d)
    return d


def outbox(store: Store) -> list[dict[str, Any]]:
    return [dict(r) for r in store.conn.execute("SELECT * FROM outbox ORDER BY id")]


def motion_mails(smtp: SmtpServer) -> list[Any]:
    return [m for m in smtp.messages if str(m.msg["Subject"]).startswith("Motion at")]


@pytest.mark.parametrize("exit_delay_s", [0.0, 1.5])
def test_event_running_when_armed_alerts_once_after_arming(
        tmp_path: Path, smtp: SmtpServer, running: list[DaemonThread], exit_delay_s: float) -> None:
    """Someone moving in view when the house becomes armed (armed with delay 0, or the exit
    delay ends while they are still there): one alert, sent after arming, with a picture taken
    after arming. Before the fix the event said "While armed: no" and nothing was sent."""
    cfg = make_cfg(tmp_path, smtp)
    d = start(running, cfg, camera(WalkingCamera, cfg))
    store = Store(cfg.paths.db_path)
    ev = wait_for(lambda: store.events(), 10, what="the event to start (disarmed)")[0]
    assert ev.alarm == "not_armed" and ev.end_ts is None
    t_arm = time.time()
    st = store.arm("owner", delay_s=exit_delay_s)
    armed_at = st.armed_ts
    assert armed_at is not None and armed_at >= t_arm
    mail = wait_for(lambda: motion_mails(smtp), 15, what="the alert email")[0]
    assert mail.event_ids == [ev.id]
    assert "while armed" in str(mail.msg["Subject"])
    rows = outbox(store)
    assert len(rows) == 1 and rows[0]["event_id"] == ev.id and rows[0]["created_ts"] >= armed_at
    got = store.event(ev.id)
    assert got is not None and got.armed and got.alarm == "alert"
    snap = cfg.paths.media / got.snapshot
    assert snap.stat().st_mtime >= armed_at  # the picture was taken (written) after arming
    # The person goes on moving in the same event: still exactly one alert for it.
    d.wait_frames(3 * FPS)
    assert len(motion_mails(smtp)) == 1 and len(outbox(store)) == 1
    store.close()


def test_owner_leaving_during_the_exit_delay_raises_no_alert(
        tmp_path: Path, smtp: SmtpServer, running: list[DaemonThread]) -> None:
    """The exit delay ends while the owner's event is still open (its post-motion tail), but they
    are out of view by then: no new motion after the armed time, no alert."""
    cfg = make_cfg(tmp_path, smtp)
    d = start(running, cfg, camera(FastCrossingCamera, cfg, period_s=20.0, lead_s=0.5))
    store = Store(cfg.paths.db_path)
    ev = wait_for(lambda: store.events(), 10, what="the owner's event")[0]
    # The crossing lasts 4 s from ~0.2 s before the event start (the last motion about 3.3 s
    # after it); the event stays open post_motion_s (3 s) after the last motion.
    deadline = ev.start_ts + 4.5
    store.arm("owner", delay_s=deadline - time.time())
    done = wait_for(lambda: (e := store.event(ev.id)) is not None and e.end_ts is not None and e,
                    15, what="the owner's event to end")
    # (end_ts is the last motion; the event closed post_motion_s later)
    assert done.end_ts < deadline < done.end_ts + cfg.events.post_motion_s, \
        "the owner must be out of view, and the event still open, when the house becomes armed"
    assert store.arm_status().state == "armed"
    d.wait_frames(FPS)  # the recorder and the alarm thread have caught up with the end
    assert outbox(store) == [] and smtp.messages == []
    assert store.event(ev.id).alarm == "not_armed"  # type: ignore[union-attr]
    store.close()


@pytest.mark.parametrize("disarm", [True, False])
def test_entry_delay(tmp_path: Path, smtp: SmtpServer, running: list[DaemonThread],
                     disarm: bool) -> None:
    """Motion while armed: 'pending' for alarm.entry_delay_s. Disarmed in time: no email, the
    event kept and marked. Not disarmed: the email goes out after the delay."""
    cfg = make_cfg(tmp_path, smtp, entry_delay_s=3)
    store = Store(cfg.paths.db_path)
    store.arm("owner", delay_s=0)
    d = start(running, cfg, camera(FastCrossingCamera, cfg, period_s=20.0, lead_s=1.0))
    ev = wait_for(lambda: store.events(), 10, what="the intruder's event")[0]
    st = wait_for(lambda: (s := store.arm_status()).state == "pending" and s, 5,
                  what="the alarm to be pending")
    assert st.deadline_ts == pytest.approx(ev.start_ts + 3, abs=1.0)
    if disarm:
        assert store.set_arm(False, by="owner").state == "disarmed"
        wait_for(lambda: (e := store.event(ev.id)) is not None and e.end_ts is not None, 15,
                 what="the event to end (well after the entry delay)")
        d.wait_frames(FPS)
        assert time.time() > st.deadline_ts + 1
        assert outbox(store) == [] and smtp.messages == []
        kept = store.event(ev.id)
        assert kept is not None and kept.alarm == "disarmed_in_time" and kept.snapshot
    else:
        mail = wait_for(lambda: motion_mails(smtp), 15, what="the alert email")[0]
        assert mail.event_ids == [ev.id]
        rows = outbox(store)
        assert len(rows) == 1 and rows[0]["created_ts"] >= st.deadline_ts
        assert store.arm_status().state == "triggered"
        assert store.event(ev.id).alarm == "alert"  # type: ignore[union-attr]
        assert "Alarm: triggered" in mail.msg.get_body(("plain",)).get_content()
    store.close()


def test_camera_covered_while_armed_alerts_once(
        tmp_path: Path, smtp: SmtpServer, running: list[DaemonThread]) -> None:
    cfg = make_cfg(tmp_path, smtp, covered_alert_s=1.0)
    store = Store(cfg.paths.db_path)
    store.arm("owner", delay_s=0)
    d = start(running, cfg, camera(BlackoutCamera, cfg, black_at=2.5))

    def covered() -> list[Any]:
        return [m for m in smtp.messages if str(m.msg["Subject"]).startswith(
            "Camera covered at Front door")]

    mail = wait_for(covered, 15, what="the 'camera covered' email")[0]
    body = mail.msg.get_body(("plain",)).get_content()
    assert "Alarm: armed" in body
    d.wait_frames(3 * FPS)  # still covered for 3 s more: no second alert
    assert len(covered()) == 1
    assert len([r for r in outbox(store) if r["kind"] == "health"]) == 1
    store.close()


def test_camera_lost_longer_than_the_limit_alerts_once(
        tmp_path: Path, smtp: SmtpServer, running: list[DaemonThread]) -> None:
    """A health alert: also while disarmed."""
    cfg = make_cfg(tmp_path, smtp, camera_lost_alert_s=5)
    cfg.camera.reconnect_max_s = 0.5
    store = Store(cfg.paths.db_path)
    start(running, cfg, camera(UnpluggedCamera, cfg, works_s=1.0))

    def lost() -> list[Any]:
        return [m for m in smtp.messages if "camera lost since" in str(m.msg["Subject"])]

    t0 = time.time()
    mail = wait_for(lost, 20, what="the 'camera lost' email")[0]
    assert time.time() - t0 >= 5.0  # not before the limit
    assert str(mail.msg["Subject"]).startswith("Front door camera lost since ")
    wait_for(lambda: time.time() > t0 + 9, 10, what="a few more alarm-thread rounds")
    assert len(lost()) == 1
    assert len([r for r in outbox(store) if r["kind"] == "health"]) == 1
    store.close()
