"""Browser tests' shared pieces: Debian's Chromium driven by Playwright, signing in to the desk, and
keeping screenshots.

Playwright's own browser download is not used (it cannot reach its servers here); the set-up
(scripts/test) installs Debian's ``chromium`` at /usr/bin/chromium.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect

CHROMIUM = "/usr/bin/chromium"
# The README's pictures: DASHDESK_SAVE_SCREENSHOTS=1 makes the browser tests write them here.
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def sign_in(browser: Browser, base: str, username: str, password: str, width: int = 1280, height: int = 860,
            viewport: dict[str, int] | None = None, **context: Any) -> Page:
    """A new browser context signed in to the desk at ``base`` as ``username``, on the queue page."""
    page = browser.new_context(viewport=viewport or {"width": width, "height": height}, **context).new_page()
    page.goto(base + "/login")
    fill_sign_in(page, username, password)
    expect(page).to_have_url(base + "/")
    return page


def fill_sign_in(page: Page, username: str, password: str) -> None:
    """Fill in and send the sign-in form ``page`` shows."""
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def keep_screenshot(page: Page, tmp_path: Path, name: str, *, min_bytes: int = 10_000, publish: bool = True,
                    **options: Any) -> Path:
    """A PNG of ``page`` as ``tmp_path/name`` (``options`` go to Playwright's ``page.screenshot``).

    Fails unless it is a PNG of more than ``min_bytes`` (a blank page is far smaller). With
    ``publish`` and DASHDESK_SAVE_SCREENSHOTS=1 in the environment it is also copied to
    docs/screenshots, where the README shows it.
    """
    png = page.screenshot(**options)
    assert png.startswith(PNG_SIGNATURE) and len(png) > min_bytes, f"{name}: {len(png)} bytes"
    path = tmp_path / name
    path.write_bytes(png)
    if publish and os.environ.get("DASHDESK_SAVE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / name)
    return path
