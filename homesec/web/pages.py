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
from homesec.web import accounts, sessions
from homesec.web.api import MAX_DELAY_S
from homesec.web.auth import identity, require_fresh_login
from homesec.web.db import cfg, get_store
from homesec.web.overview import event_json, status

bp = Blueprint("pages", __name__)

HOME_EVENTS = 12


def _fmt_time(ts: float | None) -> str:
    """Local time for people; '-' for none."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


@bp.app_template_filter("ts")
def ts_filter(ts: float | None) -> str:
    """Local date and time of a Unix timestamp."""
    return _fmt_time(ts)


@bp.get("/")
def home() -> str:
    """At a glance: armed or not, the button, live view, last events, health."""
    store = get_store()
    return render_template(
        "home.html", st=status(cfg(), store),
        events=[event_json(e) for e in store.events(limit=HOME_EVENTS)],
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
    get_store().arm(identity().label, delay_s=delay)
    return redirect(url_for("pages.home"))


@bp.post("/disarm")
def disarm_form() -> Any:
    """The disarm button without JavaScript."""
    get_store().set_arm(False, by=identity().label)
    return redirect(url_for("pages.home"))


@bp.get("/events/<int:event_id>")
def event_page(event_id: int) -> str:
    """One event: its snapshot with the motion boxes, numbers, delete button."""
    ev = get_store().event(event_id)
    if ev is None:
        abort(404, f"There is no event {event_id}.")
    return render_template("event.html", ev=event_json(ev))


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


def _tokens_page(new: dict[str, str] | None = None) -> str:
    """Active login sessions and API tokens, each with a revoke button."""
    store = get_store()
    ident = identity()
    return render_template(
        "tokens.html", tokens=accounts.list_tokens(store), new=new,
        sessions=sessions.list_active(store), current=ident.login,
        is_session=ident.kind == "session",
        fresh=ident.login is not None and ident.login.fresh(),
        reauth_min=int(sessions.REAUTH_S // 60))


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
    return _tokens_page(new={"name": info.name, "secret": secret})


@bp.post("/tokens/<int:token_id>/revoke")
def token_revoke(token_id: int) -> Any:
    """Revoke a token (needs a recent password entry)."""
    require_fresh_login()
    if not accounts.revoke_token(get_store(), token_id):
        abort(404, f"There is no token {token_id}.")
    flash("Token revoked.")
    return redirect(url_for("pages.tokens"))
