"""Raspberry Pi camera through picamera2 (imported only when this source is chosen).

Two streams: `main` (BGR, "RGB888" in picamera2's naming, at snapshot resolution) and `lores`
(YUV420, small). Detection reads the Y plane of `lores` directly: no colour conversion, no resize
of the big image, which is what makes 15-30 fps affordable on a Pi Zero 2 W. The main image is only
copied out of the request when a snapshot or the live view asks for it; the request is released
at the next `read()` so libcamera gets its buffer back promptly.
"""

from __future__ import annotations

import time
from typing import Any

from homesec.camera.base import CameraError, Frame


class PicameraCamera:
    """Frames from picamera2: lores Y plane for detection, main stream on demand."""

    def __init__(
        self, width: int = 1280, height: int = 720, lores_width: int = 320,
        lores_height: int = 240, fps: float = 15.0, camera_num: int = 0,
    ) -> None:
        self.main_size = (width, height)
        self.lores_size = (lores_width, lores_height)
        self.fps = fps
        self.camera_num = camera_num
        self._cam: Any = None
        self._request: Any = None
        self._index = 0

    def open(self) -> None:
        """Import picamera2, configure main + lores streams, start the camera."""
        self.close()
        try:
            from picamera2 import Picamera2  # lazy: only present on a Pi, from apt
        except ImportError as exc:
            raise CameraError(
                "picamera2 is not importable: on a Pi install python3-picamera2 with apt and make "
                "the venv with --system-site-packages; elsewhere use camera.source = 'opencv' or "
                f"'demo' ({exc})"
            ) from None
        try:
            cam = Picamera2(self.camera_num)
            config = cam.create_video_configuration(
                main={"size": self.main_size, "format": "RGB888"},
                lores={"size": self.lores_size, "format": "YUV420"},
                controls={"FrameRate": float(self.fps)},
                buffer_count=4,
            )
            cam.configure(config)
            cam.start()
        except Exception as exc:  # libcamera raises RuntimeError, IndexError (no camera), ...
            raise CameraError(f"cannot start the Pi camera: {exc}") from exc
        self._cam = cam

    @property
    def picamera2(self) -> Any:
        """The open Picamera2 object (None while closed): the clip recorder starts its encoder."""
        return self._cam

    def _release(self) -> None:
        if self._request is not None:
            try:
                self._request.release()
            finally:
                self._request = None

    def read(self) -> Frame:
        """Wait for the next request; hand out its lores Y plane and main image on demand."""
        if self._cam is None:
            raise CameraError("camera not open")
        self._release()
        try:
            request = self._cam.capture_request()
            lores = request.make_array("lores")
        except Exception as exc:
            raise CameraError(f"Pi camera stopped delivering frames: {exc}") from exc
        self._request = request
        w, h = self.lores_size
        # YUV420 arrives as (h * 3 / 2, stride): the first h rows are Y; stride may pad width.
        luma = lores[:h, :w]
        i = self._index
        self._index += 1

        def color() -> Any:
            if self._request is not request:
                raise CameraError("frame colour asked for after the next frame was read")
            return request.make_array("main")

        return Frame(index=i, mono_s=time.monotonic(), wall_s=time.time(), luma=luma,
                     _color_fn=color, size=self.main_size)

    def close(self) -> None:
        """Release the request, stop and close the camera."""
        self._release()
        if self._cam is not None:
            cam, self._cam = self._cam, None
            try:
                cam.stop()
            finally:
                cam.close()
