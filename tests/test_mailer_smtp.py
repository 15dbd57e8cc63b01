"""Alert emails against a real SMTP server (aiosmtpd on 127.0.0.1 with a certificate made here):
STARTTLS + AUTH, implicit TLS + AUTH, plain. The daemon runs with the demo camera (in-process or
as a real `homesec run` process); nothing but the camera is simulated."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from homesec.alerts import outbox
from homesec.alerts.smtp import MailError
from homesec.alerts.worker import OutboxWorker, send_test
from homesec.camera.demo import DemoScene
from homesec.capture.daemon import Daemon
from homesec.capture.snapshot import save_snapshot
from homesec.config import Config, parse
from homesec.storage.store import Store
from homesec.system.credentials import PASSWORD_ENV
from tests.conftest import wait_for
from tests.mail_support import (
    PASSWORD,
    Certs,
    FastCrossingCamera,
    SilentServer,
    SmtpServer,
    config_dict,
    free_port,
    make_certs,
    write_toml,
)

SECURITY = {"starttls": "starttls", "tls": "tls", "plain": "none"}
# aiosmtpd cannot tell that an implicit-TLS connection is encrypted and warns about AUTH over it.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


@pytest.fixture
def cleanup() -> Iterator[list[Any]]:
    """Things with stop() to stop at the end, whatever happens."""
    items: list[Any] = []
    yield items
    for it in reversed(items):
        it.stop()


def _server(cleanup: list[Any], mode: str, certs: Certs, port: int | None = None) -> SmtpServer:
    srv = SmtpServer(mode, certs, port).start()
    cleanup.append(srv)
    return srv


def _cfg(tmp_path: Path, mode: str, port: int, certs: Certs, **mail: Any) -> Config:
    return parse(config_dict(tmp_path, SECURITY[mode], port, certs, **mail))


def _rows(cfg: Config) -> list[dict[str, Any]]:
    store = Store(cfg.paths.db_path)
    try:
        return [dict(r) for r in store.conn.execute("SELECT * FROM outbox ORDER BY id")]
    finally:
        store.close()


def _arm(cfg: Config, armed: bool = True) -> None:
    store = Store(cfg.paths.db_path)
    store.set_arm(armed, "test")
    store.close()


@functools.cache
def _scene(width: int, height: int) -> DemoScene:
    return DemoScene(width, height, 320, seed=2)


def _inject_event(cfg: Config, store: Store, n: int) -> int:
    """An event as the recorder writes it (snapshot files + row + alert when armed)."""
    ts = time.time()
    image = _scene(cfg.camera.width, cfg.camera.height).color(6.0)
    snap, thumb = save_snapshot(cfg.paths.media, f"inj{n}-{int(ts * 1000)}", image,
                                [(250, 150, 60, 150)], ts, cfg.camera.name, 85, 320)
    return store.add_event(cfg.camera.name, ts, 2.0, [[250, 150, 60, 150]], None, snap, thumb, 5)[0]


def _assert_alert(got: Any, cfg: Config, event_id: int) -> None:
    """What the owner sees: subject, the link, the snapshot inline and attached, small enough."""
    msg = got.msg
    assert str(msg["Subject"]).startswith(f"Motion at {cfg.camera.name} - ")
    assert len(str(msg["Subject"]).rsplit(" - ", 1)[1]) == 8  # HH:MM:SS
    assert sorted(got.rcpt_tos) == sorted(cfg.mail.recipients)
    link = f"{cfg.web.base_url}/events/{event_id}"
    assert link in msg.get_body(("plain",)).get_content()
    assert link in msg.get_body(("html",)).get_content()
    images = [p for p in msg.walk() if p.get_content_type() == "image/jpeg"]
    dispositions = sorted(str(p.get_content_disposition()) for p in images)
    assert dispositions == ["attachment", "inline"]
    for p in images:
        img = cv2.imdecode(np.frombuffer(p.get_content(), np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape[:2] == (cfg.camera.height, cfg.camera.width)
    assert len(got.data) < 1_000_000


class DaemonThread:
    """The capture daemon in-process (so the frame counter can be read), stopped at teardown."""

    def __init__(self, cfg: Config, camera: FastCrossingCamera) -> None:
        self.daemon = Daemon(cfg, camera=camera)
        self.thread = threading.Thread(target=self.daemon.run, daemon=True)

    def start(self) -> DaemonThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.daemon.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


def _camera(cfg: Config, **kw: Any) -> FastCrossingCamera:
    c = cfg.camera
    return FastCrossingCamera(width=c.width, height=c.height, lores_width=c.lores_width, fps=c.fps,
                              realtime=True, **kw)


# ---- through the daemon ------------------------------------------------------------------------

def test_disarmed_event_is_recorded_not_sent_armed_event_sends_exactly_one(
        tmp_path: Path, certs: Certs, cleanup: list[Any]) -> None:
    srv = _server(cleanup, "starttls", certs)
    cfg = _cfg(tmp_path, "starttls", srv.port, certs)
    _arm(cfg, False)
    d = DaemonThread(cfg, _camera(cfg, period_s=6.5, lead_s=0.5)).start()
    cleanup.append(d)
    store = Store(cfg.paths.db_path)
    first = wait_for(lambda: store.events(), 8, what="the first (disarmed) event")[0]
    assert not first.armed and first.snapshot
    _arm(cfg, True)
    second = wait_for(lambda: [e for e in store.events() if e.id != first.id], 12,
                      what="the second (armed) event")[0]
    assert second.armed
    got = wait_for(lambda: srv.messages, 5, what="the alert email")[0]
    _assert_alert(got, cfg, second.id)
    assert got.event_ids == [second.id]
    # Let the event end (the recorder rewrites it with the final snapshot): still one email.
    wait_for(lambda: (e := store.event(second.id)) is not None and e.end_ts is not None, 10,
             what="the armed event to end")
    rows = _rows(cfg)
    assert [(r["event_id"], r["status"]) for r in rows] == [(second.id, "sent")]
    assert rows[0]["message_id"] == got.msg["Message-ID"]
    assert len(srv.messages) == 1
    store.close()


def test_hanging_server_does_not_slow_capture_and_alert_is_retried(
        tmp_path: Path, certs: Certs, cleanup: list[Any]) -> None:
    silent = SilentServer()
    port = silent.port
    cfg = _cfg(tmp_path, "starttls", port, certs, timeout_s=2.0)
    _arm(cfg)
    d = DaemonThread(cfg, _camera(cfg, period_s=20.0, lead_s=2.5)).start()
    cleanup.append(d)

    def frames_at() -> tuple[float, int]:
        return time.monotonic(), d.daemon.frames

    wait_for(lambda: d.daemon.frames > 0, 5, what="the first frame")
    base0 = frames_at()
    wait_for(lambda: silent.accepted, 8, what="the mailer to connect to the silent server")
    base1 = frames_at()  # baseline: capture with no alert in flight
    stuck0 = base1
    wait_for(lambda: any(r["last_error"] for r in _rows(cfg)), 6, interval=0.1,
             what="the send to time out")
    stuck1 = frames_at()  # the whole time the mailer was stuck waiting for the server
    silent.stop()

    def fps(a: tuple[float, int], b: tuple[float, int]) -> float:
        return (b[1] - a[1]) / (b[0] - a[0])

    base_fps, stuck_fps = fps(base0, base1), fps(stuck0, stuck1)
    assert stuck1[0] - stuck0[0] >= 1.5, "the send did not wait for its timeout"
    # A capture loop waiting on SMTP would stand still for the whole send timeout (0 fps); the
    # margin is wide because other work on a loaded machine also moves the frame rate.
    assert stuck_fps >= 0.5 * min(base_fps, cfg.camera.fps), (base_fps, stuck_fps)
    row = _rows(cfg)[0]
    assert row["status"] == "pending" and "no answer" in row["last_error"]
    # The server comes back on the same port: the alert goes out on a later attempt.
    srv = _server(cleanup, "starttls", certs, port)
    got = wait_for(lambda: srv.messages, 10, what="the retried alert")[0]
    assert got.event_ids == [row["event_id"]]
    wait_for(lambda: _rows(cfg)[0]["status"] == "sent", 3, what="the row to be marked sent")


# ---- the outbox worker against the server --------------------------------------------------------

@pytest.mark.parametrize("mode", ["tls", "plain"])
def test_alert_over_implicit_tls_and_plain(tmp_path: Path, certs: Certs, cleanup: list[Any],
                                           mode: str) -> None:
    srv = _server(cleanup, mode, certs)
    cfg = _cfg(tmp_path, mode, srv.port, certs)
    store = Store(cfg.paths.db_path)
    store.set_arm(True, "test")
    eid = _inject_event(cfg, store, 1)
    worker = OutboxWorker(cfg)
    assert worker.step(store)
    assert not worker.step(store)  # sent once, nothing left
    assert len(srv.messages) == 1
    _assert_alert(srv.messages[0], cfg, eid)
    store.close()


def test_server_down_for_five_events_then_all_delivered_once_in_order(
        tmp_path: Path, certs: Certs, cleanup: list[Any]) -> None:
    port = free_port()
    cfg = _cfg(tmp_path, "starttls", port, certs, min_interval_s=1.0)
    store = Store(cfg.paths.db_path)
    store.set_arm(True, "test")
    worker = OutboxWorker(cfg)
    worker.start()
    cleanup.append(worker)
    ids = [_inject_event(cfg, store, 0)]
    wait_for(lambda: _rows(cfg)[0]["attempts"] >= 1, 5, what="a failed attempt")
    assert "refused" in _rows(cfg)[0]["last_error"]
    ids += [_inject_event(cfg, store, n) for n in range(1, 5)]
    wait_for(lambda: _rows(cfg)[0]["attempts"] >= 2, 5, what="a retry")
    assert all(r["status"] == "pending" for r in _rows(cfg))
    srv = _server(cleanup, "starttls", certs, port)
    wait_for(lambda: all(r["status"] == "sent" for r in _rows(cfg)), 10, what="every alert sent")
    got = srv.messages
    # The first alert was already fixed in its own message when the server was down; the four
    # that came during the outage are folded into the next one (min_interval_s = 1).
    assert [m.event_ids for m in got] == [ids[:1], ids[1:]]
    assert got[1].accepted_mono - got[0].accepted_mono >= 0.9
    assert "And 3 more events since" in got[1].msg.get_body(("plain",)).get_content()
    assert len({m.msg["Message-ID"] for m in got}) == 2
    store.close()


def test_wrong_password_is_explained_by_mail_test_and_the_alert_is_kept(
        tmp_path: Path, certs: Certs, cleanup: list[Any], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    srv = _server(cleanup, "starttls", certs)
    data = config_dict(tmp_path, "starttls", srv.port, certs)
    cfg_file = write_toml(tmp_path / "config.toml", data)
    cfg = parse(data)
    wrong = "not-the-password-123"
    monkeypatch.setenv(PASSWORD_ENV, wrong)
    store = Store(cfg.paths.db_path)
    store.set_arm(True, "test")
    eid = _inject_event(cfg, store, 1)
    worker = OutboxWorker(cfg)
    worker.start()
    cleanup.append(worker)
    wait_for(lambda: _rows(cfg)[0]["status"] == "failed", 5, what="the alert to fail")
    row = _rows(cfg)[0]
    assert row["event_id"] == eid and "authentication rejected" in row["last_error"]

    env = {**os.environ, PASSWORD_ENV: wrong}
    res = subprocess.run([sys.executable, "-m", "homesec.cli", "mail-test", "--config", str(cfg_file)],
                         env=env, capture_output=True, text=True, timeout=30)
    assert res.returncode != 0
    line = res.stderr.strip()
    assert "\n" not in line, line
    assert "authentication rejected" in line and "password" in line and PASSWORD_ENV in line
    assert wrong not in res.stderr + res.stdout + caplog.text
    assert srv.messages == []
    assert _rows(cfg)[0]["status"] == "failed"  # kept, with its error

    res = subprocess.run([sys.executable, "-m", "homesec.cli", "mail-test", "--config", str(cfg_file)],
                         env={**env, PASSWORD_ENV: PASSWORD}, capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 0, res.stderr
    assert len(srv.messages) == 1 and "test email" in str(srv.messages[0].msg["Subject"])
    assert "1 failed" in res.stdout and "authentication rejected" in res.stdout  # still visible
    # The password is fixed: the worker notices and delivers the kept alert.
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    wait_for(lambda: len(srv.messages) == 2, 5, what="the kept alert")
    assert srv.messages[1].event_ids == [eid]
    wait_for(lambda: _rows(cfg)[0]["status"] == "sent", 3, what="the row to be marked sent")
    store.close()


def test_mail_test_explains_refused_connection_certificate_and_recipient(
        tmp_path: Path, certs: Certs, cleanup: list[Any]) -> None:
    with pytest.raises(MailError, match=r"refused.*check mail\.host and mail\.port"):
        send_test(_cfg(tmp_path, "starttls", free_port(), certs))
    srv = _server(cleanup, "starttls", certs)
    no_ca = parse(config_dict(tmp_path, "starttls", srv.port, None))
    with pytest.raises(MailError, match=r"certificate.*mail\.ca_file"):
        send_test(no_ca)
    srv.handler.refuse.add("partner@example.com")
    with pytest.raises(MailError, match=r"recipient refused.*partner@example\.com"):
        send_test(_cfg(tmp_path, "starttls", srv.port, certs))
    assert srv.messages and srv.messages[0].rcpt_tos == ["owner@example.com"]


# ---- real processes ----------------------------------------------------------------------------

def _run(cfg_file: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "homesec.cli", "run", "--config", str(cfg_file)],
                            env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def test_sigkilled_daemon_sends_queued_alerts_after_restart(
        tmp_path: Path, certs: Certs, cleanup: list[Any]) -> None:
    port = free_port()
    data = config_dict(tmp_path, "starttls", port, certs, min_interval_s=0.5)
    data["camera"]["realtime"] = False  # events come as fast as the CPU renders the scene
    cfg_file = write_toml(tmp_path / "config.toml", data)
    cfg = parse(data)
    _arm(cfg)
    log = tmp_path / "daemon.log"
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    p1 = _run(cfg_file, {**env, PASSWORD_ENV: PASSWORD}, log)
    try:
        wait_for(lambda: len(_rows(cfg)) >= 2 and _rows(cfg)[0]["attempts"] >= 1, 20,
                 what="two queued alerts, the first one tried (server down)")
    finally:
        p1.send_signal(signal.SIGKILL)
        p1.wait(10)
    queued = _rows(cfg)
    assert all(r["status"] == "pending" for r in queued)
    first_mid = queued[0]["message_id"]
    srv = _server(cleanup, "starttls", certs, port)
    # Restarted as under systemd: the password now comes from a credential file.
    cred = tmp_path / "creds"
    cred.mkdir()
    (cred / "smtp_password").write_text(PASSWORD + "\n")
    p2 = _run(cfg_file, {**env, "CREDENTIALS_DIRECTORY": str(cred)}, log)
    try:
        want = {r["event_id"] for r in queued}
        wait_for(lambda: want <= {e for m in srv.messages for e in m.event_ids}, 20,
                 what=f"alerts for events {sorted(want)} after the restart")
    finally:
        p2.send_signal(signal.SIGTERM)
        assert p2.wait(15) == 0, log.read_text()[-3000:]
    delivered = [e for m in srv.messages for e in m.event_ids]
    assert len(delivered) == len(set(delivered)), "an alert was sent twice"
    assert delivered == sorted(delivered), "alerts out of order"
    assert srv.messages[0].msg["Message-ID"] == first_mid  # the same message as before the kill
    assert PASSWORD not in log.read_text()


def test_demo_config_writes_alert_emails_to_its_folder(tmp_path: Path) -> None:
    from homesec.demo import prepare

    _path, cfg = prepare(tmp_path / "demo", port=18080)
    assert cfg.mail.enabled and cfg.mail.catch_dir is not None
    assert cfg.mail.catch_dir.is_relative_to((tmp_path / "demo").resolve())
    store = Store(cfg.paths.db_path)
    store.set_arm(True, "test")
    eid = _inject_event(cfg, store, 1)
    assert OutboxWorker(cfg).step(store)
    emls = list(cfg.mail.catch_dir.glob("*.eml"))
    assert len(emls) == 1 and f"/events/{eid}" in emls[0].read_text()
    assert outbox.summary(store)["sent"] == 1
    store.close()
