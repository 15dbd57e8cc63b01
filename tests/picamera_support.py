"""The picamera2 fake as a fixture: a fresh import per test, every knob back to normal after."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

FAKES = str(Path(__file__).parent / "fakes")


def _forget_picamera2() -> None:
    for name in [m for m in sys.modules if m == "picamera2" or m.startswith("picamera2.")]:
        sys.modules.pop(name, None)


def fresh_fake_picamera2(monkeypatch: pytest.MonkeyPatch) -> Iterator[type]:
    """The fake's Picamera2 class, importable as `picamera2` while the generator is suspended
    (the `fake_picamera2` fixture in conftest.py)."""
    monkeypatch.syspath_prepend(FAKES)
    _forget_picamera2()
    import picamera2

    cls = picamera2.Picamera2
    yield cls
    if cls.stop_hangs is not None:
        cls.stop_hangs.set()  # let a deliberately stuck stop() finish
    for inst in cls.instances:
        if inst.started and cls.stop_hangs is None:
            inst.cancel_all_and_flush()
            inst.stop()
    _forget_picamera2()
