"""What a database that cannot be written costs the recorder, and what the guard costs.

Three numbers, each next to its baseline from the same run:
1. records/s the recorder writes to a healthy database (baseline) vs records/s it puts into the
   journal while the database files are immutable (`chattr +i`; one fsync per record), and how
   long the backlog takes to drain once they are writable again;
2. the `os.access` guard (`storage.writable.unwritable_reason`, asked before every database job
   and by the mailer every 0.25 s) vs the cheapest read it guards (`Store.arm_status`).

Needs root and a file system with the immutable flag (ext4 here; a Pi's SD card is ext4).

    sudo .venv/bin/python benchmarks/db_fault.py            # 300 events (600 records)
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from homesec.capture.events import Event
from homesec.capture.recorder import EventRecorder
from homesec.config import parse
from homesec.storage.store import Store
from homesec.storage.writable import unwritable_reason


def _cfg(root: Path):  # type: ignore[no-untyped-def]
    return parse({"camera": {"source": "demo", "name": "bench"},
                  "paths": {"state_dir": str(root / "state"), "runtime_dir": str(root / "run")}})


def _run(root: Path, events: int, fault: bool) -> tuple[float, float | None]:
    """(records/s into the database or the journal, drain seconds after the fault or None)."""
    cfg = _cfg(root)
    store = Store(cfg.paths.db_path)
    store.set_arm(True, "bench")
    done = threading.Semaphore(0)
    rec = EventRecorder(cfg, on_recorded=lambda kind, eid: done.release())
    rec.start()
    t0 = time.time()
    ev0 = Event(0, 0.0, t0, 0, 0.0, t0, peak_area_pct=1.0, boxes=[(1, 1, 5, 5)], union=None,
                best_frame=0, best_wall=t0, best_image=None, motion_frames=2)
    rec.put("start", ev0)  # opens the connection, so the -wal file exists
    done.acquire()
    files = [cfg.paths.db_path, cfg.paths.db_path.with_name("homesec.db-wal"), cfg.paths.state_dir]
    if fault:
        subprocess.run(["chattr", "+i", *map(str, files)], check=True)
    start = time.perf_counter()
    for i in range(events):
        t = t0 + 1 + i
        ev = Event(0, 0.0, t, 0, 0.0, t, peak_area_pct=1.0, boxes=[(1, 1, 5, 5)], union=None,
                   best_frame=0, best_wall=t, best_image=None, motion_frames=2)
        rec.put("start", ev)
        ev.end_wall = t + 0.5
        rec.put("end", ev)
    drain = None
    try:
        if fault:
            while len(rec.backlog) < 2 * events:
                time.sleep(0.01)
            rate = 2 * events / (time.perf_counter() - start)
            subprocess.run(["chattr", "-i", *map(str, files)], check=True)
            fault = False
            t_drain = time.perf_counter()
            for _ in range(2 * events):
                done.acquire()
            drain = time.perf_counter() - t_drain
        else:
            for _ in range(2 * events):
                done.acquire()
            rate = 2 * events / (time.perf_counter() - start)
    finally:
        if fault:
            subprocess.run(["chattr", "-i", *map(str, files)], check=True)
        rec.stop()
    assert store.count_events() == events + 1
    store.close()
    return rate, drain


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=300)
    args = ap.parse_args()
    logging.disable(logging.CRITICAL)  # the fault's log lines are expected
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        base, _ = _run(Path(tmp) / "healthy", args.events, fault=False)
        spill, drain = _run(Path(tmp) / "fault", args.events, fault=True)
        cfg = _cfg(Path(tmp) / "healthy")
        store = Store(cfg.paths.db_path)
        n = 20000
        guard = min(timeit.repeat(lambda: unwritable_reason(cfg.paths.db_path), number=n,
                                  repeat=3)) / n
        read = min(timeit.repeat(store.arm_status, number=n, repeat=3)) / n
        store.close()
    print(f"records/s into a healthy database (baseline): {base:8.0f}")
    print(f"records/s into the journal (db immutable):    {spill:8.0f}  ({spill / base:.2f}x)")
    print(f"drain of {2 * args.events} records once writable:        {drain:8.2f} s")
    print(f"guard (4 x os.access):  {guard * 1e6:6.1f} us   "
          f"arm_status read: {read * 1e6:6.1f} us  ({guard / read:.2f}x);  "
          f"one recorded record: {1e6 / base:6.1f} us  ({guard * base:.2f}x)")


if __name__ == "__main__":
    main()
