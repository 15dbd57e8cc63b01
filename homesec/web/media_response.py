"""How a media file (snapshot, thumbnail, clip) leaves the web app, in one place.

The route has already checked the session and resolved the path inside the media dir (never
joined from user input). Flask's `send_file(conditional=True)` answers range requests (206,
`Accept-Ranges`, `Content-Range`, 416 past the end), which browsers need to seek in a video and
iOS needs to play one at all. Behind nginx (`homesec web --behind-nginx`, homesec.web.front) the
answer is only an `X-Accel-Redirect` to nginx's internal media location: nginx sends the file
(ranges included) and the download holds no gunicorn thread.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from flask import Response, current_app, send_file


def send_media(path: Path, mimetype: str) -> Response:
    """The file as a response that supports range requests."""
    root = current_app.config.get("HOMESEC_MEDIA_ROOT")
    if root is not None:
        try:
            rel = path.resolve().relative_to(root)
        except ValueError:
            rel = None
        if rel is not None:
            from homesec.system.nginx import MEDIA_PREFIX

            resp = Response(status=200, mimetype=mimetype)
            resp.headers["X-Accel-Redirect"] = MEDIA_PREFIX + quote(rel.as_posix())
            return resp
    return send_file(path, mimetype=mimetype, conditional=True, max_age=0)
