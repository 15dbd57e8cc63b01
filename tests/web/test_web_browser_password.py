"""The password form in a real browser (Debian's Chromium via Playwright) against a real gunicorn
of its own (changing the password of the shared system would log the other browser tests out):
a wrong current password is refused on the page; the right one keeps this phone logged in and
logs the laptop out."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import PASSWORD
from .test_web_browser import ARGS, ARTIFACTS, CHROMIUM
from .web_only import Web, start_web, stop_web

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"),
]

NEW = "a brand new passphrase"


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    w = start_web(tmp_path)
    yield w
    stop_web(w)


def test_change_password_on_a_phone(web: Web) -> None:
    from playwright.sync_api import expect, sync_playwright

    url = f"http://127.0.0.1:{web.port}"
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            pages = {}
            for name in ("Phone Test Browser", "Laptop Test Browser"):
                ctx = browser.new_context(user_agent=name, viewport={"width": 390, "height": 844})
                page = ctx.new_page()
                page.on("console", lambda m: problems.append(m.text)
                        if "Content Security Policy" in m.text else None)
                page.goto(url + "/tokens", wait_until="domcontentloaded")
                page.fill("#password", PASSWORD)
                page.click("#login-button")
                expect(page).to_have_url(url + "/tokens")
                pages[name] = page
            phone, laptop = pages["Phone Test Browser"], pages["Laptop Test Browser"]

            phone.fill("#current-password", "not my password")
            phone.fill("#new-password", NEW)
            phone.fill("#new-password2", NEW)
            phone.click("#password-change")
            expect(phone.locator("#password-error")).to_contain_text(
                "The current password is wrong. Nothing was changed.")
            phone.locator("#password").screenshot(path=str(ARTIFACTS / "phone-password.png"))

            phone.fill("#current-password", PASSWORD)
            phone.fill("#new-password", NEW)
            phone.fill("#new-password2", NEW)
            phone.click("#password-change")
            expect(phone).to_have_url(url + "/tokens")
            expect(phone.locator(".flash")).to_contain_text("1 other device(s) logged out")
            expect(phone.locator("#sessions li")).to_have_count(1)
            phone.goto(url + "/", wait_until="domcontentloaded")
            expect(phone).to_have_url(url + "/")  # still logged in

            laptop.goto(url + "/", wait_until="domcontentloaded")
            expect(laptop).to_have_url(url + "/login?next=/")
            laptop.fill("#password", PASSWORD)
            laptop.click("#login-button")
            expect(laptop.locator("#login-error")).to_contain_text("Wrong password")
            laptop.fill("#password", NEW)
            laptop.click("#login-button")
            expect(laptop).to_have_url(url + "/")
        finally:
            browser.close()
    assert problems == []
