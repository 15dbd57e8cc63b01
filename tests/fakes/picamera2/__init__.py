"""A stand-in for picamera2 with the subset of its documented API that homesec calls.

There is no camera here. This fake follows picamera2's interface (Picamera2(camera_num),
create_video_configuration(main=, lores=, controls=, buffer_count=), configure, start,
capture_request -> CompletedRequest with make_array(name) and release(), stop, close) and its
data layout: "RGB888" main arrays are (h, w, 3) uint8 in B, G, R order; "YUV420" arrays are
(h * 3 // 2, stride) uint8 with the Y plane in the first h rows (stride >= w: row padding is left
in, as picamera2's make_array does). Frames come from the demo scene.

Test knobs (not picamera2 API): `Picamera2.fail_after` makes capture_request raise after that many
frames (like a ribbon cable coming loose); `Picamera2.instances` records every camera made.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import cv2
import numpy as np

from homesec.camera.demo import DemoScene


class CompletedRequest:
    """One captured request; buffers belong to the camera until release()."""

    def __init__(self, cam: Picamera2, index: int) -> None:
        self._cam = cam
        self.index = index
        self.released = False
        self._buffers: dict[str, np.ndarray] = {}
        cam.outstanding += 1
        if cam.outstanding > cam.buffer_count:
            raise RuntimeError("all buffers held: requests were not released")

    def make_array(self, name: str) -> np.ndarray:
        """A copy of the named stream's image as numpy array (picamera2 semantics)."""
        if self.released:
            raise RuntimeError("request already released")
        if name not in self._buffers:
            self._buffers[name] = self._render(name)
        return self._buffers[name].copy()

    def _render(self, name: str) -> np.ndarray:
        cfg = self._cam.config[name]
        w, h = cfg["size"]
        t = self.index / self._cam.fps
        if cfg["format"] == "YUV420":
            luma = self._cam.lores_scene.luma(t)
            if luma.shape != (h, w):
                luma = cv2.resize(luma, (w, h), interpolation=cv2.INTER_AREA)
            # Like picamera2: (h * 3 / 2, stride) with the row padding left in.
            stride = (w + 63) // 64 * 64
            out = np.full((h * 3 // 2, stride), 128, np.uint8)
            out[:h, :w] = luma
            return out
        if cfg["format"] in ("RGB888", "BGR888"):
            return self._cam.main_scene.color(t)
        raise ValueError(f"fake does not render format {cfg['format']}")

    def release(self) -> None:
        """Give the buffers back to the camera."""
        if not self.released:
            self.released = True
            self._cam.outstanding -= 1


class Picamera2:
    """Fake camera. Only the calls homesec makes, with picamera2's signatures."""

    fail_after: ClassVar[int | None] = None
    instances: ClassVar[list[Picamera2]] = []

    def __init__(self, camera_num: int = 0) -> None:
        self.camera_num = camera_num
        self.config: dict[str, Any] = {}
        self.started = False
        self.closed = False
        self.outstanding = 0
        self.buffer_count = 4
        self.frames = 0
        self.fps = 30.0
        Picamera2.instances.append(self)

    def create_video_configuration(self, main: dict | None = None, lores: dict | None = None,
                                   raw: dict | None = None, transform: Any = None,
                                   colour_space: Any = None, buffer_count: int = 6,
                                   controls: dict | None = None, display: str | None = "main",
                                   encode: str | None = "main", queue: bool = True,
                                   **kwargs: Any) -> dict[str, Any]:
        """A configuration dict shaped like picamera2's."""
        main = {"format": "XBGR8888", "size": (1280, 720), **(main or {})}
        cfg: dict[str, Any] = {"use_case": "video", "main": main, "lores": None,
                               "buffer_count": buffer_count, "controls": dict(controls or {})}
        if lores is not None:
            cfg["lores"] = {"format": "YUV420", "size": (320, 240), **lores}
        return cfg

    def configure(self, config: dict[str, Any]) -> None:
        """Apply a configuration made by create_*_configuration."""
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        self.config = config
        self.buffer_count = config["buffer_count"]
        self.fps = float(config["controls"].get("FrameRate", 30.0))
        mw, mh = config["main"]["size"]
        self.main_scene = DemoScene(mw, mh, 320, seed=3)
        if config["lores"] is not None:
            lw, _lh = config["lores"]["size"]
            self.lores_scene = DemoScene(mw, mh, lw, seed=3)

    def start(self, config: dict | None = None, show_preview: bool = False) -> None:
        """Start the camera."""
        if config is not None:
            self.configure(config)
        if not self.config:
            raise RuntimeError("Camera has not been configured")
        self.started = True
        self._t0 = time.monotonic()

    def capture_request(self, wait: Any = None, flush: Any = None) -> CompletedRequest:
        """The next completed request (caller must release it)."""
        if not self.started:
            raise RuntimeError("Camera not started")
        if Picamera2.fail_after is not None and self.frames >= Picamera2.fail_after:
            raise RuntimeError("Camera frontend has timed out!")
        # Like the real camera, a request completes only when the sensor has delivered the frame.
        delay = self._t0 + self.frames / self.fps - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        req = CompletedRequest(self, self.frames)
        self.frames += 1
        return req

    def start_encoder(self, encoder: Any = None, output: Any = None, pts: Any = None,
                      quality: Any = None, name: str | None = None) -> None:
        """Start an encoder on a stream (see encoders.py); clips use it."""
        encoder._start(self, output, name or "main")
        self.encoders = [*getattr(self, "encoders", []), encoder]

    def stop_encoder(self, encoders: Any = None) -> None:
        """Stop the running encoders."""
        for enc in getattr(self, "encoders", []):
            enc._stop()
        self.encoders = []

    def stop(self) -> None:
        """Stop the camera."""
        self.started = False

    def close(self) -> None:
        """Release the camera."""
        self.closed = True
