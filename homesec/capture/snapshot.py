"""Render and save event snapshots: boxes and a time stamp drawn on the full-resolution image,
plus a small thumbnail for the event list.

Files are written to a temporary name and renamed, so a reader (the web UI, the mailer) never sees
half a JPEG, even if the daemon dies mid-write.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from homesec.system.atomic import write_atomic

Box = tuple[int, int, int, int]


def draw_snapshot(image: np.ndarray, boxes: list[Box], wall_s: float, camera: str) -> np.ndarray:
    """A copy of `image` with the motion boxes and a readable time stamp drawn on it."""
    img = image.copy()
    _h, w = img.shape[:2]
    thick = max(2, w // 400)
    for x, y, bw, bh in boxes:
        cv2.rectangle(img, (x, y), (x + bw - 1, y + bh - 1), (0, 0, 255), thick)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(wall_s)) + f"  {camera}"
    scale = max(0.5, w / 1600)
    (tw, th), base = cv2.getTextSize(stamp, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    cv2.rectangle(img, (0, 0), (tw + 16, th + base + 16), (0, 0, 0), -1)
    cv2.putText(img, stamp, (8, th + 8), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick,
                cv2.LINE_AA)
    return img


def encode_jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    """JPEG bytes of a BGR image."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def thumbnail(image: np.ndarray, width: int) -> np.ndarray:
    """The image scaled down to `width` (area interpolation)."""
    h, w = image.shape[:2]
    if w <= width:
        return image
    return cv2.resize(image, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)


def save_snapshot(media_dir: Path, event_key: str, image: np.ndarray, boxes: list[Box],
                  wall_s: float, camera: str, quality: int, thumb_width: int,
                  day_of: float | None = None) -> tuple[str, str]:
    """Write `<key>.jpg` and `<key>.thumb.jpg` under media_dir/YYYY-MM-DD/; return the paths
    relative to media_dir. The day is that of `day_of` (the event's start), else of `wall_s`
    (the picture's time): a better picture after midnight must replace the event's files, not
    leave them behind in the previous day's folder."""
    day = time.strftime("%Y-%m-%d", time.localtime(wall_s if day_of is None else day_of))
    folder = media_dir / day
    folder.mkdir(parents=True, exist_ok=True)
    drawn = draw_snapshot(image, boxes, wall_s, camera)
    snap_rel = f"{day}/{event_key}.jpg"
    thumb_rel = f"{day}/{event_key}.thumb.jpg"
    write_atomic(media_dir / snap_rel, encode_jpeg(drawn, quality))
    write_atomic(media_dir / thumb_rel, encode_jpeg(thumbnail(drawn, thumb_width), 80))
    return snap_rel, thumb_rel
