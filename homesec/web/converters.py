"""URL converters that accept only what the API documents.

Why: Werkzeug's `int` converter matches `\\d+`, which in Python also matches other scripts'
digits ("٢", U+0662), and int() happily reads them, so `/api/v1/events/%D9%A2` was event 2.
An id in a URL is ASCII digits, nothing else; anything else is simply no route (404). At most
19 of them (a SQLite row id is below 2**63): Python refuses to read an int of more than 4,300
digits with a ValueError, which would otherwise surface as a 500.
"""

from __future__ import annotations

from werkzeug.routing import IntegerConverter


class AsciiIntConverter(IntegerConverter):
    """`<int:...>` for ASCII digits only (replaces the default `int` converter on the app)."""

    regex = r"[0-9]{1,19}"
