#!/usr/bin/env python3
"""Memory of the appliance's processes, to size systemd's MemoryMax= for a Pi Zero 2 W (512 MB).

One run measures, on a temp state dir:
1. where the capture daemon's memory goes before it sees a frame: the interpreter, then each
   import layer (numpy, OpenCV, the homesec capture modules, the mail stack), as RSS of a fresh
   interpreter after each step;
2. the real capture daemon (`homesec run`, a subprocess as systemd runs it) at 1280x720, 15 fps,
   armed, mail on (a real aiosmtpd server, STARTTLS + AUTH, on 127.0.0.1), for --seconds on each
   source: the demo scene and a 1280x720 H.264 file (made here with ffmpeg from a dev clip, looped
   in real time through the opencv source, decoded by PyAV; its clips copy the file's own H.264
   packets, capture/clip_copy.py). Peak RSS (VmHWM), mean RSS, events
   and mails seen. Each source three ways: glibc's default malloc arenas (one per thread, up to
   8 x cores); MALLOC_ARENA_MAX=2 as homesec-capture.service sets it; and the same with clips off
   (no encoder, no PyAV on the demo source): the baseline that shows what clips cost (the demo
   encodes with libx264; the file source only keeps a ring of its packets);
   with --before REV also the same runs on an older commit (a temporary git worktree of REV,
   same venv): the before/after of a memory change in one run;
   and the floor beside it: benchmarks/memory_floor.py, the same libraries doing only the work
   the daemon cannot skip, without homesec (what homesec adds = the daemon's peak - the floor);
3. the web service (`homesec web`: gunicorn master + 2 workers) after a few requests: RSS, PSS
   (shared pages counted once) and whether any process mapped numpy or OpenCV (it must not).

Goal: capture peak < 100 MB. Prints a table; docs/memory.md quotes it and derives MemoryMax.

    .venv/bin/python benchmarks/memory.py [--seconds 40] [--before REV]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from homesec.storage.store import Store  # noqa: E402
from tests.mail_support import PASSWORD, SmtpServer, config_dict, make_certs, write_toml  # noqa: E402
from tests.web.conftest import free_port  # noqa: E402

DEV_CLIP = REPO.parent / "shared" / "data" / "dev" / "beweging-walking-to.h264"
WIDTH, HEIGHT, FPS = 1280, 720, 15

IMPORT_STEPS = [
    ("interpreter", ""),
    ("+ numpy", "import numpy"),
    ("+ OpenCV (cv2)", "import cv2"),
    ("+ PyAV (av: clip encoder, file decoder)", "import av"),
    ("+ homesec capture (daemon, detector, store)", "import homesec.capture.daemon"),
    ("+ mail (alerts worker, smtplib, ssl, email)", "import homesec.alerts.worker"),
]


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def pss_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    return next((int(ln.split()[1]) for ln in text.splitlines() if ln.startswith("Pss:")), 0)


def import_layers() -> list[tuple[str, float, float]]:
    """RSS (MB) of a fresh interpreter after each import step."""
    out = []
    code = ""
    for name, stmt in IMPORT_STEPS:
        code += stmt + "\n" if stmt else ""
        probe = code + ("for line in open('/proc/self/status'):\n"
                        "    if line.startswith(('VmRSS:', 'RssAnon:')): print(line.split()[1])\n")
        res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                             check=True, cwd=REPO)
        rss, anon = (int(x) for x in res.stdout.split())
        out.append((name, rss / 1024, anon / 1024))
    return out


def make_720p_file(tmp: Path) -> Path:
    """The dev clip scaled to 1280x720 H.264 (what an IP camera or a phone records)."""
    out = tmp / "clip720.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-r", "25", "-i", str(DEV_CLIP), "-vf",
                    f"scale={WIDTH}:{HEIGHT}", "-r", str(FPS), "-c:v", "libx264", "-preset",
                    "veryfast", "-pix_fmt", "yuv420p", str(out)], check=True)
    return out


# Variants run per source: (label, malloc environment, clips on).
VARIANTS: list[tuple[str, dict[str, str], bool]] = [
    ("glibc default", {}, True),
    ("MALLOC_ARENA_MAX=2 (unit)", {"MALLOC_ARENA_MAX": "2"}, True),
    ("ARENA_MAX=2, clips off", {"MALLOC_ARENA_MAX": "2"}, False),
]


def run_daemon(root: Path, source: str, clip: Path | None, seconds: float, malloc_env: dict[str, str],
               smtp_port: int, ca: Path, clips: bool = True, tree: Path = REPO) -> dict[str, float]:
    """`homesec run` for `seconds`; RSS samples every 0.2 s, the kernel's peak at the end."""
    root.mkdir(parents=True)
    data = config_dict(root, "starttls", smtp_port, None, ca_file=str(ca), min_interval_s=5.0,
                       timeout_s=10.0)
    data["camera"].update(width=WIDTH, height=HEIGHT, fps=FPS, realtime=True)
    if source == "file":
        assert clip is not None
        data["camera"].update(source="opencv", device=str(clip), loop=True)
    data["events"] = {"post_motion_s": 2.0}
    data["clips"] = {"enabled": clips}
    path = write_toml(root / "config.toml", data)
    store = Store(root / "state" / "homesec.db")
    store.set_arm(True, "benchmark")
    store.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(HOMESEC_SMTP_PASSWORD=PASSWORD, PYTHONUNBUFFERED="1", **malloc_env)
    log = open(root / "daemon.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "homesec.cli", "run", "--config", str(path)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tree)
    samples, anon = [], []
    peak = 0
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise RuntimeError(f"daemon exited: {(root / 'daemon.log').read_text()[-2000:]}")
            samples.append(rss_kb(proc.pid))
            anon.append(rss_kb(proc.pid, "RssAnon"))
            peak = rss_kb(proc.pid, "VmHWM")
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
    store = Store(root / "state" / "homesec.db")
    events = store.count_events()
    store.close()
    return {"peak": peak / 1024, "mean": sum(samples) / len(samples) / 1024, "events": events,
            "anon_peak": max(anon) / 1024, "anon_mean": sum(anon) / len(anon) / 1024}


def run_floor(source: str, clip: Path) -> dict[str, float]:
    """benchmarks/memory_floor.py: the daemon's libraries alone, doing the least it must do."""
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "memory_floor.py"),
                          source, "--clip", str(clip)], capture_output=True, text=True, check=True,
                         cwd=REPO, env={**os.environ, "MALLOC_ARENA_MAX": "2"})
    peak, rss, anon, file_mb = (float(x) for x in res.stdout.split())
    return {"peak": peak, "rss": rss, "anon": anon, "file": file_mb}


def run_web(root: Path) -> dict[str, float]:
    """gunicorn master + workers after some requests: RSS, PSS, numpy/OpenCV mapped or not."""
    root.mkdir(parents=True)
    port = free_port()
    data = {"paths": {"state_dir": str(root / "state"), "runtime_dir": str(root / "run")},
            "web": {"bind": "127.0.0.1", "port": port, "workers": 2}}
    path = write_toml(root / "config.toml", data)
    subprocess.run([sys.executable, "-m", "homesec.cli", "passwd", "--config", str(path)],
                   input=b"correct horse battery\n", check=True, capture_output=True, cwd=REPO)
    proc = subprocess.Popen([sys.executable, "-m", "homesec.cli", "web", "--config", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        for _ in range(20):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5).read()
        kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        pids = [proc.pid, *map(int, kids)]
        maps = "".join(Path(f"/proc/{p}/maps").read_text() for p in pids)
        return {"rss": sum(rss_kb(p) for p in pids) / 1024, "pss": sum(pss_kb(p) for p in pids) / 1024,
                "procs": len(pids), "numpy": "numpy" in maps, "cv2": "cv2" in maps or "opencv" in maps}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


@contextlib.contextmanager
def checkout(rev: str | None, where: Path) -> Iterator[Path | None]:
    """A temporary detached git worktree of `rev` (removed afterwards), or None."""
    if rev is None:
        yield None
        return
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(where), rev],
                   check=True)
    try:
        yield where
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(where)],
                       check=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=40.0, help="per daemon run (6 runs, +2 with "
                    "--before)")
    ap.add_argument("--before", metavar="REV", help="also run the daemon (as the unit runs it) "
                    "from this git revision, for a before/after in the same run")
    args = ap.parse_args()
    if shutil.which("ffmpeg") is None:
        print("needs ffmpeg (apt-get install ffmpeg) for the 720p file", file=sys.stderr)
        return 2
    unit_label, unit_env, _ = VARIANTS[1]
    with tempfile.TemporaryDirectory(prefix="homesec-mem-") as tmp_s, \
            checkout(args.before, Path(tmp_s) / "before") as before_tree:
        tmp = Path(tmp_s)
        layers = import_layers()
        clip = make_720p_file(tmp)
        certs = make_certs(tmp / "certs")
        srv = SmtpServer("starttls", certs).start()
        runs = []
        floors: dict[str, dict[str, float]] = {}
        try:
            for source in ("demo", "file"):
                if before_tree is not None:
                    r = run_daemon(tmp / f"{source}-before", source, clip, args.seconds, unit_env,
                                   srv.port, certs.ca, tree=before_tree)
                    runs.append((source, f"before: {args.before}", r))
                for i, (label, malloc_env, clips) in enumerate(VARIANTS):
                    r = run_daemon(tmp / f"{source}-{i}", source, clip, args.seconds, malloc_env,
                                   srv.port, certs.ca, clips=clips)
                    runs.append((source, label, r))
                floors[source] = run_floor(source, clip)
            mails = len(srv.messages)
        finally:
            srv.stop()
        web = run_web(tmp / "web")

    print("capture daemon before the first frame (RSS of a fresh interpreter after each step):")
    prev = 0.0
    for name, mb, anon in layers:
        print(f"  {name:48} {mb:6.1f} MB  ({mb - prev:+5.1f})   of which anon {anon:5.1f} MB")
        prev = mb
    print(f"\ncapture daemon, {WIDTH}x{HEIGHT} @ {FPS} fps, armed, mail on (STARTTLS+AUTH), "
          f"{args.seconds:.0f} s per run; {mails} alert mails in all:")
    print(f"  {'source':8} {'run':26} {'peak RSS':>9} {'mean RSS':>9} "
          f"{'anon peak':>10} {'anon mean':>10} {'events':>7}")
    unit = {source: r["peak"] for source, label, r in runs if label == unit_label}
    for source, label, r in runs:
        ratio = "" if label == unit_label else f"  {r['peak'] / unit[source]:.2f}x of the unit's"
        goal = "OK" if r["peak"] < 100 else "OVER 100 MB"
        print(f"  {source:8} {label:26} {r['peak']:7.1f} MB {r['mean']:7.1f} MB "
              f"{r['anon_peak']:8.1f} MB {r['anon_mean']:8.1f} MB {r['events']:7d}  {goal}{ratio}")
    for source, f in floors.items():
        print(f"  {source:8} {'floor: libraries alone':26} {f['peak']:7.1f} MB {'':>9} "
              f"{f['anon']:8.1f} MB {'':>10} {'':>7}  {f['peak'] / unit[source]:.2f}x of the unit's")
    print("  (floor = benchmarks/memory_floor.py: numpy, OpenCV, PyAV, sqlite3, ssl, smtplib doing\n"
          "   only the 720p decode or encode, the detector's OpenCV calls and a JPEG, without homesec;\n"
          "   the unit's peak minus the floor is what homesec itself adds)")
    print("  (anon = heap and buffers, what must fit in RAM; the rest of RSS is the mapped code of\n"
          "   Python, numpy, OpenCV and PyAV: clean file pages the kernel drops and re-reads under\n"
          "   pressure)")
    print(f"\nweb service (gunicorn master + 2 workers, {web['procs']} processes): RSS "
          f"{web['rss']:.1f} MB, PSS {web['pss']:.1f} MB; numpy mapped: {web['numpy']}, "
          f"OpenCV mapped: {web['cv2']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
