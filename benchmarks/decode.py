"""What decoding costs: `homesec analyze` (PyAV and OpenCV paths) next to Motion and bare FFmpeg.

Why this exists: for a file or an IP camera the detector is cheap (a fraction of a millisecond per
frame) and the whole cost is decoding. OpenCV decodes H.264 to BGR and we converted back to grey;
the PyAV path takes the decoded frame's Y plane (camera/pyav_source.py). This prints, in one run
on the same 1280x720 H.264 file (made here with ffmpeg/libx264 from the demo scene: a room with
sensor noise and a person walking through every 20 s):

- `homesec analyze --decoder pyav` and `--decoder opencv`: whole process (start-up included);
- the Motion daemon (apt `motion`, if installed) on the same file, in real time, as the reference
  a home-security Pi user would otherwise run;
- bare FFmpeg decode, single-threaded (`ffmpeg -threads 1 -i FILE -f null -`): the floor;

as CPU seconds (user + system) per 1000 frames, peak RSS, and the ratios the goals are stated in
(analyze <= 0.70x Motion, <= 1.3x bare FFmpeg).

Run: `.venv/bin/python benchmarks/decode.py` (about 2 minutes, Motion takes the clip's duration).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from homesec.camera.demo import DemoScene

WIDTH, HEIGHT, FPS = 1280, 720, 25


@dataclass
class Run:
    """One measured process."""

    name: str
    cpu_s: float
    frames: int
    peak_rss_mb: float
    note: str = ""
    startup_s: float | None = None  # CPU of the same command on a one-frame clip

    @property
    def per_1000(self) -> float:
        """CPU seconds per 1000 frames, whole process."""
        return 1000.0 * self.cpu_s / self.frames

    @property
    def per_1000_running(self) -> float:
        """CPU seconds per 1000 frames once started (what a long-running daemon pays)."""
        if self.startup_s is None:
            return self.per_1000
        return 1000.0 * (self.cpu_s - self.startup_s) / max(1, self.frames - 1)


def make_clip(path: Path, seconds: float) -> int:
    """Render the demo scene with fresh sensor noise in every frame and encode it with libx264
    at 2 Mbit/s, GOP 2 s (an IP camera's usual 720p main stream); returns the number of frames."""
    scene = DemoScene(WIDTH, HEIGHT, 320, seed=5)
    frames = int(seconds * FPS)
    enc = subprocess.Popen(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
         "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS), "-i", "-", "-c:v", "libx264",
         "-preset", "veryfast", "-b:v", "2M", "-maxrate", "2M", "-bufsize", "4M",
         "-g", str(2 * FPS), "-pix_fmt", "yuv420p", str(path)], stdin=subprocess.PIPE)
    assert enc.stdin is not None
    noise = np.empty((HEIGHT, WIDTH, 3), np.int16)
    cv2.setRNGSeed(5)
    for i in range(frames):
        cv2.randn(noise, 0, 3)
        img = scene.color(i / FPS).astype(np.int16) + noise
        enc.stdin.write(np.clip(img, 0, 255).astype(np.uint8).tobytes())
    enc.stdin.close()
    if enc.wait() != 0:
        raise SystemExit("ffmpeg/libx264 could not encode the benchmark clip")
    return frames


def _hwm_mb(pid: int) -> float | None:
    """The process's peak resident set (VmHWM) so far; counted from its exec, unlike the
    rusage of a child forked from this (large) Python process."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def measure(name: str, cmd: list[str], frames: int, run_for_s: float | None = None
            ) -> tuple[Run, str]:
    """Run `cmd` to its end (or SIGTERM it after run_for_s); its own CPU and peak RSS."""
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = None if run_for_s is None else time.monotonic() + run_for_s
        peak = 0.0
        while True:
            hwm = _hwm_mb(p.pid)  # polled: the last value before exit is the peak
            if hwm is not None and not _is_zombie(p.pid):
                peak = max(peak, hwm)
            if _is_zombie(p.pid):
                break
            if deadline is not None and time.monotonic() > deadline:
                p.send_signal(signal.SIGTERM)
                deadline = None
            time.sleep(0.05)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if run_for_s is None and p.returncode != 0:
        raise SystemExit(f"{name} failed ({p.returncode}):\n{text[-2000:]}")
    return Run(name, ru.ru_utime + ru.ru_stime, frames, peak), text


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


MOTION_CONF = """
daemon off
setup_mode off
log_level 6
target_dir {dir}
netcam_url file://{clip}
width {w}
height {h}
framerate {fps}
threshold 1500
emulate_motion off
picture_output off
movie_output off
snapshot_interval 0
webcontrol_port 0
stream_port 0
"""


def motion_run(clip: Path, tmp: Path, seconds: float) -> Run | None:
    """Motion on the clip in real time, for the clip's duration; frames = what Motion processed
    at its frame rate over the time it ran after start-up (it logs no count)."""
    exe = shutil.which("motion")
    if exe is None:
        return None
    conf = tmp / "motion.conf"
    conf.write_text(MOTION_CONF.format(dir=tmp, clip=clip, w=WIDTH, h=HEIGHT, fps=FPS))
    t0 = time.monotonic()
    run, text = measure("motion (real time)", [exe, "-n", "-c", str(conf)], 1,
                        run_for_s=seconds)
    elapsed = time.monotonic() - t0
    run.frames = max(1, int((elapsed - 1.0) * FPS))  # ~1 s to open the camera and start
    run.note = f"ran {elapsed:.0f} s on the file at {FPS} fps"
    if "connected" not in text:
        run.note += " (it never connected to the file: check the configuration)"
    return run


def main() -> None:
    """Make the clip, measure everything, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="clip length")
    ap.add_argument("--no-motion", action="store_true", help="skip the Motion daemon")
    a = ap.parse_args()
    homesec = str(Path(sys.executable).with_name("homesec"))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        clip, one = tmp / "bench720.mp4", tmp / "one-frame.mp4"
        frames = make_clip(clip, a.seconds)
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(clip),
                        "-frames:v", "1", "-c", "copy", str(one)], check=True)
        commands = {
            f"homesec analyze ({decoder})":
                lambda f, decoder=decoder: [homesec, "analyze", str(f), "--json", "--decoder",
                                            decoder]
            for decoder in ("pyav", "opencv")}
        commands["ffmpeg -threads 1 (decode only)"] = lambda f: [
            "ffmpeg", "-nostdin", "-loglevel", "error", "-threads", "1", "-i", str(f),
            "-f", "null", "-"]
        runs: list[Run] = []
        for name, cmd in commands.items():
            run, out = measure(name, cmd(clip), frames)
            run.startup_s = measure(name, cmd(one), 1)[0].cpu_s
            if name.startswith("homesec"):
                run.note = out.strip().splitlines()[-1][:90]
            runs.append(run)
        ff = runs[-1]
        motion = None if a.no_motion else motion_run(clip, tmp, a.seconds)
        if motion is not None:
            runs.append(motion)
    print(f"\nDecoding a {a.seconds:g} s {WIDTH}x{HEIGHT} H.264 clip ({frames} frames, "
          f"libx264 2 Mbit/s, GOP {2 * FPS}), one run. CPU = user + system seconds.\n")
    print(f"{'':32} {'CPU s/1000 fr':>13} {'start-up':>8} {'running':>8} {'peak RSS':>8}"
          f" {'vs ffmpeg':>9} {'vs motion':>9}")
    print(f"{'':32} {'(whole)':>13} {'CPU s':>8} {'s/1000':>8} {'MB':>8}"
          f" {'(running)':>9} {'(running)':>9}")
    for r in runs:
        start = "-" if r.startup_s is None else f"{r.startup_s:.2f}"
        vs_ff = r.per_1000_running / ff.per_1000_running
        vs_mo = f"{r.per_1000_running / motion.per_1000:9.2f}" if motion else f"{'-':>9}"
        print(f"{r.name:32} {r.per_1000:13.2f} {start:>8} {r.per_1000_running:8.2f} "
              f"{r.peak_rss_mb:8.1f} {vs_ff:9.2f} {vs_mo}")
    pyav = runs[0]
    print(f"\nwhole process, start-up included: pyav / ffmpeg = "
          f"{pyav.per_1000 / ff.per_1000:.2f}, pyav / opencv = {pyav.per_1000 / runs[1].per_1000:.2f}"
          + (f", pyav / motion = {pyav.per_1000 / motion.per_1000:.2f}" if motion else ""))
    for r in runs:
        if r.note:
            print(f"  {r.name}: {r.note}")
    if motion is None:
        print("  motion: not installed (apt install motion) or skipped")
    print("\n'running' = (CPU - CPU of the same command on a one-frame clip) per frame: what a\n"
          "daemon that runs for days pays per frame. Motion's column is its whole process (its\n"
          "start-up is not separable; it favours Motion slightly).\n"
          "Goals: homesec analyze (pyav) <= 0.70 x motion and <= 1.30 x ffmpeg, CPU per frame.")


if __name__ == "__main__":
    main()
