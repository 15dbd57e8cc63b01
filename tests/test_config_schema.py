"""The config's own validation layer (homesec/config_schema.py): how strict each type is, that
every problem is reported with its full key path, and that assignments stay checked."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Literal

import pytest

from homesec.config import (
    CameraConfig,
    Config,
    ConfigError,
    MailConfig,
    MaskConfig,
    load,
    parse,
)
from homesec.config_schema import (
    Field,
    Section,
    ValidationError,
    as_dict,
    field_validator,
    fields_of,
    replace,
    validate,
)
from tests.conftest import REPO, run_homesec


def problems(data: dict) -> list[str]:
    """The lines of the ConfigError that parse(data) raises."""
    with pytest.raises(ConfigError) as err:
        parse(data, "c.toml")
    return str(err.value).splitlines()


@pytest.mark.parametrize(("section", "key", "value", "fragment"), [
    ("camera", "width", True, "valid integer"),      # a bool is not a number...
    ("camera", "fps", False, "valid number"),
    ("camera", "loop", 1, "valid boolean"),          # ...nor a number a bool
    ("camera", "fps", "15", "valid number"),         # a quoted number is a mistake in TOML
    ("camera", "width", "640", "valid integer"),
    ("camera", "width", 640.5, "fractional part"),
    ("camera", "name", 5, "valid string"),
    ("camera", "source", "webcam", "'demo', 'opencv' or 'picamera2'"),
    ("paths", "state_dir", 5, "not a valid path"),
    ("mail", "recipients", "a@example.com", "valid list"),
    ("motion", "masks", "none", "valid list"),
])
def test_wrong_types_are_refused_with_key_and_value(section: str, key: str, value: object,
                                                    fragment: str) -> None:
    lines = problems({section: {key: value}})
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"c.toml: {section}.{key}"), lines
    assert fragment in lines[0] and f"(got {value!r})" in lines[0], lines


def test_numbers_as_toml_writes_them_are_accepted() -> None:
    cfg = parse({"camera": {"fps": 15, "width": 640.0}, "events": {"keep_days": 7}})
    assert cfg.camera.fps == 15.0 and isinstance(cfg.camera.fps, float)
    assert cfg.camera.width == 640 and isinstance(cfg.camera.width, int)
    assert isinstance(cfg.events.keep_days, float)
    assert parse({"paths": {"state_dir": "/srv/h"}}).paths.db_path == Path("/srv/h/homesec.db")


def test_bounds_are_checked_with_the_limit_in_the_message() -> None:
    assert problems({"camera": {"fps": 0}}) == [
        "c.toml: camera.fps: Input should be greater than 0 (got 0)"]
    assert problems({"mail": {"port": 70000}}) == [
        "c.toml: mail.port: Input should be less than or equal to 65535 (got 70000)"]
    assert "at most 60 characters" in problems({"camera": {"name": "x" * 61}})[0]
    assert "should match pattern" in problems({"mqtt": {"site": "my/house"}})[0]
    assert "at least 1 item" in problems({"web": {"allow_networks": []}})[0]


def test_unknown_keys_are_named_with_their_full_path(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[[motion.masks]]\nrect = [0, 0, 0.5, 0.5]\ncolour = 'red'\n"
                    "[[alarm.schedule]]\naction = 'arm'\ntime = '22:00'\nday = ['mon']\n")
    with pytest.raises(ConfigError) as err:
        load(path)
    assert str(err.value).splitlines() == [
        f"{path}: motion.masks.0.colour: unknown key (check the spelling; see the example config)",
        f"{path}: alarm.schedule.0.day: unknown key (check the spelling; see the example config)",
    ]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[camera]\nwidht = 640\nfps = 'fast'\n[events]\nsnapshot_quality = 101\n"
                   "[web]\nport = 0\n")
    res = run_homesec("check-config", str(bad))
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if str(bad) in ln]
    keys = [ln.split(f"{bad}: ")[1].split(": ")[0] for ln in lines]
    assert sorted(keys) == ["camera.fps", "camera.widht", "events.snapshot_quality", "web.port"], \
        res.stderr
    assert "Traceback" not in res.stderr


def test_cross_field_checks_run_once_the_fields_are_valid() -> None:
    # A section whose fields are wrong reports those, not a follow-on complaint...
    assert problems({"mail": {"enabled": True, "port": "x"}}) == [
        "c.toml: mail.port: Input should be a valid integer (got 'x')"]
    # ...and a valid one gets its cross-field check, named at the section.
    assert problems({"mail": {"enabled": True, "host": "smtp.example.com"}}) == [
        "c.toml: mail: Value error, mail.enabled needs at least one address in mail.recipients"]


def test_assignments_are_validated_and_a_refused_one_changes_nothing() -> None:
    cfg = Config()
    cfg.camera.reconnect_max_s = 1  # as tests shorten timings
    assert cfg.camera.reconnect_max_s == 1.0 and isinstance(cfg.camera.reconnect_max_s, float)
    with pytest.raises(ValidationError, match="valid integer"):
        cfg.camera.width = True
    with pytest.raises(ValidationError, match="greater than or equal to 160"):
        cfg.camera.width = 10
    with pytest.raises(ValidationError, match="retry_max_s must be at least"):
        cfg.mail.retry_initial_s = 3000  # over retry_max_s: the cross-field check runs too
    with pytest.raises(ValidationError, match="no attribute"):
        cfg.camera.widht = 640  # type: ignore[attr-defined]
    assert cfg.camera.width == 1280 and cfg.mail.retry_initial_s == 10.0
    assert not hasattr(cfg.camera, "widht")


def test_construction_and_copies_are_validated() -> None:
    assert CameraConfig(source="demo", fps=10).fps == 10.0
    with pytest.raises(ValidationError, match=r"needs camera\.device"):
        CameraConfig(source="opencv")
    with pytest.raises(ValidationError, match="the SMTP password must not be in"):
        MailConfig(password="x")  # type: ignore[call-arg]
    cam = CameraConfig(source="demo")
    wide = replace(cam, width=1920)
    assert wide.width == 1920 and cam.width == 1280 and wide.source == "demo"
    with pytest.raises(ValidationError):
        replace(cam, width=99999)


def test_defaults_are_fresh_and_introspection_lists_every_field() -> None:
    a, b = Config(), Config()
    a.motion.masks.append(MaskConfig(rect=[0.0, 0.0, 0.5, 0.5]))
    assert b.motion.masks == [] and a != b and Config() == Config()
    assert list(fields_of(Config)) == ["camera", "motion", "events", "clips", "storage", "paths",
                                       "alarm", "mail", "web", "mqtt"]
    for section in fields_of(Config):
        for name, info in fields_of(getattr(b, section)).items():
            assert info.description, f"{section}.{name} has no description"
            assert not info.required, f"{section}.{name} has no default"
    assert fields_of(CameraConfig)["width"].ge == 160
    plain = as_dict(Config())
    assert plain["camera"]["width"] == 1280 and plain["motion"]["masks"] == []


def test_no_pydantic_in_any_process() -> None:
    """The point of the layer: pydantic cost every homesec process ~20 MB (docs/memory.md)."""
    code = ("import sys, homesec.config, homesec.cli; homesec.config.load(None); "
            "sys.exit('pydantic' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


class Probe(Section):
    """A section with the kinds of field config.py does not use (yet)."""

    tags: list[str] = []  # noqa: RUF012 (copied for each instance: what the test checks)
    net: ipaddress.IPv4Network | None = None
    weights: dict[str, Annotated[float, Field(ge=0.0)]] = Field(default_factory=dict,
                                                                description="per-zone weights")
    level: Literal[1, 2] = 1

    @field_validator("tags")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [t.lower() for t in value]


def test_the_layer_handles_other_field_kinds() -> None:
    a, b = Probe(), Probe()
    a.tags.append("x")
    assert b.tags == []  # a plain list default is copied, never shared
    p = validate(Probe, {"tags": ["A"], "net": "10.0.0.0/8", "weights": {"door": 2}, "level": 2})
    assert p.tags == ["a"] and p.net == ipaddress.IPv4Network("10.0.0.0/8")
    assert p.weights == {"door": 2.0} and p.level == 2
    with pytest.raises(ValidationError) as err:
        validate(Probe, {"net": "10.0.0.1/8", "weights": {"door": -1}, "level": True})
    locs = [e["loc"] for e in err.value.errors()]
    assert locs == [("net",), ("weights", "door"), ("level",)], err.value.errors()


class Unknowable(Section):
    when: complex = 0j


def test_a_field_type_the_layer_cannot_check_fails_loudly() -> None:
    with pytest.raises(TypeError, match=r"Unknowable\.when"):
        Unknowable()
