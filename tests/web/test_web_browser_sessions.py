"""The Sessions & tokens page in a real browser (Debian's Chromium via Playwright) against the
real daemon + gunicorn: one device logs another out, creates a token, logs out everywhere."""

from __future__ import annotations

import os

import pytest

from .conftest import PASSWORD, System
from .test_web_browser import ARGS, ARTIFACTS, CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"),
]


def test_sessions_page_logs_devices_out(system: System) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            pages = {}
            for name in ("Phone Test Browser", "Laptop Test Browser"):
                ctx = browser.new_context(user_agent=name, viewport={"width": 390, "height": 844})
                page = ctx.new_page()
                page.on("dialog", lambda d: d.accept())  # the data-confirm questions
                page.on("console", lambda m: problems.append(m.text)
                        if "Content Security Policy" in m.text else None)
                page.goto(system.url + "/tokens", wait_until="domcontentloaded")
                page.fill("#password", PASSWORD)
                page.click("#login-button")
                expect(page).to_have_url(system.url + "/tokens")
                pages[name] = page
            phone, laptop = pages["Phone Test Browser"], pages["Laptop Test Browser"]
            phone.reload()
            mine = phone.locator("#sessions li", has_text="Phone Test Browser")
            expect(mine).to_contain_text("(this device)")
            other = phone.locator("#sessions li", has_text="Laptop Test Browser")
            expect(other).to_contain_text("127.0.0.1")
            phone.screenshot(path=str(ARTIFACTS / "phone-sessions.png"), full_page=True)
            other.locator("button").click()
            expect(phone.locator("#sessions li", has_text="Laptop Test Browser")).to_have_count(0)
            laptop.goto(system.url + "/", wait_until="domcontentloaded")
            expect(laptop).to_have_url(system.url + "/login?next=/")

            # the phone logged in just now: it may create a token, shown once
            phone.fill("#token-name", "browser test")
            phone.click("#token-create")
            expect(phone.locator("#new-token")).to_contain_text("hs_")

            phone.click("#logout-everywhere")
            expect(phone).to_have_url(system.url + "/login")
            phone.goto(system.url + "/", wait_until="domcontentloaded")
            expect(phone).to_have_url(system.url + "/login?next=/")
        finally:
            browser.close()
    assert problems == []
