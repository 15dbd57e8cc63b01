"""The HTML pages for the phone: home (state, big arm/disarm button, live view, last events,
camera health), event detail, API tokens.

Why forms that work without JavaScript: the big button must arm the house even if the script
failed to load; static/app.js only makes the page live (countdown, polling, live view) and turns
the button into a fetch() to the API.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from homesec.storage.media import remove_event_files
from homesec.web import accounts, arm_limit, audit_hooks, history, sessions
from homesec.web.api import MAX_DELAY_S
from homesec.web.auth import client_addr, identity, require_fresh_login
from homesec.web.db import cfg, get_store
from homesec.web.overview import capture_warning, event_json, status

bp = Blueprint("pages", __name__)

HOME_EVENTS = 12
HISTORY_PAGE = 20


def _fmt_time(ts: float | None) -> str:
    """Local time for people; '-' for none."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


@bp.app_template_filter("ts")
def ts_filter(ts: float | None) -> str:
    """Local date and time of a Unix timestamp."""
    return _fmt_time(ts)


@bp.app_template_filter("iso")
def iso_filter(ts: float | None) -> str:
    """ISO 8601 with the box's UTC offset (for <time datetime>)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(ts)) if ts else ""


@bp.app_template_filter("duration")
def duration_filter(seconds: float | None) -> str:
    """'8 s', '2 min 5 s', '1 h 3 min'."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{seconds:.0f} s" if seconds >= 1 else f"{seconds:.1f} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


@bp.app_template_filter("bytes")
def bytes_filter(n: float | None) -> str:
    """Bytes for people (SI units, like disk makers)."""
    if n is None:
        return "-"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


@bp.get("/")
def home() -> str:
    """At a glance: armed or not, the button, live view, last events, health."""
    store = get_store()
    rows = store.events(limit=HOME_EVENTS)
    return render_template(
        "home.html", st=status(cfg(), store),
        events=history.page(store, rows, [event_json(e) for e in rows]),
        auth=identity().kind == "session", max_delay=MAX_DELAY_S, live_max_s=cfg().web.live_max_s,
    )


@bp.post("/arm")
def arm_form() -> Any:
    """The arm button without JavaScript."""
    raw = request.form.get("delay_s", "").strip()
    delay = float(cfg().alarm.exit_delay_s)
    if raw:
        if len(raw) > 10 or not (raw.isascii() and raw.isdigit()):  # int() would also read "٢" or "1_0"
            abort(400, "The exit delay must be a whole number of seconds.")
        delay = float(int(raw))
        if not 0 <= delay <= MAX_DELAY_S:
            abort(400, f"The exit delay must be between 0 and {MAX_DELAY_S} seconds.")
    arm_limit.check()
    get_store().arm(identity().label, delay_s=delay, client=client_addr())
    warning = capture_warning(cfg(), time.time())
    if warning:
        flash(f"Armed, but {warning.split(': ', 1)[0]}: nothing is watching.")
    return redirect(url_for("pages.home"))


@bp.post("/disarm")
def disarm_form() -> Any:
    """The disarm button without JavaScript."""
    arm_limit.check()
    get_store().set_arm(False, by=identity().label, client=client_addr())
    return redirect(url_for("pages.home"))


@bp.get("/events/<int:event_id>")
def event_page(event_id: int) -> str:
    """One event: its snapshot with the motion boxes, numbers, delete button."""
    store = get_store()
    ev = store.event(event_id)
    if ev is None:
        abort(404, f"There is no event {event_id}.")
    older, newer = history.neighbours(store, event_id)
    return render_template("event.html", ev=history.event_page_json(store, ev, event_json(ev)),
                           older=older, newer=newer)


@bp.get("/history")
def history_page() -> str:
    """Every kept event, newest first, a page at a time; `day` (YYYY-MM-DD, the box's local
    day) picks one day, `before` (an event id) pages to older events."""
    store = get_store()
    day = request.args.get("day", "").strip() or None
    since = until = None
    if day is not None:
        try:
            since = history.parse_bound(day, end=False)
            until = history.parse_bound(day, end=True)
        except history.DayError:
            abort(400, "The day must be a date (YYYY-MM-DD).")
    raw = request.args.get("before", "").strip()
    before = None
    if raw:
        if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) < 2**62:
            abort(400, "before must be an event number.")
        before = int(raw)
    rows = store.events(limit=HISTORY_PAGE, before_id=before, since=since, until=until)
    older = rows[-1].id if len(rows) == HISTORY_PAGE and store.events(
        limit=1, before_id=rows[-1].id, since=since, until=until) else None
    newer = (history.newer_page_start(store, rows[0].id, HISTORY_PAGE, since, until)
             if rows else (0 if before is not None else None))
    return render_template("history.html", day=day, older=older, newer=newer,
                           events=history.page(store, rows, [event_json(e) for e in rows]),
                           tz=time.strftime("%Z"))


@bp.post("/events/<int:event_id>/delete")
def event_delete(event_id: int) -> Any:
    """Delete an event and its files, back to the home page."""
    store = get_store()
    ev = store.event(event_id)
    if ev is None:
        abort(404, f"There is no event {event_id}.")
    if ev.end_ts is None and not ev.interrupted:
        abort(409, "The event is still being recorded; delete it when it has ended.")
    deleted = store.delete_event(event_id)
    if deleted is not None:
        remove_event_files(cfg().paths.media, deleted)
    flash(f"Event {event_id} deleted.")
    return redirect(url_for("pages.home"))


def _tokens_page(new: dict[str, str] | None = None, **extra: Any) -> str:
    """Active login sessions and API tokens, each with a revoke button (`extra`: more for the
    template, such as the password form's message)."""
    store = get_store()
    ident = identity()
    return render_template(
        "tokens.html", tokens=accounts.list_tokens(store), new=new,
        sessions=sessions.list_active(store), current=ident.login,
        is_session=ident.kind == "session",
        fresh=ident.login is not None and ident.login.fresh(),
        reauth_min=int(sessions.REAUTH_S // 60), **extra)


@bp.get("/tokens")
def tokens() -> str:
    """Login sessions and API tokens: list, create, revoke."""
    return _tokens_page()


@bp.post("/tokens")
def token_create() -> Any:
    """Create a token and show its secret once (needs a recent password entry)."""
    require_fresh_login()
    store = get_store()
    try:
        info, secret = accounts.create_token(store, request.form.get("name", ""))
    except accounts.AccountError as exc:
        abort(400, str(exc))
    audit_hooks.token_created(info.name)
    return _tokens_page(new={"name": info.name, "secret": secret})


@bp.post("/tokens/<int:token_id>/revoke")
def token_revoke(token_id: int) -> Any:
    """Revoke a token (needs a recent password entry)."""
    require_fresh_login()
    if not accounts.revoke_token(get_store(), token_id):
        abort(404, f"There is no token {token_id}.")
    audit_hooks.token_revoked(token_id)
    flash("Token revoked.")
    return redirect(url_for("pages.tokens"))
