"""PyAV source: video files and network streams (RTSP, HTTP), decoded straight to the luma plane.

Why PyAV and not OpenCV here: the detector needs only grey levels. An H.264 (or MJPEG) decoder
outputs YUV, whose first plane *is* the luma; OpenCV's VideoCapture converts every frame to BGR
(a full-frame swscale pass) and we then converted back to grey, twice the work the detector
needs. Here the Y plane of the decoded frame is handed to the detector as a numpy view, with no
copy and no colour conversion; colour (`to_ndarray("bgr24")`) is computed only for the few frames
that need it (snapshot, live view, clip). benchmarks/decode.py measures the difference.

USB cameras (V4L2) stay with OpenCV (`opencv_source.py`): its V4L2 backend maps the driver's
buffers directly, negotiates size and rate with the device, and understands camera indices; there
is no demuxing or H.264 decoding to save there. `camera.decoder = "opencv"` keeps OpenCV for files
and streams too, for a stream PyAV cannot open.

Behaviour matches the OpenCV source: files can be looped and paced in real time, timestamps of
files are frame index / fps, a network stream that ends or fails raises CameraError (the
supervisor reconnects), and the device's password never appears in a message.

Clips without re-encoding: a `packet_tap` (capture/clip_copy.py) is handed every demuxed packet
of the video stream, with its presentation and decoding times on the frames' clock, and told when
the stream is (re)opened. An IP camera already sends H.264: its own packets make the clip, and the
daemon needs no encoder (memory and CPU, docs/memory.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any, Protocol

import cv2
import numpy as np

from homesec.camera.base import CameraError, EndOfStream, Frame, file_frame_times
from homesec.camera.limits import MAX_FRAME_PIXELS, too_big
from homesec.camera.opencv_source import is_file, is_rtsp, transport_hint
from homesec.system.credentials import redact_url

log = logging.getLogger("homesec.camera.pyav")

# Pixel formats whose first plane is the full-resolution luma (8 bit).
LUMA_FIRST = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p",
              "yuvj440p", "yuv411p", "yuv410p", "nv12", "nv21", "nv16", "gray"}
OPEN_TIMEOUT_S = 10.0  # network: connecting and probing
READ_TIMEOUT_S = 5.0  # network: a stream silent this long has dropped


# Video codecs store luma in "limited range" (16..235); OpenCV's BGR conversion, and so the
# detector's thresholds (grey levels), assume full range 0..255. One table lookup expands it:
# the same numbers as BGR -> grey, at a fraction of the cost (no chroma, no three channels).
_EXPAND = np.clip(np.round((np.arange(256) - 16) * (255 / 219)), 0, 255).astype(np.uint8)


def _full_range(frame: Any) -> bool:
    return frame.format.name.startswith("yuvj") or getattr(frame, "color_range", 0) == 2


def luma_of(frame: Any, max_width: int | None = None) -> np.ndarray:
    """The frame's luma as (height, width) uint8 in full range, from the Y plane directly.

    With `max_width` (the detector's width), the plane is first halved (2x2 averages, as the
    detector's own downscaler does) while the detector is still left at least one halving of its
    own (its input then stays "already averaged", see capture/motion.py `Downscaler`): the range
    expansion runs on a quarter of the pixels or fewer, and the detector has less to do. What the
    detector computes is the same to within a grey level.
    """
    if frame.format.name not in LUMA_FIRST:
        return frame.to_ndarray(format="gray")  # 10-bit, packed or RGB input: convert
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    y = rows[:, :frame.width]
    if max_width:
        w, h = frame.width, frame.height
        while w // 4 >= max_width:
            w, h = w // 2, h // 2
            y = cv2.resize(y, (w, h), interpolation=cv2.INTER_AREA)
    if _full_range(frame) or frame.format.name == "gray":
        return y  # without halving: a view into the decoded frame, no copy at all
    return cv2.LUT(y, _EXPAND)


STREAM_JUMP_S = 2.0  # a network stream's clock this far from ours has jumped: times restart
# File packets held until FFmpeg knows their decoding time. A container without one (Matroska)
# gets it inferred from the order of the presentation times, which FFmpeg can do only after as
# many packets as the stream's B-frame delay: the first packets after an open come without it.
MAX_WITHOUT_DTS = 16


class PacketTap(Protocol):
    """Takes the source's own packets (called on the capture thread; must not block long)."""

    def opened(self, stream: Any) -> None:
        """The video stream was (re)opened; `stream` is valid only during this call."""

    def packet(self, data: bytes, keyframe: bool, mono_s: float, wall_s: float,
               dts_mono: float) -> None:
        """One packet in decoding order; `mono_s`/`wall_s` are its presentation time."""


class PyAVCamera:
    """Frames from a file or network stream through PyAV; luma is the decoded Y plane."""

    def __init__(self, device: str, fps: float = 25.0, loop: bool = False,
                 realtime: bool = False, threads: int = 0, detect_width: int | None = None,
                 rtsp_transport: str = "tcp") -> None:
        self.device = device
        self.label = redact_url(device)  # for messages: they reach logs and the web UI
        self.fps = fps
        self.loop = loop
        self.realtime = realtime
        self.threads = threads  # decoder threads for streams (0: FFmpeg chooses)
        self.detect_width = detect_width  # the detector's width: luma is reduced towards it
        self.rtsp_transport = rtsp_transport  # rtsp://: "tcp" (interleaved) or "udp" (RTP)
        self.file = is_file(device)
        self._container: Any = None
        self._frames: Iterator[Any] | None = None
        self._index = 0
        self._file_index = 0
        self._t0_mono = 0.0
        self._t0_wall = 0.0
        self.bad_packets = 0
        self.packet_tap: PacketTap | None = None  # clips from the source's packets, if set
        self._open_index = 0  # frame index at which the current container was opened
        self._rate = 0.0  # the stream's own frame rate (files: its timestamps -> frame index)
        self._tap_base: tuple[float, float] | None = None  # (stream seconds, monotonic) at base
        self._frame_base: tuple[float, float] | None = None  # the same at the newest frame
        self._dts_guess: float | None = None  # see _session_start_times

    def _safe(self, exc: BaseException) -> str:
        """An FFmpeg error as text, the URL's credentials removed."""
        return str(exc).replace(self.device, self.label)

    def _open_container(self) -> None:
        import av  # lazy: only processes that decode pay for it (the web workers never do)

        rtsp = is_rtsp(self.device)
        options = {"rtsp_transport": self.rtsp_transport} if rtsp else {}
        try:
            container = av.open(self.device, options=options,
                                timeout=None if self.file else (OPEN_TIMEOUT_S, READ_TIMEOUT_S))
        except (av.error.FFmpegError, OSError) as exc:
            hint = transport_hint(exc, self.rtsp_transport) if rtsp else ""
            raise CameraError(f"cannot open {self.label!r}: {self._safe(exc)}{hint}") from None
        if not container.streams.video:
            container.close()
            raise CameraError(f"cannot open {self.label!r}: no video stream")
        stream = container.streams.video[0]
        # Too big (homesec.camera.limits): refused now; frames that grow past the limit later
        # are refused by FFmpeg itself (max_pixels) before any memory is taken for them.
        refused = too_big(self.label, stream.codec_context.width or 0,
                          stream.codec_context.height or 0)
        if refused:
            container.close()
            raise CameraError(refused)
        stream.codec_context.options = {**stream.codec_context.options,
                                        "max_pixels": str(MAX_FRAME_PIXELS)}
        if not self.file or self.threads:
            # Live streams: frame threads keep up with a 1080p stream on a small core (about 10 %
            # more CPU in all). Files (`homesec analyze`): FFmpeg's default, the least CPU.
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = self.threads
        self._container = container
        self._frames = self._decode(container, stream)
        # The rate that matches the timestamps: an AVI of H.264 has a time base of 1/30 for 15
        # fps and claims an average rate of 30; FFmpeg's guess (r_frame_rate unless that is
        # implausible) is 15, as `ffmpeg` itself uses.
        rate = stream.guessed_rate or stream.average_rate
        self._rate = float(rate) if rate and 0 < float(rate) < 240 else 0.0
        if self.file and self.fps <= 0 and self._rate:
            self.fps = self._rate
        self._open_index = self._index
        self._tap_base = self._frame_base = None
        self._dts_guess = None  # streams: the first GOP's decoding times are made up
        if self.packet_tap is not None:
            self.packet_tap.opened(stream)

    def _packet_times(self, pts: int | None, dts: int | None, tb: Any, key: bool
                      ) -> tuple[float, float, float]:
        """(presentation mono, wall, decoding mono) of a packet, on the clock of the frames.

        Files: the packet's place in the file as a frame index, timed like the frames
        (index / fps from the start; a loop goes on where the last one ended). Streams: the
        stream's own clock, anchored to ours at its first packet and again after a jump."""
        pts = pts if pts is not None else dts
        dts = dts if dts is not None else pts
        if pts is None:  # no timestamps at all: the time of the next frame
            mono, wall = (file_frame_times(self._index, max(self.fps, 1e-6), self._t0_mono,
                                           self._t0_wall, False) if self.file
                          else (time.monotonic(), time.time()))
            return mono, wall, mono
        pts_s, dts_s = float(pts * tb), float(dts * tb)
        if self.file:
            if self._tap_base is None:
                self._tap_base = (pts_s, self._t0_mono + self._open_index / max(self.fps, 1e-6))
            base_s, base_mono = self._tap_base
            scale = (self._rate / self.fps) if self._rate and self.fps > 0 else 1.0
            mono, dts_mono = (base_mono + (pts_s - base_s) * scale,
                              base_mono + (dts_s - base_s) * scale)
            return mono, self._t0_wall + (mono - self._t0_mono), dts_mono
        # Streams: anchored at each keyframe to the newest decoded frame (read() keeps it), so a
        # packet is timed as its frame will be when decoded, and within a GOP the packets keep
        # the stream's own spacing and order (B-frames); before the first frame, or when the
        # stream's clock jumped (a wrap, a camera's restart), anchored to now.
        if key and self._frame_base is not None:
            self._tap_base = self._frame_base
        now = time.monotonic()
        if self._tap_base is None or abs(self._tap_base[1] + pts_s - self._tap_base[0] - now
                                         ) > STREAM_JUMP_S:
            self._tap_base = (pts_s, now)
        base_s, base_mono = self._tap_base
        mono = base_mono + pts_s - base_s
        return mono, time.time() - (now - mono), base_mono + dts_s - base_s

    def _session_start_times(self, pts: int | None, dts: int | None, tb: Any, key: bool
                             ) -> tuple[int | None, int | None]:
        """(pts, dts) of a stream's packet, made up where FFmpeg's RTSP demuxer leaves them out.

        It gives a session's first packet (its keyframe) no timestamps and counts the stream's
        clock from it: its time is 0. Timed "now" instead, it shared its time with the next
        packet (anchored "now" too) and B-frames were shown before it. The packets of the first
        GOP then have presentation times but no decoding times, until FFmpeg can infer them;
        their presentation times are not in decoding order (B-frames), so they are given
        decoding times just after the packet before, never after their own presentation: the
        clip's decoding times must rise (clip writer), and the packets after are FFmpeg's."""
        if self._tap_base is None and pts is None and dts is None:
            self._dts_guess = 0.0
            return 0, 0
        if self._dts_guess is None or dts is not None or pts is None or key:
            self._dts_guess = None  # FFmpeg's times from here on
            return pts, dts
        guess = min(float(pts * tb), self._dts_guess + 0.001)
        self._dts_guess = guess
        return pts, round(guess / tb)

    def _decode(self, container: Any, stream: Any) -> Iterator[Any]:
        """Decoded frames; a corrupt packet is skipped and counted, not fatal."""
        import av

        held: list[tuple[bytes, bool, int, Any]] = []  # no decoding time yet (MAX_WITHOUT_DTS)
        for packet in container.demux(stream):
            tap = self.packet_tap
            if tap is not None and packet.size:
                self._tap(tap, packet, held)
            try:
                yield from packet.decode()
            except av.error.InvalidDataError:
                self.bad_packets += 1
        if self.packet_tap is not None:
            for data, key, pts, tb in held:  # the stream ended first: no better time known
                self.packet_tap.packet(data, key, *self._packet_times(pts, None, tb, key))

    def _tap(self, tap: Any, packet: Any, held: list[tuple[bytes, bool, int, Any]]) -> None:
        """Hand a packet to the tap, in order. Files: the first packets of a file with B-frames
        in a container that stores no decoding times (Matroska) wait for FFmpeg's first one, and
        get the frame times before it; timed by their presentation times instead, their decoding
        order went back in time (the first GOP of a clip was shown out of order). Streams
        (RTSP): _session_start_times, as packets must not wait there."""
        data, key, pts, dts, tb = (bytes(packet), bool(packet.is_keyframe), packet.pts,
                                   packet.dts, packet.time_base)
        if not self.file:
            pts, dts = self._session_start_times(pts, dts, tb, key)
        elif dts is None and pts is not None and len(held) < MAX_WITHOUT_DTS:
            held.append((data, key, pts, tb))
            return
        if held:
            step = packet.duration or max(1, round(1 / (max(self.fps, 1e-6) * tb)))
            first = dts if dts is not None else min(p for _, _, p, _ in held)
            for i, (d, k, p, t) in enumerate(held):
                tap.packet(d, k, *self._packet_times(p, first - (len(held) - i) * step, t, k))
            held.clear()
        tap.packet(data, key, *self._packet_times(pts, dts, tb, key))

    def open(self) -> None:
        """Open the file or stream; CameraError when it cannot be read."""
        self.close()
        self._open_container()
        self._file_index = 0
        self._t0_mono = time.monotonic() - self._index / max(self.fps, 1e-6)
        self._t0_wall = time.time() - self._index / max(self.fps, 1e-6)

    def _next(self) -> Any | None:
        import av

        assert self._frames is not None
        try:
            return next(self._frames)
        except StopIteration:
            return None
        except (av.error.FFmpegError, OSError) as exc:
            if self.file:
                raise CameraError(f"{self.label!r}: {self._safe(exc)}") from None
            raise CameraError(f"{self.label!r} stopped delivering frames: {self._safe(exc)}"
                              ) from None

    def read(self) -> Frame:
        """The next frame. Files: timestamps are frame index / fps; streams: the clock."""
        if self._frames is None:
            raise CameraError("camera not open")
        av_frame = self._next()
        if av_frame is None and self.file and self.loop and self._file_index > 0:
            self._close_container()
            self._open_container()
            self._file_index = 0
            av_frame = self._next()
        if av_frame is None:
            if self.file:
                raise EndOfStream(self.label)
            raise CameraError(f"{self.label!r} stopped delivering frames")
        refused = too_big(self.label, av_frame.width, av_frame.height, "sent")
        if refused:  # (a decoder that ignores max_pixels)
            raise CameraError(refused)
        i = self._index
        self._index += 1
        self._file_index += 1
        if self.file:
            mono, wall = file_frame_times(i, self.fps, self._t0_mono, self._t0_wall, self.realtime)
        else:
            mono, wall = time.monotonic(), time.time()
            if self.packet_tap is not None and av_frame.pts is not None and av_frame.time_base:
                # The stream's clock meets ours here: the packets after this frame are timed
                # from it (a burst at the start, FFmpeg's probe or a camera sending its last GOP
                # at once, would otherwise put them ahead of the frames for the whole session).
                self._frame_base = (float(av_frame.pts * av_frame.time_base), mono)
        luma = luma_of(av_frame, self.detect_width)
        size = None if luma.shape[1] == av_frame.width else (av_frame.width, av_frame.height)
        return Frame(index=i, mono_s=mono, wall_s=wall, luma=luma, size=size,
                     _color_fn=lambda: av_frame.to_ndarray(format="bgr24"))

    def _close_container(self) -> None:
        frames, self._frames = self._frames, None
        if frames is not None:
            frames.close()  # type: ignore[attr-defined]  # a generator
        if self._container is not None:
            container, self._container = self._container, None
            container.close()

    def close(self) -> None:
        """Close the file or stream."""
        self._close_container()
