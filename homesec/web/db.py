"""The database, opened once per request (lazily) and closed when the request ends.

Why per request: gunicorn threads must not share a sqlite3 connection, and a connection held for
the life of a worker would pin old WAL snapshots; opening one costs well under a millisecond.
"""

from __future__ import annotations

from flask import Flask, current_app, g

from homesec.alarm.persist import open_store
from homesec.config import Config
from homesec.storage.store import Store


def cfg() -> Config:
    """The app's configuration."""
    return current_app.config["HOMESEC"]


def get_store() -> Store:
    """This request's Store (opened on first use)."""
    if "store" not in g:
        g.store = open_store(cfg())  # (a Store that knows the alarm's entry delay)
    return g.store


def close_store(_exc: BaseException | None = None) -> None:
    """Teardown: close the request's connection if one was opened."""
    store = g.pop("store", None)
    if store is not None:
        store.close()


def init_app(app: Flask) -> None:
    """Register the teardown hook."""
    app.teardown_appcontext(close_store)
