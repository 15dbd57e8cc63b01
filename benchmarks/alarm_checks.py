"""What the alarm adds to the capture loop per frame: CoverWatch (tamper check on the luma plane)
and ArmedWatch (an event running when armed), next to MotionDetector.update on the same frames as
the baseline, in the same run. Printed as microseconds per frame and as a share of the detector.

Frames: the demo scene's lores luma (320x180), 15 fps timestamps, 600 frames with a person
walking through; every call is timed with perf_counter_ns and the median taken.

    .venv/bin/python benchmarks/alarm_checks.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from homesec.alarm.health import CHECK_EVERY_S, CoverWatch, is_uniform
from homesec.alarm.running import ArmedWatch
from homesec.camera.demo import DemoCamera
from homesec.capture.events import EventTracker
from homesec.capture.motion import MotionDetector
from homesec.config import EventsConfig, MotionConfig
from homesec.storage.store import ArmStatus

N = 600
FPS = 15.0


def main() -> None:
    cam = DemoCamera(640, 360, 320, FPS, seed=1, realtime=False)
    cam.open()
    frames = [cam.read() for _ in range(N)]
    det = MotionDetector(MotionConfig(), fps=FPS)
    tracker = EventTracker(EventsConfig(), keep_images=False)
    cover = CoverWatch(hold_s=5.0)
    watch = ArmedWatch(0.3)
    view = ArmStatus("armed", None, 0.0, "bench", armed_ts=frames[80].wall_s)
    t_det, t_cov, t_uni, t_arm = [], [], [], []
    for f in frames:
        a = time.perf_counter_ns()
        res = det.update(f.luma)
        b = time.perf_counter_ns()
        tracker.update(f, res)
        c = time.perf_counter_ns()
        cover.update(f.luma, f.mono_s)
        d = time.perf_counter_ns()
        watch.update(tracker.current, f, res, view)
        e = time.perf_counter_ns()
        is_uniform(f.luma)
        g = time.perf_counter_ns()
        t_det.append(b - a)
        t_cov.append(d - c)
        t_arm.append(e - d)
        t_uni.append(g - e)
    med = {k: statistics.median(v) / 1000 for k, v in
           (("detector", t_det), ("cover", t_cov), ("uniform", t_uni), ("armed", t_arm))}
    # CoverWatch measures only every CHECK_EVERY_S (a quarter of the frames at 15 fps); the other
    # calls return at once. Per frame the loop pays the measured share times a measurement.
    measured = [t for t in t_cov if t > 5000]  # > 5 us: the calls that measured
    share = len(measured) / N
    per_frame = share * statistics.median(measured) / 1000
    print(f"frames: {N} demo lores {frames[0].luma.shape[1]}x{frames[0].luma.shape[0]}")
    print(f"MotionDetector.update (baseline): {med['detector']:8.1f} us/frame (median)")
    print(f"is_uniform (one measurement):     {med['uniform']:8.1f} us  "
          f"= {med['uniform'] / med['detector']:.3f} x detector")
    print(f"CoverWatch.update (every {CHECK_EVERY_S} s):  {per_frame:8.1f} us/frame "
          f"({share:.0%} of frames measured)  = {per_frame / med['detector']:.3f} x detector")
    print(f"ArmedWatch.update:                {statistics.fmean(t_arm) / 1000:8.1f} us/frame (mean)"
          f"  = {statistics.fmean(t_arm) / 1000 / med['detector']:.3f} x detector")


if __name__ == "__main__":
    main()
