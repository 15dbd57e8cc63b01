"""The PyAV source: the detector gets the decoded Y plane, colour only on demand; files, loops,
the OpenCV fallback, and which source each kind of device gets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from homesec.camera import decodes_with_pyav, make_camera, video_camera
from homesec.camera.base import CameraError, EndOfStream
from homesec.camera.opencv_source import OpenCVCamera
from homesec.camera.pyav_source import PyAVCamera, luma_of
from homesec.config import CameraConfig
from tests.conftest import DEV_CLIPS, REPO


def _h264(path: Path, frames: int, size: tuple[int, int], fps: int = 10) -> Path:
    """An H.264 clip of a bright square moving over a textured background."""
    w, h = size
    rng = np.random.default_rng(1)
    bg = cv2.GaussianBlur(rng.integers(40, 200, (h, w, 3), dtype=np.uint8), (0, 0), 2)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            img = bg.copy()
            x = (i * w // frames) % (w - 40)
            img[h // 3:h // 3 + 40, x:x + 40] = (240, 240, 240)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return _h264(tmp_path / "ten.mp4", 10, (320, 240))


def test_luma_is_the_decoded_y_plane_and_colour_waits_until_asked(clip: Path) -> None:
    cam = PyAVCamera(str(clip), fps=10.0)
    cam.open()
    frame = cam.read()
    assert frame.luma.shape == (240, 320) and frame.luma.dtype == np.uint8
    assert frame._color is None  # nothing converted to colour for detection
    # The Y plane itself, expanded from video range (16..235) to full range.
    with av.open(str(clip)) as c:
        first = next(c.decode(video=0))
    y = first.to_ndarray(format="gray", width=320, height=240)  # reference via swscale
    assert np.abs(frame.luma.astype(int) - y.astype(int)).max() <= 2
    assert frame.color().shape == (240, 320, 3)
    cam.close()


def test_luma_matches_what_opencv_made_of_the_same_file(clip: Path) -> None:
    ours, theirs = PyAVCamera(str(clip), fps=10.0), OpenCVCamera(str(clip), fps=10.0)
    ours.open()
    theirs.open()
    for _ in range(10):
        a, b = ours.read().luma.astype(int), theirs.read().luma.astype(int)
        assert np.abs(a - b).mean() < 2.0  # the detector's thresholds mean the same
    ours.close()
    theirs.close()


def test_file_ends_unless_looped_and_times_are_index_over_fps(clip: Path) -> None:
    cam = PyAVCamera(str(clip), fps=10.0)
    cam.open()
    frames = [cam.read() for _ in range(10)]
    with pytest.raises(EndOfStream):
        cam.read()
    assert frames[9].mono_s - frames[0].mono_s == pytest.approx(0.9)
    looped = PyAVCamera(str(clip), fps=10.0, loop=True)
    looped.open()
    lumas = [looped.read().luma for _ in range(25)]
    assert np.array_equal(lumas[10], lumas[0]) and np.array_equal(lumas[13], lumas[3])
    looped.close()


def test_large_frames_hand_the_detector_a_halved_plane(tmp_path: Path) -> None:
    path = _h264(tmp_path / "hd.mp4", 3, (1280, 720))
    cam = PyAVCamera(str(path), fps=10.0, detect_width=320)
    cam.open()
    frame = cam.read()
    assert frame.luma.shape == (360, 640) and frame.size == (1280, 720)
    assert frame.box_scale() == (2.0, 2.0)  # boxes still land on the full-size snapshot
    assert frame.color().shape == (720, 1280, 3)
    cam.close()
    with av.open(str(path)) as c:
        full = luma_of(next(c.decode(video=0)))
    half = cv2.resize(full, (640, 360), interpolation=cv2.INTER_AREA)
    assert np.abs(half.astype(int) - frame.luma.astype(int)).max() <= 1


def test_unopenable_stream_is_a_camera_error_without_the_password() -> None:
    with pytest.raises(CameraError, match="cannot open") as err:
        PyAVCamera("http://admin:s3cret@127.0.0.1:9/none.mjpg").open()
    assert "s3cret" not in str(err.value) and "127.0.0.1:9" in str(err.value)


def test_sources_by_device_kind() -> None:
    assert decodes_with_pyav("rtsp://cam/stream") and decodes_with_pyav("/videos/a.mp4")
    assert not decodes_with_pyav("/dev/video0") and not decodes_with_pyav("0")
    assert not decodes_with_pyav("frames/%06d.jpg")
    pick = make_camera(CameraConfig(source="opencv", device="rtsp://cam/stream"))
    assert isinstance(pick, PyAVCamera)
    assert isinstance(make_camera(CameraConfig(source="opencv", device="/dev/video0")),
                      OpenCVCamera)
    opencv = make_camera(CameraConfig(source="opencv", device="rtsp://x/", decoder="opencv"))
    assert isinstance(opencv, OpenCVCamera)
    assert isinstance(video_camera("a.mp4", 25, "opencv"), OpenCVCamera)


@pytest.mark.skipif(not (DEV_CLIPS / "beweging-walking-to.h264").exists(), reason="no dev clip")
def test_analyze_finds_the_same_event_with_either_decoder() -> None:
    clip = DEV_CLIPS / "beweging-walking-to.h264"
    starts = {}
    for decoder in ("pyav", "opencv"):
        out = subprocess.run([sys.executable, "-m", "homesec", "analyze", str(clip), "--fps",
                              "25", "--json", "--decoder", decoder], capture_output=True,
                             text=True, check=True, cwd=REPO)
        events = [json.loads(line) for line in out.stdout.splitlines()
                  if json.loads(line)["type"] == "event"]
        assert len(events) == 1
        starts[decoder] = events[0]["start_frame"]
    assert abs(starts["pyav"] - starts["opencv"]) <= 2  # within a frame or two
