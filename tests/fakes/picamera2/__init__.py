"""A stand-in for picamera2 that behaves like the library where homesec depends on it.

There is no camera here, so this fake is the only place the picamera2 source is exercised before
it meets a Pi. A fake that is kinder than the library hides bugs (issue 15: the old fake raised on
a stall, the real library blocks forever), so each behaviour below is modelled on picamera2's own
source (0.3.x; the file is named in the comment next to it) and the Pi's camera stack:

- `Picamera2(camera_num)` fails like the constructor: no camera -> IndexError (picamera2.py:
  `self.global_camera_info()[camera_num]`); camera held by another object -> RuntimeError "Camera
  __init__ sequence did not complete." (picamera2.py: `camera.acquire()` inside the try). Once
  built, the object holds the camera until `close()` (picamera2.py registers `atexit` close).
  Without an `allocator=`, the constructor makes a DmaAllocator after acquiring the camera, and a
  PermissionError from /dev/dma_heap escapes it (dma_heap.py catches only FileNotFoundError):
  the camera then stays acquired by an object nobody holds.
- `create_video_configuration` rounds sizes down to even (picamera2.py `align_stream(optimal=
  False)`), adds `preserve_ar`, and merges default controls (FrameDurationLimits, NoiseReduction).
  `configure` copies the top-level dict but writes the final `size`, `stride` and `framesize`
  back into the stream dicts it was given (picamera2.py `configure_` + `_update_stream_config`),
  refuses odd sizes and a lores stream larger than main (picamera2.py `check_stream_config`,
  `check_camera_config`), and allocates buffers, which can fail (allocators/dmaallocator.py:
  the DMA heap ioctl raises OSError, e.g. ENOMEM on a 512 MB Pi). `camera_configuration()` is
  the result.
- A camera thread (picamera2.py `start()` starts the NullPreview event loop) completes a request
  every frame duration while the pipeline has a free buffer. Of the completed requests only the
  newest is kept, older ones are recycled (picamera2.py `process_requests`, `_max_queue_len` 1):
  a slow consumer silently loses frames, visible only as gaps in `SensorTimestamp`, and a request
  can predate the call that fetched it. A request's buffers return to the camera only on
  `release()` (request.py ref counting); releasing twice raises RuntimeError; with every buffer
  held the pipeline stalls.
- `capture_request(wait=None)` queues a Job (job.py) that the camera thread completes with the
  next request; with no `wait` it blocks for as long as it takes: a camera that stops delivering
  ("Camera frontend has timed out!" is only a libcamera log line) blocks it forever. With
  `wait=seconds` it raises TimeoutError, and the job stays queued. `cancel_all_and_flush()`
  cancels queued jobs (picamera2.py).
- `stop()` is itself a job that waits behind the queued ones (picamera2.py `dispatch_functions(
  [self.stop_], wait=True, immediate=True)`): after a timed-out capture it blocks until
  `cancel_all_and_flush()`. It returns once the camera thread has stopped.
- Metadata: `SensorTimestamp` in ns on the monotonic clock (V4L2 buffer timestamps; picamera2.py
  `capture_request(flush=True)` compares it with `time.monotonic_ns()`), `FrameDuration` in us.

Data layout: "RGB888" main arrays are (h, w, 3) uint8 in B, G, R order; "YUV420" arrays are
(h * 3 // 2, stride) with the Y plane in the first h rows and the row padding left in
(request.py `Helpers.make_array`). Frames come from the demo scene.

Test knobs (class attributes, not picamera2 API): `cameras` (how many are attached),
`stall_after` (the sensor stops delivering after that many frames of an instance; None = never;
`fail_after` is its old name), `fail_configure` / `fail_start` (exceptions the next calls raise,
one each), `dma_heap_error` (raised when a DmaAllocator opens the heap), `adjust` (sizes libcamera
adjusts a stream to: {"lores": (w, h)}), `stop_hangs` (an Event: libcamera's camera.stop() blocks
until it is set), `make_array_error` (raised by make_array), `instances` (every object made);
per instance `config` (what homesec asked for: format and size per stream, controls,
buffer_count), `outstanding` (requests handed out and not released), `lost_frames`.
One deviation, so a broken test fails instead of hanging the suite: a `stop()` that would block
for good raises AssertionError after STOP_SAFETY_S.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError, Future
from typing import Any, ClassVar

import cv2
import numpy as np

from homesec.camera.demo import DemoScene

STOP_SAFETY_S = 60.0
STRIDE_ALIGN = 64  # libcamera's Raspberry Pi pipelines align rows to 64 bytes (PiSP)


class _Job:
    """A list of functions the camera thread runs until each says it is done (job.py)."""

    def __init__(self, functions: list[Any]) -> None:
        self._functions = list(functions)
        self._future: Future[Any] = Future()
        self._future.set_running_or_notify_cancel()

    def execute(self) -> bool:
        """Run what can run now; True when finished (job.py `execute`)."""
        try:
            result = None
            while self._functions:
                done, result = self._functions[0]()
                if not done:
                    return False
                self._functions.pop(0)
            if not self._future.done():
                self._future.set_result(result)
        except Exception as exc:  # job.py: an exception becomes the future's
            self._functions = []
            if not self._future.done():
                self._future.set_exception(exc)
        return True

    def get_result(self, timeout: float | None) -> Any:
        """job.py: `Future.result(timeout)` -> TimeoutError, CancelledError after a cancel."""
        return self._future.result(timeout=timeout)

    def cancel(self) -> None:
        """job.py `cancel`: the waiter gets CancelledError."""
        if not self._future.done():
            self._future.set_exception(CancelledError())


class CompletedRequest:
    """One completed request; its buffers belong to the application until the last release."""

    def __init__(self, cam: Picamera2, index: int, timestamp_ns: int) -> None:
        self._cam = cam
        self.index = index
        self.timestamp_ns = timestamp_ns
        self.ref_count = 1  # request.py: the "use" of being in completed_requests
        self.config = {k: dict(v) if isinstance(v, dict) else v
                       for k, v in cam.camera_config.items()}
        self._buffers: dict[str, np.ndarray] = {}

    @property
    def released(self) -> bool:
        """True once every reference was released (buffers back with the camera)."""
        return self.ref_count == 0

    def acquire(self) -> None:
        """request.py `acquire`."""
        with self._cam._req_lock:
            if self.ref_count == 0:
                raise RuntimeError("CompletedRequest: acquiring lock with ref_count 0")
            self.ref_count += 1

    def release(self) -> None:
        """request.py `release`: twice raises; at zero the buffer goes back to the camera."""
        with self._cam._req_lock:
            self.ref_count -= 1
            if self.ref_count < 0:
                raise RuntimeError("CompletedRequest: lock now has negative ref_count")
            if self.ref_count == 0:
                self._cam._held.discard(self)
                self._cam._handed_out.discard(self)
                self._buffers.clear()

    def get_metadata(self) -> dict[str, Any]:
        """A few of libcamera's metadata items, with picamera2's names and units."""
        dur_us = round(self._cam.frame_duration_s * 1e6)
        return {"SensorTimestamp": self.timestamp_ns, "FrameDuration": dur_us,
                "ExposureTime": dur_us // 2, "AnalogueGain": 1.0, "DigitalGain": 1.0}

    def make_array(self, name: str) -> np.ndarray:
        """A copy of the named stream's image (request.py `make_array` via `make_buffer`)."""
        if self.ref_count <= 0:
            raise RuntimeError("request already released")  # request.py: self.request is None
        if Picamera2.make_array_error is not None:
            raise Picamera2.make_array_error
        if self.config.get(name) is None:
            raise RuntimeError(f"Stream {name!r} is not defined")  # request.py `make_buffer`
        if name not in self._buffers:
            self._buffers[name] = self._render(name)
        return self._buffers[name].copy()

    def _render(self, name: str) -> np.ndarray:
        cfg = self.config[name]
        w, h = cfg["size"]
        t = self.index * self._cam.frame_duration_s
        if cfg["format"] == "YUV420":
            luma = self._cam.lores_scene.luma(t)
            if luma.shape != (h, w):
                luma = cv2.resize(luma, (w, h), interpolation=cv2.INTER_AREA)
            out = np.full((h * 3 // 2, cfg["stride"]), 128, np.uint8)
            out[:h, :w] = luma
            return out
        if cfg["format"] in ("RGB888", "BGR888"):
            img = self._cam.main_scene.color(t)
            if img.shape[:2] != (h, w):
                img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
            return img
        raise ValueError(f"fake does not render format {cfg['format']}")


def _even(size: tuple[int, int]) -> tuple[int, int]:
    """picamera2.py `align_stream(optimal=False)`: both dimensions rounded down to even."""
    return (size[0] - size[0] % 2, size[1] - size[1] % 2)


def _stride(fmt: str, width: int) -> int:
    bpp = {"YUV420": 1, "RGB888": 3, "BGR888": 3, "XBGR8888": 4, "XRGB8888": 4}[fmt]
    return (width * bpp + STRIDE_ALIGN - 1) // STRIDE_ALIGN * STRIDE_ALIGN


class Picamera2:
    """Fake camera: the calls homesec makes, with picamera2's signatures and behaviour."""

    cameras: ClassVar[int] = 1
    stall_after: ClassVar[int | None] = None
    fail_after: ClassVar[int | None] = None  # the old name of stall_after
    fail_configure: ClassVar[list[BaseException]] = []
    fail_start: ClassVar[list[BaseException]] = []
    dma_heap_error: ClassVar[BaseException | None] = None
    adjust: ClassVar[dict[str, tuple[int, int]]] = {}
    stop_hangs: ClassVar[threading.Event | None] = None
    make_array_error: ClassVar[BaseException | None] = None
    instances: ClassVar[list[Picamera2]] = []
    _acquired: ClassVar[set[int]] = set()

    def __init__(self, camera_num: int = 0, verbose_console: Any = None, tuning: Any = None,
                 allocator: Any = None) -> None:
        # picamera2.py: `camera_num = self.global_camera_info()[camera_num]['Num']`.
        if camera_num >= Picamera2.cameras:
            raise IndexError("list index out of range")
        Picamera2.instances.append(self)
        self.camera_num = camera_num
        self.is_open = False
        self.started = False
        self.closed = False
        self.camera_config: dict[str, Any] | None = None
        self.config: dict[str, Any] = {}
        self.frames = 0
        self.lost_frames = 0
        self.frame_duration_s = 1 / 30
        self._lock = threading.RLock()  # picamera2.py `self.lock`: jobs, completed requests
        self._req_lock = threading.Lock()  # picamera2.py `request_lock`: reference counts
        self._jobs: list[_Job] = []
        self._completed: list[CompletedRequest] = []
        self._held: set[CompletedRequest] = set()  # every request with ref_count > 0
        self._handed_out: set[CompletedRequest] = set()
        self._prod = threading.Event()
        self._thread: threading.Thread | None = None
        # picamera2.py `_open_camera`: `camera.acquire()` throws if the camera is taken, and the
        # constructor turns any failure into this RuntimeError.
        if camera_num in Picamera2._acquired:
            raise RuntimeError("Camera __init__ sequence did not complete.")
        Picamera2._acquired.add(camera_num)
        self.is_open = True
        # picamera2.py: `atexit.register(self.close)`, then `DmaAllocator()` if none was given:
        # a PermissionError from the heap escapes with the camera still acquired.
        if allocator is None:
            from .allocators import DmaAllocator

            allocator = DmaAllocator()
        self.allocator = allocator

    @property
    def outstanding(self) -> int:
        """Requests handed to the caller and not yet released (test helper)."""
        return len(self._handed_out)

    # ---- configuration -----------------------------------------------------------------

    def create_video_configuration(self, main: dict | None = None, lores: dict | None = None,
                                   raw: dict | None = None, transform: Any = None,
                                   colour_space: Any = None, buffer_count: int = 6,
                                   controls: dict | None = None, display: str | None = "main",
                                   encode: str | None = "main", queue: bool = True,
                                   sensor: dict | None = None, use_case: str = "video"
                                   ) -> dict[str, Any]:
        """picamera2.py `create_video_configuration` (without raw stream, transform, colours)."""
        if not self.is_open:
            raise RuntimeError("Camera not opened")
        main_cfg = self._stream({"format": "XBGR8888", "size": (1280, 720), "preserve_ar": True},
                                main or {})
        lores_cfg = None
        if lores is not None:
            lores_cfg = self._stream({"format": "YUV420", "size": main_cfg["size"],
                                      "preserve_ar": False}, lores)
        ctrl = {"NoiseReductionMode": 1, "FrameDurationLimits": (33333, 33333)} | dict(
            controls or {})
        return {"use_case": use_case, "buffer_count": buffer_count, "queue": queue,
                "main": main_cfg, "lores": lores_cfg, "raw": None, "controls": ctrl,
                "display": display, "encode": encode}

    @staticmethod
    def _stream(defaults: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
        """picamera2.py `_make_initial_stream_config` + `align_stream(optimal=False)`."""
        valid = ("format", "size", "stride", "preserve_ar")
        for key in updates:
            if key not in valid:
                raise ValueError(f"Bad key {key!r}: valid stream configuration keys are {valid}")
        cfg = {**defaults, **updates}
        cfg["size"] = _even(tuple(cfg["size"]))
        return cfg

    @staticmethod
    def _check_stream(cfg: Any, name: str) -> None:
        """picamera2.py `check_stream_config`."""
        if not isinstance(cfg, dict):
            raise RuntimeError(name + " stream should be a dictionary")
        size = cfg.get("size")
        if not isinstance(size, tuple) or len(size) != 2:
            raise RuntimeError("size in " + name + " stream should be (width, height)")
        if size[0] % 2 or size[1] % 2:
            raise RuntimeError("width and height should be even")

    def configure(self, camera_config: dict[str, Any]) -> None:
        """picamera2.py `configure_`: check, let libcamera adjust, write back, allocate."""
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        camera_config = camera_config.copy()  # top level only: the stream dicts are shared
        self.camera_config = None
        self._check_stream(camera_config["main"], "main")
        lores = camera_config.get("lores")
        if lores is not None:
            self._check_stream(lores, "lores")
            (mw, mh), (lw, lh) = camera_config["main"]["size"], lores["size"]
            if lw > mw or lh > mh:
                raise RuntimeError("lores stream dimensions may not exceed main stream")
            if lores["format"] not in ("YUV420", "YVU420"):
                raise RuntimeError("lores stream must be YUV")  # VC4 (Pi 4 and older)
        self.config = {
            "main": {"format": camera_config["main"]["format"],
                     "size": camera_config["main"]["size"]},
            "lores": None if lores is None else {"format": lores["format"],
                                                 "size": lores["size"]},
            "controls": dict(camera_config["controls"]),
            "buffer_count": camera_config["buffer_count"]}
        for name in ("main", "lores"):  # libcamera `validate()` -> Adjusted; then write back
            stream = camera_config.get(name)
            if stream is None:
                continue
            if name in Picamera2.adjust:
                stream["size"] = Picamera2.adjust[name]
            stream["stride"] = _stride(stream["format"], stream["size"][0])
            rows = stream["size"][1] * 3 // 2 if stream["format"] == "YUV420" else stream[
                "size"][1]
            stream["framesize"] = stream["stride"] * rows
        if Picamera2.fail_configure:  # dmaallocator.py `allocate`: the heap ioctl fails
            raise Picamera2.fail_configure.pop(0)
        controls = camera_config["controls"]
        if "FrameRate" in controls:
            self.frame_duration_s = 1.0 / float(controls["FrameRate"])
        else:
            self.frame_duration_s = controls["FrameDurationLimits"][0] / 1e6
        mw, mh = camera_config["main"]["size"]
        self.main_scene = DemoScene(mw, mh, 320, seed=3)
        if lores is not None:
            self.lores_scene = DemoScene(mw, mh, lores["size"][0], seed=3)
        self._max_queue = 1 if camera_config["queue"] and camera_config["buffer_count"] > 1 else 0
        self.buffer_count = camera_config["buffer_count"]
        self.camera_config = camera_config

    def camera_configuration(self) -> dict[str, Any] | None:
        """picamera2.py: the configuration in force, with libcamera's sizes and strides."""
        return self.camera_config

    def stream_configuration(self, name: str = "main") -> dict[str, Any]:
        """picamera2.py: one stream of it."""
        assert self.camera_config is not None
        return self.camera_config[name]

    # ---- running -----------------------------------------------------------------------

    def start(self, config: dict | None = None, show_preview: bool | None = False) -> None:
        """picamera2.py `start`: configure if given, start the event loop and the camera."""
        if config is not None:
            self.configure(config)
        if self.camera_config is None:
            raise RuntimeError("Camera has not been configured")
        if self.started:
            return
        if Picamera2.fail_start:  # picamera2.py `start_`: camera.start() throws
            raise Picamera2.fail_start.pop(0)
        self.started = True
        self._t0_ns = time.monotonic_ns()
        self._thread = threading.Thread(target=self._loop, name="fake-picamera2", daemon=True)
        self._thread.start()

    def _may_complete(self) -> bool:
        stall = Picamera2.stall_after if Picamera2.stall_after is not None else (
            Picamera2.fail_after)
        if stall is not None and self.frames >= stall:
            return False  # the frontend timed out: libcamera logs it, nothing completes
        return len(self._held) < self.buffer_count  # a request needs a free buffer

    def _loop(self) -> None:
        """The event loop: a request per frame time (when a buffer is free), then the jobs."""
        dur_ns = round(self.frame_duration_s * 1e9)
        seq = 1
        while self.started:
            due = self._t0_ns + seq * dur_ns
            wait = (due - time.monotonic_ns()) / 1e9
            if wait > 0 and self._prod.wait(wait):
                self._prod.clear()
            now = time.monotonic_ns()
            with self._lock:
                if not self.started:
                    break
                if now >= due:
                    with self._req_lock:
                        complete = self._may_complete()
                        if complete:
                            req = CompletedRequest(self, seq, due)
                            self._held.add(req)
                            self.frames += 1
                            self._completed.append(req)
                    seq += 1
                    while self._t0_ns + seq * dur_ns < now:  # far behind: those frames are gone
                        seq += 1
                # picamera2.py `process_requests`: the jobs first, then keep only the newest.
                while self._jobs and self._jobs[0].execute():
                    self._jobs.pop(0)
                while len(self._completed) > self._max_queue:
                    self._completed.pop(0).release()
                    self.lost_frames += 1
        with self._lock:
            while self._completed:
                self._completed.pop(0).release()

    def _dispatch(self, functions: list[Any], wait: Any, immediate: bool = False) -> Any:
        """picamera2.py `dispatch_functions`: queue a job for the event loop, wait for it."""
        timeout = None if wait is None or wait is True else float(wait)
        job = _Job(functions)
        with self._lock:
            only = not self._jobs
            self._jobs.append(job)
            if only and (self._completed or immediate):
                self._prod.set()
        if wait is False:
            return job
        return job.get_result(timeout)

    def _capture_request_(self) -> tuple[bool, Any]:
        if not self._completed:
            return False, None
        req = self._completed.pop(0)
        self._handed_out.add(req)
        return True, req

    def capture_request(self, wait: Any = None, signal_function: Any = None,
                        flush: Any = None) -> CompletedRequest:
        """picamera2.py: the next completed request; blocks without `wait`, TimeoutError with."""
        if not self.started:
            # The real call has no such check: with the camera stopped it waits forever.
            raise RuntimeError("fake: capture_request on a camera that is not started")
        return self._dispatch([self._capture_request_], wait)

    def cancel_all_and_flush(self) -> None:
        """picamera2.py: cancel and drop every queued job."""
        with self._lock:
            for job in self._jobs:
                job.cancel()
            self._jobs = []

    def _stop_(self) -> tuple[bool, None]:
        if Picamera2.stop_hangs is not None:
            Picamera2.stop_hangs.wait()  # libcamera camera.stop() stuck in the driver
        self.started = False
        return True, None

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
        """picamera2.py `stop`: a job behind the queued ones; returns when the loop has stopped."""
        if not self.started:
            return
        job = self._dispatch([self._stop_], False, immediate=True)
        try:
            job.get_result(STOP_SAFETY_S)
        except TimeoutError:
            raise AssertionError("fake picamera2: stop() would block for good (a queued job "
                                 "never completes: call cancel_all_and_flush() first)") from None
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        """picamera2.py `close`: stop, then release the camera."""
        if not self.is_open:
            return
        self.stop()
        self.is_open = False
        self.closed = True
        Picamera2._acquired.discard(self.camera_num)

