"""A real nginx front in front of a real gunicorn (`homesec web --behind-nginx`), on loopback, as
deploy.sh sets them up on the Pi, for the tests and benchmarks/slow_clients.py.

nginx runs as a non-daemon master with a main config made here (pid, logs and temp files in the
test's directory) around the site homesec.system.nginx generates; the site is the same text
deploy.sh installs. Only the main config differs from Debian's /etc/nginx/nginx.conf.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from homesec.config import Config, load
from homesec.system.nginx import site_config, socket_path

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def nginx_available() -> bool:
    return Path(NGINX).exists()


def main_config(root: Path, site: Path) -> str:
    """nginx.conf for a private master: everything it writes stays under `root`."""
    user = "user root root;\n" if os.geteuid() == 0 else ""
    tmp = root / "nginx-tmp"
    tmp.mkdir(exist_ok=True)
    temps = "\n".join(f"    {kind}_temp_path {tmp / kind};"
                      for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""{user}daemon off;
master_process on;
worker_processes 1;
pid {root / 'nginx.pid'};
error_log {root / 'nginx-error.log'} notice;
events {{ worker_connections 2048; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {root / 'nginx-access.log'};
{temps}
    include {site};
}}
"""


def wait_port(host: str, port: int, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited: {log.read_text(errors='replace')[-3000:]}"
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {host}:{port}: {log.read_text(errors='replace')[-3000:]}")


def wait_socket(path: Path, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited: {log.read_text(errors='replace')[-3000:]}"
        if path.exists():
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(str(path))
                    return
            except OSError:
                pass
        time.sleep(0.05)
    raise AssertionError(f"gunicorn did not open {path}: {log.read_text(errors='replace')[-3000:]}")


@dataclass
class Front:
    """gunicorn behind nginx; `url` is nginx's."""

    root: Path
    config_path: Path
    cfg: Config
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def scheme(self) -> str:
        return "https" if self.cfg.web.tls_cert else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.cfg.web.port}"

    def start(self) -> Front:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        socket_path(self.cfg).parent.mkdir(parents=True, exist_ok=True)
        glog = self.root / "gunicorn.log"
        self.procs["gunicorn"] = subprocess.Popen(
            [sys.executable, "-m", "homesec.cli", "web", "--behind-nginx", "--config",
             str(self.config_path)], stdout=open(glog, "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
            env=env, start_new_session=True)
        wait_socket(socket_path(self.cfg), 30, self.procs["gunicorn"], glog)
        site = self.root / "homesec-site.conf"
        site.write_text(site_config(self.cfg, access_log=self.root / "nginx-access.log"))
        conf = self.root / "nginx.conf"
        conf.write_text(main_config(self.root, site))
        check = subprocess.run([NGINX, "-t", "-p", str(self.root), "-c", str(conf)],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        nlog = self.root / "nginx.log"
        self.procs["nginx"] = subprocess.Popen(
            [NGINX, "-p", str(self.root), "-c", str(conf)], stdout=open(nlog, "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT, start_new_session=True)
        wait_port("127.0.0.1", self.cfg.web.port, 30, self.procs["nginx"], self.root / "nginx-error.log")
        return self

    def stop(self) -> None:
        for name in ("nginx", "gunicorn"):
            p = self.procs.get(name)
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGQUIT if name == "nginx" else signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def write_front_config(root: Path, port: int, **web: object) -> Path:
    """A config for gunicorn behind nginx on `port`, everything under `root`."""
    lines = [
        "[camera]", 'source = "demo"', "width = 640", "height = 360", "fps = 10",
        "[paths]", f'state_dir = "{root / "state"}"', f'runtime_dir = "{root / "run"}"',
        "[alarm]", "exit_delay_s = 30",
        "[web]", 'bind = "127.0.0.1"', f"port = {port}", "workers = 2", "threads = 16",
    ]
    for key, value in web.items():
        if isinstance(value, list):
            lines.append(f"{key} = [{', '.join(repr(str(v)).replace(chr(39), chr(34)) for v in value)}]")
        else:
            lines.append(f'{key} = "{value}"')
    path = root / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_front(root: Path, port: int, **web: object) -> Front:
    path = write_front_config(root, port, **web)
    return Front(root, path, load(path)).start()


class SlowClients:
    """`idle` connections that send nothing and `slow` ones that send a request line and then a
    header line every `interval_s` (never the blank line that ends the headers): what stalled
    gunicorn's threaded workers (issue 11, item 9)."""

    def __init__(self, host: str, port: int, idle: int, slow: int, interval_s: float = 1.0) -> None:
        import threading

        self.addr = (host, port)
        self.idle = idle
        self.slow = slow
        self.interval_s = interval_s
        self.socks: list[socket.socket] = []
        self.sent_lines = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, daemon=True)

    def __enter__(self) -> SlowClients:
        for i in range(self.idle + self.slow):
            s = socket.create_connection(self.addr, timeout=5)
            if i >= self.idle:
                s.sendall(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n")
            self.socks.append(s)
        self._thread.start()
        return self

    def _drip(self) -> None:
        while not self._stop.wait(self.interval_s):
            for s in self.socks[self.idle:]:
                try:
                    s.sendall(b"X-Slow: 1\r\n")
                    self.sent_lines += 1
                except OSError:
                    pass

    def open_count(self) -> int:
        """Connections the server has not closed yet (a closed one reads EOF)."""
        alive = 0
        for s in self.socks:
            s.setblocking(False)
            try:
                alive += s.recv(1, socket.MSG_PEEK) != b""
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
            finally:
                s.setblocking(True)
        return alive

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for s in self.socks:
            s.close()
