"""What the web UI learns from the MQTT client: the other units of the site (a table in SQLite,
written by the capture daemon) and the client's connection state (a small file in the runtime
dir: it changes with every broker hiccup and is worthless after a reboot, so it stays off the SD
card). The web never talks to the broker itself."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from homesec.integrations.site import BadMessage
from homesec.system.atomic import write_atomic

STATUS_NAME = "mqtt.json"


@dataclass
class SiteUnit:
    """Another unit of the site, as last heard of."""

    unit: str
    online: bool
    url: str | None
    seen_ts: float
    last_event_ts: float | None


def upsert_unit(conn: sqlite3.Connection, unit: str, seen_ts: float, online: bool | None = None,
                url: str | None = None, last_event_ts: float | None = None) -> None:
    """Record news of `unit`; fields given as None keep their stored value."""
    flag = None if online is None else int(online)
    conn.execute(
        "INSERT INTO site_units (unit, online, url, seen_ts, last_event_ts)"
        " VALUES (:unit, COALESCE(:online, 0), :url, :seen, :event) ON CONFLICT(unit) DO UPDATE"
        " SET online = COALESCE(:online, online), url = COALESCE(:url, url), seen_ts = :seen,"
        " last_event_ts = COALESCE(:event, last_event_ts)",
        {"unit": unit, "online": flag, "url": url, "seen": seen_ts, "event": last_event_ts},
    )


UNIT_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")


def peer_news(own_unit: str, rest: str, payload: bytes) -> dict[str, Any] | None:
    """What a message on homesec/<site>/`rest` says about another unit, as upsert_unit()
    arguments; None for topics that carry no news for the list (our own, sensors, ...).
    BadMessage for a malformed one."""
    unit, _, what = rest.partition("/")
    if unit == own_unit or what not in ("availability", "info", "event"):
        return None
    if not UNIT_NAME.fullmatch(unit):
        raise BadMessage(f"not a unit name: {unit[:50]!r}")
    if what == "availability":
        if payload not in (b"online", b"offline"):
            raise BadMessage("availability must be 'online' or 'offline'")
        return {"unit": unit, "online": payload == b"online"}
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise BadMessage("not JSON") from None
    if not isinstance(data, dict):
        raise BadMessage("not a JSON object")
    if what == "info":
        url = data.get("url")
        if not (isinstance(url, str) and url.startswith(("http://", "https://")) and len(url) < 300):
            raise BadMessage("info needs an http(s) url")
        return {"unit": unit, "url": url}
    start = data.get("start")
    if isinstance(start, bool) or not isinstance(start, int | float):
        raise BadMessage("event needs a numeric start")
    return {"unit": unit, "last_event_ts": float(start)}


def site_units(conn: sqlite3.Connection) -> list[SiteUnit]:
    """Every unit heard of, by name."""
    rows = conn.execute("SELECT * FROM site_units ORDER BY unit").fetchall()
    return [SiteUnit(r["unit"], bool(r["online"]), r["url"], r["seen_ts"], r["last_event_ts"])
            for r in rows]


def site_units_json(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """For the status API and the home page."""
    return [asdict(u) for u in site_units(conn)]


def write_status(runtime_dir: Path, status: dict[str, Any]) -> None:
    """Replace mqtt.json (connected or since when not, broker, site, unit, and whether the
    post-connect sync with the site is done: `synced`, `synced_ts`)."""
    write_atomic(runtime_dir / STATUS_NAME, json.dumps(status).encode())


def read_status(runtime_dir: Path) -> dict[str, Any] | None:
    """The MQTT client's last status; None when MQTT is off or the daemon never wrote one."""
    try:
        data = json.loads((runtime_dir / STATUS_NAME).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def web_json(enabled: bool, runtime_dir: Path, conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The home page's "Site" card and the `mqtt` part of GET /api/v1/status (None: MQTT off).

    `text` is what a person reads: "MQTT: connected" or "MQTT: disconnected since T"."""
    if not enabled:
        return None
    st = read_status(runtime_dir) or {"connected": False, "since": None,
                                      "error": "no status from the capture daemon"}
    return {"connected": bool(st.get("connected")), "since": st.get("since"),
            "error": st.get("error"), "site": st.get("site"), "unit": st.get("unit"),
            "synced": bool(st.get("synced")), "synced_ts": st.get("synced_ts"),
            "units": site_units_json(conn)}
