"""Raspberry Pi camera through picamera2 (imported only when this source is chosen).

Two streams: `main` (BGR, "RGB888" in picamera2's naming, at snapshot resolution) and `lores`
(YUV420, small). Detection reads the Y plane of `lores` directly: no colour conversion, no resize
of the big image, which is what makes 15-30 fps affordable on a Pi Zero 2 W. The main image is only
copied out of the request when a snapshot or the live view asks for it; the request is released
at the next `read()` so libcamera gets its buffer back promptly.

How picamera2 really behaves, and what this class does about it (docs/picamera2.md has more):
- A hung camera never raises: libcamera's "Camera frontend has timed out!" is a log line and
  `capture_request()` waits forever. So every wait is bounded (`capture_request(wait=...)` raises
  TimeoutError), and closing first cancels the stuck job (`cancel_all_and_flush()`), since `stop()`
  otherwise queues behind it. Closing itself runs on a helper thread with a deadline; if the
  driver does not let go, `CameraHung` tells the daemon to exit so systemd restarts the process.
- The constructor acquires the camera: every failure after it (configure, buffer allocation,
  start) closes the object again, or each retry would find the camera busy until the process dies.
  The DMA-heap allocator is made before the camera is acquired, so a PermissionError there leaves
  nothing acquired and is reported with its fix.
- picamera2 rounds sizes down to even and libcamera may adjust them; the sizes and the stride
  used are those in the configuration after `configure()`, not the ones asked for.
- Only the newest completed request is kept: a slow consumer loses frames silently. A frame's time
  is its `SensorTimestamp` (ns, monotonic clock), and gaps between timestamps count lost frames.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from typing import Any

from homesec.camera.base import CameraError, CameraHung, Frame

log = logging.getLogger("homesec.camera.picam")

# The apt package that provides each module `import picamera2` needs (Raspberry Pi OS names).
APT_PACKAGES = {
    "picamera2": "python3-picamera2", "libcamera": "python3-libcamera", "pykms": "python3-kms++",
    "kms": "python3-kms++", "PIL": "python3-pil", "av": "python3-av",
    "simplejpeg": "python3-simplejpeg", "piexif": "python3-piexif", "pidng": "python3-pidng",
    "v4l2": "python3-v4l2", "prctl": "python3-prctl", "numpy": "python3-numpy",
}
DMA_HEAP_FIX = (
    "the service user needs group 'video' (which owns /dev/dma_heap/* on Raspberry Pi OS) and the "
    "unit needs DeviceAllow=char-dma_heap rw (systemd/homesec-capture.service has both; a drop-in "
    "with DevicePolicy=closed or PrivateDevices=yes removes them)"
)


def import_error_message(exc: ImportError) -> str:
    """What to install when `import picamera2` fails, naming the missing module's apt package."""
    missing = (exc.name or "").split(".")[0]
    if missing and missing != "picamera2" and missing in APT_PACKAGES:
        return (f"picamera2 is installed but cannot be imported: module {missing!r} is missing; "
                f"install it with `sudo apt install {APT_PACKAGES[missing]}` ({exc})")
    return ("picamera2 is not importable: on a Pi install python3-picamera2 with apt and make the "
            "venv with --system-site-packages; elsewhere use camera.source = 'opencv' or 'demo' "
            f"({exc})")


class PicameraCamera:
    """Frames from picamera2: lores Y plane for detection, main stream on demand."""

    def __init__(
        self, width: int = 1280, height: int = 720, lores_width: int = 320,
        lores_height: int = 240, fps: float = 15.0, camera_num: int = 0,
        frame_timeout_s: float = 3.0, close_timeout_s: float = 5.0,
    ) -> None:
        self.main_size = (width, height)
        self.lores_size = (lores_width, lores_height)
        self.fps = fps
        self.camera_num = camera_num
        self.frame_timeout_s = max(frame_timeout_s, 4.0 / fps)  # a slow frame rate is no hang
        self.close_timeout_s = close_timeout_s
        self._cam: Any = None
        self._request: Any = None
        self._index = 0
        self._last_ts_ns: int | None = None
        self.frames_lost = 0  # frames the camera delivered that we never saw (status shows it)
        self.hung = False

    # ---- open ---------------------------------------------------------------------------

    def open(self) -> None:
        """Import picamera2, configure main + lores streams, start the camera.

        Raises CameraError with the cause (and nothing left acquired) when any step fails.
        """
        self.close()
        try:
            from picamera2 import Picamera2  # lazy: only present on a Pi, from apt
        except ImportError as exc:
            raise CameraError(import_error_message(exc)) from None
        allocator = self._make_allocator()
        try:
            cam = Picamera2(self.camera_num) if allocator is None else Picamera2(
                self.camera_num, allocator=allocator)
        except IndexError:
            raise CameraError(f"no Pi camera found (camera {self.camera_num}): check the ribbon "
                              "cable and `rpicam-hello --list-cameras`") from None
        except PermissionError as exc:
            raise CameraError(f"no access to the camera's DMA heap ({exc}): {DMA_HEAP_FIX}"
                              ) from None
        except Exception as exc:  # picamera2 wraps "camera busy" and others into RuntimeError
            raise CameraError(f"cannot open the Pi camera: {exc} (another program, such as "
                              "rpicam-hello or a second homesec, may be using it)") from exc
        try:
            self._configure_and_start(cam)
        except BaseException as exc:
            # The constructor acquired the camera (and registered an atexit close): let go now,
            # or every retry finds it busy until the process exits.
            self._close_camera(cam)
            if isinstance(exc, PermissionError):
                raise CameraError(f"no access to the camera's DMA heap ({exc}): {DMA_HEAP_FIX}"
                                  ) from None
            if isinstance(exc, Exception):
                raise CameraError(f"cannot start the Pi camera: {exc}") from exc
            raise
        self._cam = cam
        self._last_ts_ns = None

    def _make_allocator(self) -> Any:
        """picamera2's DMA-heap allocator, made before the camera is acquired (None when this
        picamera2 has no allocators module; then the constructor makes it itself)."""
        try:
            from picamera2.allocators import DmaAllocator
        except ImportError:
            return None
        try:
            return DmaAllocator()
        except PermissionError as exc:
            raise CameraError(f"no access to the camera's DMA heap ({exc}): {DMA_HEAP_FIX}"
                              ) from None
        except Exception as exc:  # "Could not open any dmaHeap device": not a Pi kernel
            raise CameraError(f"cannot open the camera's DMA heap: {exc}") from exc

    def _configure_and_start(self, cam: Any) -> None:
        config = cam.create_video_configuration(
            main={"size": self.main_size, "format": "RGB888"},
            lores={"size": self.lores_size, "format": "YUV420"},
            controls={"FrameRate": float(self.fps)},
            buffer_count=4,
        )
        cam.configure(config)
        # What picamera2 and libcamera made of it: even sizes, maybe adjusted, and the stride.
        final = cam.camera_configuration() or config
        self.main_size = tuple(final["main"]["size"])
        lores = final["lores"]
        self.lores_size = tuple(lores["size"])  # the array's stride pads beyond this width
        cam.start()

    # ---- read ---------------------------------------------------------------------------

    @property
    def picamera2(self) -> Any:
        """The open Picamera2 object (None while closed): the clip recorder starts its encoder."""
        return self._cam

    def _release(self) -> None:
        if self._request is not None:
            request, self._request = self._request, None
            request.release()

    def read(self) -> Frame:
        """Wait (bounded) for the next request; hand out its lores Y plane, main on demand."""
        if self._cam is None:
            raise CameraError("camera not open")
        try:
            self._release()
        except Exception as exc:
            raise CameraError(f"Pi camera: cannot release the last frame: {exc}") from exc
        try:
            request = self._cam.capture_request(wait=self.frame_timeout_s)
        except (TimeoutError, concurrent.futures.TimeoutError):
            raise CameraError(f"Pi camera delivered no frame for {self.frame_timeout_s:g} s "
                              "(libcamera: frontend timeout; check the ribbon cable)") from None
        except Exception as exc:
            raise CameraError(f"Pi camera stopped delivering frames: {exc}") from exc
        # From here the request is ours: release it on every failure (else the pipeline starves).
        try:
            lores = request.make_array("lores")
            metadata = request.get_metadata()
        except BaseException as exc:
            request.release()
            if isinstance(exc, Exception):
                raise CameraError(f"Pi camera: cannot read the frame: {exc}") from exc
            raise
        self._request = request
        w, h = self.lores_size
        # YUV420 arrives as (h * 3 / 2, stride): the first h rows are Y; stride may pad width.
        luma = lores[:h, :w]
        mono, wall = self._frame_time(metadata)
        i = self._index
        self._index += 1

        def color() -> Any:
            if self._request is not request:
                raise CameraError("frame colour asked for after the next frame was read")
            return request.make_array("main")

        return Frame(index=i, mono_s=mono, wall_s=wall, luma=luma, _color_fn=color,
                     size=self.main_size)

    def _frame_time(self, metadata: dict[str, Any]) -> tuple[float, float]:
        """(monotonic, wall) time of the frame from SensorTimestamp; counts frames lost since the
        previous one from the gap (FrameDuration, else the fps asked for)."""
        now_m, now_w = time.monotonic(), time.time()
        ts = metadata.get("SensorTimestamp")
        if not isinstance(ts, int) or ts <= 0:
            return now_m, now_w
        if self._last_ts_ns is not None:
            dur_us = metadata.get("FrameDuration") or 1e6 / self.fps
            gap = round((ts - self._last_ts_ns) / (float(dur_us) * 1e3)) - 1
            if gap > 0:
                self.frames_lost += gap
        self._last_ts_ns = ts
        mono = ts / 1e9
        return mono, now_w - (now_m - mono)

    # ---- close --------------------------------------------------------------------------

    def _close_camera(self, cam: Any) -> None:
        """Cancel queued jobs, stop, close: on a helper thread, within close_timeout_s.

        Raises CameraHung when the driver does not let go in time (only a new process helps).
        """
        errors: list[BaseException] = []

        def work() -> None:
            try:
                cam.cancel_all_and_flush()  # else stop() waits behind a stuck capture job
                try:
                    cam.stop()
                finally:
                    cam.close()
            except BaseException as exc:  # reported below, on the caller's thread
                errors.append(exc)

        t = threading.Thread(target=work, name="picamera2-close", daemon=True)
        t.start()
        t.join(self.close_timeout_s)
        if t.is_alive():
            self.hung = True
            raise CameraHung(f"the Pi camera did not stop within {self.close_timeout_s:g} s "
                             "(driver stuck): the process must restart")
        if errors:
            log.warning("closing the Pi camera: %s", errors[0])

    def close(self) -> None:
        """Release the request, stop and close the camera (bounded; CameraHung if stuck)."""
        if self.hung:
            return  # the stuck close still owns the camera; only a new process can take it
        cam, self._cam = self._cam, None
        try:
            self._release()
        except Exception as exc:  # the camera is going away anyway
            log.debug("releasing the last request: %s", exc)
        if cam is not None:
            self._close_camera(cam)
