"""Per-client rate limit on arm, disarm and snooze (HTTP 429 with Retry-After).

Why: a looping script once wrote thousands of arm-log lines a minute. The limit
(`alarm.arm_requests_per_min` per client address and minute) is counted in SQLite, so every
gunicorn worker sees the same count, and the counter rows of a client are trimmed to the last
minute on each request: the table stays as small as the limit.
"""

from __future__ import annotations

import math
import time

from flask import abort

from homesec.web.auth import client_addr
from homesec.web.db import cfg, get_store

WINDOW_S = 60.0
BUCKET = "arm"


def check(now: float | None = None) -> None:
    """Count this request; over the limit: abort with 429 (nothing else happens)."""
    now = time.time() if now is None else now
    limit = cfg().alarm.arm_requests_per_min
    client = client_addr()
    store = get_store()
    with store.transaction() as c:
        c.execute("DELETE FROM request_hits WHERE bucket = ? AND client = ? AND ts <= ?",
                  (BUCKET, client, now - WINDOW_S))
        rows = [r[0] for r in c.execute(
            "SELECT ts FROM request_hits WHERE bucket = ? AND client = ? ORDER BY ts",
            (BUCKET, client))]
        if len(rows) < limit:
            c.execute("INSERT INTO request_hits (bucket, client, ts) VALUES (?, ?, ?)",
                      (BUCKET, client, now))
            return
    wait = max(1, math.ceil(rows[0] + WINDOW_S - now))
    abort(429, description=f"too many arm/disarm requests from {client}: at most {limit} a "
          f"minute; try again in {wait} s", retry_after=wait)
