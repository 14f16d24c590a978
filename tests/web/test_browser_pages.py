"""Each kind of page in a real Chromium against the real server: it loads under its Content-Security-Policy with no
violation and no console error; /api/v1/docs works with no way out to the internet; a session ended elsewhere
ends an open desk page's live updates too."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from dashdesk import wire
from tests.browser import sign_in
from tests.stack import ADMIN_PASSWORD

pytestmark = pytest.mark.integration

# Records each securitypolicyviolation of a document (Chromium also logs each as a console error).
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " " + (e.sourceFile || "") + ":" + e.lineNumber);
});
"""


@pytest.fixture(scope="module")
def ticket_id(stack) -> int:
    body = {"event_id": f"e-{uuid.uuid4().hex[:12]}", "device_id": "csp-dev", "button": "b1", "press": "single",
            "pressed_at": wire.format_time(wire.utcnow())}
    r = stack.api("POST", "/api/v1/incidents", json=body)
    assert r.status_code in (200, 201), r.text
    return r.json()["ticket"]["id"]


def watch(page: Page) -> list[str]:
    """Console errors, page errors and CSP violations of ``page`` from now on."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text} {m.location}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.context.add_init_script(WATCH_CSP)
    return problems


def visit(page: Page, url: str, problems: list[str], status: int = 200) -> None:
    response = page.goto(url)
    assert response is not None and response.status == status, url
    assert response.headers.get("content-security-policy"), url
    page.wait_for_load_state("load")
    page.wait_for_timeout(300)
    if status != 200:  # Chromium logs the page's own error status as a console error: that one is expected
        problems[:] = [p for p in problems if not ("Failed to load resource" in p and f"'url': '{url}'" in p)]
    problems.extend(f"{url}: CSP {v}" for v in page.evaluate("window.__csp || []"))


def test_each_kind_of_page_loads_with_no_csp_violation_and_no_console_error(stack, browser, ticket_id):
    page = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
    problems = watch(page)
    visit(page, stack.base + "/login", problems)
    visit(page, stack.base + "/app", problems)  # the phone app, not set up on this browser
    visit(page, stack.base + "/app/enroll/no-such-code", problems, status=404)  # its set-up page, refusing
    page.context.close()

    page = sign_in(browser, stack.base, "admin", ADMIN_PASSWORD)
    problems += watch(page)
    for path in ("/", f"/tickets/{ticket_id}", "/password", "/admin", "/admin/devices", "/admin/devices/csp-dev",
                 "/admin/sites", "/admin/sites/import", "/admin/categories", "/admin/categories/printer",
                 "/admin/users", "/admin/users/admin", "/admin/tokens", "/admin/config/import", "/admin/audit",
                 "/admin/devices/copy-mapping", "/admin/enrolments"):
        visit(page, stack.base + path, problems)
    visit(page, stack.base + "/tickets/999999", problems, status=404)  # an error page
    visit(page, stack.base + "/api/v1/docs", problems)
    expect(page.locator(".opblock").first).to_be_visible(timeout=15000)
    page.wait_for_timeout(300)
    problems.extend(f"docs: CSP {v}" for v in page.evaluate("window.__csp || []"))
    # the desk's own scripts ran: the queue's live updates are on
    page.goto(stack.base + "/")
    expect(page.locator("body[data-live='on']")).to_have_count(1, timeout=5000)
    page.context.close()
    assert problems == []


def test_the_api_docs_work_with_no_way_out_to_the_internet(stack, browser):
    context = browser.new_context()
    outside: list[str] = []

    def only_this_server(route: Any) -> None:
        if route.request.url.startswith(stack.base + "/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", only_this_server)
    page = context.new_page()
    problems = watch(page)
    response = page.goto(stack.base + "/api/v1/docs")
    assert response is not None and response.status == 200
    operations = page.locator(".opblock")
    expect(operations.first).to_be_visible(timeout=15000)
    assert operations.count() >= 20
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/incidents").first).to_be_visible()
    expect(page.get_by_text("dashdesk", exact=False).first).to_be_visible()
    # an operation opens, with its responses
    page.locator(".opblock-summary", has_text="/api/v1/tickets").first.click()
    expect(page.locator(".responses-wrapper").first).to_be_visible()
    problems.extend(f"CSP {v}" for v in page.evaluate("window.__csp || []"))
    context.close()
    assert outside == [] and problems == []


def test_signing_out_ends_a_copied_session_and_its_open_live_updates(stack, browser):
    page = sign_in(browser, stack.base, "admin", ADMIN_PASSWORD)
    other = browser.new_context()
    other.add_cookies([c for c in page.context.cookies() if c["name"] == "dashdesk_session"])
    copy = other.new_page()
    copy.goto(stack.base + "/")
    expect(copy).to_have_url(stack.base + "/")  # the copy works while the session holds
    expect(copy.locator("body[data-live='on']")).to_have_count(1, timeout=5000)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    # The copy's open stream ends within a second, its reconnection is refused: the page says so, and keeps itself.
    expect(copy.locator("#signed-out")).to_be_visible(timeout=10000)
    copy.reload()
    expect(copy).to_have_url(re.compile(r"/login\?next=/$"))
    page.context.close()
    other.close()
