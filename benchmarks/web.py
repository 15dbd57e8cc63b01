#!/usr/bin/env python3
"""Web UI under load: does the live view starve the API or slow the capture daemon?

Starts a real capture daemon (`homesec run`, demo scene in real time) and real gunicorn
(`homesec web`) on a temp state dir, then measures twice, without and with 5 MJPEG viewers:
- p50 / p95 / max latency of one POST /arm (or /disarm) followed by GET /status (bearer token),
- the daemon's frame rate (frames counted from its status file over the window) and its CPU use,
- the memory of the web server (gunicorn master + workers): RSS, and PSS (shared pages once).
Prints both columns side by side with the ratio. Targets: p95 < 100 ms, daemon fps within 5 %.

    .venv/bin/python benchmarks/web.py [--seconds 20] [--requests 100]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from homesec.storage.store import Store
from homesec.web import accounts

VIEWERS = 5
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Bench:
    """The running system and the measurements on it."""

    def __init__(self, root: Path, width: int, height: int, fps: float) -> None:
        self.root = root
        self.port = free_port()
        self.cfg_path = root / "config.toml"
        self.cfg_path.write_text(f"""
[camera]
source = "demo"
width = {width}
height = {height}
fps = {fps}
realtime = true
[paths]
state_dir = "{root / 'state'}"
runtime_dir = "{root / 'run'}"
[web]
bind = "127.0.0.1"
port = {self.port}
""")
        store = Store(root / "state" / "homesec.db")
        self.token = accounts.create_token(store, "bench")[1]
        store.close()
        exe = [sys.executable, "-m", "homesec.cli"]
        self.procs = {
            name: subprocess.Popen([*exe, name, "--config", str(self.cfg_path)],
                                   stdout=open(root / f"{name}.log", "wb"),  # noqa: SIM115
                                   stderr=subprocess.STDOUT, start_new_session=True)
            for name in ("run", "web")
        }
        self.url = f"http://127.0.0.1:{self.port}/api/v1"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.call("GET", "/status")["camera"]["daemon"] == "running":
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit("the system did not come up; see " + str(root))

    def call(self, method: str, path: str, body: object = None) -> dict:
        """One API request with the bearer token."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def latencies(self, n: int) -> list[float]:
        """n x (arm or disarm, then status), each pair timed, 50 ms apart."""
        out = []
        for i in range(n):
            t0 = time.perf_counter()
            if i % 2 == 0:
                self.call("POST", "/arm", {"delay_s": 0})
            else:
                self.call("POST", "/disarm")
            self.call("GET", "/status")
            out.append(time.perf_counter() - t0)
            time.sleep(0.05)
        return out

    def daemon_frames(self) -> tuple[int, float]:
        """Frames counted by the daemon and when (from its status file)."""
        st = json.loads((self.root / "run" / "status.json").read_text())
        return int(st["frames"]), float(st["updated_ts"])

    def cpu_s(self, pid: int) -> float:
        """User + system CPU seconds of a process."""
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def web_memory_mb(self) -> tuple[float, float]:
        """RSS and PSS (shared pages counted once) of gunicorn master + workers, in MB."""
        master = self.procs["web"].pid
        pids = [master] + [int(p) for p in subprocess.run(
            ["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()]
        rss = pss = 0
        for pid in pids:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        return rss / 1024, pss / 1024

    def measure(self, seconds: float, requests: int) -> dict[str, float]:
        """One phase: frame rate and CPU over `seconds`, latencies from `requests` pairs."""
        daemon = self.procs["run"].pid
        f0, t0 = self.daemon_frames()
        c0, w0 = self.cpu_s(daemon), time.monotonic()
        lat = self.latencies(requests)
        rest = seconds - (time.monotonic() - w0)
        if rest > 0:
            time.sleep(rest)
        f1, t1 = self.daemon_frames()
        c1, w1 = self.cpu_s(daemon), time.monotonic()
        lat_ms = sorted(x * 1000 for x in lat)
        out = {
            "api p50 ms": statistics.median(lat_ms),
            "api p95 ms": lat_ms[int(0.95 * (len(lat_ms) - 1))],
            "api max ms": lat_ms[-1],
            "daemon fps": (f1 - f0) / (t1 - t0),
            "daemon CPU %": 100 * (c1 - c0) / (w1 - w0),
        }
        out["web RSS MB"], out["web PSS MB"] = self.web_memory_mb()
        return out

    def stop(self) -> None:
        """SIGTERM both process groups."""
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs.values():
            p.wait(timeout=20)


def viewer(port: int, token: str, stop: threading.Event, frames: list[int], i: int) -> None:
    """An MJPEG client that reads (and counts frames) until told to stop."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET /api/v1/live.mjpg HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: Bearer {token}\r\n\r\n".encode())
        while not stop.is_set():
            data = s.recv(65536)
            if not data:
                return
            frames[i] += data.count(b"\xff\xd9")


def main() -> int:
    """Run both phases and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    ap.add_argument("--requests", type=int, default=100, help="arm/disarm+status pairs per phase")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", type=float, default=15.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="homesec-bench-web-") as tmp:
        b = Bench(Path(tmp), args.width, args.height, args.fps)
        try:
            time.sleep(2)  # let the frame rate settle
            b.latencies(10)  # warm up both workers
            base = b.measure(args.seconds, args.requests)
            stop = threading.Event()
            frames = [0] * VIEWERS
            threads = [threading.Thread(target=viewer, args=(b.port, b.token, stop, frames, i),
                                        daemon=True) for i in range(VIEWERS)]
            for t in threads:
                t.start()
            deadline = time.monotonic() + 20
            while min(frames) < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
            t_view = time.monotonic()
            f_view = sum(frames)
            loaded = b.measure(args.seconds, args.requests)
            per_viewer_fps = (sum(frames) - f_view) / VIEWERS / (time.monotonic() - t_view)
            stop.set()
        finally:
            b.stop()
    print(f"homesec web benchmark: demo {args.width}x{args.height} @ {args.fps:g} fps, "
          f"{args.requests} request pairs and {args.seconds:g} s per phase")
    print(f"{'':16}{'no viewers':>12}{f'{VIEWERS} viewers':>12}{'ratio':>8}")
    for key in base:
        ratio = loaded[key] / base[key] if base[key] else float("nan")
        print(f"{key:16}{base[key]:12.1f}{loaded[key]:12.1f}{ratio:8.2f}")
    print(f"{'live fps/viewer':16}{'':12}{per_viewer_fps:12.1f}")
    ok_p95 = loaded["api p95 ms"] < 100
    ok_fps = abs(loaded["daemon fps"] / base["daemon fps"] - 1) <= 0.05
    print(f"target p95 < 100 ms with viewers: {'OK' if ok_p95 else 'MISSED'}; "
          f"daemon fps within 5 %: {'OK' if ok_fps else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
