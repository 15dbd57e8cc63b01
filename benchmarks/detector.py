"""Speed of the motion detector next to the common hobby pipeline, single-threaded.

Why this exists: on a Pi every frame counts (15-30 a second on a small CPU shared with the encoder
and the web UI), so the detector must cost close to nothing. This prints, in one run:

1. per-frame cost at 640x480, 1280x720 and 1920x1080 input of
   - the floor: merely touching the frame (cv2.mean, and a copy),
   - our MotionDetector on the luma plane,
   - the hobby pipeline as found in countless blog posts (resize to 500 px wide, grey, GaussianBlur
     21x21, accumulateWeighted 0.5, absdiff, threshold, dilate x2, findContours), fed a BGR frame
     as those scripts are, and the same fed the luma plane (no colour conversion: the fairer baseline),
   with the ratio hobby / ours (over 1 = we are cheaper);
2. `homesec analyze` whole-process CPU seconds per 1000 frames of a 1280x720 video file, next to
   the CPU of merely decoding the same file (the floor the detector adds to).

Frames are realistic, not random noise: the demo scene (texture, furniture, sensor noise) with a
person walking through it, rendered at each size.

Run: `.venv/bin/python benchmarks/detector.py` (about a minute).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import cv2
import numpy as np

from homesec.camera.demo import CROSSING_START_S, DemoScene
from homesec.capture.motion import MotionDetector
from homesec.config import MotionConfig

SIZES = [(320, 240), (640, 480), (1280, 720), (1920, 1080)]  # 320x240: a Pi lores plane
N_FRAMES = 48  # distinct frames rendered per size (the person crossing), cycled while timing
FPS = 15.0


def render(width: int, height: int, quiet: bool = False) -> list[np.ndarray]:
    """Luma frames of the demo scene at full size: a second of empty room, then a person walking
    through (or, with `quiet`, only the empty room with its sensor noise)."""
    scene = DemoScene(width, height, width, seed=3)
    t0 = 0.5 if quiet else CROSSING_START_S - 1.0
    return [scene.luma(t0 + i / FPS) for i in range(N_FRAMES)]


class Hobby:
    """The pipeline of a thousand blog posts (PyImageSearch style), with its running average."""

    def __init__(self, grey_input: bool) -> None:
        self.grey_input = grey_input
        self.avg: np.ndarray | None = None
        self.kernel = None

    def update(self, frame: np.ndarray) -> int:
        """One frame; returns the number of contours over the minimum area."""
        h, w = frame.shape[:2]
        small = cv2.resize(frame, (500, round(h * 500 / w)))
        grey = small if self.grey_input else cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        grey = cv2.GaussianBlur(grey, (21, 21), 0)
        if self.avg is None:
            self.avg = grey.astype(np.float32)
            return 0
        cv2.accumulateWeighted(grey, self.avg, 0.5)
        delta = cv2.absdiff(grey, cv2.convertScaleAbs(self.avg))
        thresh = cv2.threshold(delta, 5, 255, cv2.THRESH_BINARY)[1]
        thresh = cv2.dilate(thresh, self.kernel, iterations=2)
        contours, _ = cv2.findContours(thresh, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        return sum(1 for c in contours if cv2.contourArea(c) >= 500)


def per_frame_ms(fn: Callable[[np.ndarray], object], frames: list[np.ndarray], seconds: float) -> float:
    """CPU milliseconds per call (this process's CPU time, so other load on the machine counts
    less), cycling through the frames for about `seconds`; the best of 5 rounds."""
    for f in frames[:4]:
        fn(f)
    best = float("inf")
    n = len(frames)
    for _ in range(5):
        count = 0
        t0 = time.process_time()
        deadline = time.perf_counter() + seconds / 5
        while True:
            for f in frames:
                fn(f)
            count += n
            if time.perf_counter() >= deadline:
                break
        best = min(best, (time.process_time() - t0) / count)
    return best * 1000.0


def bench_sizes(seconds: float) -> None:
    """Section 1: per-frame costs and ratios."""
    print(f"per-frame cost, single-threaded (cv2.setNumThreads(1)), OpenCV {cv2.__version__}, "
          f"demo scene with a person walking, {N_FRAMES} distinct frames cycled")
    head = (f"{'input':>10} {'touch:mean':>10} {'touch:copy':>10} {'ours':>8} {'ours:quiet':>10} "
            f"{'hobby:bgr':>10} {'hobby:luma':>10} {'ratio bgr':>9} {'ratio luma':>10}")
    print(head)
    print("-" * len(head))
    for w, h in SIZES:
        luma = render(w, h)
        bgr = [cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) for f in luma]
        touch_mean = per_frame_ms(cv2.mean, luma, seconds)
        touch_copy = per_frame_ms(np.copy, luma, seconds)
        det = MotionDetector(MotionConfig(), fps=FPS)
        for f in luma[:20]:  # through the warm-up
            det.update(f)
        ours = per_frame_ms(det.update, luma, seconds)
        det_q = MotionDetector(MotionConfig(), fps=FPS)
        quiet = render(w, h, quiet=True)
        for f in quiet[:20]:
            det_q.update(f)
        ours_quiet = per_frame_ms(det_q.update, quiet, seconds)
        hobby_bgr = per_frame_ms(Hobby(grey_input=False).update, bgr, seconds)
        hobby_luma = per_frame_ms(Hobby(grey_input=True).update, luma, seconds)
        print(f"{w:>4}x{h:<5} {touch_mean:10.3f} {touch_copy:10.3f} {ours:8.3f} {ours_quiet:10.3f} "
              f"{hobby_bgr:10.3f} {hobby_luma:10.3f} {hobby_bgr / ours:8.1f}x {hobby_luma / ours:9.1f}x")
    print("(CPU ms per frame. ours: frames with a person walking through; ours:quiet: the empty room.\n"
          " hobby:bgr is the pipeline as written (BGR frame in); hobby:luma skips its colour conversion.\n"
          " ratio = hobby / ours (walking frames): over 1 means ours is cheaper. Ours gets the luma plane,\n"
          " which on a Pi is the lores Y plane, free.)")


def write_video(path: str, frames: int) -> str:
    """A 1280x720 demo-scene video with noise; returns the codec used (H.264 if OpenCV can)."""
    scene = DemoScene(1280, 720, 1280, seed=5)
    noise = np.empty((720, 1280, 3), np.int16)
    for fourcc in ("avc1", "H264", "mp4v"):
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), FPS, (1280, 720))
        if writer.isOpened():
            break
        writer.release()
    else:
        raise SystemExit("no usable video encoder in this OpenCV build")
    for i in range(frames):
        img = scene.color(i / FPS).astype(np.int16)
        cv2.randn(noise, 0, 3)
        writer.write(np.clip(img + noise, 0, 255).astype(np.uint8))
    writer.release()
    if fourcc in ("avc1", "H264"):
        return "H.264 (avc1)"
    return "MPEG-4 Part 2 (mp4v: this OpenCV build has no H.264 encoder)"


def child_cpu(cmd: list[str]) -> tuple[float, str]:
    """Run a command; its user+system CPU seconds and its stdout."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), out


DECODE_ONLY = """
import sys, cv2
cv2.setNumThreads(1)
cap = cv2.VideoCapture(sys.argv[1]); n = 0
while True:
    ok, img = cap.read()
    if not ok:
        break
    cv2.cvtColor(img, cv2.COLOR_BGR2GRAY); n += 1
print(n)
"""


def bench_analyze(frames: int) -> None:
    """Section 2: whole-process CPU of `homesec analyze` on a 1280x720 file."""
    homesec = os.path.join(os.path.dirname(sys.executable), "homesec")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "demo720.mp4")
        codec = write_video(path, frames)
        cpu_dec, out = child_cpu([sys.executable, "-c", DECODE_ONLY, path])
        decoded = int(out.strip())
        cpu_an, out = child_cpu([homesec, "analyze", path, "--fps", str(FPS), "--json"])
        summary = out.strip().splitlines()[-1]
    print(f"\n`homesec analyze` on a 1280x720 file, {decoded} frames, codec {codec}:")
    print(f"  whole process: {1000 * cpu_an / decoded:6.2f} CPU s per 1000 frames")
    print(f"  decode + grey only (python -c cv2.VideoCapture loop): {1000 * cpu_dec / decoded:6.2f} "
          f"CPU s per 1000 frames")
    print(f"  summary line: {summary}")


def main() -> None:
    """Parse options, run both sections."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="timing time per measurement")
    ap.add_argument("--video-frames", type=int, default=900,
                    help="frames in the analyze video (0: skip that part)")
    a = ap.parse_args()
    cv2.setNumThreads(1)
    bench_sizes(a.seconds)
    if a.video_frames > 0:
        bench_analyze(a.video_frames)


if __name__ == "__main__":
    main()
