"""Placeholder, replaced below."""

from __future__ import annotations

from typing import Any


def PicameraClipRecorder(cfg: Any, camera: Any, index: Any) -> None:
    return None
