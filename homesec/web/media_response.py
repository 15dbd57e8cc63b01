"""How a media file (snapshot, thumbnail, clip) leaves the web app, in one place.

The route has already checked the session and resolved the path inside the media dir (never
joined from user input). Flask's `send_file(conditional=True)` answers range requests (206,
`Accept-Ranges`, `Content-Range`, 416 past the end), which browsers need to seek in a video and
iOS needs to play one at all. Behind nginx this is the one place to hand the transfer to nginx
(`X-Accel-Redirect`), so a download holds no gunicorn thread.
"""

from __future__ import annotations

from pathlib import Path

from flask import Response, send_file


def send_media(path: Path, mimetype: str) -> Response:
    """The file as a response that supports range requests."""
    return send_file(path, mimetype=mimetype, conditional=True, max_age=0)
