"""Event clips from the camera's own H.264: packets copied into the clip, nothing re-encoded.

Why: an IP camera (RTSP) or a recorded file already is H.264. Decoding it for the detector is
needed; encoding it again for the clip is not. Re-encoding 720p with libx264 costs the daemon
about 23 MB of encoder state, the BGR conversion of every clip frame, and on a Pi most of a core;
copying costs a few MB of packets in the pre-roll ring, and the clip has the camera's own
quality, size and frame rate. (The Pi camera records with its own encoder: picam_recording.py.)

How: the PyAV source (camera/pyav_source.py) hands every demuxed packet to `packet()` with its
presentation and decoding times on the frames' clock, on the capture thread; they are queued and
the clips thread feeds them to the same ClipSink as encoded packets (ring, parts, rows). Each
time the source (re)opens, `opened()` says whether its stream is H.264: if it is, its codec
parameters become the clips' template; if not (HEVC, MJPEG, MPEG-4...), the frames are encoded
with libx264 as for the demo source, the encoder created only then. `clips.copy_h264 = false` or a
`clips.width` other than the camera's always re-encodes (make_clip_recorder decides).

Why nothing blocks the capture loop: a full queue (the disk stalls) drops the packet and every
packet after it up to the next keyframe, counted; a clip then has a gap, never a broken picture.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
from typing import Any

from homesec.camera.base import Frame
from homesec.capture.recording import (
    QUEUE_FRAMES,
    ClipIndex,
    EncodedPacket,
    PyavClipRecorder,
    PyavEncoder,
)
from homesec.config import Config

log = logging.getLogger("homesec.capture.clip_copy")

COPIED_CODECS = {"h264"}  # what every phone plays in MP4
# Demuxers that give packets no presentation times (a raw .h264 file or stream; AVI, whose are
# guessed as decoding time + 2 ticks): without B-frames a packet's place in the stream is its
# presentation time; with them it is not (and is unknown): such a source is encoded.
UNTIMED_FORMATS = {"h264", "avi"}
QUEUE_PACKETS = 256  # ~10 s at 25 fps: a disk that stalls longer drops up to the next keyframe
QUEUE_BYTES = 16 * 1024 * 1024  # and at most this much waiting, however big the packets


class CopyingClipRecorder(PyavClipRecorder):
    """Clips from the source's packets when it sends H.264, else from encoded frames."""

    def __init__(self, cfg: Config, index: ClipIndex) -> None:
        super().__init__(cfg, index)
        self.copying = False  # set on the capture thread when the source opens
        self.codec = ""
        self.copy_size = self.size  # the copied stream's own size, once it is open
        self.items: queue.Queue[tuple[str, int, Any] | None] = queue.Queue(QUEUE_PACKETS)
        self._frame_slots = threading.BoundedSemaphore(QUEUE_FRAMES)  # frames waiting: at most 2
        self._resync = False  # a packet was dropped: wait for the next keyframe
        self.packets_dropped = 0
        self.packets_taken = 0  # copied packets handed to the clips thread
        # Drops are told to the clips thread in stream order (a "gap" item before the next
        # packet kept), so a clip's row counts the packets missing inside it.
        self._gap = 0  # dropped since the last packet queued (capture thread)
        self._clip_gaps = 0  # gaps seen so far (clips thread)
        self.sink.dropped = lambda: self.dropped + self._clip_gaps
        self._queued_bytes = 0  # packet bytes waiting in `items`
        self._bytes_lock = threading.Lock()
        self._params: tuple[Any, ...] = ()  # what identifies the copied stream's format
        # Each (re)open with another format is a new generation; its template (None: encode)
        # waits here, and every queued item carries its generation. A full queue can then drop
        # packets and frames but never the switch itself.
        self._gen = 0
        self._sources: dict[int, Any] = {}
        self._encoder: PyavEncoder | None = None  # made when a source is not copied

    # -- the capture thread ---------------------------------------------------------------------

    def opened(self, stream: Any) -> None:
        """The source (re)opened: copy its packets if it is H.264, else encode its frames."""
        import av  # lazily: see recording._AV_NOTE

        ctx = stream.codec_context
        codec = ctx.name
        demuxer = getattr(getattr(stream, "container", None), "format", None)
        reordered_untimed = (bool(ctx.has_b_frames)
                             and getattr(demuxer, "name", "") in UNTIMED_FORMATS)
        copy = codec in COPIED_CODECS and not reordered_untimed
        self._resync = True  # the first packet of a new stream to be kept is a keyframe
        params = (codec, ctx.width, ctx.height, bytes(ctx.extradata or b""))
        if copy and self.copying and params == self._params:
            return  # the same stream again (a file's loop, a reconnect): the clip goes on
        template = None
        if copy:
            # The input stream dies with its container (a reconnect, a loop): the clips' template
            # is a copy of its codec parameters in a container of our own that is never written
            # (the template keeps it alive).
            template = av.open(io.BytesIO(), "w", format="mp4").add_stream_from_template(stream)
        if copy != self.copying or codec != self.codec:
            log.info("clips: %s", f"copying the camera's {codec}, not re-encoded" if copy else
                     f"the camera sends {codec} with B-frames and no timestamps: clips are "
                     "encoded with libx264" if reordered_untimed else
                     f"the camera sends {codec}: clips are encoded with libx264")
        self.copying, self.codec, self._params = copy, codec, params
        self.copy_size = (ctx.width, ctx.height)
        self._sources[self._gen + 1] = template
        self._gen += 1

    def packet(self, data: bytes, keyframe: bool, mono_s: float, wall_s: float,
               dts_mono: float) -> None:
        """One packet of the source, in decoding order."""
        if not self.copying:
            return
        if self._resync and not keyframe:
            self.packets_dropped += 1
            self._gap += 1
            return
        self._resync = False
        if self._gap and self._put(("gap", self._gen, self._gap), block=False):
            self._gap = 0
        with self._bytes_lock:
            room = self._queued_bytes + len(data) <= QUEUE_BYTES
            if room:
                self._queued_bytes += len(data)
        if not room or not self._put(("packet", self._gen,
                                      EncodedPacket(data, keyframe, mono_s, wall_s, dts_mono))):
            if room:
                with self._bytes_lock:
                    self._queued_bytes -= len(data)
            self.packets_dropped += 1
            self._gap += 1
            self._resync = True
        else:
            self.packets_taken += 1

    def submit(self, frame: Frame) -> None:
        """A frame: used only while the source is not copied (then encoded, as for the demo)."""
        if self.copying:
            return
        period = 1.0 / self.fps
        if self._last_mono is not None and frame.mono_s - self._last_mono < 0.9 * period:
            return
        self._last_mono = frame.mono_s
        got = (self._frame_slots.acquire(timeout=10.0) if self.blocking
               else self._frame_slots.acquire(blocking=False))
        if not got:
            self.dropped += 1
            return
        if self._put(("frame", self._gen, (frame.color(), frame.mono_s, frame.wall_s))):
            self.submitted += 1
        else:
            self._frame_slots.release()
            self.dropped += 1

    def _put(self, item: tuple[str, int, Any], block: bool | None = None) -> bool:
        block = self.blocking if block is None else block
        try:
            self.items.put(item, block=block, timeout=10.0 if block else None)
            return True
        except queue.Full:
            return False

    def stats(self) -> dict[str, Any]:
        """For status.json: the encoder is "copy" while the camera's own video is kept, and
        then `fps` and `frames` are the camera's (the copied packets), not the encoder's."""
        out = super().stats()
        out["encoder"] = f"copy ({self.codec})" if self.copying else "libx264"
        if self.copying:  # the camera's own frames at its rate; clips.fps does not apply
            out["fps"] = self.cfg.camera.fps
            out["frames"] = self.packets_taken
            out["size"] = list(self.copy_size)
        out["dropped_packets"] = self.packets_dropped
        return out

    # -- the clips thread -----------------------------------------------------------------------

    def run(self) -> None:
        encoding = False
        generation = 0
        while (item := self._take(self.items)) is not None:
            kind, gen, value = item
            if kind == "gap":
                self._clip_gaps += value
                continue
            if kind == "frame":
                self._frame_slots.release()
            else:
                with self._bytes_lock:
                    self._queued_bytes -= len(value.data)
            if gen < generation:
                continue  # queued before the source reopened in another format
            if gen > generation:
                generation = gen
                encoding = self._switch(gen)
            if kind == "frame" and encoding and self._encoder is not None:
                self._encode(self._encoder, *value)
            elif kind == "packet" and not encoding:
                self.sink.packet(value)
        self._controls()
        self.sink.close()

    def _switch(self, gen: int) -> bool:
        """Apply generation `gen`'s source: its template (copy), or the encoder. True: encode."""
        import av  # lazily: see recording._AV_NOTE

        template = None
        for g in [g for g in list(self._sources) if g <= gen]:
            template = self._sources.pop(g)
        if template is not None:
            self.sink.frame_s = 1.0 / max(self.cfg.camera.fps, 1.0)
            self.sink.use_template(template)
            return False
        if self._encoder is None:
            try:
                self._encoder = PyavEncoder(*self.size, self.fps, self.cfg.clips.crf)
            except (av.FFmpegError, ValueError) as exc:
                log.error("clip encoder unavailable (%s): events are recorded without clips", exc)
                return True
        self.sink.frame_s = 1.0 / self.fps
        self.sink.use_template(self._encoder.stream)
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the clip in progress, then register what was written."""
        if self.is_alive():
            self.items.put(None)
            self.join(timeout)
        self.index.stop(timeout)
