"""The mailer's parts without a network: where the password may come from, how the alert email
looks and that it fits the size cap, the backoff, the outbox bookkeeping."""

from __future__ import annotations

import time
from email import message_from_bytes
from email.policy import SMTP, default
from pathlib import Path

import cv2
import numpy as np
import pytest

from homesec.alerts import outbox
from homesec.alerts.compose import AlertItem, compose_alert
from homesec.alerts.worker import OutboxWorker, backoff_s
from homesec.camera.demo import DemoScene
from homesec.capture.snapshot import save_snapshot
from homesec.config import Config, ConfigError, load, parse
from homesec.storage.store import Store
from homesec.system.credentials import PASSWORD_ENV, Secret, redact, smtp_password


def _jpeg_parts(msg: object) -> tuple[list[object], list[object]]:
    """(inline images, attached images) of a parsed message."""
    inline, attached = [], []
    for part in msg.walk():  # type: ignore[attr-defined]
        if part.get_content_type() == "image/jpeg":
            (attached if part.get_content_disposition() == "attachment" else inline).append(part)
    return inline, attached


def _decodes(part: object) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(part.get_content(), np.uint8), cv2.IMREAD_COLOR)  # type: ignore[attr-defined]
    assert img is not None, "JPEG does not decode"
    return img


# ---- secrets -----------------------------------------------------------------------------------

def test_password_in_config_is_refused_with_where_to_put_it(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[mail]\nhost = "smtp.example.com"\npassword = "hunter2-secret"\n')
    with pytest.raises(ConfigError) as err:
        load(cfg)
    text = str(err.value)
    assert "mail" in text and PASSWORD_ENV in text and "CREDENTIALS_DIRECTORY" in text
    assert "hunter2-secret" not in text


def test_password_from_env_else_credential_file(tmp_path: Path) -> None:
    (tmp_path / "smtp_password").write_text("from-file-pw\n")
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert smtp_password(env).value == "from-file-pw"  # the trailing newline is not part of it
    assert smtp_password({**env, PASSWORD_ENV: "from-env"}).value == "from-env"
    assert smtp_password({}).value is None
    assert "from-file-pw" not in repr(smtp_password(env)) and "from-file-pw" not in str(smtp_password(env))


def test_redact_hides_plain_and_base64_forms() -> None:
    s = Secret("s3cret-pw", "$X")
    assert redact("AUTH PLAIN czNjcmV0LXB3 failed for s3cret-pw", s) == "AUTH PLAIN *** failed for ***"


def test_enabled_mail_needs_recipients_and_a_server() -> None:
    with pytest.raises(ConfigError, match="recipients"):
        parse({"mail": {"enabled": True, "host": "smtp.example.com"}})
    with pytest.raises(ConfigError, match=r"mail\.host"):
        parse({"mail": {"enabled": True, "recipients": ["a@example.com"]}})


def test_login_over_an_unencrypted_connection_is_refused() -> None:
    with pytest.raises(ConfigError, match="unencrypted"):
        parse({"mail": {"host": "smtp.example.com", "security": "none", "username": "me"}})
    parse({"mail": {"host": "127.0.0.1", "security": "none", "username": "me"}})  # local relay


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_s(n, 10, 300) for n in range(1, 8)] == [10, 20, 40, 80, 160, 300, 300]


# ---- composing ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scene() -> DemoScene:
    return DemoScene(1280, 720, 320, seed=3)


def _cfg(tmp_path: Path, **mail: object) -> Config:
    return parse({
        "camera": {"name": "Front door"},
        "paths": {"state_dir": str(tmp_path / "state"), "runtime_dir": str(tmp_path / "run")},
        "mail": {"enabled": True, "catch_dir": str(tmp_path / "mail"), "recipients": ["a@example.com"],
                 **mail},
        "web": {"base_url": "http://pi.local:8080/"},
    })


def _item(cfg: Config, scene: DemoScene, eid: int, ts: float, image: np.ndarray | None = None
          ) -> AlertItem:
    img = scene.color(6.5) if image is None else image
    snap, thumb = save_snapshot(cfg.paths.media, f"ev{eid}", img, [(500, 300, 120, 300)], ts,
                                cfg.camera.name, 85, 320)
    return AlertItem(eid, cfg.camera.name, ts, None, cfg.paths.media / snap, cfg.paths.media / thumb)


def test_alert_email_subject_link_inline_and_attached_snapshot(tmp_path: Path, scene: DemoScene) -> None:
    cfg = _cfg(tmp_path)
    ts = time.mktime((2026, 11, 27, 14, 32, 5, 0, 0, -1))
    msg = compose_alert(cfg, [_item(cfg, scene, 7, ts)], "<m1@test>")
    raw = msg.as_bytes(policy=SMTP)
    parsed = message_from_bytes(raw, policy=default)
    assert parsed["Subject"] == "Motion at Front door while armed - 14:32:05"
    assert parsed["Message-ID"] == "<m1@test>"
    plain = parsed.get_body(("plain",)).get_content()
    html = parsed.get_body(("html",)).get_content()
    assert "http://pi.local:8080/events/7" in plain and "http://pi.local:8080/events/7" in html
    inline, attached = _jpeg_parts(parsed)
    assert len(inline) == 1 and len(attached) == 1
    assert f"cid:{inline[0]['Content-ID'].strip('<>')}" in html
    assert _decodes(inline[0]).shape == (720, 1280, 3) and _decodes(attached[0]).shape == (720, 1280, 3)
    assert len(raw) < 1_000_000


def test_big_snapshot_is_scaled_to_fit_the_cap(tmp_path: Path, scene: DemoScene) -> None:
    cfg = _cfg(tmp_path, max_message_bytes=150_000)
    noisy = np.random.default_rng(1).integers(0, 255, (1080, 1920, 3), np.uint8)  # ~1 MB as JPEG
    item = _item(cfg, scene, 1, time.time(), noisy)
    assert item.snapshot is not None and item.snapshot.stat().st_size > 150_000
    raw = compose_alert(cfg, [item], "<m2@test>").as_bytes(policy=SMTP)
    assert len(raw) <= 150_000
    inline, attached = _jpeg_parts(message_from_bytes(raw, policy=default))
    assert len(inline) == 1 and len(attached) == 1
    small = _decodes(attached[0])
    assert small.shape[1] < 1920 and abs(small.shape[1] / small.shape[0] - 16 / 9) < 0.02


def test_digest_lists_earlier_events_with_thumbnails(tmp_path: Path, scene: DemoScene) -> None:
    cfg = _cfg(tmp_path)
    t0 = time.mktime((2026, 11, 27, 14, 32, 0, 0, 0, -1))
    items = [_item(cfg, scene, i, t0 + 10 * i) for i in range(1, 5)]
    parsed = message_from_bytes(compose_alert(cfg, items, "<m3@test>").as_bytes(), policy=default)
    assert parsed["Subject"] == "Motion at Front door while armed - 14:32:40"  # the newest event
    plain = parsed.get_body(("plain",)).get_content()
    assert "And 3 more events since 14:32:10" in plain
    assert all(f"/events/{i}" in plain for i in range(1, 5))
    inline, attached = _jpeg_parts(parsed)
    assert len(inline) == 4 and len(attached) == 1  # snapshot + 3 thumbnails inline


# ---- outbox bookkeeping ------------------------------------------------------------------------

def test_digest_window_and_first_alert_after_quiet(tmp_path: Path, scene: DemoScene) -> None:
    """Synchronous steps with a controlled clock: alert 1 goes at once, 2-4 wait for the window
    and go together, 5 after a quiet spell goes at once. Messages land in the catch folder."""
    cfg = _cfg(tmp_path, min_interval_s=60)
    store = Store(cfg.paths.db_path)
    store.set_arm(True, "test")
    worker = OutboxWorker(cfg)

    def event(ts: float) -> int:
        it = _item(cfg, scene, int(ts), ts)
        return store.add_event(cfg.camera.name, ts, 1.0, [], None,
                               str(it.snapshot.relative_to(cfg.paths.media)),  # type: ignore[union-attr]
                               str(it.thumb.relative_to(cfg.paths.media)), 3, now=ts)[0]  # type: ignore[union-attr]

    t = 1_800_000_000.0
    e1 = event(t)
    assert worker.step(store, now=t + 0.1)
    assert not worker.step(store, now=t + 0.2)  # nothing more to send
    later = [event(t + 5), event(t + 20), event(t + 40)]
    assert not worker.step(store, now=t + 45)  # inside the 60 s window: wait
    assert worker.step(store, now=t + 61)
    e5 = event(t + 500)
    assert worker.step(store, now=t + 500.1)
    event(t - 3600)  # the clock was stepped back an hour: the alert is not held for an hour
    assert worker.step(store, now=t - 3600 + 0.1)
    mails = sorted((tmp_path / "mail").glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)[:3]
    assert len(mails) == 3
    got = [message_from_bytes(p.read_bytes(), policy=default) for p in mails]
    assert [g["X-Homesec-Events"] for g in got] == [
        str(e1), ",".join(map(str, later)), str(e5)]
    assert outbox.summary(store) == {"pending": 0, "failed": 0, "sent": 6, "last_error": None}
    store.close()
