"""Browser tests' shared pieces: Debian's Chromium driven by Playwright, and signing in to the desk.

Playwright's own browser download is not used (it cannot reach its servers here); the set-up
(scripts/test) installs Debian's ``chromium`` at /usr/bin/chromium.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, Page, expect

CHROMIUM = "/usr/bin/chromium"


def sign_in(browser: Browser, base: str, username: str, password: str, width: int = 1280, height: int = 860,
            viewport: dict[str, int] | None = None, **context: Any) -> Page:
    """A new browser context signed in to the desk at ``base`` as ``username``, on the queue page."""
    page = browser.new_context(viewport=viewport or {"width": width, "height": height}, **context).new_page()
    page.goto(base + "/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(base + "/")
    return page
