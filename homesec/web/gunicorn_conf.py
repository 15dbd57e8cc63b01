"""gunicorn settings for `homesec web` (gunicorn -c this_file 'homesec.web:create_app()').

Worker class and counts, and why:
- MJPEG viewers hold their connection (and whatever serves it) for minutes. With the default
  `sync` worker each viewer would take a whole process, so two phones watching would leave no
  process for "disarm": the thing the owner needs most.
- `gthread`: each worker process runs `web.threads` (default 16) threads; a viewer holds one
  thread that mostly sleeps (it polls the live file's mtime every 50 ms and writes ~5 frames/s).
  The app caps live streams per process at threads - 4 (homesec.web.API_THREADS_RESERVED), so at
  least 4 threads per process are always free for API and page requests, whatever the viewers do.
- `web.workers` (default 2) processes: a crashed or busy process (an argon2 login takes ~50 ms of
  CPU and 46 MiB) does not block the other; Python's GIL also makes two processes use the Pi's cores
  better than one with more threads. More processes cost ~40 MB of RAM each on the Pi.
- No gevent/eventlet: no monkey-patching next to sqlite3 and OpenCV, and no extra dependency.
- `preload_app`: the app (Flask, Jinja, argon2; never numpy or OpenCV, see
  tests/test_imports.py) is imported once in the master and shared copy-on-write by the workers.
  create_app() opens no database or thread, so forking after it is safe.
- `timeout` does not hurt streams: in gthread workers the heartbeat comes from the main thread,
  not from the request threads. `graceful_timeout` is short because streams would otherwise delay
  every restart by the full 30 s default; clients reconnect by themselves.
"""

from __future__ import annotations

from homesec.cli import load_config

_cfg = load_config(None)  # $HOMESEC_CONFIG (set by `homesec web --config`), else /etc/homesec/...

_host = _cfg.web.bind
bind = [f"[{_host}]:{_cfg.web.port}" if ":" in _host else f"{_host}:{_cfg.web.port}"]
worker_class = "gthread"
workers = _cfg.web.workers
threads = _cfg.web.threads
preload_app = True
timeout = 30
graceful_timeout = 3
keepalive = 5
# Requests with bodies larger than the app allows are refused by the app (413); these limits keep
# gunicorn itself from buffering absurd request lines or headers.
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
accesslog = "-"
errorlog = "-"
loglevel = "info"
# Never log query strings or the Authorization header: the default format logs neither headers
# nor bodies; %(U)s is the path without the query.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(D)sus'
proc_name = "homesec-web"
# gunicorn >= 24 opens a control socket in ~/.gunicorn by default; several instances (tests, the
# demo next to a real install) would fight over it and nothing here uses it.
control_socket_disable = True
