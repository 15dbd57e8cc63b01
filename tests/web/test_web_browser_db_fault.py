"""The issue's reproduction end to end: real `homesec run` and `homesec web` processes, armed,
the database files and their directory made immutable while people cross the demo scene. The
phone's home page says "database not writable since T"; afterwards every event is there, ended,
with its alert queued, and the page says OK again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from homesec.capture.status import read_status
from homesec.storage.store import Store
from tests.fault_support import Immutable, db_fault_paths

from .conftest import PASSWORD, start_system, stop_system
from .test_web_browser import ARGS, CHROMIUM

pytestmark = [
    pytest.mark.browser, pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"),
]


def test_page_says_database_not_writable_and_no_event_is_lost(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    system = start_system(tmp_path)
    fault = Immutable(db_fault_paths(system.cfg.paths.db_path))
    try:
        assert system.request("POST", "/arm", {"delay_s": 0})[0] == 200
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = browser.new_page(viewport={"width": 390, "height": 844})
                page.goto(system.url + "/", wait_until="domcontentloaded")
                page.fill("#password", PASSWORD)
                page.click("#login-button")
                db_line = page.locator("#db-state")
                expect(db_line).to_have_text("OK", timeout=10_000)

                fault.paths = db_fault_paths(system.cfg.paths.db_path)
                fault.set()
                expect(db_line).to_contain_text("database not writable since", timeout=15_000)
                # A whole event (start and end) waits for the database.
                system.wait_for("an event recorded while the database is immutable", lambda: (
                    (st := read_status(system.cfg.paths.runtime_dir)) is not None
                    and st.get("events_waiting", 0) >= 2), 50)
                fault.clear()
                expect(db_line).to_have_text("OK", timeout=20_000)
                # the list says the event alerted (the alarm's word since the alarm states)
                expect(page.locator("#events .ev-meta").first).to_contain_text("alerted",
                                                                              timeout=15_000)
            finally:
                browser.close()
    finally:
        fault.clear()
        stop_system(system)
    store = Store(system.cfg.paths.db_path)
    events = store.events()
    alerts = {r[0] for r in store.conn.execute("SELECT event_id FROM outbox")}
    store.close()
    assert events and all(e.end_ts is not None and not e.interrupted for e in events)
    assert all(e.armed for e in events) and alerts == {e.id for e in events}
