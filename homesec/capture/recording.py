"""Event clips: H.264 packets -> a time-bounded ring (the pre-roll) -> MP4 files, off the capture
loop.

Why packets and not frames: a ring of raw 720p frames for 3 s of pre-roll would take 60 MB; a ring
of H.264 packets takes about 1 MB. So the video is encoded continuously (the Pi camera's own
encoder, or libx264 through PyAV for the OpenCV and demo sources), the last `pre_roll_s` seconds
plus one GOP (and `confirm_s` + RING_LEAD_S: the event is told when confirmed, copied packets run
ahead of the frames) are kept as packets, and when an event starts the clip begins at the last
keyframe before "start minus pre-roll". The GOP is one second, so the pre-roll starts within a second of
the target.

Why nothing here blocks the capture loop: `submit()` hands a frame to a queue of two; when the
encoder or the disk falls behind, the frame is dropped and counted (status and the clip row show
it) and detection keeps its rate. The clip row is written by another thread (ClipIndex), which
waits for the event's row: the alert email never waits for a clip.

Why a temporary name: a clip is written as `<name>.mp4.part` and renamed when its index (`moov`,
moved to the front for phones by `+faststart`) is written; only then does it get a row. After a
SIGKILL the `.part` file is removed on the next start (`clean_leftovers`), so no listed clip fails
to decode.

Encoder choice (software path): libx264 `preset=ultrafast`, `tune=zerolatency`. ultrafast is the
cheapest preset (no CABAC, no B-frames, the simplest motion search) and gives Constrained Baseline,
which every phone decodes; zerolatency turns off the lookahead and frame threading, so the encoder
holds no queue of raw frames (memory) and each frame comes out at once as one packet (the ring is
exact). The price is bigger files at the same quality, which the quantiser (`crf`) bounds; a fixed
camera is cheap to code anyway. A constant quantiser, not x264's rate factor: see qp_for_crf.
The numbers are in docs/clips.md (benchmarks/recording.py).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import queue
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from homesec.camera.base import Frame
from homesec.capture.events import Event
from homesec.config import Config

log = logging.getLogger("homesec.capture.recording")

# _AV_NOTE: PyAV (av) is imported in the functions that encode or mux, not here: with its own
# FFmpeg it adds ~25 MB RSS, which a daemon with clips off (or the Pi camera path, which muxes
# in picam_recording) need not pay (docs/memory.md).
TIME_BASE = Fraction(1, 90000)  # the usual MP4 video clock
PART_SUFFIX = ".mp4.part"
GOP_S = 0.5  # I-frame period: the pre-roll starts at most this much before its target
QP_BELOW_CRF = 3  # clips.crf -> x264 constant quantiser: see qp_for_crf
QUEUE_FRAMES = 2  # frames waiting for the encoder; more would only hide that it is behind


@dataclass(frozen=True)
class EncodedPacket:
    """One H.264 access unit with the camera times of its frame (its presentation time) and, for
    a source with B-frames (copied from a camera, capture/clip_copy.py), its decoding time."""

    data: bytes
    keyframe: bool
    mono_s: float
    wall_s: float
    dts_mono: float | None = None  # None: decoded when shown (our encoder: no B-frames)


@dataclass
class ClipFile:
    """A finished, renamed clip waiting for its row."""

    event: Event
    part: int
    rel: str
    start_wall: float
    end_wall: float
    size: int
    frames: int
    dropped: int


RING_LEAD_S = 1.0  # packets ahead of the frames: decoder delay (threads, B-frames), bursts
MAX_RING_BYTES = 48 * 1024 * 1024  # a camera with a long GOP and a high bit rate: still bounded


class PacketRing:
    """The last `seconds` of packets, always starting at a keyframe, held as whole GOPs.

    Memory stays bounded whatever the source sends: a copied camera stream with a very long GOP
    keeps at most `max_bytes` (the oldest GOPs go first); a stream that sends no keyframe for
    longer than that (broken, or hostile) empties the ring, which starts again at the next
    keyframe: the clip loses its pre-roll, the daemon never its memory.
    """

    def __init__(self, seconds: float, max_bytes: int = MAX_RING_BYTES) -> None:
        self.seconds = seconds
        self.max_bytes = max_bytes
        self._gops: deque[list[EncodedPacket]] = deque()
        self.bytes = 0
        self._count = 0

    def append(self, pkt: EncodedPacket) -> None:
        """Add a packet and drop whole GOPs that are older than needed."""
        if pkt.keyframe:
            self._gops.append([pkt])
        elif self._gops:
            self._gops[-1].append(pkt)
        else:
            return  # no keyframe yet: nothing a clip could start with
        self.bytes += len(pkt.data)
        self._count += 1
        horizon = pkt.mono_s - self.seconds
        # Keep the last keyframe at or before the horizon: the clip must start at a keyframe.
        while len(self._gops) > 1 and (self._gops[1][0].mono_s <= horizon
                                       or self.bytes > self.max_bytes):
            self._drop_oldest()
        if self.bytes > self.max_bytes:
            while self._gops:
                self._drop_oldest()

    def _drop_oldest(self) -> None:
        gop = self._gops.popleft()
        self.bytes -= sum(len(p.data) for p in gop)
        self._count -= len(gop)

    def since(self, mono_s: float) -> list[EncodedPacket]:
        """Packets from the last keyframe at or before `mono_s` (or the oldest keyframe)."""
        gops = list(self._gops)
        first = 0
        for i, gop in enumerate(gops):
            if gop[0].mono_s <= mono_s:
                first = i
        return [p for gop in gops[first:] for p in gop]

    def __len__(self) -> int:
        return self._count


class ClipWriter:
    """One MP4 file being written under a temporary name."""

    def __init__(self, final: Path, template: Any, first: EncodedPacket,
                 frame_s: float = 0.0) -> None:
        import av  # lazily: see _AV_NOTE
        self.final = final
        # Every packet is given one frame time as its duration: without one the muxer takes it
        # from the template's frame rate, which a raw .h264 stream gives as 1200000 (and an RTSP
        # camera often as 90000): the last frame then lasts 0 and the MP4's edit list cuts it.
        self._duration = max(1, round(frame_s / TIME_BASE)) if frame_s > 0 else 0
        self.part_path = final.with_name(final.stem + PART_SUFFIX)
        self.start_mono, self.start_wall = first.mono_s, first.wall_s
        # Timestamps count from the first packet's decoding time (with B-frames it comes before
        # its presentation): the file's times are then never negative.
        self._ts0 = min(first.mono_s, first.mono_s if first.dts_mono is None else first.dts_mono)
        self._last_dts = -1
        self._shift = 0  # ticks added after the camera's clock went back
        self.end_wall = first.wall_s
        self.last_mono = first.mono_s
        self.frames = 0
        final.parent.mkdir(parents=True, exist_ok=True)
        # +faststart: the index goes to the front, so a phone can start playing (and seek) before
        # it has the whole file; the rename afterwards makes the file appear complete at once.
        self._out = av.open(str(self.part_path), "w", format="mp4",
                            options={"movflags": "+faststart"})
        self._stream = self._out.add_stream_from_template(template)
        # Some PyAV versions refuse a time base on a template stream; the packets carry theirs.
        with contextlib.suppress(AttributeError, ValueError, TypeError):
            self._stream.time_base = TIME_BASE

    def write(self, pkt: EncodedPacket) -> None:
        """Mux one packet (times relative to the clip's first packet)."""
        import av  # lazily: see _AV_NOTE
        p = av.Packet(pkt.data)
        dts = round(((pkt.mono_s if pkt.dts_mono is None else pkt.dts_mono) - self._ts0)
                    / TIME_BASE) + self._shift
        if dts <= self._last_dts:
            # A camera's clock that went back (a re-anchored stream): the file's times go on one
            # frame later, and every packet after moves by as much, so the distance between its
            # decoding and presentation times (B-frames' order) stays the camera's.
            step = max(1, self._duration)
            self._shift += self._last_dts + step - dts
            dts = self._last_dts + step
        self._last_dts = dts
        p.dts = dts
        p.pts = max(dts, round((pkt.mono_s - self._ts0) / TIME_BASE) + self._shift)
        p.time_base = TIME_BASE
        if self._duration:
            p.duration = self._duration
        p.is_keyframe = pkt.keyframe
        p.stream = self._stream
        self._out.mux(p)
        self.frames += 1
        self.last_mono = pkt.mono_s
        self.end_wall = pkt.wall_s

    @property
    def duration_s(self) -> float:
        """Seconds from the first to the last packet written."""
        return self.last_mono - self.start_mono

    def finish(self, frame_s: float) -> int:
        """Write the index, rename to the final name; returns the file size."""
        self._out.close()
        os.replace(self.part_path, self.final)
        self.end_wall += frame_s  # the last frame is shown for one frame time
        return self.final.stat().st_size

    def abandon(self) -> None:
        """Give up this file (disk full, encoder error): nothing half-written stays."""
        with contextlib.suppress(Exception):
            self._out.close()
        with contextlib.suppress(OSError):
            self.part_path.unlink()


@dataclass
class _Job:
    """The clip of one event as it is being written (possibly in several parts)."""

    event: Event
    key: str
    day: str
    from_mono: float
    until_mono: float | None = None
    part: int = 0
    writer: ClipWriter | None = None
    dropped_at_open: int = 0


def event_key(ev: Event) -> tuple[str, str]:
    """(day folder, file key) of an event: the same names as its snapshot's."""
    t = ev.start_wall
    key = time.strftime("%H%M%S", time.localtime(t)) + f"-{int(t * 1000) % 1000:03d}"
    return time.strftime("%Y-%m-%d", time.localtime(t)), key


class ClipSink:
    """The recorder interface: takes H.264 packets (keyframe flag, camera times) and turns the
    ones around events into MP4 files. Not thread-safe: one thread feeds it."""

    def __init__(self, media: Path, pre_roll_s: float, max_s: float, fps: float,
                 on_clip: Callable[[ClipFile], None], dropped: Callable[[], int] = lambda: 0,
                 on_disk_full: Callable[[], None] = lambda: None,
                 before_open: Callable[[], None] = lambda: None, lead_s: float = 0.0) -> None:
        self.media = media
        self.before_open = before_open
        # The ring reaches `lead_s` further back than the pre-roll: an event is told here when
        # it is confirmed (confirm_s after its first frame), and a copied camera's packets run
        # ahead of its decoded frames; the clip must still begin pre_roll_s before the start.
        self.ring_s = pre_roll_s + lead_s
        self.ring = PacketRing(self.ring_s)
        self.pre_roll_s = pre_roll_s
        self.max_s = max_s
        self.frame_s = 1.0 / fps
        self.on_clip = on_clip
        self.on_disk_full = on_disk_full
        self.dropped = dropped
        self.template: Any = None
        self.job: _Job | None = None
        self.clips_written = 0
        self.clips_failed = 0
        self._failing = False
        # The camera's keyframe interval (the last one seen): a part is split at the last
        # keyframe that keeps it within max_s (our encoder's GOP is GOP_S, a camera's often 2-4 s).
        self._gop_s = GOP_S
        self._last_key: float | None = None

    def begin(self, ev: Event) -> None:
        """An event started: a clip from `pre_roll_s` before its start (ring permitting)."""
        if self.job is not None:
            self._close_part()
            self.job = None
        day, key = event_key(ev)
        self.job = _Job(ev, key, day, ev.start_mono - self.pre_roll_s)
        for pkt in self.ring.since(self.job.from_mono):
            self._write(pkt)

    def use_template(self, template: Any) -> None:
        """Packets from now on come from another stream (the camera reopened, or copying gave
        way to encoding): the clip in progress goes on in a new part from the next keyframe, and
        the pre-roll of the old stream is dropped (its packets cannot join the new one's)."""
        if template is self.template:
            return
        self._close_part()
        self.ring = PacketRing(self.ring_s)
        self.template = template

    def end(self, ev: Event, until_mono: float) -> None:
        """The event ended at `until_mono` (post-motion time included)."""
        if self.job is not None and self.job.event is ev:
            self.job.until_mono = until_mono
            if self.job.writer is not None and self.job.writer.last_mono >= until_mono:
                self._close_part()
                self.job = None

    def packet(self, pkt: EncodedPacket) -> None:
        """One encoded frame."""
        if pkt.keyframe:
            if self._last_key is not None and pkt.mono_s > self._last_key:
                # At most half of max_s: one long gap (a reconnect) must not split every part.
                self._gop_s = min(pkt.mono_s - self._last_key, self.max_s / 2)
            self._last_key = pkt.mono_s
        self.ring.append(pkt)
        job = self.job
        if job is None:
            return
        if job.until_mono is not None and pkt.mono_s > job.until_mono:
            self._close_part()
            self.job = None
            return
        self._write(pkt)

    def _write(self, pkt: EncodedPacket) -> None:
        import av  # lazily: see _AV_NOTE
        job = self.job
        assert job is not None
        w = job.writer
        if w is not None and pkt.keyframe and (w.duration_s + self.frame_s
                                               >= self.max_s - max(GOP_S, self._gop_s)):
            self._close_part()  # long event: go on in the next part, from this keyframe
            w = None
        if w is None:
            if not pkt.keyframe or self.template is None:
                return
            self.before_open()
            job.part += 1
            job.dropped_at_open = self.dropped()
            final = self.media / job.day / f"{job.key}.clip{job.part}.mp4"
            try:
                job.writer = w = ClipWriter(final, self.template, pkt, self.frame_s)
            except (OSError, av.FFmpegError) as exc:
                self._failed(exc)
                return
        try:
            w.write(pkt)
        except (OSError, av.FFmpegError) as exc:
            w.abandon()
            job.writer = None
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        """A clip could not be written (disk full, say): logged once until one succeeds again;
        detection and alerts are untouched."""
        self.clips_failed += 1
        if not self._failing:
            log.error("event clip not written (%s); clips resume when the disk has room", exc)
            self._failing = True
        self.on_disk_full()

    def _close_part(self) -> None:
        import av  # lazily: see _AV_NOTE
        job = self.job
        if job is None or job.writer is None:
            return
        w, job.writer = job.writer, None
        try:
            size = w.finish(self.frame_s)
        except (OSError, av.FFmpegError) as exc:
            w.abandon()
            self._failed(exc)
            return
        self._failing = False
        self.clips_written += 1
        self.on_clip(ClipFile(job.event, job.part, str(w.final.relative_to(self.media)),
                              w.start_wall, w.end_wall, size, w.frames,
                              max(0, self.dropped() - job.dropped_at_open)))

    def close(self) -> None:
        """Finish the clip in progress (the daemon stops)."""
        self._close_part()
        self.job = None


class PyavEncoder:
    """BGR frames -> H.264 packets with libx264 (see the module docstring for the settings)."""

    def __init__(self, width: int, height: int, fps: float, crf: int) -> None:
        import av  # lazily: see _AV_NOTE
        self.size = (width, height)
        # The encoder lives in a stream of a container that is never written: its packets can
        # then be muxed into each clip file with add_stream_from_template, without a second
        # encoder being opened for the output.
        self._sink = av.open(io.BytesIO(), "w", format="h264")
        gop = max(1, round(fps * GOP_S))
        self.stream = self._sink.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        ctx = self.stream.codec_context
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
        ctx.time_base = TIME_BASE
        ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "qp": str(qp_for_crf(crf)),
                       "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
        self._times: dict[int, tuple[float, float]] = {}
        self._t0: float | None = None

    def encode(self, image: np.ndarray, mono_s: float, wall_s: float) -> Iterator[EncodedPacket]:
        """Encode one frame (resized to the clip size if needed)."""
        import av  # lazily: see _AV_NOTE
        w, h = self.size
        if image.shape[1] != w or image.shape[0] != h:
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        yuv = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        if self._t0 is None:
            self._t0 = mono_s
        frame.pts = round((mono_s - self._t0) / TIME_BASE)
        frame.time_base = TIME_BASE
        self._times[frame.pts] = (mono_s, wall_s)
        for p in self.stream.encode(frame):
            mono, wall = self._times.pop(p.pts, (mono_s, wall_s))
            yield EncodedPacket(bytes(p), bool(p.is_keyframe), mono, wall)
        if len(self._times) > 64:  # never happens with zerolatency; bounded anyway
            self._times.clear()


def qp_for_crf(crf: int) -> int:
    """The constant quantiser that gives about the quality of x264's CRF `crf` (clips.crf).

    Constant rate factor needs x264's lookahead planes (a quarter-size copy of each frame, with
    its half-pel planes and costs): about 10 MB more at 720p than a constant quantiser, for the
    same ultrafast/zerolatency encoder. On four real camera clips at 720p, QP crf - 3 gave the
    same SSIM within 0.001 for three of them, and files of 0.46-0.84x the size (docs/clips.md)."""
    return max(0, crf - QP_BELOW_CRF)


def clip_size(cfg: Config) -> tuple[int, int]:
    """Even width and height of the clips (clips.width, else the camera's main size)."""
    cw, ch = cfg.camera.width, cfg.camera.height
    w = cfg.clips.width or cw
    w = max(16, w // 2 * 2)
    h = max(16, round(ch * w / cw / 2) * 2)
    return w, h


def clip_fps(cfg: Config) -> float:
    """Frames per second of the clips: clips.fps, at most the camera's."""
    return min(cfg.clips.fps, cfg.camera.fps)


def _can_wait(cfg: Config) -> bool:
    """True for a source that holds its frames until they are taken: the demo, a local file."""
    from homesec.camera.opencv_source import is_file

    cam = cfg.camera
    return cam.source == "demo" or (cam.source == "opencv" and is_file(cam.device))


class PyavClipRecorder(threading.Thread):
    """The software path (demo and OpenCV sources): frames from the capture loop are encoded
    here, in this thread, into the ring and the clip files."""

    def __init__(self, cfg: Config, index: ClipIndex) -> None:
        super().__init__(name="clips", daemon=True)
        self.cfg = cfg
        self.index = index
        self.fps = clip_fps(cfg)
        self.size = clip_size(cfg)
        self.frames: queue.Queue[tuple[np.ndarray, float, float] | None] = queue.Queue(QUEUE_FRAMES)
        self.control: queue.SimpleQueue[tuple[str, Event, float]] = queue.SimpleQueue()
        self.dropped = 0
        self.submitted = 0
        # A source not paced in real time (the demo or a file, a test) can wait for the encoder:
        # then no frame is dropped. A live camera (USB, network, the Pi camera) cannot, whatever
        # camera.realtime says: then a full queue drops the frame.
        self.blocking = not cfg.camera.realtime and _can_wait(cfg)
        self._last_mono: float | None = None
        self.sink = ClipSink(cfg.paths.media, cfg.clips.pre_roll_s, cfg.clips.max_s, self.fps,
                             on_clip=index.put, dropped=lambda: self.dropped,
                             on_disk_full=index.request_sweep, before_open=self._check_disk,
                             lead_s=cfg.events.confirm_s + RING_LEAD_S)
        self.encoder_errors = 0

    # -- called from the capture loop: never blocks ---------------------------------------------

    def submit(self, frame: Frame) -> None:
        """Offer a frame; taken at the clip frame rate, dropped (counted) when the queue is full."""
        period = 1.0 / self.fps
        if self._last_mono is not None and frame.mono_s - self._last_mono < 0.9 * period:
            return
        self._last_mono = frame.mono_s
        try:
            self.frames.put((frame.color(), frame.mono_s, frame.wall_s), block=self.blocking,
                            timeout=10.0 if self.blocking else None)
            self.submitted += 1
        except queue.Full:
            self.dropped += 1

    def event_started(self, ev: Event) -> None:
        """An event began (the clip reaches back by the pre-roll)."""
        self.control.put(("start", ev, ev.start_mono))

    def event_ended(self, ev: Event, now_mono: float) -> None:
        """The event ended at `now_mono` (the frame that closed it)."""
        self.control.put(("end", ev, now_mono))

    def _check_disk(self) -> None:
        """Before a clip file is opened: a nearly full disk gets a retention sweep first."""
        try:
            du = shutil.disk_usage(self.cfg.paths.media)
        except OSError:
            return
        if du.total and 100.0 * du.free / du.total < self.cfg.events.min_free_pct + 1.0:
            self.index.request_sweep()

    def stats(self) -> dict[str, Any]:
        """For status.json."""
        return {"enabled": True, "encoder": "libx264", "size": list(self.size), "fps": self.fps,
                "frames": self.submitted, "dropped_frames": self.dropped,
                "recording": self.sink.job is not None, "clips": self.sink.clips_written,
                "failed": self.sink.clips_failed, "preroll_bytes": self.sink.ring.bytes}

    # -- the thread ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the encoder thread and the clip index."""
        self.index.start()
        super().start()

    def _controls(self) -> None:
        while True:
            try:
                kind, ev, t = self.control.get_nowait()
            except queue.Empty:
                return
            if kind == "start":
                self.sink.begin(ev)
            else:
                self.sink.end(ev, t)

    def run(self) -> None:
        import av  # lazily: see _AV_NOTE
        try:
            encoder = PyavEncoder(*self.size, self.fps, self.cfg.clips.crf)
        except (av.FFmpegError, ValueError) as exc:
            log.error("clip encoder unavailable (%s): events are recorded without clips", exc)
            return
        self.sink.template = encoder.stream
        while (item := self._take(self.frames)) is not None:
            self._encode(encoder, *item)
        self._controls()
        self.sink.close()

    def _take(self, items: queue.Queue[Any]) -> Any:
        """The next item of `items` (None: stop); event starts and ends are applied first, and
        while nothing comes, every 0.2 s (an event ends even when no frame follows)."""
        while True:
            try:
                item = items.get(timeout=0.2)
            except queue.Empty:
                self._controls()
                continue
            self._controls()
            return item

    def _encode(self, encoder: PyavEncoder, image: np.ndarray, mono: float, wall: float) -> None:
        """One frame into the ring and the clip; a frame the encoder refuses is counted, logged
        once, and the next one is tried."""
        import av  # lazily: see _AV_NOTE

        try:
            for pkt in encoder.encode(image, mono, wall):
                self.sink.packet(pkt)
        except (av.FFmpegError, ValueError, cv2.error) as exc:
            self.encoder_errors += 1
            if self.encoder_errors == 1:
                log.error("clip encoder failed on a frame: %s", exc)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the clip in progress, then register what was written."""
        if self.is_alive():
            self.frames.put(None)  # blocks at most while the encoder takes one frame
            self.join(timeout)
        self.index.stop(timeout)


class ClipIndex(threading.Thread):
    """Writes the row of each finished clip once its event has a row (the recorder writes that;
    the clip never holds up an event or its alert), and runs the retention sweep after each clip
    and when a clip could not be written."""

    def __init__(self, cfg: Config, sweep: Callable[[Any], None] | None = None) -> None:
        super().__init__(name="clip-index", daemon=True)
        self.cfg = cfg
        self.q: queue.SimpleQueue[ClipFile | str | None] = queue.SimpleQueue()
        self.sweep = sweep
        self.registered = 0
        # Told (event id, part) after each clip row's commit, in this thread: must not block.
        self.on_registered: Callable[[int, int], None] | None = None
        self._stopping = threading.Event()
        self._waiting: list[ClipFile] = []

    def put(self, clip: ClipFile) -> None:
        """A clip file is complete."""
        self.q.put(clip)

    def request_sweep(self) -> None:
        """The disk may be full: run retention soon."""
        self.q.put("sweep")

    def stop(self, timeout: float = 10.0) -> None:
        """Register what is queued (ids are known once the recorder has stopped), then end."""
        if self.is_alive():
            self._stopping.set()
            self.q.put(None)
            self.join(timeout)

    def _open(self) -> Any:
        from homesec.storage.store import Store

        return Store(self.cfg.paths.db_path)

    def run(self) -> None:
        import sqlite3

        store = None
        done = False
        while not done or self._waiting:
            try:
                item = self.q.get(timeout=0.2)
            except queue.Empty:
                item = "tick"
            if item is None:
                done = True
            elif isinstance(item, ClipFile):
                self._waiting.append(item)
            try:
                if store is None:
                    store = self._open()
                sweep = item == "sweep"
                for clip in list(self._waiting):
                    if clip.event.id is None:
                        if done:  # the event has no row yet (database unwritable): the file
                            # stays, it is evidence; it gets no row in this run
                            log.warning("clip %s kept without a row: its event was not "
                                        "recorded before the stop", clip.rel)
                            self._waiting.remove(clip)
                        continue
                    self._register(store, clip)
                    sweep = True
                if sweep and self.sweep is not None:
                    self.sweep(store)
            except sqlite3.Error as exc:
                log.warning("clip rows wait for the database (%s)", exc)
                if done:
                    break
                self._stopping.wait(1.0)
        if store is not None:
            store.close()

    def _register(self, store: Any, clip: ClipFile) -> None:
        from homesec.storage.clips import add_clip

        assert clip.event.id is not None
        row = add_clip(store, clip.event.id, clip.part, clip.rel, clip.start_wall, clip.end_wall,
                       clip.size, clip.frames, clip.dropped)
        self._waiting.remove(clip)
        if row is None:  # the event was deleted while its clip was written
            self._drop(clip)
            return
        self.registered += 1
        if self.on_registered is not None:
            self.on_registered(clip.event.id, clip.part)
        log.info("event %d: clip %d saved (%.1f s, %d frames, %d dropped, %.1f MB)",
                 clip.event.id, clip.part, clip.end_wall - clip.start_wall, clip.frames,
                 clip.dropped, clip.size / 1e6)

    def _drop(self, clip: ClipFile) -> None:
        if clip in self._waiting:
            self._waiting.remove(clip)
        with contextlib.suppress(OSError):
            (self.cfg.paths.media / clip.rel).unlink()


def clean_leftovers(media: Path) -> list[Path]:
    """Remove clip files a crash left half-written (`*.mp4.part`); returns them."""
    removed = []
    if not media.is_dir():
        return removed
    for path in media.glob(f"*/*{PART_SUFFIX}"):
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path)
    if removed:
        log.warning("removed %d clip file(s) left half-written by a crash", len(removed))
    return removed


def make_clip_recorder(cfg: Config, camera: Any = None,
                       sweep: Callable[[Any], None] | None = None) -> Any:
    """The clip recorder for this config and camera, or None when clips are off. Removes the
    leftovers of a crash first. The Pi camera records with its own encoder (picam_recording);
    a file or network stream read by PyAV gives its own H.264 packets (clip_copy)."""
    if not cfg.clips.enabled:
        return None
    clean_leftovers(cfg.paths.media)
    index = ClipIndex(cfg, sweep)
    if cfg.camera.source == "picamera2":
        from homesec.capture.picam_recording import PicameraClipRecorder

        return PicameraClipRecorder(cfg, camera, index)
    if (cfg.clips.copy_h264 and hasattr(camera, "packet_tap")
            and cfg.clips.width in (0, cfg.camera.width)):
        from homesec.capture.clip_copy import CopyingClipRecorder

        recorder = CopyingClipRecorder(cfg, index)  # a file or stream read by PyAV
        camera.packet_tap = recorder
        return recorder
    return PyavClipRecorder(cfg, index)
