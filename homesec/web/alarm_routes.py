"""Snooze and the audit log: the API routes (/api/v1/snooze, /api/v1/audit) and the pages
(/snooze form, /audit), kept apart from api.py and pages.py, which other work also changes.

Snooze pauses alerts while armed ("15 min", "1 h", "until disarmed"); events are still recorded.
The audit page and `GET /api/v1/audit` page backwards by id (`before`), newest first.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, url_for

from homesec.alarm import persist
from homesec.alarm.machine import UNTIL_DISARMED
from homesec.storage import audit
from homesec.web import arm_limit
from homesec.web.api import _int_arg, _json_body, bad_request
from homesec.web.auth import client_addr, identity
from homesec.web.db import get_store
from homesec.web.errors import json_error
from homesec.web.overview import arm_json

api_bp = Blueprint("alarm_api", __name__, url_prefix="/api/v1")
pages_bp = Blueprint("alarm_pages", __name__)

SNOOZE_CHOICES = {"15m": 15 * 60.0, "1h": 3600.0, "until_disarmed": UNTIL_DISARMED}
AUDIT_PAGE = 50


def _snooze_until(choice: Any, now: float) -> float:
    if not isinstance(choice, str) or choice not in SNOOZE_CHOICES:
        bad_request("duration must be one of: " + ", ".join(SNOOZE_CHOICES))
    span = SNOOZE_CHOICES[choice]
    return span if span == UNTIL_DISARMED else now + span


def _snooze(choice: Any) -> tuple[persist.Applied, float]:
    now = time.time()
    until = _snooze_until(choice, now)  # (a bad choice is refused before it is counted)
    arm_limit.check(now)
    return persist.apply(get_store(), "snooze", by=identity().label, now=now,
                         client=client_addr(), until_ts=until), now


@api_bp.post("/snooze")
def post_snooze() -> Response:
    """Pause alerts while armed: {"duration": "15m" | "1h" | "until_disarmed"}."""
    body = _json_body({"duration"})
    if "duration" not in body:
        bad_request("duration is required: " + ", ".join(SNOOZE_CHOICES))
    done, _ = _snooze(body["duration"])
    if done.outcome.refused:
        return json_error(409, done.outcome.refused)
    return jsonify(arm_json(done.status, time.time()))


@api_bp.delete("/snooze")
def delete_snooze() -> Response:
    """Alerts again (end the snooze)."""
    _json_body(set())
    arm_limit.check()
    done = persist.apply(get_store(), "unsnooze", by=identity().label, client=client_addr())
    return jsonify(arm_json(done.status, time.time()))


@api_bp.get("/audit")
def get_audit() -> Response:
    """The audit log, newest first; `before` (an id) pages backwards."""
    limit = _int_arg("limit", AUDIT_PAGE, 1, 200) or AUDIT_PAGE
    before = _int_arg("before", None, 1, 2**62)
    rows = audit.page(get_store(), limit=limit, before_id=before)
    return jsonify({"entries": [r.to_json() for r in rows],
                    "next_before": rows[-1].id if rows and len(rows) == limit else None})


@pages_bp.post("/snooze")
def snooze_form() -> Any:
    """The snooze buttons without JavaScript."""
    choice = request.form.get("duration", "")
    if choice == "resume":
        arm_limit.check()
        persist.apply(get_store(), "unsnooze", by=identity().label, client=client_addr())
        return redirect(url_for("pages.home"))
    if choice not in SNOOZE_CHOICES:
        abort(400, "Choose 15 min, 1 h or until disarmed.")
    done, _ = _snooze(choice)
    if done.outcome.refused:
        flash(f"Not snoozed: {done.outcome.refused}.")
    return redirect(url_for("pages.home"))


@pages_bp.get("/audit")
def audit_page() -> str:
    """Who armed, disarmed, snoozed, logged in, made tokens: one page at a time."""
    raw = request.args.get("before", "")
    before = None
    if raw:
        if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) < 2**62:
            abort(400, "before must be an entry number")
        before = int(raw)
    rows = audit.page(get_store(), limit=AUDIT_PAGE, before_id=before)
    older = rows[-1].id if len(rows) == AUDIT_PAGE else None
    return render_template("audit.html", rows=rows, older=older, first=before is None)
