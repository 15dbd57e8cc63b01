"""The JSON API under /api/v1 (documented in openapi.json, served at /api/v1/openapi.json).

Every input is checked before anything changes: a malformed body, a wrong type, an unknown key or
id, a body that is too big gets a 4xx JSON error and the state stays as it was.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, NoReturn

from flask import Blueprint, Response, abort, current_app, jsonify, request, send_file

from homesec.storage.media import remove_event_files, resolve
from homesec.storage.store import EventRow
from homesec.web import arm_limit, stream
from homesec.web.auth import client_addr, identity
from homesec.web.db import cfg, get_store
from homesec.web.errors import json_error
from homesec.web.history import DayError, event_page_json, page, parse_bound
from homesec.web.media_response import send_media
from homesec.web.overview import arm_json, capture_warning, event_json, status

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_DELAY_S = 3600
MAX_LIMIT = 200


def bad_request(message: str) -> NoReturn:
    """Refuse the request's input: a 400 JSON error (see errors.py), nothing changed."""
    abort(400, message)


def _no_constant(name: str) -> NoReturn:
    """NaN, Infinity and -Infinity are not JSON (RFC 8259); Python's parser accepts them."""
    raise ValueError(f"{name} is not a JSON value")


def _json_body(allowed: set[str]) -> dict[str, Any]:
    """The request's JSON object (empty body = {}), with only `allowed` keys."""
    raw = request.get_data(cache=True)  # MAX_CONTENT_LENGTH turns a huge body into 413 here
    if not raw.strip():
        return {}
    if request.mimetype != "application/json":
        bad_request("the body must be JSON (Content-Type: application/json)")
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError):
        bad_request("the body is not valid JSON")
    except RecursionError:  # "[" * 15000 fits the size cap but not the parser's stack
        bad_request("the body is nested too deeply")
    if not isinstance(body, dict):
        bad_request("the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        bad_request(f"unknown key(s): {', '.join(unknown)}")
    return body


def _delay(body: dict[str, Any]) -> float:
    """delay_s from the body (a number of seconds, 0..3600), default alarm.exit_delay_s."""
    if "delay_s" not in body or body["delay_s"] is None:
        return float(cfg().alarm.exit_delay_s)
    value = body["delay_s"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        bad_request("delay_s must be a number of seconds")
    if not 0 <= value <= MAX_DELAY_S:
        bad_request(f"delay_s must be between 0 and {MAX_DELAY_S}")
    return float(value)


def _int_arg(name: str, default: int | None, lo: int, hi: int) -> int | None:
    """An integer query parameter within [lo, hi], or `default` when absent."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    # ASCII digits only: int() would also read "٢", " 5 " and "1_0"
    if len(raw) > 20 or not (raw.isascii() and raw.removeprefix("-").isdigit()):
        bad_request(f"{name} must be an integer")
    value = int(raw)
    if not lo <= value <= hi:
        bad_request(f"{name} must be between {lo} and {hi}")
    return value


@bp.get("/openapi.json")
def openapi() -> Response:
    """The API description."""
    return send_file(Path(__file__).with_name("openapi.json"), mimetype="application/json")


@bp.get("/status")
def get_status() -> Response:
    """Arm state, camera health, last event, disk."""
    return jsonify(status(cfg(), get_store()))


@bp.post("/arm")
def post_arm() -> Response:
    """Arm after delay_s seconds (default: alarm.exit_delay_s)."""
    delay = _delay(_json_body({"delay_s"}))
    arm_limit.check()
    st = get_store().arm(identity().label, delay_s=delay, client=client_addr())
    now = time.time()
    # Arming with nothing watching is allowed (the owner may be fixing it), but said.
    return jsonify({**arm_json(st, now), "warning": capture_warning(cfg(), now)})


@bp.post("/disarm")
def post_disarm() -> Response:
    """Disarm now; also cancels a pending arm."""
    _json_body(set())
    arm_limit.check()
    st = get_store().set_arm(False, by=identity().label, client=client_addr())
    return jsonify(arm_json(st, time.time()))


@bp.get("/events")
def list_events() -> Response:
    """Newest first; `before` (an event id) pages backwards; `since` / `until` (Unix seconds or
    a local day YYYY-MM-DD) filter by start time."""
    limit = _int_arg("limit", 50, 1, MAX_LIMIT)
    before = _int_arg("before", None, 1, 2**62)
    try:
        since = parse_bound(request.args.get("since"), end=False)
        until = parse_bound(request.args.get("until"), end=True)
    except DayError as exc:
        bad_request(str(exc))
    store = get_store()
    rows = store.events(limit=limit or 50, before_id=before, since=since, until=until)
    return jsonify({"events": page(store, rows, [event_json(e) for e in rows]),
                    "next_before": rows[-1].id if rows and len(rows) == limit else None})


def _event(event_id: int) -> EventRow:
    """The event, or a 404 JSON error."""
    ev = get_store().event(event_id)
    if ev is None:
        abort(404, f"no event {event_id}")
    return ev


@bp.get("/events/<int:event_id>")
def get_event(event_id: int) -> Response:
    """One event, with its clips."""
    ev = _event(event_id)
    return jsonify(event_page_json(get_store(), ev, event_json(ev)))


@bp.delete("/events/<int:event_id>")
def delete_event(event_id: int) -> Response:
    """Delete an event and its files (not while it is still being recorded)."""
    _json_body(set())
    ev = _event(event_id)
    if ev.end_ts is None and not ev.interrupted:
        return json_error(409, "the event is still being recorded; delete it when it has ended")
    deleted = get_store().delete_event(event_id)
    removed = remove_event_files(cfg().paths.media, deleted) if deleted else []
    return jsonify({"deleted": event_id, "files_removed": removed})


def _event_file(event_id: int, which: str) -> Response:
    """Send the event's snapshot or thumbnail, resolved inside the media dir."""
    path = resolve(cfg().paths.media, getattr(_event(event_id), which))
    if path is None or not path.is_file():
        return json_error(404, f"event {event_id} has no {which} file")
    return send_media(path, "image/jpeg")


@bp.get("/events/<int:event_id>/snapshot.jpg")
def event_snapshot(event_id: int) -> Response:
    """The event's best frame with boxes."""
    return _event_file(event_id, "snapshot")


@bp.get("/events/<int:event_id>/thumb.jpg")
def event_thumb(event_id: int) -> Response:
    """The small version for lists."""
    return _event_file(event_id, "thumb")


@bp.get("/events/<int:event_id>/clip.mp4")
def event_clip(event_id: int) -> Response:
    """The event's video clip (`part` for the later parts of a long event); range requests."""
    from homesec.storage.clips import clips_of

    part = _int_arg("part", 1, 1, 10_000)
    _event(event_id)
    clip = next((c for c in clips_of(get_store(), event_id) if c.part == part), None)
    path = resolve(cfg().paths.media, clip.path) if clip is not None else None
    if path is None or not path.is_file():
        return json_error(404, f"event {event_id} has no clip {part}")
    return send_media(path, "video/mp4")


@bp.get("/live.jpg")
def live_jpg() -> Response:
    """The newest live frame (waits up to 3 s for the daemon to start publishing)."""
    got = stream.fresh_frame(cfg().paths.runtime_dir)
    if got is None:
        return json_error(503, "no live frame: is the capture daemon running?")
    data, mtime = got
    resp = Response(data, mimetype="image/jpeg")
    resp.headers["X-Frame-Age"] = f"{max(0.0, time.time() - mtime):.2f}"
    return resp


@bp.get("/live.mjpg")
def live_mjpg() -> Response:
    """The live view as an MJPEG stream (one thread per viewer, capped per worker)."""
    slot = current_app.extensions["homesec_live_slots"]
    if not slot.acquire(blocking=False):
        resp = json_error(503, "too many live viewers on this worker; try again")
        resp.headers["Retry-After"] = "5"
        return resp
    c = cfg()
    from homesec.web import stream_guard

    # The stream ends when its login or token does (logout, revoke), not only at live_max_s.
    check = stream_guard.for_identity(identity(), c.paths.db_path)
    resp = Response(stream.mjpeg(c.paths.runtime_dir, c.web.live_max_s, still_valid=check),
                    content_type=f"multipart/x-mixed-replace; boundary={stream.BOUNDARY}")
    resp.call_on_close(slot.release)
    if check is not None:
        resp.call_on_close(check.close)
    resp.headers["X-Accel-Buffering"] = "no"
    return resp
