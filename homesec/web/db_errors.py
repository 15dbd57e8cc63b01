"""A database that cannot be written (or read) answers 503 with a clear message, never 500.

Why one handler for the whole app instead of a try in every route: every route that writes (arm,
disarm, snooze, event delete, tokens, sessions, the password) fails the same way when the SQLite
file is read-only, immutable, on a full disk or locked beyond the busy timeout, and a route added
later must get the same answer without remembering to. SQLite has already rolled the
transaction back, so nothing changed; files (an event's snapshot) are removed only after their
row is gone, so they stay too.

The answer: JSON under /api/ (`{"error", "status": 503, "cause"}` and Retry-After), the error page
elsewhere. Reads that need no write keep working (sessions.lookup and accounts.check_token record
their last use only as a best effort). A request whose session or token cannot even be read fails
here too, before any route runs: it is never let through unchecked.

Only errors of the file (busy, locked, read-only, full, I/O, cannot open, damaged) are turned into
503; any other sqlite3 error (a syntax error, a missing table, a constraint) is a bug and stays a
logged 500.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from flask import Flask, current_app, request
from werkzeug.exceptions import InternalServerError, ServiceUnavailable

from homesec.web.errors import json_error, render_http_error, wants_json

log = logging.getLogger(__name__)

RETRY_AFTER_S = 30
# SQLite's primary result codes (extended codes such as SQLITE_IOERR_WRITE or
# SQLITE_READONLY_DBMOVED share the prefix) -> what the user is told.
CAUSES = {
    "SQLITE_BUSY": "locked",
    "SQLITE_LOCKED": "locked",
    "SQLITE_READONLY": "read-only",
    "SQLITE_FULL": "disk full",
    "SQLITE_IOERR": "I/O error",
    "SQLITE_CANTOPEN": "cannot be opened",
    "SQLITE_PERM": "read-only",
    "SQLITE_CORRUPT": "damaged",
    "SQLITE_NOTADB": "damaged",
}
# The same from the message, for errors raised without a code.
MESSAGES = {
    "database is locked": "locked",
    "readonly database": "read-only",
    "database or disk is full": "disk full",
    "disk i/o error": "I/O error",
    "unable to open database": "cannot be opened",
    "malformed": "damaged",
    "file is not a database": "damaged",
}
EXPLAIN = {
    "locked": "another program holds the write lock longer than the wait allows",
    "read-only": "the file or its file system is read-only",
    "disk full": "the disk is full",
    "I/O error": "the disk refused the write (read-only, immutable or failing)",
    "cannot be opened": "its files cannot be opened (read-only or immutable folder?)",
    "damaged": "the file is damaged",
}


def cause_of(exc: BaseException | None) -> str | None:
    """What is wrong with the database file, or None when `exc` is no such fault. Follows the
    exception's context: a ROLLBACK that fails after SQLite already rolled back a full-disk
    write ("no transaction is active") carries the real cause there."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, sqlite3.DatabaseError):
            name = getattr(exc, "sqlite_errorname", None) or ""
            for prefix, cause in CAUSES.items():
                if name == prefix or name.startswith(prefix + "_"):
                    return cause
            text = str(exc).lower()
            for needle, cause in MESSAGES.items():
                if needle in text:
                    return cause
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _db_error(exc: sqlite3.DatabaseError) -> Any:
    """503 for a database that cannot be written or read just now; any other sqlite3 error
    goes on as the 500 it is."""
    cause = cause_of(exc)
    if cause is None:
        current_app.logger.error("Exception on %s [%s]", request.path, request.method,
                                 exc_info=exc)
        return render_http_error(InternalServerError(original_exception=exc))
    writing = request.method not in ("GET", "HEAD", "OPTIONS")
    what = "is not writable" if writing else "cannot be read"
    log.warning("%s %s: the database %s (%s): %s", request.method, request.path, what, cause, exc)
    if wants_json():
        message = f"the database {what} just now ({EXPLAIN[cause]})"
        if writing:
            message += "; nothing was changed"
        resp = json_error(503, message + "; try again later", cause=cause)
        resp.headers["Retry-After"] = str(RETRY_AFTER_S)
        return resp
    message = f"The database {what} just now: {EXPLAIN[cause]}."
    if writing:
        message += " Nothing was changed."
    message += " Try again in a minute; if it lasts, check the disk (homesec status)."
    return render_http_error(ServiceUnavailable(message, retry_after=RETRY_AFTER_S))


def init_app(app: Flask) -> None:
    """Register the handler (OperationalError and DatabaseError both derive from it)."""
    app.register_error_handler(sqlite3.DatabaseError, _db_error)
