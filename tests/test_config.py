"""Config validation: typos, wrong types and out-of-range values are errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from homesec.config import Config, ConfigError, load
from tests.conftest import run_homesec, write_config


def test_defaults_suit_systemd() -> None:
    cfg = Config()
    assert str(cfg.paths.state_dir) == "/var/lib/homesec"
    assert str(cfg.paths.runtime_dir) == "/run/homesec"
    assert cfg.paths.media == Path("/var/lib/homesec/media")
    assert cfg.events.post_motion_s == 5.0
    assert cfg.motion.detect_width == 320
    assert cfg.web.auth is True


@pytest.mark.parametrize(
    ("toml", "key", "fragment"),
    [
        ("[events]\npost_motion = 3\n", "events.post_motion", "unknown key"),
        ("[camra]\nsource = 'demo'\n", "camra", "unknown key"),
        ("[events]\npost_motion_s = 'soon'\n", "events.post_motion_s", "'soon'"),
        ("[motion]\ndetect_width = 5\n", "motion.detect_width", "5"),
        ("[camera]\nsource = 'webcam'\n", "camera.source", "'webcam'"),
        ("[mail]\nrecipients = ['not an address']\n", "mail.recipients", "not an address"),
        ("[[motion.masks]]\nrect = [0.1, 0.1, 2.0, 0.5]\n", "motion.masks.0.rect.2", "2.0"),
    ],
)
def test_bad_values_name_key_value_and_file(tmp_path: Path, toml: str, key: str, fragment: str
                                            ) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load(path)
    msg = str(err.value)
    assert str(path) in msg
    assert key in msg
    assert fragment in msg


def test_not_toml_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[camera\nsource = demo\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(path)


def test_check_config_cli(tmp_path: Path) -> None:
    good = write_config(tmp_path)
    res = run_homesec("check-config", str(good))
    assert res.returncode == 0, res.stderr
    assert "OK" in res.stdout and "Test cam" in res.stdout
    assert len(res.stdout.strip().splitlines()) == 1

    bad = tmp_path / "typo.toml"
    bad.write_text("[events]\npost_motion = 3\n")
    res = run_homesec("check-config", str(bad))
    assert res.returncode == 2
    assert "events.post_motion" in res.stderr and str(bad) in res.stderr
    assert "Traceback" not in res.stderr


def test_opencv_source_needs_a_device(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[camera]\nsource = 'opencv'\n")
    with pytest.raises(ConfigError, match=r"camera\.device"):
        load(path)
