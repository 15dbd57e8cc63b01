"""The memory floor of the capture daemon: its libraries alone, doing the least it must do.

Why this exists: the goal for the capture daemon is a peak under 100 MB RSS at 1280x720, 15 fps,
with mail on (issue 10). This script imports what the daemon cannot do without (numpy, OpenCV,
PyAV, sqlite3, ssl, smtplib, email) and does, for 300 frames, only the work the daemon cannot skip,
with none of homesec's own code, threads, queues or buffers:

- `file`: decode a 720p H.264 file with PyAV to the luma plane (`--decoder-threads`, FFmpeg's
  default when 0);
- `demo`: encode 720p frames with libx264 through PyAV, with the daemon's settings (ultrafast,
  zerolatency, constant quantiser 23, an I-frame every 8 frames), from BGR frames drawn with OpenCV;

and, for both, the detector's OpenCV calls on a 320-wide copy, a JPEG of a full frame every 30
frames, one SQLite insert and an SSL context. It prints the peak RSS (VmHWM), RSS, anon and file
parts. benchmarks/memory.py runs it beside the real daemon: the daemon's peak minus this floor is
what homesec itself adds; a floor over the goal means the goal cannot be met with these
libraries, whatever homesec does.

    .venv/bin/python benchmarks/memory_floor.py file --clip clip720.mp4
    .venv/bin/python benchmarks/memory_floor.py demo
"""

from __future__ import annotations

import argparse
import email.message  # noqa: F401 - the mail stack, as the daemon imports it
import io
import smtplib  # noqa: F401
import sqlite3
import ssl
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

FRAMES = 300
WIDTH, HEIGHT = 1280, 720


def status_mb() -> dict[str, float]:
    """VmHWM, VmRSS, RssAnon and RssFile of this process, in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmHWM", "VmRSS", "RssAnon", "RssFile")}


def luma_frames(mode: str, clip: Path | None, decoder_threads: int):
    """Yield (luma plane, BGR image maker) for FRAMES frames: decoded (file) or encoded (demo)."""
    if mode == "file":
        assert clip is not None
        with av.open(str(clip)) as c:
            stream = c.streams.video[0]
            if decoder_threads:
                stream.thread_count = decoder_threads
            for i, frame in enumerate(c.decode(stream)):
                if i >= FRAMES:
                    return
                yield frame.to_ndarray(format="gray"), (lambda f=frame: f.to_ndarray(format="bgr24"))
        return
    sink = av.open(io.BytesIO(), "w", format="h264")
    out = sink.add_stream("libx264", rate=15)
    ctx = out.codec_context
    ctx.width, ctx.height, ctx.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    ctx.time_base = Fraction(1, 90000)
    ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "qp": "23", "g": "8",
                   "keyint_min": "8", "sc_threshold": "0"}
    rng = np.random.default_rng(1)
    room = cv2.GaussianBlur(rng.integers(0, 255, (HEIGHT, WIDTH, 3), np.uint8), (0, 0), 2)
    for i in range(FRAMES):
        img = room.copy()
        cv2.circle(img, (i * 4 % WIDTH, 400), 60, (40, 45, 60), -1)
        yuv = cv2.cvtColor(img, cv2.COLOR_BGR2YUV_I420)
        vf = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        vf.pts, vf.time_base = i * 6000, Fraction(1, 90000)
        for packet in out.encode(vf):
            bytes(packet)
        yield yuv[:HEIGHT], (lambda im=img: im)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("file", "demo"))
    ap.add_argument("--clip", type=Path, help="720p H.264 file (mode file)")
    ap.add_argument("--decoder-threads", type=int, default=0)
    args = ap.parse_args()
    cv2.setNumThreads(1)  # as the daemon (use_one_opencv_thread)
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(Path(tmp) / "floor.db")
        db.execute("CREATE TABLE t (x)")
        db.execute("INSERT INTO t VALUES (1)")
        db.commit()
        ssl.create_default_context()
        prev = None
        for i, (luma, colour) in enumerate(luma_frames(args.mode, args.clip, args.decoder_threads)):
            small = cv2.GaussianBlur(cv2.resize(luma, (320, 180), interpolation=cv2.INTER_AREA),
                                     (5, 5), 0)
            if prev is not None:
                _, mask = cv2.threshold(cv2.absdiff(small, prev), 25, 255, cv2.THRESH_BINARY)
                cv2.findContours(cv2.dilate(mask, None, iterations=2), cv2.RETR_EXTERNAL,
                                 cv2.CHAIN_APPROX_SIMPLE)
            prev = small
            if i % 30 == 0:
                cv2.imencode(".jpg", colour())
        db.close()
    s = status_mb()
    print(f"{s['VmHWM']:.1f} {s['VmRSS']:.1f} {s['RssAnon']:.1f} {s['RssFile']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
