"""MQTT: arm-to-all-units latency, and what the MQTT client costs the capture daemon.

What runs: a real mosquitto on a free loopback port (password file, made here), three real
`homesec run` daemons on the demo scene in real time (1280x720 at 15 fps, as on a Pi camera):
`front` and `garage` with [mqtt] on in one site, `solo` with MQTT off, all at the same time, so
the CPU and memory numbers are side by side under the same load.

Latency: `--changes` times, alternately arm and disarm written into front's SQLite file the way
the web UI does (Store.arm / Store.set_arm); the clock stops when garage's SQLite file shows the
new state (polled every 2 ms). That is the whole path: front's daemon notices the change (polls
every 50 ms), publishes, the broker forwards, garage's daemon applies it.

CPU and RSS: user+system CPU seconds of each daemon over the measuring window divided by its
length (per cent of one core), VmRSS at the end and VmHWM (peak).

    .venv/bin/python benchmarks/mqtt.py               # 50 changes, about a minute
    .venv/bin/python benchmarks/mqtt.py --changes 10  # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from homesec.storage.store import Store
from tests.mqtt_support import Broker, Unit, Watcher, poll, unit_config


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB."""
    got = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            got[key] = int(value.split()[0]) / 1024
    return got["VmRSS"], got["VmHWM"]


def state(conn: sqlite3.Connection) -> str:
    return conn.execute("SELECT state FROM arm_state").fetchone()[0]


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--changes", type=int, default=50)
    ap.add_argument("--gap", type=float, default=0.5, help="seconds between changes (+0-0.1 s)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="homesec-mqtt-bench-"))
    broker = Broker(root / "broker").start()
    camera = {"width": 1280, "height": 720, "fps": 15}
    configs = {name: unit_config(root, broker, name, camera=camera)
               for name in ("front", "garage", "solo")}
    configs["solo"]["mqtt"]["enabled"] = False  # the baseline
    units = {name: Unit(root, data) for name, data in configs.items()}
    watcher = Watcher(broker)
    try:
        for u in units.values():
            u.start()
        for name in ("front", "garage"):
            if not poll(lambda n=name: watcher.payload(f"homesec/home/{n}/availability")
                        == b"online", 30):
                raise SystemExit(f"{name} did not come online:\n{units[name].log_text()}")
        poll(lambda: all((u.runtime / "status.json").exists() and json.loads(
            (u.runtime / "status.json").read_text())["frames"] > 30 for u in units.values()), 30)
        pids = {n: u.proc.pid for n, u in units.items() if u.proc}
        cpu0 = {n: cpu_s(p) for n, p in pids.items()}
        t0 = time.monotonic()

        front = Store(units["front"].db)
        garage = sqlite3.connect(units["garage"].db)
        lat: list[float] = []
        for i in range(args.changes):
            want = "armed" if state(garage) == "disarmed" else "disarmed"
            start = time.monotonic()
            if want == "armed":
                front.arm(f"bench {i}", delay_s=0)
            else:
                front.set_arm(False, by=f"bench {i}")
            if not poll(lambda w=want: state(garage) == w, 5.0, interval=0.002):
                raise SystemExit(f"change {i} did not reach garage in 5 s")
            lat.append(time.monotonic() - start)
            time.sleep(args.gap + random.uniform(0.0, 0.1))  # no phase lock with the 50 ms poll
        front.close()
        garage.close()

        window = time.monotonic() - t0
        cpu = {n: 100.0 * (cpu_s(p) - cpu0[n]) / window for n, p in pids.items()}
        mem = {n: memory_mb(p) for n, p in pids.items()}
        fps = {n: json.loads((u.runtime / "status.json").read_text())["fps"]
               for n, u in units.items()}
    finally:
        watcher.close()
        for u in units.values():
            u.stop()
        broker.stop()

    ms = [x * 1000 for x in lat]
    print(f"arm-to-all-units latency over {len(ms)} changes (front's SQLite -> garage's SQLite, "
          f"mosquitto on loopback): p50 {statistics.median(ms):.0f} ms, p95 {pct(ms, 95):.0f} ms, "
          f"max {max(ms):.0f} ms")
    print(f"daemons at 1280x720 @ 15 fps, same run, {window:.0f} s window:")
    print("| daemon | MQTT | CPU (% of a core) | RSS MB | peak RSS MB | fps |")
    print("|---|---|---|---|---|---|")
    for n in ("front", "garage", "solo"):
        print(f"| {n} | {'off' if n == 'solo' else 'on'} | {cpu[n]:.1f} | {mem[n][0]:.0f} | "
              f"{mem[n][1]:.0f} | {fps[n]} |")
    on = statistics.mean([cpu["front"], cpu["garage"]])
    print(f"CPU with MQTT / without: {on / cpu['solo']:.2f}x; RSS with / without: "
          f"{statistics.mean([mem['front'][0], mem['garage'][0]]) / mem['solo'][0]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
