"""Documentation that must not drift: every config key is in the README's reference."""

from __future__ import annotations

from homesec.config import Config
from tests.conftest import REPO


def all_keys() -> list[str]:
    cfg = Config()
    return [f"{section}.{name}" for section in Config.model_fields
            for name in type(getattr(cfg, section)).model_fields]


def test_every_config_key_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [k for k in all_keys() if f"`{k}`" not in readme]
    assert not missing, f"add these to the README's configuration reference: {missing}"


def test_readme_quick_start_commands() -> None:
    readme = (REPO / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()
