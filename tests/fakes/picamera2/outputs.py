"""Fake `picamera2.outputs`: Output, CircularOutput2 and PyavOutput with the behaviour of
picamera2's own classes (written from their documented behaviour, not copied):

- `Output`: `start()` / `stop()` set `recording`; `outputframe(frame, keyframe=True,
  timestamp=None, packet=None, audio=False)` receives each encoded frame; `outputtimestamp`.
- `CircularOutput2(pts=None, buffer_duration_ms=5000)`: keeps the last `buffer_duration_ms` of
  encoded frames (timestamps in microseconds). `open_output(output)` starts the output, tells it
  the encoder's streams (`_add_stream`), and from then on, for every new frame, passes the oldest
  buffered one on, starting at the first keyframe: the output runs `buffer_duration_ms` behind,
  which is the pre-roll. `close_output()` stops it at once (what is still buffered is not
  written); `stop()` flushes the buffer into an open output first. Raises RuntimeError when an
  output is opened twice or closed while none is open.
- `PyavOutput(output_name, format=None, pts=None)`: `start()` opens the container with
  `av.open(output_name, "w", format=format)`; `_add_stream(encoder_stream, codec_name, **kw)`
  adds a stream; `outputframe` swaps the packet's stream for its own and muxes it; an error in
  muxing closes the container and calls `error_callback(exc)`; `stop()` closes the container.

Test knob: `CircularOutput2.instances` records every buffer made.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from fractions import Fraction
from typing import Any, ClassVar

import av


class Output:
    """Base of every output."""

    def __init__(self, pts: Any = None) -> None:
        self.recording = False
        self.ptsoutput = pts
        self.needs_pacing = False

    def start(self) -> None:
        self.recording = True

    def stop(self) -> None:
        self.recording = False

    def outputframe(self, frame: bytes, keyframe: bool = True, timestamp: int | None = None,
                    packet: Any = None, audio: bool = False) -> None:
        """Receive one encoded frame (subclasses write it)."""

    def outputtimestamp(self, timestamp: int | None) -> None:
        """picamera2 writes the timestamp to the pts file when one was given; none here."""

    def _add_stream(self, encoder_stream: Any, codec_name: str, **kwargs: Any) -> None:
        """Outputs that mux need to know the encoder's streams."""


class CircularOutput2(Output):
    """Time-based ring of encoded frames in front of an output that can be opened and closed."""

    instances: ClassVar[list[CircularOutput2]] = []

    def __init__(self, pts: Any = None, buffer_duration_ms: int = 5000) -> None:
        super().__init__(pts=pts)
        if buffer_duration_ms < 0:
            raise RuntimeError("buffer_duration_ms may not be negative")
        self._lock = threading.Lock()
        self.buffer_duration_ms = buffer_duration_ms
        self._circular: collections.deque[tuple[Any, ...]] = collections.deque()
        self._output: Output | None = None
        self._output_available = False
        self._first_frame = True
        self._streams: list[tuple[Any, str, dict[str, Any]]] = []
        self.opened = 0
        CircularOutput2.instances.append(self)

    def open_output(self, output: Output) -> None:
        if self._output is not None:
            raise RuntimeError("Underlying output must be closed first")
        self._output = output
        output.start()
        for stream, codec, kwargs in self._streams:
            output._add_stream(stream, codec, **kwargs)
        with self._lock:
            self._output_available = True
            self._first_frame = True
        self.opened += 1

    def close_output(self) -> None:
        if self._output is None:
            raise RuntimeError("No underlying output has been opened")
        with self._lock:
            self._output_available = False
        self._output.stop()
        self._output = None

    def _next(self) -> tuple[Any, ...] | None:
        if not self._circular:
            return None
        if not self._first_frame:
            return self._circular.popleft()
        while self._circular:
            entry = self._circular.popleft()
            if entry[1] and not entry[4]:  # a video keyframe
                self._first_frame = False
                return entry
        return None

    def outputframe(self, frame: bytes, keyframe: bool = True, timestamp: int | None = None,
                    packet: Any = None, audio: bool = False) -> None:
        with self._lock:
            if self.buffer_duration_ms == 0 or not self.recording:
                return
            assert timestamp is not None
            self._circular.append((frame, keyframe, timestamp, packet, audio))
            while timestamp - self._circular[0][2] > self.buffer_duration_ms * 1000:
                self._circular.popleft()
            if self._output_available:
                entry = self._next()
                if entry is not None:
                    self._output.outputframe(*entry)  # type: ignore[union-attr]

    def start(self) -> None:
        with self._lock:
            if self.recording:
                raise RuntimeError("Circular output is running")
            self.recording = True

    def stop(self) -> None:
        with self._lock:
            if not self.recording:
                raise RuntimeError("Circular output was not started")
            self.recording = False
            self._output_available = False
        if self._output is not None:
            while (entry := self._next()) is not None:
                self._output.outputframe(*entry)
            self._output.stop()
            self._output = None

    def _add_stream(self, encoder_stream: Any, codec_name: str, **kwargs: Any) -> None:
        self._streams.append((encoder_stream, codec_name, kwargs))


class PyavOutput(Output):
    """Muxes encoded packets into a container with PyAV."""

    def __init__(self, output_name: str, format: str | None = None, pts: Any = None) -> None:
        super().__init__(pts=pts)
        self._output_name = output_name
        self._format = format
        self._streams: dict[Any, Any] = {}
        self._container: Any = None
        self.error_callback: Any = None

    def _add_stream(self, encoder_stream: Any, codec_name: str, **kwargs: Any) -> None:
        self._streams[encoder_stream] = self._container.add_stream(codec_name, **kwargs)

    def start(self) -> None:
        self._container = av.open(self._output_name, "w", format=self._format)
        super().start()

    def stop(self) -> None:
        super().stop()
        if self._container is not None:
            with contextlib.suppress(Exception):  # picamera2 ignores errors on close too
                self._container.close()
            self._container = None
            self._streams = {}

    def outputframe(self, frame: bytes, keyframe: bool = True, timestamp: int | None = None,
                    packet: Any = None, audio: bool = False) -> None:
        if not (self.recording and self._container is not None):
            return
        orig = None
        if packet is None:
            packet = av.Packet(frame)
            packet.pts = packet.dts = timestamp
            packet.time_base = Fraction(1, 1000000)
            packet.stream = self._streams["video"]
        else:
            orig = packet.stream
            if orig not in self._streams:
                raise RuntimeError("Stream not found in PyavOutput")
            packet.stream = self._streams[orig]
        try:
            self._container.mux(packet)
        except Exception as exc:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
            if self.error_callback:
                self.error_callback(exc)
        packet.stream = orig
        self.outputtimestamp(timestamp)
