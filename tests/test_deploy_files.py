"""The install artefacts as systemd and bash see them: `systemd-analyze verify` accepts both units
without a single warning, `shellcheck` accepts deploy.sh, and the units say what the appliance
relies on (notify + watchdog, the shared directories, the optional credential)."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

UNITS = ("homesec-capture.service", "homesec-web.service")
INSTALLED_HOMESEC = "/opt/homesec/venv/bin/homesec"
# The console script of the venv running the tests: a real executable to stand in for the
# installed one (verify checks that ExecStart= points at an executable file).
DEV_HOMESEC = str(Path(sys.executable).with_name("homesec"))


def unit_settings(name: str) -> dict[str, list[str]]:
    """{'Section.Key': [values...]} of a unit file (keys may repeat)."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in (REPO / "systemd" / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key}", []).append(value)
    return out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (apt: systemd)")
def test_systemd_analyze_verify_is_silent(tmp_path: Path) -> None:
    """Any warning (unknown key, bad value, missing binary) fails: verify exits 0 on most of them."""
    for name in UNITS:
        text = (REPO / "systemd" / name).read_text()
        assert INSTALLED_HOMESEC in text
        (tmp_path / name).write_text(text.replace(INSTALLED_HOMESEC, DEV_HOMESEC))
    res = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / n) for n in UNITS)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "" and res.stderr.strip() == "", (
        res.stdout + res.stderr)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (apt: systemd)")
def test_verify_would_catch_a_typo(tmp_path: Path) -> None:
    """The check above is worth something: a misspelt key is reported."""
    text = (REPO / "systemd" / UNITS[0]).read_text().replace(INSTALLED_HOMESEC, DEV_HOMESEC)
    (tmp_path / UNITS[0]).write_text(text.replace("WatchdogSec=", "WatchDogSec="))
    res = subprocess.run(["systemd-analyze", "verify", str(tmp_path / UNITS[0])],
                         capture_output=True, text=True, timeout=120)
    assert "WatchDogSec" in res.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (apt: systemd)")
def test_security_exposure_stays_low(tmp_path: Path) -> None:
    """`systemd-analyze security` (offline) rates both units; docs/install.md quotes the scores."""
    for name in UNITS:
        text = (REPO / "systemd" / name).read_text().replace(INSTALLED_HOMESEC, DEV_HOMESEC)
        (tmp_path / name).write_text(text)
        res = subprocess.run(["systemd-analyze", "security", "--offline=true", "--threshold=20",
                              str(tmp_path / name)], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
        line = next(ln for ln in res.stdout.splitlines() if "Overall exposure level" in ln)
        score = float(line.split(":")[1].split()[0])
        assert score <= 2.0, line


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="needs shellcheck (apt: shellcheck)")
def test_shellcheck_deploy_sh() -> None:
    res = subprocess.run(["shellcheck", "--severity=style", str(REPO / "deploy.sh")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def test_capture_unit_is_notify_with_watchdog_and_rate_limited_restart() -> None:
    s = unit_settings("homesec-capture.service")
    assert s["Service.Type"] == ["notify"]
    assert s["Service.ExecStart"] == [f"{INSTALLED_HOMESEC} run --config /etc/homesec/config.toml"]
    # The daemon pings once a second; systemd expects a ping every WatchdogSec: leave headroom.
    assert int(s["Service.WatchdogSec"][0]) >= 10
    assert s["Service.Restart"] == ["always"]
    assert int(s["Unit.StartLimitBurst"][0]) > 1 and int(s["Unit.StartLimitIntervalSec"][0]) > 0
    assert s["Service.User"] == ["homesec"] and "video" in s["Service.SupplementaryGroups"][0]
    # The camera must stay reachable: PrivateDevices would hide /dev/video* and /dev/dma_heap.
    assert "Service.PrivateDevices" not in s
    allowed = " ".join(s["Service.DeviceAllow"])
    for dev in ("char-video4linux", "char-media", "char-dma_heap"):
        assert dev in allowed
    # A missing password file must not stop the camera: SetCredential= is the fallback.
    assert s["Service.LoadCredential"] == ["smtp_password:/etc/homesec/smtp_password",
                                           "mqtt_password:/etc/homesec/mqtt_password",
                                           "mqtt_pin:/etc/homesec/mqtt_pin"]
    assert s["Service.SetCredential"][0].startswith("smtp_password:")


def test_web_unit_follows_capture_without_dying_with_it() -> None:
    s = unit_settings("homesec-web.service")
    assert s["Service.ExecStart"] == [
        f"{INSTALLED_HOMESEC} web --config /etc/homesec/config.toml --behind-nginx"]
    assert "homesec-capture.service" in s["Unit.After"][0]
    assert s["Unit.Wants"] == ["homesec-capture.service"]
    assert "Unit.Requires" not in s and "Unit.BindsTo" not in s and "Unit.PartOf" not in s
    assert s["Service.Restart"] == ["on-failure"]


def test_both_units_share_directories_and_hardening() -> None:
    for name in UNITS:
        s = unit_settings(name)
        for key in ("StateDirectory", "RuntimeDirectory", "ConfigurationDirectory"):
            assert s[f"Service.{key}"] == ["homesec"], (name, key)
        # Shared runtime dir: stopping one unit must not delete the other's live frame/status.
        assert s["Service.RuntimeDirectoryPreserve"] == ["yes"], name
        for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "ProtectKernelTunables",
                    "ProtectControlGroups", "LockPersonality"):
            assert s[f"Service.{key}"] == ["yes"], (name, key)
        assert s["Service.ProtectSystem"] == ["strict"], name
        assert "AF_PACKET" not in s["Service.RestrictAddressFamilies"][0]
        assert s["Service.MemoryMax"], name
    mem = sum(int(unit_settings(n)["Service.MemoryMax"][0].rstrip("M")) for n in UNITS)
    assert mem < 512, "both services together must fit a Pi Zero 2 W (512 MB)"


def test_units_parse_as_ini() -> None:
    """No duplicate sections, no stray text: a cheap check that runs even without systemd."""
    for name in UNITS:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string((REPO / "systemd" / name).read_text())
        assert parser.sections() == ["Unit", "Service", "Install"], name


def test_web_unit_cannot_read_the_capture_credentials_and_serves_no_ip() -> None:
    """Same user as capture (shared database), so its credential directory is hidden from the web
    unit; the web unit talks IP to loopback only (nginx in front enforces web.allow_networks)."""
    s = unit_settings("homesec-web.service")
    assert s["Service.InaccessiblePaths"] == ["/run/credentials"]
    assert s["Service.ExecStartPre"] == ["+/bin/mkdir -p -m 0755 /run/credentials"]
    assert s["Service.IPAddressDeny"] == ["any"] and s["Service.IPAddressAllow"] == ["localhost"]
    capture = unit_settings("homesec-capture.service")
    assert capture["Service.LoadCredential"] and "Service.LoadCredential" not in s


def test_nginx_dropin_allows_only_the_configured_networks() -> None:
    from homesec.config import parse
    from homesec.system.nginx import ip_allow_dropin

    text = ip_allow_dropin(parse({"web": {"allow_networks": ["192.168.7.0/24", "fd00::/8"]}}))
    assert "IPAddressDeny=any\nIPAddressAllow=192.168.7.0/24 fd00::/8\n" in text
    default = ip_allow_dropin(parse({}))
    for net in ("192.168.0.0/16", "10.0.0.0/8", "fe80::/10", "169.254.0.0/16", "127.0.0.0/8"):
        assert net in default
    assert "0.0.0.0/0" not in default and "::/0" not in default
