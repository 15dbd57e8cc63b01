"""`homesec demo` serves the web UI on 127.0.0.1 and the printed password logs in; `homesec web`
refuses a bad config with one clear line."""

from __future__ import annotations

import http.cookiejar
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from .conftest import free_port


def test_demo_starts_web_ui_with_printed_password(tmp_path: Path) -> None:
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "homesec.cli", "demo", "--dir", str(tmp_path / "d"), "--port",
         str(port), "--seconds", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert demo.stdout is not None
        first = "".join(demo.stdout.readline() for _ in range(2))
        m = re.search(r"web UI: (http://127\.0\.0\.1:\d+/)\s+password: (\S+)", first)
        assert m, first
        url, password = m.group(1), m.group(2)
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        deadline = time.monotonic() + 30
        page = None
        while page is None:
            assert demo.poll() is None and time.monotonic() < deadline, "web UI did not come up"
            try:
                page = opener.open(url + "login", timeout=5).read().decode()
            except OSError:
                time.sleep(0.2)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert csrf
        body = urllib.parse.urlencode({"password": password, "csrf_token": csrf.group(1)})
        home = opener.open(url + "login", data=body.encode(), timeout=10)
        assert home.geturl() == url  # redirected to the home page, logged in
        assert 'id="state-label"' in home.read().decode()
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=30)
    assert demo.returncode == 0
    with socket.socket() as s:  # gunicorn went away with the demo
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_web_bad_config_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[web]\ntrust_networks = ["my wifi"]\n')
    r = subprocess.run([sys.executable, "-m", "homesec.cli", "web", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "web.trust_networks" in r.stderr and "CIDR" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
