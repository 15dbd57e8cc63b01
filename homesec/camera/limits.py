"""The largest frame any camera source may hand to the daemon.

The config's own limit for camera.width x camera.height. A hostile or broken camera (or file)
that claims 16384x16384 would otherwise make the decoder allocate hundreds of MiB per frame, and
the snapshot, live view and clip encoder copy it again: the daemon hits its MemoryMax, is killed,
restarted, killed again, and nothing is watched. Sources refuse such a stream with CameraError
(the supervisor reports it and retries).
"""

from __future__ import annotations

MAX_FRAME_W, MAX_FRAME_H = 4096, 3072
MAX_FRAME_PIXELS = MAX_FRAME_W * MAX_FRAME_H


def too_big(label: str, width: int, height: int, what: str = "sends") -> str | None:
    """The CameraError message for a frame size over the limit, or None when it is fine."""
    if width * height <= MAX_FRAME_PIXELS:
        return None
    return (f"{label!r} {what} {width}x{height} frames: more than {MAX_FRAME_W}x{MAX_FRAME_H} "
            "pixels is refused (memory)")
