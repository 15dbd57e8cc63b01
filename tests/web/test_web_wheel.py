"""The built wheel carries the web UI's templates, static files and OpenAPI file, and an app
imported from the unpacked wheel serves them from any working directory."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_carries_web_assets(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q",
                    "-w", str(out)], check=True, capture_output=True, timeout=600)
    (wheel,) = out.glob("homesec-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"homesec/web/templates/{p.name}" for p in (ROOT / "templates").iterdir()}
    expected |= {f"homesec/web/static/{p.name}" for p in (ROOT / "static").iterdir()}
    expected |= {"homesec/web/openapi.json", "homesec/web/gunicorn_conf.py"}
    # pyproject lists its packages (for the templates/static mapping): none may be forgotten
    expected |= {str(p.relative_to(ROOT)) for p in (ROOT / "homesec").rglob("*.py")}
    assert expected <= names, sorted(expected - names)

    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[paths]\nstate_dir = "{tmp_path / "state"}"\n'
                   f'runtime_dir = "{tmp_path / "run"}"\n')
    script = (
        "import homesec.web as w, sys\n"
        f"assert w.__file__.startswith({str(unpacked)!r}), w.__file__\n"
        "c = w.create_app().test_client()\n"
        "assert c.get('/login').status_code == 200\n"
        "assert c.get('/static/app.js').status_code == 200\n"
        "assert c.get('/static/manifest.webmanifest').status_code == 200\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(unpacked), "HOMESEC_CONFIG": str(cfg)}
    r = subprocess.run([sys.executable, "-c", script], cwd="/", env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_every_package_is_listed_in_pyproject() -> None:
    """The quick form of the wheel check above (which is slow): pyproject lists its packages by
    hand, and a package left out installs without it (homesec.alarm once did: the installed
    daemon could not start)."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "homesec").rglob("__init__.py")}
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
