"""The phone app in a real Chromium emulating a Pixel 5 (Playwright) against the real stack: Mosquitto with
its WebSockets listener and per-device accounts (dynsec), the ticket server and the bridge.

The phone is enrolled with a one-time link, gets its own broker account, and publishes presses over
MQTT over WebSockets as a physical device does; what it shows comes from its acks, its retained
``tickets`` topic and the server. Needs Debian's chromium (/usr/bin/chromium) and the ``playwright``
package, as tests/web does; Playwright's own browser download is not used.

Going offline: Playwright's ``set_offline(True)`` (Chromium's network emulation) does not close an
open WebSocket. It silently stops its traffic, as a phone walking out of Wi-Fi range does: the
socket stays "open" and MQTT.js notices only when its keepalive (10 s) gets no answer, then
reconnects every 2 s, which fails while offline. That is the real-life failure, so no broker
connection is killed on top of it; ``navigator.onLine`` turns false at once, which the app uses to
keep a tap in IndexedDB instead of sending it into a dead socket.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import update

from dashdesk import wire
from server.domain import mosquitto
from server.db import Database
from server.models import Enrolment
from tests.browser import keep_screenshot
from tests.stack import Stack, wait_until

pytestmark = pytest.mark.integration

REPORTED = re.compile(r"^Reported — ticket INC-\d{6}$")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The real parts, the broker with accounts and a WebSockets listener; the server makes phones' accounts."""
    s = Stack(tmp_path_factory.mktemp("phone-stack"), auth=True, ws=True)
    # The server's account manager (server.domain.broker_accounts): phones get their own broker accounts.
    s.env["DASHDESK_BROKER__AUTH"] = "dynsec"
    s.env["DASHDESK_BROKER_ADMIN_URL"] = s.broker.secrets.url(mosquitto.ADMIN_USERNAME, s.broker.url)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def phone(playwright, browser):
    """A new phone: a browser context emulating a Pixel 5 (touch, its screen and user agent)."""
    p = playwright
    contexts = []

    def make(locale: str = "en-GB"):
        ctx = browser.new_context(**p.devices["Pixel 5"], locale=locale)
        contexts.append(ctx)
        return ctx

    yield make
    for ctx in contexts:
        ctx.close()


def site(stack: Stack, code: str, name: str) -> str:
    r = stack.api("POST", "/api/v1/sites", json={"code": code, "name": name})
    assert r.status_code == 201, r.text
    return code


def make_enrolment(stack: Stack, site_code: str, **body) -> dict:
    r = stack.api("POST", "/api/v1/enrolments", json={"site": site_code, **body})
    assert r.status_code == 201, r.text
    return r.json()


def enrol(ctx, stack: Stack, site_code: str) -> tuple[Page, str]:
    """Open a new enrolment link on the phone and set it up; return the page and the phone's device id."""
    made = make_enrolment(stack, site_code)
    page = ctx.new_page()
    page.goto(made["link"])
    expect(page.get_by_role("heading", level=1)).to_have_text("Set up this phone as a dash button")
    expect(page.locator("#setup-text")).to_contain_text(made["site_name"])
    page.get_by_role("button", name="Set up this phone").click()
    expect(page).to_have_url(stack.base + "/app")
    online(page)
    device_id = page.evaluate("window.dashdeskApp.phone")
    assert re.fullmatch(rf"phone-{site_code}-[a-z2-9]{{6}}", device_id), device_id
    return page, device_id


def online(page: Page) -> None:
    expect(page.locator("#conn")).to_have_attribute("data-state", "online", timeout=15000)


def report_button(page: Page, name: str):
    return page.locator("button.report", has_text=name)


def status_text(page: Page):
    return page.locator("#status-text")


def ticket_of(page: Page, stack: Stack) -> dict:
    number = page.locator("#status").get_attribute("data-ticket")
    assert number, "the app shows no ticket"
    found = [t for t in stack.tickets(limit=500) if t["number"] == number]
    assert len(found) == 1, number
    return stack.api("GET", f"/api/v1/tickets/{found[0]['id']}").json()


def hold(page: Page, locator, ms: int) -> None:
    """Touch ``locator`` and keep the finger on it for ``ms`` milliseconds (a long press)."""
    box = locator.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    page.wait_for_timeout(ms)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def test_an_enrolled_phone_reports_and_follows_its_ticket_to_the_end(stack, phone, tmp_path):
    site(stack, "ph-01", "High Street")
    ctx = phone()
    page, device_id = enrol(ctx, stack, "ph-01")
    # its own broker account, kept on the phone; the server shows it as an active phone of the site
    stored = page.evaluate("JSON.parse(localStorage.getItem('dashdesk.phone'))")
    assert stored["credentials"]["username"] == device_id and len(stored["credentials"]["password"]) >= 32
    device = stack.api("GET", f"/api/v1/devices/{device_id}").json()
    assert (device["status"], device["kind"], device["site"]) == ("active", "phone", "ph-01")
    expect(page.locator("#site")).to_have_text("High Street")

    report_button(page, "Printer").tap()
    expect(status_text(page)).to_have_text(REPORTED, timeout=10000)
    expect(page.locator("#status-about")).to_have_text("Printer")  # the card names what it is about
    ticket = ticket_of(page, stack)
    assert (ticket["device_id"], ticket["category"], ticket["site"], ticket["status"]) == \
        (device_id, "printer", "ph-01", "new")
    assert ticket["priority"] == 3 and ticket["button"] == "printer"
    [pressed] = ticket["presses"]
    assert pressed["event_id"] == page.locator("#status").get_attribute("data-event-id")
    assert pressed["press"] == "single" and pressed["seq"] == 1
    telemetry = pressed["telemetry"]
    assert "Pixel 5" in telemetry["user_agent"] and telemetry["app_version"].startswith("0.1.0+")
    assert telemetry["firmware"] == f"dashdesk-app {telemetry['app_version']}"
    assert telemetry["effective_type"] == "4g" and 0 <= telemetry["battery_pct"] <= 100
    expect(page.locator("#status-detail")).to_have_text("Help is on its way. Waiting for a technician.")
    expect(page.get_by_role("button", name=re.compile("I pressed by mistake"))).to_be_visible()

    # the desk works the ticket: the phone follows, live, from its retained tickets topic
    assert stack.api("PATCH", f"/api/v1/tickets/{ticket['id']}", json={"status": "in_progress"}).status_code == 200
    expect(page.locator("#status-detail")).to_have_text("A technician is on it.", timeout=10000)
    expect(page.get_by_role("button", name=re.compile("I pressed by mistake"))).to_have_count(0)
    keep_screenshot(page, tmp_path, "app.png")
    assert stack.api("PATCH", f"/api/v1/tickets/{ticket['id']}", json={"status": "on_hold"}).status_code == 200
    expect(page.locator("#status-detail")).to_have_text("On hold.", timeout=10000)
    assert stack.api("PATCH", f"/api/v1/tickets/{ticket['id']}", json={"status": "resolved"}).status_code == 200
    expect(status_text(page)).to_have_text(f"Resolved — ticket {ticket['number']}", timeout=10000)
    expect(page.locator("#status-detail")).to_have_text("Is it working again?")

    # not fixed: "No" presses the same button again, which reopens the ticket, with the reason
    page.get_by_role("button", name="No, still broken").tap()
    expect(status_text(page)).to_have_text(f"Reopened — ticket {ticket['number']}", timeout=10000)
    after = stack.api("GET", f"/api/v1/tickets/{ticket['id']}").json()
    assert (after["status"], after["reopen_count"], after["occurrences"]) == ("new", 1, 2)
    again = after["presses"][-1]
    assert again["result"] == "reopened" and again["button"] == "printer" and again["seq"] == 2
    assert again["telemetry"]["reopen_of"] == ticket["number"]
    assert again["telemetry"]["reason"].startswith("not fixed")

    # resolved again, and this time it works: the question goes away, nothing is sent
    assert stack.api("PATCH", f"/api/v1/tickets/{ticket['id']}", json={"status": "resolved"}).status_code == 200
    page.get_by_role("button", name="Yes, it works").tap()
    expect(status_text(page)).to_have_text("Thank you!")
    time.sleep(1)
    assert len(stack.api("GET", f"/api/v1/tickets/{ticket['id']}").json()["presses"]) == 2
    # the thanks fade away by themselves: the buttons alone again, after a reload too
    expect(page.locator("#status")).to_be_hidden(timeout=12000)
    page.reload()
    expect(report_button(page, "Printer")).to_be_visible()
    expect(page.locator("#status")).to_be_hidden()


def test_a_reopen_by_mistake_is_withdrawn_and_the_ticket_is_resolved_again(stack, phone):
    site(stack, "ph-09", "Quayside")
    ctx = phone()
    page, device_id = enrol(ctx, stack, "ph-09")
    report_button(page, "Printer").tap()
    expect(status_text(page)).to_have_text(REPORTED, timeout=10000)
    ticket = ticket_of(page, stack)
    assert stack.api("PATCH", f"/api/v1/tickets/{ticket['id']}", json={"status": "resolved"}).status_code == 200
    expect(status_text(page)).to_have_text(f"Resolved — ticket {ticket['number']}", timeout=10000)
    page.get_by_role("button", name="No, still broken").tap()
    expect(status_text(page)).to_have_text(f"Reopened — ticket {ticket['number']}", timeout=10000)
    assert stack.api("GET", f"/api/v1/tickets/{ticket['id']}").json()["status"] == "new"

    # "No" was a slip: the reopen is withdrawn, the ticket is resolved as it was, and the phone says so
    page.get_by_role("button", name=re.compile("I pressed by mistake")).tap()
    expect(status_text(page)).to_have_text("Your report was withdrawn", timeout=10000)
    expect(page.locator("#status-detail")).to_have_text(
        f"Ticket {ticket['number']} is resolved again, as it was before your report.")
    after = stack.api("GET", f"/api/v1/tickets/{ticket['id']}").json()
    assert (after["status"], after["reopen_count"], after["occurrences"]) == ("resolved", 0, 1)
    assert [(p["result"], p["cancelled"]) for p in after["presses"]] == [
        ("created", False), ("reopened", True), ("cancelled", False)]


def test_a_mistaken_report_into_a_ticket_others_reported_leaves_that_ticket_open(stack, phone):
    site(stack, "ph-10", "Bus Station")
    shelf = "shelf-ph10"
    stack.place(shelf, "ph-10")
    stack.map_button(shelf, "b1", "printer")
    r = stack.api("POST", "/api/v1/incidents", json={
        "event_id": str(uuid.uuid4()), "device_id": shelf, "button": "b1", "press": "single",
        "pressed_at": wire.format_time(wire.utcnow())})
    assert r.status_code == 201 and r.json()["result"] == "created", r.text
    ctx = phone()
    page, device_id = enrol(ctx, stack, "ph-10")
    report_button(page, "Printer").tap()
    expect(status_text(page)).to_have_text(REPORTED, timeout=10000)
    expect(page.locator("#status-detail")).to_contain_text("It was already reported")
    ticket = ticket_of(page, stack)
    assert ticket["device_id"] == shelf and ticket["occurrences"] == 2

    page.get_by_role("button", name=re.compile("I pressed by mistake")).tap()
    expect(status_text(page)).to_have_text("Your report was withdrawn", timeout=10000)
    expect(page.locator("#status-detail")).to_have_text(f"Ticket {ticket['number']} stays open for its other reports.")
    after = stack.api("GET", f"/api/v1/tickets/{ticket['id']}").json()
    assert (after["status"], after["occurrences"]) == ("new", 1)
    assert [(p["device_id"], p["cancelled"]) for p in after["presses"] if p["press"] == "single"] == [
        (shelf, False), (device_id, True)]


def test_a_report_merged_into_another_shops_ticket_is_followed_there_and_asked_about_when_it_is_resolved(
        stack, phone):
    site(stack, "ph-13", "Harbour")
    site(stack, "ph-14", "Old Town")
    shelf = "shelf-ph14"
    stack.place(shelf, "ph-14")
    stack.map_button(shelf, "b1", "printer")
    r = stack.api("POST", "/api/v1/incidents", json={
        "event_id": str(uuid.uuid4()), "device_id": shelf, "button": "b1", "press": "single",
        "pressed_at": wire.format_time(wire.utcnow())})
    assert r.status_code == 201, r.text
    target = r.json()["ticket"]
    ctx = phone()
    page, device_id = enrol(ctx, stack, "ph-13")
    report_button(page, "Printer").tap()
    expect(status_text(page)).to_have_text(REPORTED, timeout=10000)
    mine = ticket_of(page, stack)
    assert mine["id"] != target["id"] and mine["site"] == "ph-13"

    # an agent finds it is the same fault as Old Town's: merged there; the phone follows its report
    r = stack.api("PATCH", f"/api/v1/tickets/{mine['id']}", json={"merged_into": target["number"]})
    assert r.status_code == 200, r.text
    expect(status_text(page)).to_have_text(f"Reported — ticket {target['number']}", timeout=10000)
    expect(page.locator("#status-detail")).to_have_text(
        f"Your report {mine['number']} is now part of ticket {target['number']}, about the same problem. "
        "Waiting for a technician.")
    expect(page.get_by_role("button", name=re.compile("I pressed by mistake"))).to_have_count(0)

    # the shop presses again (a while later: a second tap within 1.2 s is taken as the same report) and the
    # press joins the ticket its first report was merged into
    page.wait_for_timeout(1500)
    report_button(page, "Printer").tap()
    expect(page.locator("#status-detail")).to_contain_text("It was already reported", timeout=10000)
    expect(status_text(page)).to_have_text(f"Reported — ticket {target['number']}")
    joined = stack.api("GET", f"/api/v1/tickets/{target['id']}").json()
    assert [(p["device_id"], p["result"]) for p in joined["presses"]] == [
        (shelf, "created"), (device_id, "created"), (device_id, "merged")]
    assert joined["occurrences"] == 3

    # resolved, while the server's first answer about it is an error: the phone asks again, and then asks
    # the shop whether it works
    failed = []

    def once_unavailable(route):
        if not failed:
            failed.append(route.request.url)
            route.fulfill(status=503, json={"error": {"code": "unavailable", "message": "try again"}})
        else:
            route.continue_()

    page.route(f"**/app/api/tickets/{target['id']}", once_unavailable)
    assert stack.api("PATCH", f"/api/v1/tickets/{target['id']}", json={"status": "resolved"}).status_code == 200
    expect(status_text(page)).to_have_text(f"Resolved — ticket {target['number']}", timeout=20000)
    expect(page.locator("#status-detail")).to_have_text("Is it working again?")
    expect(page.get_by_role("button", name="Yes, it works")).to_be_visible()
    assert failed, "the app never asked the server about the resolved ticket"


def test_a_tap_while_offline_is_kept_and_sent_exactly_once_when_back(stack, phone):
    site(stack, "ph-02", "Market Mall")
    ctx = phone()
    page, device_id = enrol(ctx, stack, "ph-02")
    assert page.evaluate("navigator.serviceWorker.ready.then(r => r.active.state)") == "activated"

    # a short gap: the network is back before MQTT.js notices anything, the connection never drops,
    # and the tap goes out at once, without a reload
    ctx.set_offline(True)
    expect(page.locator("#conn")).to_have_attribute("data-state", "offline")
    report_button(page, "Printer").tap()
    expect(status_text(page)).to_have_text("Saved — will send when online")
    first_event = page.locator("#status").get_attribute("data-event-id")
    expect(page.locator("#pending")).to_have_text("1 report waiting to be sent")
    page.wait_for_timeout(1000)
    ctx.set_offline(False)
    expect(status_text(page)).to_have_text(REPORTED, timeout=8000)
    expect(page.locator("#pending")).to_have_text("")
    assert page.evaluate("window.dashdeskApp.mqttConnected") is True
    printer = ticket_of(page, stack)
    time.sleep(2)  # a second copy of the press would have arrived by now
    presses = stack.api("GET", f"/api/v1/tickets/{printer['id']}").json()["presses"]
    assert [p["event_id"] for p in presses] == [first_event] and printer["occurrences"] == 1
    assert [t["id"] for t in stack.tickets(device_id=device_id)] == [printer["id"]]

    # a long one: the connection is found dead, the phone restarts with no network
    ctx.set_offline(True)
    expect(page.locator("#conn")).to_have_attribute("data-state", "offline")
    report_button(page, "Till").tap()
    expect(status_text(page)).to_have_text("Saved — will send when online")
    event_id = page.locator("#status").get_attribute("data-event-id")
    kept = page.evaluate("window.dashdeskApp.outboxAll()")
    assert [e["event_id"] for e in kept] == [event_id] and kept[0]["body"]["device_id"] == device_id
    expect(page.locator("#pending")).to_have_text("1 report waiting to be sent")
    # the old WebSocket was not closed, only starved: MQTT.js's keepalive finds it dead
    started = time.monotonic()
    wait_until(lambda: page.evaluate("window.dashdeskApp.mqttConnected") is False, timeout=25,
               what="MQTT.js to notice the dead connection")
    assert time.monotonic() - started < 20
    assert [t["id"] for t in stack.tickets(device_id=device_id)] == [printer["id"]]  # nothing got through

    # the phone is switched off and on again, still with no network: the app opens from its cache
    page.reload()
    expect(report_button(page, "Till")).to_be_visible()
    expect(page.locator("#pending")).to_have_text("1 report waiting to be sent")
    expect(status_text(page)).to_have_text("Saved — will send when online")
    time.sleep(1)
    assert [t["id"] for t in stack.tickets(device_id=device_id)] == [printer["id"]]

    ctx.set_offline(False)
    expect(status_text(page)).to_have_text(REPORTED, timeout=30000)
    expect(page.locator("#pending")).to_have_text("")
    assert page.evaluate("window.dashdeskApp.outboxAll()") == []
    ticket = ticket_of(page, stack)
    time.sleep(2)  # a second copy of the press would have arrived by now
    presses = stack.api("GET", f"/api/v1/tickets/{ticket['id']}").json()["presses"]
    assert [p["event_id"] for p in presses] == [event_id]
    assert sorted(t["id"] for t in stack.tickets(device_id=device_id)) == [printer["id"], ticket["id"]]
    assert ticket["occurrences"] == 1 and presses[0]["telemetry"]["online"] is False
    # stamped when tapped, not when sent
    assert wire.parse_time(presses[0]["pressed_at"]) < wire.parse_time(presses[0]["received_at"]) - timedelta(seconds=3)


def test_a_long_press_reports_urgent_and_a_mistake_is_cancelled(stack, phone):
    site(stack, "ph-03", "Station")
    ctx = phone()
    page, device_id = enrol(ctx, stack, "ph-03")
    till = report_button(page, "Till")
    # a touch shorter than 800 ms is an ordinary tap...
    hold(page, report_button(page, "Network"), 300)
    expect(status_text(page)).to_have_text(REPORTED, timeout=10000)
    network = ticket_of(page, stack)
    assert network["category"] == "network" and network["priority"] == 2
    assert network["presses"][0]["press"] == "single"
    # ...and "I pressed by mistake" withdraws it (a double press for the last report)
    page.get_by_role("button", name=re.compile("I pressed by mistake")).tap()
    expect(status_text(page)).to_have_text(f"Cancelled — ticket {network['number']} withdrawn", timeout=10000)
    cancelled = stack.api("GET", f"/api/v1/tickets/{network['id']}").json()
    assert cancelled["status"] == "cancelled" and cancelled["presses"][0]["cancelled"] is True

    # held for a second: urgent, one priority step up (till is 2 → 1)
    hold(page, till, 1200)
    expect(status_text(page)).to_have_text(REPORTED, timeout=10000)
    urgent = ticket_of(page, stack)
    assert urgent["category"] == "till" and urgent["priority"] == 1
    assert [p["press"] for p in urgent["presses"]] == ["long"]
    # an agent takes it without changing its status: a cancel is refused, with the reason, and not offered again
    assert stack.api("PATCH", f"/api/v1/tickets/{urgent['id']}", json={"assignee": "ann"}).status_code == 200
    page.get_by_role("button", name=re.compile("I pressed by mistake")).tap()
    expect(status_text(page)).to_have_text("Could not cancel", timeout=10000)
    expect(page.locator("#status-detail")).to_have_text("the ticket is already being handled; it cannot be cancelled")
    expect(status_text(page)).to_have_text(REPORTED, timeout=10000)
    expect(page.get_by_role("button", name=re.compile("I pressed by mistake"))).to_have_count(0)
    assert stack.api("GET", f"/api/v1/tickets/{urgent['id']}").json()["status"] == "new"
    presses = [p for t in stack.tickets(device_id=device_id) for p in
               stack.api("GET", f"/api/v1/tickets/{t['id']}").json()["presses"]]
    # the report, its cancellation and the urgent report (a refused cancel is on no ticket): one press each
    assert sorted(p["press"] for p in presses) == ["double", "long", "single"]


def test_used_expired_and_unknown_links_are_refused_with_a_clear_message(stack, phone):
    site(stack, "ph-04", "Airport")
    ctx = phone()
    # used: by another phone first
    used = make_enrolment(stack, "ph-04")
    assert stack.http.post(used["link"], json={}).status_code == 201
    page = ctx.new_page()
    page.goto(used["link"])
    expect(page.get_by_role("heading", level=1)).to_have_text("This link cannot be used")
    expect(page.locator("#setup-text")).to_have_text(
        "This enrolment link was already used: a link sets up one phone. Ask your admin for a new one.")
    expect(page.get_by_role("button", name="Set up this phone")).to_have_count(0)
    # expired
    expired = make_enrolment(stack, "ph-04")
    db = Database(f"sqlite:///{stack.root / 'server.sqlite3'}")
    with db.write() as s:
        s.execute(update(Enrolment).where(Enrolment.id == expired["id"])
                  .values(expires_at=wire.utcnow() - timedelta(minutes=1)))
    db.close()
    page.goto(expired["link"])
    expect(page.locator("#setup-text")).to_have_text("This enrolment link has expired. Ask your admin for a new one.")
    # unknown
    page.goto(stack.base + "/app/enroll/NoSuchCodeAtAll12345")
    expect(page.locator("#setup-text")).to_have_text("This enrolment link is not valid. Ask your admin for a new one.")
    # still open on the phone when someone else used it: the tap is refused, with the reason
    raced = make_enrolment(stack, "ph-04")
    page.goto(raced["link"])
    expect(page.get_by_role("button", name="Set up this phone")).to_be_visible()
    assert stack.http.post(raced["link"], json={}).status_code == 201
    page.get_by_role("button", name="Set up this phone").tap()
    expect(page.locator("#setup-text")).to_have_text(
        "This enrolment link was already used: a link sets up one phone. Ask your admin for a new one.")
    assert page.evaluate("localStorage.getItem('dashdesk.phone')") is None
    # a phone not set up is told what to do
    page.goto(stack.base + "/app")
    expect(page.get_by_role("heading", level=1)).to_have_text("This phone is not set up yet")


def test_a_polish_phone_shows_polish_words_and_labels(stack, phone):
    for slug, pl in (("printer", "Drukarka"), ("till", "Kasa")):
        r = stack.api("PATCH", f"/api/v1/categories/{slug}", json={"labels": {"pl": pl}})
        assert r.status_code == 200, r.text
    site(stack, "ph-05", "Sklep Centrum")
    ctx = phone(locale="pl-PL")
    made = make_enrolment(stack, "ph-05")
    page = ctx.new_page()
    page.goto(made["link"])
    expect(page.get_by_role("heading", level=1)).to_have_text("Ustaw ten telefon jako przycisk zgłoszeń")
    page.get_by_role("button", name="Skonfiguruj ten telefon").tap()
    online(page)
    expect(page.locator("#conn")).to_have_text("Połączono")
    expect(page.locator("#hint")).to_have_text("Dotknij, aby zgłosić problem. Przytrzymaj sekundę, jeśli to pilne.")
    labels = page.locator("button.report .label").all_inner_texts()
    assert "Drukarka" in labels and "Kasa" in labels
    assert "Network" in labels  # no Polish label: English
    report_button(page, "Drukarka").tap()
    expect(status_text(page)).to_have_text(re.compile(r"^Przyjęto zgłoszenie INC-\d{6}$"), timeout=10000)
    expect(page.locator("#status-about")).to_have_text("Drukarka")
    expect(page.locator("#status-detail")).to_have_text("Pomoc jest w drodze. Czeka na technika.")
    expect(page.get_by_role("button", name=re.compile("To była pomyłka"))).to_be_visible()
    ticket = ticket_of(page, stack)
    assert ticket["category"] == "printer" and ticket["presses"][0]["telemetry"]["language"] == "pl-PL"
    assert stack.api("PATCH", f"/api/v1/tickets/{ticket['id']}", json={"status": "in_progress"}).status_code == 200
    expect(page.locator("#status-detail")).to_have_text("Technik już się tym zajmuje.", timeout=10000)
    # a refusal's reason, which the server words in English, in Polish
    r = stack.api("PATCH", f"/api/v1/devices/{ticket['device_id']}", json={"status": "rejected"})
    assert r.status_code == 200, r.text
    report_button(page, "Kasa").tap()
    expect(status_text(page)).to_have_text("Nie zgłoszono", timeout=10000)
    expect(page.locator("#status-about")).to_have_text("Kasa")
    expect(page.locator("#status-detail")).to_have_text("urządzenie odrzucone przez administratora")


def test_a_retired_phone_stops_and_says_so(stack, phone):
    site(stack, "ph-06", "Harbour")
    ctx = phone()
    page, device_id = enrol(ctx, stack, "ph-06")
    r = stack.api("PATCH", f"/api/v1/devices/{device_id}", json={"status": "retired"})
    assert r.status_code == 200, r.text
    page.reload()
    expect(page.locator("#setup-text")).to_have_text(
        "An admin retired this phone: it no longer reports. Ask for a new enrolment link.", timeout=10000)
    expect(page.locator("button.report")).to_have_count(0)
    assert page.evaluate("window.dashdeskApp.connected") is False


def test_with_the_ticket_server_down_the_phone_says_sent_then_reported(stack, phone):
    site(stack, "ph-07", "Riverside")
    ctx = phone()
    page, device_id = enrol(ctx, stack, "ph-07")
    stack.server.stop()
    try:
        report_button(page, "Printer").tap()
        # the bridge keeps the press in its outbox and says so: the phone does not send it again
        expect(status_text(page)).to_have_text("Sent — the ticket number follows shortly", timeout=10000)
        assert page.evaluate("window.dashdeskApp.outboxAll()")[0]["delivered"] is True
        expect(page.locator("#pending")).to_have_text("")
    finally:
        stack.start_server()
    expect(status_text(page)).to_have_text(REPORTED, timeout=30000)
    assert page.evaluate("window.dashdeskApp.outboxAll()") == []
    ticket = ticket_of(page, stack)
    assert ticket["device_id"] == device_id and len(ticket["presses"]) == 1


def test_a_refused_press_shows_the_reason(stack, phone):
    site(stack, "ph-08", "Old Town")
    ctx = phone()
    page, device_id = enrol(ctx, stack, "ph-08")
    r = stack.api("PATCH", f"/api/v1/devices/{device_id}", json={"status": "rejected"})
    assert r.status_code == 200, r.text
    report_button(page, "Till").tap()
    expect(status_text(page)).to_have_text("Not reported", timeout=10000)
    expect(page.locator("#status-detail")).to_have_text("device rejected by an admin")
    assert stack.tickets(device_id=device_id) == []


def test_two_copies_on_one_phone_take_turns_instead_of_putting_each_other_off(stack, phone):
    site(stack, "ph-11", "Pier")
    ctx = phone()
    first, device_id = enrol(ctx, stack, "ph-11")
    # the same app opened again on the same phone (the installed app beside a browser tab)
    second = ctx.new_page()
    second.goto(stack.base + "/app")
    expect(second.get_by_role("heading", level=1)).to_have_text("Open in another window")
    expect(report_button(second, "Printer")).to_have_count(0)
    # the first copy's connection is left alone: online all along, never kicked off
    states = set()
    for _ in range(32):
        states.add(first.locator("#conn").get_attribute("data-state"))
        assert first.evaluate("window.dashdeskApp.mqttConnected") is True
        assert second.evaluate("window.dashdeskApp.mqttConnected") is False
        first.wait_for_timeout(250)
    assert states == {"online"}
    report_button(first, "Printer").tap()
    expect(status_text(first)).to_have_text(REPORTED, timeout=10000)
    number = first.locator("#status").get_attribute("data-ticket")

    # the first copy closes: the second takes over by itself, with the report where it was
    first.close()
    online(second)
    expect(status_text(second)).to_have_text(f"Reported — ticket {number}")
    report_button(second, "Till").tap()
    expect(second.locator("#status")).not_to_have_attribute("data-ticket", number, timeout=10000)
    expect(status_text(second)).to_have_text(REPORTED, timeout=10000)
    till = ticket_of(second, stack)
    assert till["category"] == "till" and till["device_id"] == device_id

    # a third copy may take it over at once; the second then waits, off the broker
    third = ctx.new_page()
    third.goto(stack.base + "/app")
    third.get_by_role("button", name="Use it here").tap()
    online(third)
    expect(second.get_by_role("heading", level=1)).to_have_text("Open in another window")
    assert second.evaluate("window.dashdeskApp.mqttConnected") is False
    for _ in range(12):
        assert third.locator("#conn").get_attribute("data-state") == "online"
        third.wait_for_timeout(250)
    report_button(third, "Network").tap()
    expect(third.locator("#status")).not_to_have_attribute("data-ticket", till["number"], timeout=10000)
    expect(status_text(third)).to_have_text(REPORTED, timeout=10000)
    assert len(stack.tickets(device_id=device_id)) == 3


def test_the_enrolments_page_on_a_laptop_shows_the_whole_list_with_its_withdraw_buttons(stack, browser):
    from tests.browser import sign_in
    from tests.stack import ADMIN_PASSWORD

    site(stack, "ph-20", "Laptop Lane " + "Arcade " * 8)
    made = make_enrolment(stack, "ph-20")
    page = sign_in(browser, stack.base, "admin", ADMIN_PASSWORD, width=1280, height=800)
    page.goto(stack.base + "/admin/enrolments")
    row = page.locator(f"table.enrolments tr[data-enrolment='{made['id']}']")
    withdraw = row.get_by_role("button", name="Withdraw")
    expect(withdraw).to_be_visible()
    box = page.locator("table.enrolments").locator("xpath=..")
    assert box.evaluate("el => el.scrollWidth <= el.clientWidth"), "the list scrolls inside its box"
    right = withdraw.evaluate("el => el.getBoundingClientRect().right")
    assert right <= box.evaluate("el => el.getBoundingClientRect().right"), right
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.context.close()
