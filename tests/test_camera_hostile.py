"""A camera (or video file) that sends frames far bigger than any Pi can hold: real FFmpeg-made
H.264, decoded by the real PyAV source (and by OpenCV, `camera.decoder = "opencv"`). The stream
is refused with a message that says why, or (when the size grows mid-stream) the oversized frames
are never decoded; the daemon's memory is never spent on them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from homesec.camera.base import CameraError, EndOfStream
from homesec.camera.limits import MAX_FRAME_PIXELS
from homesec.camera.opencv_source import OpenCVCamera
from homesec.camera.pyav_source import PyAVCamera

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

HUGE = (5120, 3840)  # 19.7 Mpx: more than the 4096x3072 the config allows


def _h264(path: Path, size: tuple[int, int], frames: int, fmt: str = "mp4") -> Path:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc=s={size[0]}x{size[1]}:r=5", "-frames:v", str(frames),
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                    "-f", fmt, str(path)], check=True)
    return path


@pytest.mark.parametrize("source", [PyAVCamera, OpenCVCamera])
def test_a_huge_stream_is_refused_when_it_opens(tmp_path: Path, source: type) -> None:
    cam = source(str(_h264(tmp_path / "huge.mp4", HUGE, 2)))
    with pytest.raises(CameraError, match=r"sends 5120x3840 frames: more than 4096x3072"):
        cam.open()
    cam.close()


@pytest.mark.parametrize("source", [PyAVCamera, OpenCVCamera])
def test_frames_that_grow_mid_stream_are_never_decoded(tmp_path: Path, source: type) -> None:
    """An MPEG-TS stream (as cameras send over HTTP) that starts at 320x240 for 20 s (all the
    probe sees) and then switches to 5120x3840: the small frames come through, the huge ones do
    not."""
    small = _h264(tmp_path / "small.ts", (320, 240), 100, fmt="mpegts")
    huge = _h264(tmp_path / "huge.ts", HUGE, 3, fmt="mpegts")
    both = tmp_path / "both.ts"
    both.write_bytes(small.read_bytes() + huge.read_bytes())
    cam = source(str(both), fps=5)
    cam.open()
    sizes = []
    try:
        while True:
            try:
                f = cam.read()
            except (EndOfStream, CameraError):
                break
            sizes.append(f.luma.shape)
    finally:
        cam.close()
    assert sizes and sizes[0] == (240, 320)
    assert all(shape[0] * shape[1] <= MAX_FRAME_PIXELS for shape in sizes), sizes
