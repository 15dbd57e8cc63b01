"""The nginx site that fronts gunicorn on an installed appliance, generated from the config.

Why nginx in front: gunicorn's threaded worker reads a request with no timeout, so a handful of
clients that send their headers very slowly (or nothing at all) hold every thread and arm/disarm
stop answering. gunicorn's own deployment guide says to put a buffering proxy in front. nginx
reads whole requests with short timeouts in its event loop and hands gunicorn only complete ones
over a Unix socket; it buffers responses, so a slow reader holds no gunicorn thread either.

What the generated site does (deploy.sh writes it to /etc/nginx/conf.d/homesec.conf):
- listens on `web.bind`:`web.port`; only clients from `web.allow_networks` get an answer;
- header/body/send timeouts, request line, header and body size limits below gunicorn's, so
  gunicorn never produces its own HTML 414/431 (nginx answers them, as JSON on /api/ paths);
- `X-Forwarded-For` is *replaced* with the peer address (never appended to what a client sent),
  and the app trusts it only when started with `homesec web --behind-nginx` (werkzeug ProxyFix,
  one hop);
- media files leave through `X-Accel-Redirect` to an internal location after the app checked the
  session, so a download holds no gunicorn thread (homesec.web.media_response);
- with `web.tls_cert`/`web.tls_key`: HTTPS on the same port, and a plain HTTP request to it is
  redirected to HTTPS (nginx's 497 "plain HTTP to an HTTPS port").

Run as `python -m homesec.system.nginx CONFIG [--socket PATH]`; prints the site to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from homesec.config import Config, ConfigError, load

# Internal location the app's X-Accel-Redirect points at (homesec.web.media_response).
MEDIA_PREFIX = "/_homesec_media/"
SOCKET_NAME = "web.sock"
ACCESS_LOG = Path("/var/log/nginx/access.log")  # Debian's, rotated by its logrotate
LOG_FORMAT_NAME = "homesec_no_query"

# Limits. gunicorn (homesec/web/gunicorn_conf.py) allows a 4094-byte request line and 8190-byte
# header fields; behind nginx it is given more (cli `--behind-nginx`), so these are the ones that
# count. The app refuses bodies over 16 KiB itself (JSON 413); nginx refuses anything bigger than
# BODY_MAX before it reaches gunicorn.
HEADER_BUFFER = "4 4k"
BODY_MAX = "64k"
# Seconds. A phone on bad Wi-Fi sends a request in well under a second; 10 s is generous and still
# frees the connection of a client that sends nothing.
HEADER_TIMEOUT_S = 10
BODY_TIMEOUT_S = 10
SEND_TIMEOUT_S = 30
KEEPALIVE_S = 15

# Errors nginx answers itself (never the app's: proxy_intercept_errors stays off, so the app's own
# JSON errors pass untouched). 494 is nginx's "request header too large", sent as 431.
ERRORS = {
    400: "bad request",
    403: "this address may not use the appliance (web.allow_networks)",
    404: "not found",
    405: "method not allowed",
    408: "request timed out",
    413: "request body too large",
    414: "request line too long",
    431: "request header fields too large",
    500: "internal error in the web front",
    502: "the web service is not running (homesec-web)",
    503: "service unavailable",
    504: "the web service did not answer in time",
    416: "range not satisfiable",
}

# nginx's own answers (its error pages, media files sent after X-Accel-Redirect, which drops the
# app's headers) get the same protection as the app's pages (homesec.web.security): no framing,
# no MIME sniffing, no referrer to other sites, and a policy that runs nothing.
OWN_CSP = ("default-src 'none'; img-src 'self'; media-src 'self'; frame-ancestors 'none'; "
           "base-uri 'none'; form-action 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": OWN_CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _redirect_host_map(cfg: Config) -> list[str]:
    """http-level map: the host a plain-HTTP request is redirected to for HTTPS. The Host header
    is the client's word: only names of this appliance (an address, localhost, an mDNS `.local`
    name, this machine's name, web.base_url's host) are kept, anything else becomes the address
    the request came in on. So no answer of ours ever points a browser at another site."""
    import socket
    from urllib.parse import urlsplit

    own = socket.gethostname().lower()
    names = {own, own.split(".")[0], (urlsplit(cfg.web.base_url).hostname or "").lower()} - {""}
    return [
        "map $server_addr $homesec_server_host {",
        "    ~: [$server_addr];",
        "    default $server_addr;",
        "}",
        "map $host $homesec_redirect_host {",
        "    ~^[0-9.]+$ $host;",
        "    ~^\\[[0-9a-f:.]+\\]$ $host;",
        "    localhost $host;",
        "    ~^[a-z0-9-]+(\\.[a-z0-9-]+)*\\.local$ $host;",
        *(f"    {json.dumps(n)} $host;" for n in sorted(names)),
        "    default $homesec_server_host;",
        "}",
    ]


def _header_var(name: str) -> str:
    """The map variable holding `name`'s value for an error page (see _security_maps)."""
    return "$homesec_add_" + name.lower().replace("-", "_")


def _security_maps() -> list[str]:
    """http-level maps: a header's value for an error page, empty (= not added) when the
    response already has it. A 416 from the media location keeps the headers that location
    added before the range check failed; the error page must not add a second copy."""
    out: list[str] = []
    for name, value in SECURITY_HEADERS.items():
        out += [f"map $sent_http_{name.lower().replace('-', '_')} {_header_var(name)} {{",
                f'    "" "{value}";', '    default "";', "}"]
    return out


def _error_page_headers() -> list[str]:
    return [f"add_header {name} {_header_var(name)} always;" for name in SECURITY_HEADERS]


def _media_headers() -> list[str]:
    """Not `always`: an error in the media location is answered by an error page (which adds
    them itself)."""
    return [f'add_header {name} "{value}";' for name, value in SECURITY_HEADERS.items()]


def socket_path(cfg: Config) -> Path:
    """Where gunicorn listens behind nginx: the runtime dir, which nginx may enter (group)."""
    return cfg.paths.runtime_dir / SOCKET_NAME


def _listen(cfg: Config, tls: bool) -> list[str]:
    host = cfg.web.bind
    port = cfg.web.port
    ssl = " ssl" if tls else ""
    if host in ("::", "[::]"):
        return [f"listen [::]:{port}{ssl} ipv6only=off;"]
    if ":" in host:
        return [f"listen [{host.strip('[]')}]:{port}{ssl};"]
    return [f"listen {host}:{port}{ssl};"]


def _error_maps() -> list[str]:
    """http-level maps: which error page (JSON on /api/) and its message."""
    msgs = "\n".join(f"    {code} {json.dumps(msg)};" for code, msg in ERRORS.items())
    return [
        "# Which error page: JSON for API paths ($request is the raw request line, known even when",
        "# the URI itself was too long to parse), a small HTML page elsewhere.",
        "map $request $homesec_error_page {",
        '    "~^[A-Z]+ /api/" /_homesec_error.json;',
        "    default /_homesec_error.html;",
        "}",
        "map $status $homesec_error_message {",
        msgs,
        '    default "error";',
        "}",
    ]


def _proxy(read_timeout_s: float, buffering: bool) -> list[str]:
    return [
        "proxy_pass http://homesec_web;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_set_header Host $http_host;",
        # Replaced, not appended: whatever X-Forwarded-For a client sends is dropped here.
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-Host \"\";",
        "proxy_set_header X-Forwarded-Port \"\";",
        "proxy_set_header X-Forwarded-Prefix \"\";",
        # gunicorn reads these as the scheme too and answers a contradiction with its own HTML
        # 400 (even on /api/): nginx's X-Forwarded-Proto is the only word on the scheme.
        "proxy_set_header X-Forwarded-Ssl \"\";",
        "proxy_set_header X-Forwarded-Protocol \"\";",
        "proxy_set_header X-Forwarded-Scheme \"\";",
        "proxy_set_header X-Scheme \"\";",
        "proxy_set_header Forwarded \"\";",
        "proxy_redirect off;",
        "proxy_connect_timeout 5s;",
        f"proxy_read_timeout {int(read_timeout_s)}s;",
        "proxy_send_timeout 30s;",
        f"proxy_buffering {'on' if buffering else 'off'};",
    ]


def site_config(cfg: Config, upstream: Path | None = None,
                access_log: Path = ACCESS_LOG) -> str:
    """The nginx config (http-level: an upstream, maps, a log format and one server) for
    `cfg`; `access_log`: where the server logs requests (tests: their own directory)."""
    upstream = upstream if upstream is not None else socket_path(cfg)
    web = cfg.web
    tls = bool(web.tls_cert and web.tls_key)
    media = str(cfg.paths.media.resolve()).rstrip("/") + "/"
    lines: list[str] = [
        "# Generated by homesec's deploy.sh from /etc/homesec/config.toml; changes here are",
        "# overwritten: change the config and run deploy.sh again.",
        "upstream homesec_web {",
        f"    server unix:{upstream} fail_timeout=0;",
        "    keepalive 8;",
        "}",
        *_error_maps(),
        *_security_maps(),
        *(_redirect_host_map(cfg) if tls else []),
        "# Requests are logged without their query string: whatever a client puts there (a token",
        "# pasted as ?token=..., which the app refuses anyway) never lands in a log file.",
        f"log_format {LOG_FORMAT_NAME} '$remote_addr [$time_local] \"$request_method $uri\" '",
        "    '$status $body_bytes_sent $request_time';",
        "",
        "server {",
    ]
    body: list[str] = [*_listen(cfg, tls), "server_name _;", "server_tokens off;",
                       f"access_log {access_log} {LOG_FORMAT_NAME};", ""]
    body += ["# Only the home network (web.allow_networks); everyone else gets 403.",
             *(f"allow {net};" for net in web.allow_networks), "deny all;", ""]
    body += [
        f"client_header_timeout {HEADER_TIMEOUT_S}s;",
        f"client_body_timeout {BODY_TIMEOUT_S}s;",
        f"send_timeout {SEND_TIMEOUT_S}s;",
        f"keepalive_timeout {KEEPALIVE_S}s;",
        "client_header_buffer_size 1k;",
        f"large_client_header_buffers {HEADER_BUFFER};",
        f"client_max_body_size {BODY_MAX};",
        "",
    ]
    if tls:
        body += [
            f"ssl_certificate {web.tls_cert};",
            f"ssl_certificate_key {web.tls_key};",
            "ssl_protocols TLSv1.2 TLSv1.3;",
            "ssl_session_cache shared:homesec_tls:1m;",
            "ssl_session_timeout 1d;",
            "# Plain HTTP sent to this HTTPS port: redirect it to HTTPS.",
            "error_page 497 =301 https://$homesec_redirect_host:$server_port$request_uri;",
            "",
        ]
    codes = " ".join(str(c) for c in ERRORS if c != 431)
    body += [
        f"error_page {codes} $homesec_error_page;",
        "error_page 494 =431 $homesec_error_page;",
        "location = /_homesec_error.json {",
        "    internal;",
        "    default_type application/json;",
        "    add_header Cache-Control no-store always;",
        *(f"    {h}" for h in _error_page_headers()),
        "    return 200 '{\"error\": \"$homesec_error_message\", \"status\": $status}\\n';",
        "}",
        "location = /_homesec_error.html {",
        "    internal;",
        "    default_type text/html;",
        "    add_header Cache-Control no-store always;",
        *(f"    {h}" for h in _error_page_headers()),
        "    return 200 '<!doctype html><title>$status</title><p>$status: $homesec_error_message</p>\\n';",
        "}",
        "",
        "# Media files, after the app checked the session (X-Accel-Redirect); never reachable directly.",
        f"location {MEDIA_PREFIX} {{",
        "    internal;",
        f"    alias {media};",
        "    # Cache-Control: no-store comes from the app's answer (nginx keeps it).",
        *(f"    {h}" for h in _media_headers()),
        "}",
        "",
        "# The live view: a stream, passed on as it comes (a slow viewer holds one of the threads",
        "# the app sets aside for streams, never an API thread).",
        "location ~ \\.mjpg$ {",
        *(f"    {ln}" for ln in _proxy(web.live_max_s + 60, buffering=False)),
        "}",
        "",
        "location / {",
        *(f"    {ln}" for ln in _proxy(60, buffering=True)),
        "}",
    ]
    lines += [f"    {ln}" if ln else "" for ln in body]
    lines.append("}")
    return "\n".join(lines) + "\n"


def ip_allow_dropin(cfg: Config) -> str:
    """A drop-in for nginx.service: the kernel (cgroup BPF) drops packets from anywhere but
    web.allow_networks, in addition to nginx's own `allow`/`deny` (which answer 403)."""
    nets = " ".join(cfg.web.allow_networks)
    return ("# Generated by homesec's deploy.sh from web.allow_networks in /etc/homesec/config.toml.\n"
            "# nginx may talk IP only to these networks (it reaches gunicorn over a Unix socket).\n"
            "[Service]\nIPAddressDeny=any\n"
            f"IPAddressAllow={nets}\n")


def main(argv: list[str] | None = None) -> int:
    """Print the site config for a config file (deploy.sh writes it into /etc/nginx/conf.d)."""
    parser = argparse.ArgumentParser(prog="python -m homesec.system.nginx", description=__doc__)
    parser.add_argument("config", help="homesec config file")
    parser.add_argument("--socket", help="gunicorn's Unix socket (default: runtime_dir/web.sock)")
    parser.add_argument("--systemd-dropin", action="store_true",
                        help="print the nginx.service drop-in (IPAddressAllow=) instead")
    args = parser.parse_args(argv)
    try:
        cfg = load(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.systemd_dropin:
        sys.stdout.write(ip_allow_dropin(cfg))
    else:
        sys.stdout.write(site_config(cfg, Path(args.socket) if args.socket else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
