"""A real H.264/MP4 clip for tests that need one (made with the same encoder and writer as the
daemon), and its registration in the store."""

from __future__ import annotations

from pathlib import Path

from homesec.camera.demo import DemoScene
from homesec.capture.recording import ClipWriter, PyavEncoder
from homesec.storage.clips import add_clip
from homesec.storage.store import Store


def make_clip(path: Path, seconds: float = 3.0, size: tuple[int, int] = (320, 180),
              fps: float = 10.0, t0: float = 5.0) -> tuple[int, float]:
    """Write an MP4 of the demo scene from scene time t0; returns (frames, duration)."""
    w, h = size
    scene = DemoScene(w, h, 80, seed=1)
    enc = PyavEncoder(w, h, fps, 28)
    writer = None
    n = round(seconds * fps)
    for i in range(n):
        t = t0 + i / fps
        for pkt in enc.encode(scene.color(t), 1000.0 + i / fps, 1_700_000_000.0 + i / fps):
            if writer is None:
                writer = ClipWriter(path, enc.stream, pkt)
            writer.write(pkt)
    assert writer is not None
    writer.finish(1.0 / fps)
    return writer.frames, n / fps


def add_event_clip(store: Store, media: Path, event_id: int, part: int = 1,
                   start_ts: float = 1_700_000_000.0, **kw: float) -> Path:
    """A real clip file for the event, registered like the daemon does."""
    rel = f"clips/{event_id}.clip{part}.mp4"
    path = media / rel
    frames, duration = make_clip(path, **kw)  # type: ignore[arg-type]
    add_clip(store, event_id, part, rel, start_ts, start_ts + duration, path.stat().st_size,
             frames, 0)
    return path
