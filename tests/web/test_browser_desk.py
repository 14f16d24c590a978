"""The desk in a real Chromium (Playwright) against the real stack: Mosquitto, server, bridge.

Needs Debian's chromium (/usr/bin/chromium; scripts/test installs it) and the
``playwright`` package (the ``test`` extra); Playwright's own browser download is not used.
"""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect

from server.db import Database
from server.domain.users import create_user
from tests.browser import fill_sign_in, keep_screenshot, sign_in
from tests.stack import ADMIN_PASSWORD, wait_until

pytestmark = pytest.mark.integration

AGENT, AGENT_PASSWORD = "agent1", "agent1-password"


@pytest.fixture(scope="module")
def desk(stack):
    """The stack with an agent user, devices placed in sites and their buttons mapped."""
    db = Database(f"sqlite:///{stack.root / 'server.sqlite3'}")
    create_user(db, AGENT, AGENT_PASSWORD, "agent")
    db.close()
    for i, (site, name) in enumerate((("hs-01", "High Street"), ("mm-02", "Market Mall"), ("st-03", "Station"))):
        stack.place(f"web-dev-{i}", site)
        stack.api("POST", "/api/v1/devices", json={"device_id": f"web-dev-{i}", "site": site, "site_name": name})
        stack.map_button(f"web-dev-{i}", "b1", "printer", label="Printer")
        stack.map_button(f"web-dev-{i}", "b2", "till", label="Till")
        stack.map_button(f"web-dev-{i}", "b3", "sales-app", label="Sales app")
    return stack


def live(page: Page) -> None:
    """Wait until the page's live-update stream is open."""
    expect(page.locator("body[data-live='on']")).to_have_count(1, timeout=5000)


def row(page: Page, ticket_id: int):
    return page.locator(f"#queue-table tr[data-id='{ticket_id}']")


def test_signed_out_the_desk_sends_you_to_sign_in_and_back(desk, browser):
    page = browser.new_page()
    page.goto(desk.base + "/tickets/1?x=1")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    assert parse_qs(urlsplit(page.url).query)["next"] == ["/tickets/1?x=1"]
    fill_sign_in(page, "admin", "not the password")
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(desk.base + "/tickets/1?x=1")
    page.context.close()


def test_a_press_shows_up_in_an_open_queue_without_a_reload(desk, browser, presser):
    page = sign_in(browser, desk.base, "admin", ADMIN_PASSWORD)
    live(page)
    page.evaluate("window.__sameDocument = true")
    start = time.monotonic()
    event_id = presser.press("web-dev-0", "b2")
    ack = presser.final_ack(event_id)
    assert ack["result"] == "created", ack
    expect(row(page, ack["ticket"]["id"])).to_be_visible(timeout=5000)
    elapsed = time.monotonic() - start
    assert elapsed < 1.0, f"the queue showed the press after {elapsed:.2f} s"
    assert page.evaluate("window.__sameDocument") is True  # no reload: the table was updated in place
    r = row(page, ack["ticket"]["id"])
    expect(r).to_contain_text(ack["ticket"]["number"])
    expect(r).to_contain_text("Till")
    expect(r).to_contain_text("hs-01")
    expect(r).to_contain_text("×1")
    # a second press merges: the same row counts it, still without a reload
    presser.final_ack(presser.press("web-dev-0", "b2"))
    expect(r).to_contain_text("×2", timeout=5000)
    assert page.evaluate("window.__sameDocument") is True
    page.context.close()


def test_take_hold_resolve_and_see_the_history(desk, browser, presser):
    ack = presser.final_ack(presser.press("web-dev-1", "b1", telemetry={
        "battery_pct": 12, "rssi_dbm": -82, "probes": {"printer": {"ok": False, "detail": "paper jam"}}}))
    ticket_id, number = ack["ticket"]["id"], ack["ticket"]["number"]
    wait_until(lambda: any(t["id"] == ticket_id for t in presser.tickets.get("web-dev-1", {}).get("tickets", [])),
               what="the device's tickets topic to list the ticket")
    page = sign_in(browser, desk.base, AGENT, AGENT_PASSWORD)
    page.goto(f"{desk.base}/tickets/{ticket_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(number)
    expect(page.locator("#telemetry tr.problem")).to_have_count(2)  # battery and signal
    expect(page.locator("#probes tr.problem")).to_contain_text("paper jam")
    expect(page.locator("#presses tbody tr")).to_have_count(1)

    page.get_by_role("button", name="Take").click()
    expect(page.get_by_text(f"You took {number}.")).to_be_visible()
    expect(page.locator("#assignee")).to_have_text(AGENT)

    page.get_by_text("Put on hold…").click()
    page.get_by_label("Reason for the hold").fill("waiting for a new fuser")
    page.get_by_role("button", name="Put on hold").click()
    expect(page.get_by_text(f"{number} is on hold.")).to_be_visible()

    page.keyboard.press("r")  # the resolve form opens, its note focused
    expect(page.get_by_label("Resolution note")).to_be_focused()
    page.keyboard.type("replaced the fuser")
    page.get_by_role("button", name="Resolve", exact=True).click()
    expect(page.get_by_text(f"{number} is resolved.")).to_be_visible()

    history = page.locator("#history")
    for line in ("Status: New → In progress", f"Assignee: — → {AGENT}", "Status: In progress → On hold",
                 "Reason: waiting for a new fuser", "Status: On hold → Resolved", "Resolution: replaced the fuser"):
        expect(history).to_contain_text(line)
    expect(history.locator("strong", has_text=AGENT)).to_have_count(3)
    # every change went out on the event feed: the bridge took the ticket off the device's list
    wait_until(lambda: all(t["id"] != ticket_id for t in presser.tickets["web-dev-1"]["tickets"]), timeout=10,
               what="the device's tickets topic to drop the resolved ticket")
    # closing is final: the first click only asks
    page.get_by_text("Close…").click()
    expect(page.locator("#close-warning")).to_have_text("A closed ticket cannot be reopened or changed.")
    assert desk.api("GET", f"/api/v1/tickets/{ticket_id}").json()["status"] == "resolved"
    # the question stays open while the page updates itself
    r = desk.api("PATCH", f"/api/v1/tickets/{ticket_id}", json={"note": "checked on site"})
    assert r.status_code == 200, r.text
    expect(history).to_contain_text("checked on site", timeout=10_000)
    confirm = page.get_by_role("button", name=f"Close {number} for good")
    expect(confirm).to_be_visible()
    confirm.click()
    expect(page.get_by_text(f"{number} is closed.")).to_be_visible()
    expect(page.get_by_text("Close…")).to_have_count(0)
    page.context.close()


def test_keys_move_open_and_take_in_the_queue(desk, browser, presser):
    ack = presser.final_ack(presser.press("web-dev-2", "b3", press="long"))  # sales app, P1: top of the queue
    ticket_id = ack["ticket"]["id"]
    page = sign_in(browser, desk.base, AGENT, AGENT_PASSWORD)
    first = page.locator("#queue-table tbody tr[data-id]").first
    expect(first).to_have_attribute("data-id", str(ticket_id))
    page.keyboard.press("j")
    expect(first).to_have_attribute("aria-selected", "true")
    page.keyboard.press("a")
    expect(page.get_by_text(f"You took {ack['ticket']['number']}.")).to_be_visible()
    expect(row(page, ticket_id)).to_contain_text(AGENT)
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{desk.base}/tickets/{ticket_id}")
    page.context.close()


def test_a_form_posted_without_its_csrf_token_is_refused_and_changes_nothing(desk, browser, presser):
    ack = presser.final_ack(presser.press("web-dev-0", "b3"))
    ticket_id, number = ack["ticket"]["id"], ack["ticket"]["number"]
    page = sign_in(browser, desk.base, AGENT, AGENT_PASSWORD)
    page.goto(f"{desk.base}/tickets/{ticket_id}")
    # The page's own Take form, its token removed, as a forged form from another site would be.
    page.evaluate("document.querySelectorAll('#take-form input[name=csrf_token]').forEach(e => e.remove())")
    with page.expect_navigation():
        page.get_by_role("button", name="Take").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("The form has expired")
    # The signed-in session's cookie went with it, yet nothing changed.
    ticket = desk.api("GET", f"/api/v1/tickets/{ticket_id}").json()
    assert (ticket["number"], ticket["status"], ticket["assignee"]) == (number, "new", None)
    # With its token the same form works.
    page.goto(f"{desk.base}/tickets/{ticket_id}")
    page.get_by_role("button", name="Take").click()
    expect(page.get_by_text(f"You took {number}.")).to_be_visible()
    page.context.close()


def test_an_agent_cannot_open_admin(desk, browser):
    page = sign_in(browser, desk.base, AGENT, AGENT_PASSWORD)
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    response = page.goto(desk.base + "/admin")
    assert response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    page.context.close()
    admin = sign_in(browser, desk.base, "admin", ADMIN_PASSWORD)
    admin.get_by_role("link", name="Admin").click()
    expect(admin.get_by_role("heading", level=1)).to_have_text("Admin")
    admin.context.close()


def test_screenshots_of_the_queue_and_a_ticket(desk, browser, presser, tmp_path):
    """PNGs of the queue and of a ticket; DASHDESK_SAVE_SCREENSHOTS=1 also writes them to docs/screenshots."""
    r = desk.api("PATCH", "/api/v1/sites/st-03", json={
        "address": "Station Square 1, Leeds LS1 4DY", "timezone": "Europe/London",
        "hours": "Mon-Sat 06:00-22:00; Sun 08:00-20:00", "contact": "Shift lead, +44 113 000 0003"})
    assert r.status_code == 200, r.text
    presser.final_ack(presser.press("web-dev-1", "b2", telemetry={"battery_pct": 64, "rssi_dbm": -58}))
    ack = presser.final_ack(presser.press("web-dev-2", "b1", telemetry={
        "battery_pct": 17, "rssi_dbm": -61, "firmware": "1.4.2", "ip": "10.2.3.4",
        "probes": {"printer": {"ok": False, "detail": "offline: no answer on 10.2.3.40:9100"},
                   "network": {"ok": True, "detail": "gateway 3 ms"}}}))
    presser.final_ack(presser.press("web-dev-2", "b1"))
    page = sign_in(browser, desk.base, "admin", ADMIN_PASSWORD)
    live(page)
    page.keyboard.press("j")
    keep_screenshot(page, tmp_path, "queue.png", min_bytes=20_000, full_page=True)
    page.goto(f"{desk.base}/tickets/{ack['ticket']['id']}")
    keep_screenshot(page, tmp_path, "ticket.png", min_bytes=20_000, full_page=True)
    page.context.close()


def own_device(stack, name: str) -> str:
    """A device of its own in a site of its own: its tickets merge with no other test's."""
    r = stack.api("POST", "/api/v1/devices", json={"device_id": name, "site": name, "site_name": f"Shop {name}"})
    assert r.status_code in (200, 201), r.text
    for button, category in (("b1", "printer"), ("b2", "till"), ("b3", "sales-app")):
        stack.map_button(name, button, category)
    return name


def test_r_in_the_queue_opens_the_resolution_focused_and_typing_there_presses_no_key(desk, browser, presser):
    device = own_device(desk, "web-keys-r")
    ack = presser.final_ack(presser.press(device, "b1"))
    ticket_id = ack["ticket"]["id"]
    page = sign_in(browser, desk.base, AGENT, AGENT_PASSWORD)
    page.goto(f"{desk.base}/?q={device}")
    expect(page.locator("#queue-table tbody tr[data-id]")).to_have_count(1)
    page.keyboard.press("j")
    page.keyboard.press("r")
    expect(page).to_have_url(f"{desk.base}/tickets/{ticket_id}#resolve")
    resolution = page.get_by_label("Resolution note")
    expect(resolution).to_be_focused()
    page.keyboard.type("Restarted the app")  # its "a" and "r" are text, not keys
    expect(resolution).to_have_value("Restarted the app")
    expect(page).to_have_url(f"{desk.base}/tickets/{ticket_id}#resolve")
    # nothing was sent: the ticket is nobody's yet
    time.sleep(0.3)
    assert desk.api("GET", f"/api/v1/tickets/{ticket_id}").json()["assignee"] is None
    # and no key is a shortcut in any text field of the page
    page.get_by_text("Merge into another ticket…").click()
    for field in (page.get_by_label("Add a note"), page.get_by_label("Ticket to merge into")):
        field.click()
        page.keyboard.type("a r")
        expect(field).to_have_value("a r")
    assert desk.api("GET", f"/api/v1/tickets/{ticket_id}").json()["assignee"] is None
    page.get_by_role("button", name="Resolve", exact=True).click()
    expect(page.get_by_text(f"{ack['ticket']['number']} is resolved.")).to_be_visible()
    expect(page.locator("#history")).to_contain_text("Resolution: Restarted the app")
    page.context.close()


def test_the_desk_pages_log_no_errors_and_a_wrong_address_shows_the_desks_error_page(desk, browser, presser):
    ticket = presser.final_ack(presser.press(own_device(desk, "web-console"), "b1"))["ticket"]
    page = sign_in(browser, desk.base, AGENT, AGENT_PASSWORD)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"{m.type}: {m.text} {m.location}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    for url in (desk.base + "/", f"{desk.base}/tickets/{ticket['id']}"):
        page.goto(url)
        live(page)
        page.wait_for_timeout(300)
    assert errors == []
    for path, status, heading in (("/tickets/abc", 404, "Not found"), ("/tickets/-1", 404, "Not found"),
                                  ("/tickets/1/take", 405, "Not a page")):
        response = page.goto(desk.base + path)
        assert response.status == status and response.headers["content-type"].startswith("text/html"), path
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        expect(page.get_by_role("link", name="Back to the queue")).to_be_visible()
    page.context.close()
