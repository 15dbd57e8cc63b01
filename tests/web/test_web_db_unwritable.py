"""Token requests while the database cannot be written (its files and directory immutable):
reads keep working; the token's last-used time is best effort."""

from __future__ import annotations

from flask.testing import FlaskClient

from homesec.config import Config
from homesec.storage.store import Store
from homesec.web import accounts
from tests.fault_support import db_fault_paths, immutable


def test_token_reads_work_while_the_database_is_not_writable(
        client: FlaskClient, cfg: Config, store: Store, token: str, add_event) -> None:  # type: ignore[no-untyped-def]
    eid = add_event()
    h = {"Authorization": f"Bearer {token}"}
    (before,) = accounts.list_tokens(store)
    assert before.last_used_ts is None  # so the request below wants to record its use
    with immutable(db_fault_paths(cfg.paths.db_path)):
        status = client.get("/api/v1/status", headers=h)
        assert status.status_code == 200, status.get_data(as_text=True)
        assert status.get_json()["arm"]["state"] == "disarmed"
        events = client.get("/api/v1/events", headers=h)
        assert events.status_code == 200
        assert [e["id"] for e in events.get_json()["events"]] == [eid]
        assert client.get("/api/v1/status", headers={
            "Authorization": "Bearer hs_wrong"}).status_code == 401  # still checked
    assert client.get("/api/v1/status", headers=h).status_code == 200
    (after,) = accounts.list_tokens(store)
    assert after.last_used_ts is not None  # recorded again once the database takes writes


def test_status_and_home_page_say_since_when_the_database_is_not_writable(
        client: FlaskClient, cfg: Config, token: str) -> None:
    import json
    import time

    run = cfg.paths.runtime_dir
    run.mkdir(parents=True)
    now = time.time()
    since = now - 75
    (run / "status.json").write_text(json.dumps({
        "updated_ts": now, "fps": 5.0, "camera_ok": True, "camera": "Porch",
        "db_ok": False, "db_unwritable_since": since, "db_error": "disk I/O error",
        "events_waiting": 3, "events_refused": 0}))
    h = {"Authorization": f"Bearer {token}"}
    db = client.get("/api/v1/status", headers=h).get_json()["database"]
    assert db == {"ok": False, "unwritable_since": since, "error": "disk I/O error",
                  "waiting": 3, "refused": 0}
    page = client.get("/", headers=h).get_data(as_text=True)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
    assert f"database not writable since {stamp} (3 event records waiting)" in page
    (run / "status.json").write_text(json.dumps({
        "updated_ts": now, "camera_ok": True, "db_ok": True, "db_unwritable_since": None,
        "events_waiting": 0}))
    assert client.get("/api/v1/status", headers=h).get_json()["database"]["ok"] is True
    assert "database not writable" not in client.get("/", headers=h).get_data(as_text=True)
