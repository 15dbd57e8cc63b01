"""The web app behind the nginx front (`homesec web --behind-nginx`, as deploy.sh runs it).

Why a switch and not a guess: `X-Forwarded-For` is whatever a client writes, so it may be believed
only when every request comes through a proxy that replaces it. That is true exactly when gunicorn
listens on the Unix socket only nginx reaches (homesec.system.nginx), so the switch that moves
gunicorn onto that socket is the same one that makes the app trust one proxy hop. `homesec web`
without it (demo, tests, a laptop) ignores every forwarding header.

Behind nginx the app also
- hands media files to nginx with `X-Accel-Redirect` (homesec.web.media_response), so a download
  or a seek in a clip holds no gunicorn thread;
- marks the session cookie `Secure` when nginx serves HTTPS (web.tls_cert/web.tls_key).
"""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from homesec.config import Config
from homesec.system.nginx import socket_path

# app.config keys
BEHIND_PROXY = "HOMESEC_BEHIND_PROXY"
MEDIA_ROOT = "HOMESEC_MEDIA_ROOT"

# Behind nginx gunicorn's own request limits must never be the ones that trip (they answer in
# HTML): nginx's are smaller (a 4 KiB request line, 4 KiB header lines, 16 KiB of headers in all),
# so gunicorn gets its maxima.
_GUNICORN_LIMITS = ("--limit-request-line", "8190", "--limit-request-fields", "32768",
                    "--limit-request-field_size", "16384")


def gunicorn_args(cfg: Config) -> list[str]:
    """gunicorn command-line options (they override gunicorn_conf.py) for the nginx front."""
    return ["--bind", f"unix:{socket_path(cfg)}", *_GUNICORN_LIMITS]


def init_app(app: Flask, config: Config) -> None:
    """Trust one proxy hop for the client address and scheme; media through nginx."""
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=0, x_port=0,  # type: ignore[method-assign]
                            x_prefix=0)
    app.config[BEHIND_PROXY] = True
    app.config[MEDIA_ROOT] = config.paths.media.resolve()
    if config.web.tls_cert is not None:
        app.config["SESSION_COOKIE_SECURE"] = True
