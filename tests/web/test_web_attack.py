"""Hostile query strings and form values against the app (Flask test client, real SQLite):
each one a 4xx that says what is wrong (JSON under /api/), never a 500, and nothing changes.
"""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

# Days at the edge of what `date` and mktime can hold: 9999-12-31 (its next day overflows
# `date`) answered 500 on /history and as `until` on the API.
EDGE_DAYS = ["9999-12-31", "0001-01-01", "1969-12-31", "5000-01-01"]


@pytest.mark.parametrize("day", EDGE_DAYS)
@pytest.mark.parametrize("param", ["since", "until"])
def test_edge_days_in_the_api_are_json_400(client: FlaskClient, token: str, param: str,
                                           day: str) -> None:
    r = client.get(f"/api/v1/events?{param}={day}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 400 and r.is_json, r.data[:300]
    assert "day out of range" in r.get_json()["error"]


@pytest.mark.parametrize("day", EDGE_DAYS)
def test_edge_days_on_the_history_page_are_400(client: FlaskClient, token: str, day: str) -> None:
    r = client.get(f"/history?day={day}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 400, r.data[:300]


def test_ordinary_days_still_filter(client: FlaskClient, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    for q in ("since=2026-12-01", "until=4999-12-31", "since=1970-01-02&until=2038-01-20"):
        r = client.get(f"/api/v1/events?{q}", headers=auth)
        assert r.status_code == 200 and r.get_json()["events"] == [], (q, r.data[:200])
