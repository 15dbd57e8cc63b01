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


DAEMON_RUN = """
import sys
from homesec.camera.demo import DemoCamera
from homesec.capture.daemon import Daemon
from homesec.config import parse

cfg = parse({{
    "camera": {{"source": "demo", "width": 640, "height": 360, "fps": 15, "realtime": False}},
    "paths": {{"state_dir": "{root}/state", "runtime_dir": "{root}/run"}},
    "clips": {{"enabled": {clips}}},
}})


class Limited(DemoCamera):
    def read(self):
        if self._index >= 45:
            from homesec.camera.base import EndOfStream
            raise EndOfStream()
        return super().read()


Daemon(cfg, camera=Limited(640, 360, 320, 15.0, realtime=False)).run()
print(sorted(m for m in ("av", "flask", "jinja2", "werkzeug") if m in sys.modules))
"""


def test_daemon_loads_pyav_only_for_clips(tmp_path: Path) -> None:
    """PyAV bundles its own FFmpeg (~25 MB RSS): a daemon on the demo source with clips off must
    not load it; with clips on it must (its encoder), or no clip would be written. Neither
    loads the web stack."""
    loaded = {}
    for clips in (False, True):
        code = DAEMON_RUN.format(root=tmp_path / str(clips), clips=str(clips))
        res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                             text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        loaded[clips] = res.stdout.strip().splitlines()[-1]
    assert loaded == {False: "[]", True: "['av']"}
