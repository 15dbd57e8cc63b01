#!/usr/bin/env python3
"""Slow clients against the web front: do arm and disarm still answer within 1 s?

Issue 11, item 9: 16 connections that send a header line every 5 s (or 120 that send nothing)
made arm/disarm time out on gunicorn alone, because its threaded worker reads a request with no
timeout. This starts, on temp state dirs and free loopback ports,
- the front as deploy.sh installs it: a real nginx (site from homesec.system.nginx) in front of
  gunicorn on its Unix socket (`homesec web --behind-nginx`), and
- gunicorn alone (`homesec web`, 2 workers x 16 threads), as before the front existed,
and measures on each one round of `POST /arm` + `POST /disarm` (bearer token, one new connection
per request) `--rounds` times: first with no attack (the baseline), then with 100 idle
connections and 100 that send one header line a second open against it. Prints p50 / p95 / max
latency of a request, how many did not answer within --timeout, and the ratio attack/baseline.
Goal: behind nginx, every request answers, p95 under 1 s during the attack.

    .venv/bin/python benchmarks/slow_clients.py [--rounds 20] [--timeout 5]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from homesec.config import load  # noqa: E402
from homesec.storage.store import Store  # noqa: E402
from homesec.web import accounts  # noqa: E402
from tests.web.conftest import free_port  # noqa: E402
from tests.web.front_support import Front, SlowClients, write_front_config  # noqa: E402

IDLE = 100
SLOW = 100


def one(port: int, token: str, path: str, timeout: float) -> float | None:
    """Seconds for one API request on a new connection; None when it did not answer in time."""
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        body = json.dumps({"delay_s": 0} if path.endswith("/arm") else {})
        c.request("POST", path, body=body, headers={"Authorization": f"Bearer {token}",
                                                    "Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError(f"{path}: HTTP {r.status}")
        return time.perf_counter() - t0
    except (TimeoutError, OSError):
        return None
    finally:
        c.close()


MAX_LOST = 6  # after this many requests without an answer the verdict is clear: stop waiting


def measure(port: int, token: str, rounds: int, timeout: float) -> tuple[list[float], int, int]:
    """(answer times, requests lost, requests made)."""
    times, lost, made = [], 0, 0
    for _ in range(rounds):
        for path in ("/api/v1/arm", "/api/v1/disarm"):
            if lost >= MAX_LOST:
                return times, lost, made
            made += 1
            t = one(port, token, path, timeout)
            if t is None:
                lost += 1
            else:
                times.append(t)
    return times, lost, made


def fmt(result: tuple[list[float], int, int]) -> str:
    times, lost, total = result
    if not times:
        return f"{'-':>8} {'-':>8} {'-':>8} {lost:>4}/{total}"
    q = statistics.quantiles(times, n=20)[18] if len(times) >= 2 else times[0]
    return (f"{statistics.median(times) * 1000:8.1f} {q * 1000:8.1f} {max(times) * 1000:8.1f} "
            f"{lost:>4}/{total}")


def setup(root: Path) -> tuple[Path, str]:
    port = free_port()
    path = write_front_config(root, port)
    cfg = load(path)
    store = Store(cfg.paths.db_path)
    token = accounts.create_token(store, "bench")[1]
    store.close()
    return path, token


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20, help="arm+disarm pairs per measurement")
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds before a request counts as lost")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="homesec-slow-") as tmp:
        # Behind nginx.
        root = Path(tmp) / "front"
        root.mkdir()
        path, token = setup(root)
        front = Front(root, path, load(path)).start()
        try:
            port = front.cfg.web.port
            base = measure(port, token, args.rounds, args.timeout)
            with SlowClients("127.0.0.1", port, IDLE, SLOW):
                attack = measure(port, token, args.rounds, args.timeout)
            rows.append(("nginx + gunicorn (deploy.sh)", base, attack))
        finally:
            front.stop()
        # gunicorn alone.
        import os
        import signal
        import subprocess

        root = Path(tmp) / "alone"
        root.mkdir()
        path, token = setup(root)
        cfg = load(path)
        log = open(root / "gunicorn.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "homesec.cli", "web", "--config", str(path)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            from tests.web.front_support import wait_port

            wait_port("127.0.0.1", cfg.web.port, 30, proc, root / "gunicorn.log")
            port = cfg.web.port
            base = measure(port, token, args.rounds, args.timeout)
            with SlowClients("127.0.0.1", port, IDLE, SLOW):
                attack = measure(port, token, args.rounds, args.timeout)
            rows.append(("gunicorn alone (homesec web)", base, attack))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
            log.close()

    print(f"arm/disarm requests, {2 * args.rounds} per column (fewer when {MAX_LOST} got lost); "
          f"attack = {IDLE} idle + {SLOW} slow connections "
          f"(one header line a second); lost = no answer within {args.timeout:.0f} s")
    print(f"{'':30} {'baseline: p50 ms':>17} {'p95':>8} {'max':>8} {'lost':>6}   "
          f"{'attack: p50 ms':>15} {'p95':>8} {'max':>8} {'lost':>6}   p95 ratio")
    for name, base, attack in rows:
        bt, at = base[0], attack[0]
        ratio = "-"
        if len(bt) >= 2 and len(at) >= 2 and not attack[1]:
            ratio = f"{statistics.quantiles(at, n=20)[18] / statistics.quantiles(bt, n=20)[18]:.1f}x"
        print(f"{name:30} {fmt(base):>44}   {fmt(attack):>42}   {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
