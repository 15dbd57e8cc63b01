"""Live view for the web: the newest JPEG, and an MJPEG stream of them.

The daemon encodes live frames only while `live.wanted` is fresh, so a viewer keeps touching it.
A stream sends a frame whenever the daemon replaced the file, and repeats the last one every
couple of seconds even when nothing new arrived: writing is the only way a server notices that the
client went away, so a dead connection is dropped within seconds even if the daemon stopped. A
stream also ends after `web.live_max_s` (the page simply reconnects), so a forgotten tab cannot hold
a thread for ever.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from homesec.capture.live import LIVE_NAME, read_live, request_live

BOUNDARY = "homesecframe"
POLL_S = 0.05
REQUEST_EVERY_S = 1.0
RESEND_AFTER_S = 2.0
FRESH_S = 2.0
# A live.jpg older than this when a stream starts is a leftover of a daemon that stopped (the
# runtime dir outlives it): never shown as "live". The daemon rewrites it 5 times a second.
STALE_FRAME_S = 10.0


def fresh_frame(runtime_dir: Path, wait_s: float = 3.0) -> tuple[bytes, float] | None:
    """A recent live JPEG (asking the daemon for one and waiting up to `wait_s`); falls back to
    the last one there is, or None."""
    request_live(runtime_dir)
    deadline = time.monotonic() + wait_s
    last = None
    while True:
        last = read_live(runtime_dir)
        if last is not None and time.time() - last[1] < FRESH_S:
            return last
        if time.monotonic() >= deadline:
            return last
        time.sleep(0.1)


def _mtime(path: Path) -> int | None:
    """The file's mtime in ns (a cheap "is there a new frame?"), or None."""
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


def _part(jpeg: bytes) -> bytes:
    """One multipart part: boundary, headers, the JPEG."""
    return (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
            .encode() + jpeg + b"\r\n")


def mjpeg(runtime_dir: Path, max_s: float, no_frame_s: float = 10.0,
          still_valid: Callable[[], bool] | None = None) -> Iterator[bytes]:
    """The multipart body. Ends after `max_s`, or after `no_frame_s` without any frame at all
    (daemon not running: the page shows that and retries; an old leftover frame does not count),
    or as soon as `still_valid()` says the viewer's login or token has ended (stream_guard.py)."""
    path = runtime_dir / LIVE_NAME
    yield b""  # makes the server send the headers now
    start = last_req = time.monotonic()
    request_live(runtime_dir)
    sent_mtime: int | None = None
    last_jpeg: bytes | None = None
    last_sent = 0.0
    while (now := time.monotonic()) - start < max_s:
        if still_valid is not None and not still_valid():
            return
        if now - last_req >= REQUEST_EVERY_S:
            request_live(runtime_dir)
            last_req = now
        mtime = _mtime(path)
        if mtime is not None and sent_mtime is None and time.time() - mtime / 1e9 > STALE_FRAME_S:
            mtime = None  # a leftover: wait for a frame from a running daemon
        if mtime is not None and mtime != sent_mtime:
            got = read_live(runtime_dir)
            if got is not None:
                last_jpeg, sent_mtime = got[0], mtime
                last_sent = now
                yield _part(last_jpeg)
                continue
        if last_jpeg is None and now - start > no_frame_s:
            return
        if last_jpeg is not None and now - last_sent >= RESEND_AFTER_S:
            last_sent = now
            yield _part(last_jpeg)
        time.sleep(POLL_S)
