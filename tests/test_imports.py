"""What each process imports: a Pi has 512 MB, and picamera2 exists only on a Pi."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

FAKES = str(Path(__file__).parent / "fakes")


def test_importing_homesec_does_not_import_picamera2() -> None:
    code = ("import sys, homesec.cli, homesec.capture.daemon, homesec.camera; "
            "from homesec.config import Config; homesec.camera.make_camera(Config().camera); "
            "sys.exit('picamera2' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={"PYTHONPATH": FAKES},
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_web_app_does_not_load_opencv(tmp_path: Path) -> None:
    """Each gunicorn worker on a 512 MB Pi would pay tens of MB for OpenCV it never uses."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[paths]\nstate_dir = '{tmp_path}/s'\nruntime_dir = '{tmp_path}/r'\n")
    code = ("import sys; from homesec.web import create_app; from homesec.config import load; "
            f"app = create_app(load('{cfg}')); c = app.test_client(); c.get('/login'); "
            "sys.exit(sorted(m for m in ('cv2', 'numpy') if m in sys.modules) or 0)")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
