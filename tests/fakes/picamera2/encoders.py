"""Fake `picamera2.encoders`: `H264Encoder` as picamera2 gives it where there is no hardware
encoder (a Pi 5, or here): libx264 through PyAV, `preset=ultrafast`, `tune=zerolatency`, SPS/PPS
repeated before every I-frame unless `repeat=False`, an I-frame every `iperiod` frames, packet
timestamps in microseconds. Like picamera2's encoder it tells each output its stream
(`output._add_stream(stream, "h264", rate=, width=, height=)`) when it starts and hands every
packet to `output.outputframe(bytes, keyframe, timestamp=pts, packet=packet)`.

Signature as picamera2's: `H264Encoder(bitrate=None, repeat=False, iperiod=None, framerate=None,
enable_sps_framerate=False, qp=None, profile=None)`. The fake encodes the frames of the
configured stream from the fake camera's demo scene in a thread of its own, at the camera's
frame rate (picamera2 encodes each completed request in the camera thread).
"""

from __future__ import annotations

import threading
import time
from fractions import Fraction
from typing import Any

import av
import cv2


class Quality:
    """picamera2.encoders.Quality (only the names)."""

    VERY_LOW, LOW, MEDIUM, HIGH, VERY_HIGH = range(5)


class H264Encoder:
    """Fake H.264 encoder driven by Picamera2.start_encoder / stop_encoder."""

    def __init__(self, bitrate: int | None = None, repeat: bool = False,
                 iperiod: int | None = None, framerate: float | None = None,
                 enable_sps_framerate: bool = False, qp: int | None = None,
                 profile: str | None = None) -> None:
        self.bitrate = bitrate
        self.repeat = repeat
        self.iperiod = iperiod
        self.framerate = framerate
        self.qp = qp
        self.profile = profile
        self.output: Any = None
        self.running = False
        self.frames = 0
        self._thread: threading.Thread | None = None

    def _start(self, cam: Any, output: Any, name: str) -> None:
        """What Picamera2.start_encoder does to the encoder: size from the stream, start."""
        cfg = cam.config[name]
        self.width, self.height = cfg["size"]
        self.framerate = self.framerate or cam.fps
        self._cam = cam
        self._name = name
        self.output = output
        self._container = av.open("/dev/null", "w", format="null")
        self._stream = self._container.add_stream("libx264", rate=Fraction(self.framerate)
                                                  .limit_denominator(1000))
        ctx = self._stream.codec_context
        ctx.width, ctx.height, ctx.pix_fmt = self.width, self.height, "yuv420p"
        ctx.time_base = Fraction(1, 1000000)
        if self.bitrate:
            ctx.bit_rate = self.bitrate
        ctx.gop_size = self.iperiod or (1 << 31) - 1
        if not self.repeat:
            ctx.flags |= av.codec.context.Flags.global_header
        ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "deblock": "1"}
        output._add_stream(self._stream, "h264", rate=self.framerate, width=self.width,
                           height=self.height)
        output.start()
        self.running = True
        self._thread = threading.Thread(target=self._run, name="fake-h264", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t0 = time.monotonic()
        period = 1.0 / float(self.framerate)
        scene = self._cam.main_scene
        i = 0
        while self.running:
            delay = t0 + i * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            img = scene.color(i / float(self.framerate))
            if img.shape[1] != self.width or img.shape[0] != self.height:
                img = cv2.resize(img, (self.width, self.height))
            frame = av.VideoFrame.from_ndarray(cv2.cvtColor(img, cv2.COLOR_BGR2YUV_I420),
                                               format="yuv420p")
            frame.pts = int(i * period * 1e6)
            for packet in self._stream.encode(frame):
                self.output.outputframe(bytes(packet), packet.is_keyframe, timestamp=packet.pts,
                                        packet=packet)
            self.frames += 1
            i += 1

    def _stop(self) -> None:
        """What Picamera2.stop_encoder does: stop the encoder, then its output."""
        self.running = False
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        self.output.stop()
        self._container.close()
