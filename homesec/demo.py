"""`homesec demo` / `make demo`: the whole appliance on the generated scene, on a laptop.

Writes a config into the demo directory (state, media and runtime files all under it, web UI on
127.0.0.1 only) and runs the capture daemon on the demo camera until Ctrl-C.
"""

from __future__ import annotations

import logging
import signal
import threading
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


def run_demo(root: Path, port: int = 8080, seconds: float | None = None) -> int:
    """Run the daemon on the demo scene until Ctrl-C (or `seconds`)."""
    from homesec.daemon import Daemon

    path, cfg = prepare(root, port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if seconds is not None:
        threading.Timer(seconds, stop.set).start()
    print(f"homesec demo: config {path}\n"
          f"  snapshots in {cfg.paths.media}\n"
          f"  alert emails (while armed) as .eml files in {cfg.mail.catch_dir}\n"
          f"  a person walks through every 20 s, the lamp goes on at 40 s of every minute\n"
          f"  Ctrl-C to stop", flush=True)
    Daemon(cfg, stop=stop).run()
    return 0
