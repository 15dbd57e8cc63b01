"""Event clips on a Raspberry Pi camera: the camera's own H.264 encoder on the main stream,
picamera2's `CircularOutput2` as the pre-roll ring and `PyavOutput` to write each MP4, as
picamera2's example `capture_circular_improved.py` does.

Why the camera's encoder: on a Pi Zero 2 W, 3 and 4 `H264Encoder` is the VideoCore hardware
encoder and costs the CPU almost nothing. On a Pi 5 (no hardware encoder) picamera2 silently
gives libx264 instead (its `LibavH264Encoder`: preset ultrafast, tune zerolatency); we keep the
clip at the main stream size the config asks for (1280x720 by default) at `clips.fps`, which a
Pi 5 core encodes with room to spare (see docs/clips.md for the numbers on this machine).

How the pre-roll works: CircularOutput2 keeps the last `pre_roll_s` of packets; when an output is
opened it writes from the oldest buffered I-frame on, one buffered packet per new packet, so the
file runs `pre_roll_s` behind the camera. The I-frame period is one second (`iperiod = fps`), so
the clip starts within a second of "pre-roll before the confirmation". Closing the output drops
what is still buffered, so it is closed `pre_roll_s` after the event's end. SPS/PPS are repeated
before each I-frame (`repeat=True`): a clip that starts mid-stream must carry them.

Nothing here runs on the capture loop: `submit()` only notes times; opening, closing and renaming
files happen in this thread. Files are written as `.mp4.part` and renamed when closed, like the
software path (capture/recording.py), and registered by the same ClipIndex.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

from homesec.camera.base import Frame
from homesec.capture.events import Event
from homesec.capture.recording import PART_SUFFIX, ClipFile, ClipIndex, clip_fps, event_key
from homesec.config import Config

log = logging.getLogger("homesec.capture.picam_recording")

BITS_PER_PIXEL = 0.1  # ~1.4 Mbit/s at 1280x720, 15 fps: clear for a static camera scene


def _counting_output(base: type, path: Path) -> Any:
    """A PyavOutput that writes MP4 with the index at the front and counts what it muxes."""
    import av

    class ClipOutput(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__(str(path), format="mp4")
            self.frames = 0
            self.first_ts: int | None = None
            self.last_ts: int | None = None
            self.failed: Exception | None = None
            self.error_callback = self._error

        def _error(self, exc: Exception) -> None:
            self.failed = exc

        def start(self) -> None:
            # PyavOutput.start opens the container without options; +faststart moves the index
            # to the front so a phone can play before it has the whole file.
            self._container = av.open(self._output_name, "w", format=self._format,
                                      options={"movflags": "+faststart"})
            self.recording = True

        def outputframe(self, frame: bytes, keyframe: bool = True, timestamp: int | None = None,
                        packet: Any = None, audio: bool = False) -> None:
            super().outputframe(frame, keyframe, timestamp=timestamp, packet=packet, audio=audio)
            if timestamp is not None:
                self.first_ts = timestamp if self.first_ts is None else self.first_ts
                self.last_ts = timestamp
            self.frames += 1

    return ClipOutput()


class PicameraClipRecorder(threading.Thread):
    """Clips from picamera2's encoder; the same interface as PyavClipRecorder."""

    def __init__(self, cfg: Config, camera: Any, index: ClipIndex) -> None:
        super().__init__(name="clips", daemon=True)
        self.cfg = cfg
        self.camera = camera
        self.index = index
        self.fps = clip_fps(cfg)
        self.pre_roll_s = cfg.clips.pre_roll_s
        self.control: queue.SimpleQueue[tuple[str, Any, float] | None] = queue.SimpleQueue()
        self._picam: Any = None
        self.encoder: Any = None
        self.circular: Any = None
        self.clips_written = 0
        self.clips_failed = 0
        self._job: dict[str, Any] | None = None
        self._old_picam: Any = None

    # -- from the capture loop ------------------------------------------------------------------

    def submit(self, frame: Frame) -> None:
        """The camera delivers frames: (re)start the encoder when the camera was (re)opened."""
        picam = getattr(self.camera, "picamera2", None)
        if picam is not None and picam is not self._picam:
            self._picam = picam
            self.control.put(("camera", picam, frame.mono_s))

    def event_started(self, ev: Event) -> None:
        """Open a clip (the circular buffer supplies the pre-roll)."""
        self.control.put(("start", ev, time.monotonic()))

    def event_ended(self, ev: Event, now_mono: float) -> None:
        """Close it once the buffered pre-roll's worth after the end has been written."""
        self.control.put(("end", ev, now_mono))

    def stats(self) -> dict[str, Any]:
        """For status.json."""
        return {"enabled": True, "encoder": "picamera2 H264Encoder", "fps": self.fps,
                "frames": getattr(self.encoder, "frames", None), "dropped_frames": 0,
                "recording": self._job is not None, "clips": self.clips_written,
                "failed": self.clips_failed}

    # -- the thread ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the clip thread and the clip index."""
        self.index.start()
        super().start()

    def _start_encoder(self, picam: Any) -> None:
        try:
            from picamera2.encoders import H264Encoder  # lazy: from apt, on a Pi
            from picamera2.outputs import CircularOutput2
        except ImportError as exc:
            log.error("picamera2's encoders are not importable (%s): events get no clips", exc)
            return

        if self.encoder is not None:
            self._close_job()
            with contextlib.suppress(Exception):  # the old camera is gone
                if self._old_picam is not None:
                    self._old_picam.stop_encoder()
        w, h = self.cfg.camera.width, self.cfg.camera.height
        self.encoder = H264Encoder(bitrate=int(w * h * self.fps * BITS_PER_PIXEL), repeat=True,
                                   iperiod=max(1, round(self.fps)), framerate=round(self.fps))
        # (an int: the encoder hands `framerate` to PyavOutput as the stream's rate, which PyAV
        # accepts only as an int or a Fraction)
        self.circular = CircularOutput2(buffer_duration_ms=int(self.pre_roll_s * 1000))
        try:
            picam.start_encoder(self.encoder, self.circular, name="main")
        except Exception as exc:  # libcamera and V4L2 raise all sorts
            log.error("cannot start the camera's H.264 encoder (%s): no clips", exc)
            self.encoder = None
            return
        self._old_picam = picam

    def _open_job(self, ev: Event) -> None:
        from picamera2.outputs import PyavOutput

        if self.encoder is None:
            return
        if self._job is not None:  # a new event while the last one drains: go on in this clip
            self._job["until"] = None
            return
        day, key = event_key(ev)
        self._job = {"event": ev, "day": day, "key": key, "part": 0, "until": None}
        self._open_part(PyavOutput)

    def _open_part(self, base: type) -> None:
        job = self._job
        assert job is not None
        job["part"] += 1
        final = self.cfg.paths.media / job["day"] / f"{job['key']}.clip{job['part']}.mp4"
        final.parent.mkdir(parents=True, exist_ok=True)
        out = _counting_output(base, final.with_name(final.stem + PART_SUFFIX))
        job.update(final=final, output=out, opened=time.monotonic(),
                   start_wall=time.time() - self.pre_roll_s)
        try:
            self.circular.open_output(out)
        except Exception as exc:
            log.error("event clip not started: %s", exc)
            self.clips_failed += 1
            self._job = None
            with contextlib.suppress(Exception):  # the output may be half open
                self.circular.close_output()
            with contextlib.suppress(OSError):
                final.with_name(final.stem + PART_SUFFIX).unlink()

    def _close_part(self) -> None:
        job = self._job
        if job is None or "output" not in job:
            return
        out, final = job.pop("output"), job["final"]
        with contextlib.suppress(RuntimeError):
            self.circular.close_output()
        part = final.with_name(final.stem + PART_SUFFIX)
        if out.failed is not None or out.frames == 0 or not part.exists():
            log.error("event clip not written (%s)", out.failed or "no frames")
            self.clips_failed += 1
            with contextlib.suppress(OSError):
                part.unlink()
            self.index.request_sweep()
            return
        os.replace(part, final)
        span = ((out.last_ts or 0) - (out.first_ts or 0)) / 1e6 + 1.0 / self.fps
        self.clips_written += 1
        self.index.put(ClipFile(job["event"], job["part"], str(final.relative_to(
            self.cfg.paths.media)), job["start_wall"], job["start_wall"] + span,
            final.stat().st_size, out.frames, 0))

    def _close_job(self) -> None:
        self._close_part()
        self._job = None

    def _tick(self) -> None:
        """Split at clips.max_s; close pre_roll_s after the event's end."""
        from picamera2.outputs import PyavOutput

        job = self._job
        if job is None:
            return
        now = time.monotonic()
        if job["until"] is not None and now >= job["until"] + self.pre_roll_s:
            self._close_job()
        elif now - job["opened"] >= self.cfg.clips.max_s:
            self._close_part()
            self._open_part(PyavOutput)

    def run(self) -> None:
        while True:
            try:
                item = self.control.get(timeout=0.1)
            except queue.Empty:
                self._tick()
                continue
            if item is None:
                break
            kind, obj, t = item
            if kind == "camera":
                self._start_encoder(obj)
            elif kind == "start":
                self._open_job(obj)
            elif self._job is not None and self._job["event"] is obj:
                self._job["until"] = t
            self._tick()
        self._close_job()
        if self._picam is not None:
            with contextlib.suppress(Exception):
                self._picam.stop_encoder()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the clip in progress (what the buffer holds is not waited for), then register."""
        if self.is_alive():
            self.control.put(None)
            self.join(timeout)
        self.index.stop(timeout)
