"""The example config is the user's documentation of every setting and the file deploy.sh installs:
it must be accepted by `homesec check-config`, list every field of the Config model, and state the
defaults the code really uses, so the docs cannot drift from the model."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from homesec.config import Config, parse
from homesec.config_schema import fields_of
from tests.conftest import REPO, run_homesec

EXAMPLE = REPO / "homesec" / "example-config.toml"
SECTION = re.compile(r"^\[(\w+)\]\s*$")
DEFAULT_LINE = re.compile(r"^# ([a-z][a-z0-9_]*) = (.+)$")  # "# key = value": a documented default


def documented_defaults(text: str) -> dict[str, dict[str, Any]]:
    """{section: {key: value}} from the commented-out `# key = value` lines."""
    out: dict[str, dict[str, Any]] = {}
    section = None
    for line in text.splitlines():
        if m := SECTION.match(line):
            section = m.group(1)
            out.setdefault(section, {})
        elif (m := DEFAULT_LINE.match(line)) and section is not None:
            key, value = m.groups()
            assert key not in out[section], f"[{section}] {key} documented twice"
            out[section][key] = tomllib.loads(f"v = {value}")["v"]
    return out


def test_cli_prints_the_packaged_example_and_check_config_accepts_it(tmp_path: Path) -> None:
    res = run_homesec("example-config")
    assert res.returncode == 0, res.stderr
    printed = res.stdout
    assert printed == EXAMPLE.read_text(encoding="utf-8")
    path = tmp_path / "config.toml"
    path.write_text(printed)
    res = run_homesec("check-config", str(path))
    assert res.returncode == 0, res.stderr
    assert "OK" in res.stdout


def test_every_field_is_documented_with_its_real_default() -> None:
    documented = documented_defaults(EXAMPLE.read_text(encoding="utf-8"))
    defaults = Config()
    missing, extra, wrong = [], [], []
    for section in fields_of(Config):
        model = getattr(defaults, section)
        doc = documented.get(section, {})
        for key in fields_of(model):
            if key not in doc:
                missing.append(f"{section}.{key}")
                continue
            default = getattr(model, key)
            # A default of None ("not set") cannot be written in TOML: the example shows a typical
            # value instead; only documented-ness is checked for those.
            if default is None:
                continue
            got = getattr(getattr(parse({section: {key: doc[key]}}), section), key)
            if got != default:
                wrong.append(f"{section}.{key}: example says {doc[key]!r}, code says {default!r}")
        extra += [f"{section}.{k}" for k in doc if k not in fields_of(model)]
    extra += [s for s in documented if s not in fields_of(Config)]
    assert not missing, f"not in homesec/example-config.toml: {missing}"
    assert not extra, f"in the example but not in the model: {extra}"
    assert not wrong, "\n".join(wrong)


def test_example_with_every_line_uncommented_is_valid() -> None:
    """A user who uncomments everything gets a working config (the None-default examples too)."""
    data = documented_defaults(EXAMPLE.read_text(encoding="utf-8"))
    cfg = parse(data, EXAMPLE)
    assert cfg.paths.media == Config().paths.media
