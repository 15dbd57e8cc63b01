"""`homesec demo` / `make demo`: the whole appliance on the generated scene, on a laptop.

Writes a config into the demo directory (state, media and runtime files all under it, web UI on
127.0.0.1 only), starts the web UI (`homesec web`, gunicorn) as a child process with a generated
password, and runs the capture daemon on the demo camera until Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from homesec.config import Config, load

log = logging.getLogger("homesec.demo")


def demo_config_text(root: Path, port: int) -> str:
    """The demo's config file (TOML)."""
    return f"""# Written by `homesec demo`. Everything lives under {root}.
[camera]
source = "demo"
name = "Demo room"
width = 1280
height = 720
fps = 15

[paths]
state_dir = "{root / 'state'}"
runtime_dir = "{root / 'run'}"

[alarm]
exit_delay_s = 10

[mail]
# Alerts (while armed) are written as .eml files here instead of being sent: open one with any
# mail program. At most one email a minute; what happens in between is folded into the next.
enabled = true
recipients = ["you@example.com"]
sender = "homesec-demo@example.com"
catch_dir = "{root / 'mail'}"

[web]
bind = "127.0.0.1"
port = {port}
base_url = "http://127.0.0.1:{port}"
"""


def prepare(root: Path, port: int) -> tuple[Path, Config]:
    """Create the demo directory and its config (rewritten each time, state kept)."""
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    path = root / "config.toml"
    path.write_text(demo_config_text(root, port))
    return path, load(path)


def demo_password(root: Path, cfg: Config) -> str:
    """The demo's web password: generated once, kept 0600 in the demo dir, set in the database.

    Why not `web.auth = false`: the demo should show the appliance as it ships, login included;
    a generated password printed on the terminal needs no manual step and stays on 127.0.0.1."""
    from homesec.storage.store import Store
    from homesec.web import accounts

    pw_file = root / "web-password.txt"
    try:
        password = pw_file.read_text().strip()
    except FileNotFoundError:
        password = ""
    if len(password) < accounts.MIN_PASSWORD_LEN:
        password = secrets.token_urlsafe(12)
        fd = os.open(pw_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
    store = Store(cfg.paths.db_path)
    try:
        if not accounts.verify_password(store, password):
            accounts.set_password(store, password)
    finally:
        store.close()
    return password


def start_web(root: Path, config_path: Path) -> subprocess.Popen[bytes]:
    """`homesec web` (gunicorn) as a child process, its log in the demo dir."""
    log_file = open(root / "web.log", "ab")  # noqa: SIM115 - owned by the child process
    return subprocess.Popen([sys.executable, "-m", "homesec.cli", "web", "--config",
                             str(config_path)], stdout=log_file, stderr=subprocess.STDOUT)


def wait_for_web(web: subprocess.Popen[bytes], port: int, timeout_s: float = 15.0) -> bool:
    """True once the web UI accepts connections; False if it exited or did not come up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and web.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


def port_free(port: int) -> bool:
    """Whether 127.0.0.1:port can be bound (another program answering there would otherwise
    look like our web UI starting)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def run_demo(root: Path, port: int = 8080, seconds: float | None = None) -> int:
    """Run the daemon on the demo scene and the web UI until Ctrl-C (or `seconds`)."""
    from homesec.capture.daemon import Daemon

    if not port_free(port):
        print(f"homesec demo: port {port} on 127.0.0.1 is in use; stop what uses it or pick "
              f"another: homesec demo --port 8081", file=sys.stderr)
        return 2
    path, cfg = prepare(root, port)
    password = demo_password(path.parent, cfg)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if seconds is not None:
        timer = threading.Timer(seconds, stop.set)
        timer.daemon = True  # Ctrl-C before `seconds` must not wait for the timer
        timer.start()
    web = start_web(path.parent, path)
    if not wait_for_web(web, port):
        print(f"homesec demo: the web UI did not start (port {port} in use? see "
              f"{path.parent / 'web.log'}); running the daemon only", flush=True)
    print(f"homesec demo: config {path}\n"
          f"  web UI: http://127.0.0.1:{port}/  password: {password}  (log: {path.parent / 'web.log'})\n"
          f"  snapshots in {cfg.paths.media}\n"
          f"  alert emails (while armed) as .eml files in {cfg.mail.catch_dir}\n"
          f"  a person walks through every 20 s, the lamp goes on at 40 s of every minute\n"
          f"  Ctrl-C to stop", flush=True)
    try:
        Daemon(cfg, stop=stop).run()
    finally:
        if web.poll() is None:
            web.terminate()
        try:
            web.wait(timeout=15)
        except subprocess.TimeoutExpired:
            web.kill()
            web.wait()
    return 0
