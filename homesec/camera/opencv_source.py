"""OpenCV source: a V4L2 device (/dev/videoN or an index), an RTSP/HTTP stream, or a video file.

Files can be looped and paced in real time so a recorded clip can stand in for a live camera.
Raw .h264 streams carry no timing; their frame rate comes from the caller.
"""

from __future__ import annotations

import errno
import os
import time

import cv2
import numpy as np

from homesec.camera.base import CameraError, EndOfStream, Frame, file_frame_times, is_url
from homesec.camera.limits import too_big
from homesec.system.credentials import redact_url

OPENCV_OPTIONS = "OPENCV_FFMPEG_CAPTURE_OPTIONS"


def _open_target(device: str) -> str | int:
    """An integer camera index stays an int; anything else is a path or URL."""
    return int(device) if device.isdigit() else device


def is_rtsp(device: str) -> bool:
    """True for an RTSP camera's address (rtsp://, rtsps://)."""
    return device[:8].lower().startswith(("rtsp://", "rtsps://"))


def transport_hint(exc: BaseException, transport: str) -> str:
    """What to change when the camera refused the RTSP transport asked for (FFmpeg turns the
    camera's "461 Unsupported transport" into EPROTONOSUPPORT), else ""."""
    if getattr(exc, "errno", None) != errno.EPROTONOSUPPORT and "461" not in str(exc):
        return ""
    other = "udp" if transport == "tcp" else "tcp"
    return (f" (the camera refuses RTSP over {transport.upper()}: set camera.rtsp_transport = "
            f'"{other}")')


def is_file(device: str) -> bool:
    """True when the device names a local file or an image sequence pattern.

    A URL never is, though it holds a '%' (a percent-encoded password): it is a live stream,
    reconnected when it drops."""
    if is_url(device):
        return False
    return "%" in device or (os.path.isfile(device) and not device.startswith("/dev/"))


class OpenCVCamera:
    """Frames from cv2.VideoCapture; luma is the grey conversion of the decoded image."""

    def __init__(
        self, device: str, fps: float = 25.0, loop: bool = False, realtime: bool = False,
        width: int | None = None, height: int | None = None, rtsp_transport: str = "tcp",
    ) -> None:
        self.device = device
        self.label = redact_url(device)  # for messages: they reach logs and the web UI
        self.fps = fps
        self.loop = loop
        self.realtime = realtime
        self.want_size = (width, height) if width and height else None
        self.rtsp_transport = rtsp_transport  # rtsp://: "tcp" (interleaved) or "udp" (RTP)
        self.file = is_file(device)
        self._cap: cv2.VideoCapture | None = None
        self._index = 0
        self._file_index = 0
        self._t0_mono = 0.0
        self._t0_wall = 0.0

    def open(self) -> None:
        """Open the device; CameraError when it cannot be read."""
        self.close()
        cap = (self._open_url() if is_url(self.device)
               else cv2.VideoCapture(_open_target(self.device)))
        if not cap.isOpened():
            raise CameraError(f"cannot open {self.label!r}")
        if not self.file and self.want_size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.want_size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.want_size[1])
        refused = too_big(self.label, int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                          int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if refused:  # homesec.camera.limits
            cap.release()
            raise CameraError(refused)
        if self.file:
            file_fps = cap.get(cv2.CAP_PROP_FPS)
            if self.fps <= 0 and file_fps and 0 < file_fps < 240:
                self.fps = file_fps
        self._cap = cap
        self._file_index = 0
        self._t0_mono = time.monotonic() - self._index / max(self.fps, 1e-6)
        self._t0_wall = time.time() - self._index / max(self.fps, 1e-6)

    def _open_url(self) -> cv2.VideoCapture:
        """A stream, with OpenCV's FFmpeg backend only: when that one fails OpenCV tries its
        others, and the image-sequence one prints the whole URL, the camera's password with it.
        The RTSP transport is an option that backend reads from the environment at each open
        (left alone, FFmpeg tries UDP first); an owner's own setting wins."""
        if not is_rtsp(self.device) or OPENCV_OPTIONS in os.environ:
            return cv2.VideoCapture(self.device, cv2.CAP_FFMPEG)
        os.environ[OPENCV_OPTIONS] = f"rtsp_transport;{self.rtsp_transport}"
        try:
            return cv2.VideoCapture(self.device, cv2.CAP_FFMPEG)
        finally:
            del os.environ[OPENCV_OPTIONS]

    def _grab(self) -> np.ndarray | None:
        assert self._cap is not None
        ok, img = self._cap.read()
        return img if ok and img is not None else None

    def read(self) -> Frame:
        """The next frame. Files: timestamps are frame index / fps; devices: the clock."""
        if self._cap is None:
            raise CameraError("camera not open")
        img = self._grab()
        if img is None and self.file and self.loop and self._file_index > 0:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._file_index = 0
            img = self._grab()
        if img is None:
            if self.file:
                raise EndOfStream(self.label)
            raise CameraError(f"{self.label!r} stopped delivering frames")
        refused = too_big(self.label, img.shape[1], img.shape[0], "sent")
        if refused:  # grown mid-stream: refused before any copy of it is made
            raise CameraError(refused)
        i = self._index
        self._index += 1
        self._file_index += 1
        if self.file:
            mono, wall = file_frame_times(i, self.fps, self._t0_mono, self._t0_wall, self.realtime)
        else:
            mono, wall = time.monotonic(), time.time()
        luma = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        color = img if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        return Frame(index=i, mono_s=mono, wall_s=wall, luma=luma, _color_fn=lambda: color)

    def close(self) -> None:
        """Release the device."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None
