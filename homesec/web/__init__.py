"""The web UI and JSON API, as a Flask application factory.

Why a factory and no module state: gunicorn imports this module once per worker process and
calls `create_app()`; everything a request needs (config, database, secret key) hangs off the app
object or is opened per request, so workers share nothing but the SQLite file and the runtime dir.
Nothing happens at import time.

Run by gunicorn as `homesec.web:create_app()` (see `homesec web` and gunicorn_conf.py); the config
comes from $HOMESEC_CONFIG, else /etc/homesec/config.toml, else the defaults.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import threading
from pathlib import Path

from flask import Flask

from homesec import __version__
from homesec.config import Config

# An API request body is a few dozen bytes; anything bigger than this is refused with 413.
MAX_BODY_BYTES = 16 * 1024
# MJPEG streams allowed at once per worker process; the rest of the threads stay free for API
# and page requests (see gunicorn_conf.py).
API_THREADS_RESERVED = 4


def _asset_dir(name: str) -> Path:
    """templates/ or static/: inside the installed package (wheel), else at the top of the
    source tree (a checkout or an editable install)."""
    here = Path(__file__).resolve().parent
    packaged = here / name
    if packaged.is_dir():
        return packaged
    return here.parent.parent / name


def create_app(config: Config | None = None, behind_proxy: bool = False) -> Flask:
    """Build the app for `config` (None: read the config file the CLI would use). behind_proxy:
    served by the nginx front deploy.sh installs (see homesec.web.front)."""
    if config is None:
        from homesec.cli import load_config

        config = load_config(None)
    app = Flask(__name__, template_folder=str(_asset_dir("templates")),
                static_folder=str(_asset_dir("static")), static_url_path="/static")
    from homesec.web.security import load_secret_key

    app.config.update(
        HOMESEC=config,
        SECRET_KEY=load_secret_key(config.paths.state_dir),
        SESSION_COOKIE_NAME="homesec_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(days=config.web.session_days),
        SESSION_REFRESH_EACH_REQUEST=False,  # the lifetime is absolute (sessions.py)
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        MAX_FORM_MEMORY_SIZE=MAX_BODY_BYTES,
        SEND_FILE_MAX_AGE_DEFAULT=3600,
    )
    # Static files may be cached for an hour; the version in their URLs makes an upgrade load the
    # new CSS and JS at once.
    app.jinja_env.globals["asset_version"] = __version__
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep the documented key order
    app.extensions["homesec_trusted"] = [
        ipaddress.ip_network(n, strict=False) for n in config.web.trust_networks
    ]
    # Per-process cap on concurrent MJPEG streams, so viewers never take every thread.
    slots = max(1, config.web.threads - API_THREADS_RESERVED)
    app.extensions["homesec_live_slots"] = threading.BoundedSemaphore(slots)
    # One password check at a time per process (see auth.login): argon2id needs tens of MiB each,
    # and the rate limit's check-verify-record must not interleave.
    app.extensions["homesec_login_lock"] = threading.Lock()

    from homesec.web import api, auth, db, errors, pages, security
    from homesec.web.converters import AsciiIntConverter

    app.url_map.converters["int"] = AsciiIntConverter  # before any route is added
    if behind_proxy:
        from homesec.web import front

        front.init_app(app, config)
    db.init_app(app)
    security.init_app(app)
    errors.init_app(app)
    from homesec.web import db_errors

    db_errors.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    from homesec.web import alarm_routes

    app.register_blueprint(alarm_routes.api_bp)
    app.register_blueprint(alarm_routes.pages_bp)
    from homesec.web import password

    app.register_blueprint(password.bp)
    return app
