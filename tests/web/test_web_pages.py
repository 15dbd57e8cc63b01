"""The HTML pages and their forms (which work without JavaScript), and the CLI commands
`homesec passwd` / `homesec token`."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from homesec.config import Config
from homesec.storage.store import Store
from homesec.web import accounts

from .conftest import Browser

AddEvent = Callable[..., int]


def test_home_shows_state_button_events_health(browser: Browser, add_event: AddEvent) -> None:
    eid = add_event()
    html = browser.c.get("/").data.decode()
    assert 'id="state-label">DISARMED<' in html
    assert 'id="arm-button"' in html
    assert re.search(r'<form id="disarm-form"[^>]*\n\s*hidden', html)
    assert f'href="/events/{eid}"' in html
    assert f'src="/api/v1/events/{eid}/thumb.jpg"' in html
    assert 'data-src="/api/v1/live.mjpg"' in html
    assert "Frame rate" in html and "Disk" in html
    assert 'rel="manifest"' in html


def test_arm_and_disarm_forms(browser: Browser, store: Store) -> None:
    resp = browser.c.post("/arm", data={"csrf_token": browser.csrf, "delay_s": "5"})
    assert resp.status_code == 302
    st = store.arm_status()
    assert st.state == "arming" and st.changed_by.startswith("owner")
    html = browser.c.get("/").data.decode()
    assert 'id="state-label">ARMING<' in html and "armed in" in html
    browser.c.post("/disarm", data={"csrf_token": browser.csrf})
    assert store.arm_status().state == "disarmed"


@pytest.mark.parametrize("delay", ["-1", "abc", "3601", "1.5"])
def test_arm_form_bad_delay(browser: Browser, store: Store, delay: str) -> None:
    resp = browser.c.post("/arm", data={"csrf_token": browser.csrf, "delay_s": delay})
    assert resp.status_code == 400
    assert store.arm_status().state == "disarmed"


def test_event_page_and_delete(browser: Browser, add_event: AddEvent, store: Store,
                               cfg: Config) -> None:
    eid = add_event()
    ev = store.event(eid)
    assert ev is not None and ev.snapshot
    html = browser.c.get(f"/events/{eid}").data.decode()
    assert f'src="/api/v1/events/{eid}/snapshot.jpg"' in html
    assert 'id="delete-event"' in html
    resp = browser.c.post(f"/events/{eid}/delete", data={"csrf_token": browser.csrf})
    assert resp.status_code == 302
    assert store.event(eid) is None
    assert not (cfg.paths.media / ev.snapshot).exists()
    assert f"Event {eid} deleted" in browser.c.get("/").data.decode()
    assert browser.c.get(f"/events/{eid}").status_code == 404


def test_event_page_unknown(browser: Browser) -> None:
    resp = browser.c.get("/events/424242")
    assert resp.status_code == 404 and b"no event 424242" in resp.data


def test_token_page_create_and_revoke(browser: Browser, store: Store) -> None:
    assert browser.c.get("/tokens").status_code == 200
    resp = browser.c.post("/tokens", data={"csrf_token": browser.csrf, "name": "shortcut"})
    html = resp.data.decode()
    m = re.search(r'id="new-token">([^<]+)<', html)
    assert m, "the new token is shown once"
    secret = m.group(1)
    assert browser.c.get("/api/v1/status").status_code == 200
    other = browser.c.application.test_client()
    assert other.get("/api/v1/status", headers={"Authorization": f"Bearer {secret}"}
                     ).status_code == 200
    assert secret not in browser.c.get("/tokens").data.decode()  # never shown again
    (info,) = accounts.list_tokens(store)
    resp = browser.c.post(f"/tokens/{info.id}/revoke", data={"csrf_token": browser.csrf})
    assert resp.status_code == 302
    assert other.get("/api/v1/status", headers={"Authorization": f"Bearer {secret}"}
                     ).status_code == 401


@pytest.mark.parametrize("name", ["", "   ", "x" * 61, "bad\nname"])
def test_token_bad_name(browser: Browser, store: Store, name: str) -> None:
    resp = browser.c.post("/tokens", data={"csrf_token": browser.csrf, "name": name})
    assert resp.status_code == 400
    assert accounts.list_tokens(store) == []


def test_revoke_unknown_token(browser: Browser) -> None:
    assert browser.c.post("/tokens/77/revoke", data={"csrf_token": browser.csrf}
                          ).status_code == 404


# ---- CLI -------------------------------------------------------------------------------------


def _cli(cfg_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "homesec.cli", *args, "--config", str(cfg_path)],
                          input=stdin, capture_output=True, text=True, timeout=60)


@pytest.fixture
def cfg_file(tmp_path: Path) -> Path:
    """A config file on a temp state dir."""
    p = tmp_path / "config.toml"
    p.write_text(f'[paths]\nstate_dir = "{tmp_path / "state"}"\n'
                 f'runtime_dir = "{tmp_path / "run"}"\n')
    return p


def test_cli_passwd_from_stdin(cfg_file: Path, tmp_path: Path) -> None:
    r = _cli(cfg_file, "passwd", stdin="my new password\n")
    assert r.returncode == 0, r.stderr
    store = Store(tmp_path / "state" / "homesec.db")
    assert accounts.verify_password(store, "my new password")
    assert not accounts.verify_password(store, "my new password\n")
    digest = accounts.password_hash(store)
    assert digest is not None and digest.startswith("$argon2id$")
    store.close()
    assert "my new password" not in r.stdout + r.stderr


def test_cli_passwd_too_short(cfg_file: Path, tmp_path: Path) -> None:
    r = _cli(cfg_file, "passwd", stdin="short\n")
    assert r.returncode == 2 and "at least" in r.stderr
    store = Store(tmp_path / "state" / "homesec.db")
    assert accounts.password_hash(store) is None
    store.close()


def test_cli_passwd_has_no_password_argument(cfg_file: Path) -> None:
    r = _cli(cfg_file, "passwd", "--password", "x" * 10)
    assert r.returncode == 2 and "unrecognized arguments" in r.stderr


def test_cli_tokens(cfg_file: Path, tmp_path: Path) -> None:
    r = _cli(cfg_file, "token", "create", "garage script")
    assert r.returncode == 0, r.stderr
    secret = r.stdout.strip()
    assert secret.startswith("hs_")
    store = Store(tmp_path / "state" / "homesec.db")
    assert accounts.check_token(store, secret) is not None
    store.close()
    listing = _cli(cfg_file, "token", "list")
    assert "garage script" in listing.stdout and secret not in listing.stdout
    assert time.strftime("%Y-%m-%d") in listing.stdout  # a date a person can read
    assert _cli(cfg_file, "token", "revoke", "1").returncode == 0
    assert _cli(cfg_file, "token", "revoke", "1").returncode == 2
    assert "no tokens" in _cli(cfg_file, "token", "list").stderr
    store = Store(tmp_path / "state" / "homesec.db")
    assert accounts.check_token(store, secret) is None
    store.close()
