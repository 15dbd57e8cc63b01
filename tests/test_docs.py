"""Documentation that must not drift: every config key is in docs/configuration.md, and the
README keeps the quick start and points at that reference."""

from __future__ import annotations

from homesec.config import Config
from homesec.config_schema import fields_of
from tests.conftest import REPO


def all_keys() -> list[str]:
    cfg = Config()
    return [f"{section}.{name}" for section in fields_of(Config)
            for name in fields_of(getattr(cfg, section))]


def test_every_config_key_is_in_the_configuration_reference() -> None:
    reference = (REPO / "docs" / "configuration.md").read_text()
    missing = [k for k in all_keys() if f"`{k}`" not in reference]
    assert not missing, f"add these to docs/configuration.md: {missing}"


def test_readme_quick_start_commands() -> None:
    readme = (REPO / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_readme_links_the_configuration_reference() -> None:
    readme = (REPO / "README.md").read_text()
    assert "(docs/configuration.md)" in readme
