"""What event clips cost: CPU per second of recording, pre-roll memory, bytes per minute.

Why this exists: the software path (demo and OpenCV sources, and a Pi 5, which has no hardware
H.264 encoder) encodes every frame, all the time, so the pre-roll exists when an event starts.
That must stay a small share of a core next to the detector. This prints, in one run, for
1280x720 and 640x480 at 15 fps with the settings the daemon uses (libx264 ultrafast, zerolatency,
clips.crf 26 = constant quantiser 23, an I-frame every 0.5 s):

- recording: CPU seconds (all threads of the process, x264's included) per second of video for
  colour conversion + encoding + the packet ring + writing one MP4 clip of the whole run,
  as % of one core;
- the detector's own cost on the same frames (MotionDetector on the 320-wide luma plane, as the
  daemon feeds it), % of one core at 15 fps, and the ratio recording / detector;
- pre-roll memory: the most the 3 s packet ring held;
- bytes per minute of clip (the file written).

Frames are the demo scene (texture, furniture, a person walking through, the lamp) rendered
before timing starts: the camera's own cost is not counted. Each size is measured `--repeat`
times; the table shows the median and the range.

Run: `.venv/bin/python benchmarks/recording.py` (about a minute).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from homesec.camera.demo import DemoScene
from homesec.capture.motion import MotionDetector
from homesec.capture.recording import ClipSink, ClipWriter, PyavEncoder, qp_for_crf
from homesec.config import MotionConfig

FPS = 15.0
SECONDS = 12.0  # 2 s of empty room, a person walking through (4 s), the room again
PRE_ROLL_S = 3.0
CRF = 26


def render(width: int, height: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Colour frames at the clip size and 320-wide luma planes for the detector."""
    scene = DemoScene(width, height, 320, seed=3)
    times = [3.0 + i / FPS for i in range(int(SECONDS * FPS))]
    return [scene.color(t) for t in times], [scene.luma(t) for t in times]


def cpu() -> float:
    """CPU seconds of this process, every thread (x264 runs threads of its own)."""
    return time.process_time()


def measure_recording(colour: list[np.ndarray], out_dir: Path) -> dict[str, float]:
    """Encode, ring and write every frame as the daemon's clip thread does."""
    h, w = colour[0].shape[:2]
    enc = PyavEncoder(w, h, FPS, CRF)
    clips: list[int] = []
    sink = ClipSink(out_dir, PRE_ROLL_S, 3600.0, FPS, on_clip=lambda c: clips.append(c.size))
    sink.template = enc.stream
    peak_ring = 0
    writer: ClipWriter | None = None
    t0 = cpu()
    for i, img in enumerate(colour):
        mono = 1000.0 + i / FPS
        for pkt in enc.encode(img, mono, 1.7e9 + i / FPS):
            sink.ring.append(pkt)
            peak_ring = max(peak_ring, sink.ring.bytes)
            if writer is None and pkt.keyframe:
                writer = ClipWriter(out_dir / f"bench-{w}.mp4", enc.stream, pkt)
            if writer is not None:
                writer.write(pkt)
    assert writer is not None
    size = writer.finish(1.0 / FPS)
    used = cpu() - t0
    video_s = len(colour) / FPS
    return {"cpu_pct": 100.0 * used / video_s, "ring_bytes": peak_ring,
            "bytes_per_min": size / video_s * 60.0}


def measure_detector(luma: list[np.ndarray]) -> float:
    """% of one core the detector takes at FPS on the same scene."""
    det = MotionDetector(MotionConfig(), fps=FPS)
    for f in luma[:30]:  # warm-up: noise estimate, background
        det.update(f)
    t0 = cpu()
    for f in luma:
        det.update(f)
    return 100.0 * (cpu() - t0) / (len(luma) / FPS)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"{SECONDS:g} s of demo scene at {FPS:g} fps; libx264 ultrafast/zerolatency "
          f"clips.crf {CRF} (qp {qp_for_crf(CRF)}); "
          f"pre-roll ring {PRE_ROLL_S:g} s; CPU as % of one core (process CPU time / video time)")
    print()
    print("| size | recording (% core) | detector (% core) | recording / detector |"
          " pre-roll ring (MB) | clip MB per minute |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for w, h in ((1280, 720), (640, 480)):
            colour, luma = render(w, h)
            rec, det = [], []
            for _ in range(args.repeat):
                rec.append(measure_recording(colour, Path(tmp)))
                det.append(measure_detector(luma))
            rc = [r["cpu_pct"] for r in rec]
            ratio = statistics.median(rc) / statistics.median(det)
            print(f"| {w}x{h} | {statistics.median(rc):.1f} ({min(rc):.1f}-{max(rc):.1f}) | "
                  f"{statistics.median(det):.2f} ({min(det):.2f}-{max(det):.2f}) | {ratio:.0f}x | "
                  f"{max(r['ring_bytes'] for r in rec) / 1e6:.2f} | "
                  f"{statistics.median(r['bytes_per_min'] for r in rec) / 1e6:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
