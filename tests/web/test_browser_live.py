"""Live desk pages in a real Chromium against the real stack: priority-1 alerts on the queue, a ticket
page that updates itself without losing what the agent types, and both pages on a tablet and a laptop.

Shares the fixtures of test_browser_desk (a stack of its own for this module).
"""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import update

from dashdesk import wire
from server.db import Database
from server.models import Ticket

from tests.stack import ADMIN_PASSWORD, wait_until
from tests.browser import fill_sign_in, sign_in
from tests.web.test_browser_desk import AGENT, AGENT_PASSWORD, desk, live, own_device, row  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

TABLET = {"width": 768, "height": 1024}
LAPTOP = {"width": 1366, "height": 768}

# Record what the page asks of the browser's Notification and Web Audio, then let the real ones do it; and
# every live-update event, as it arrives (before the page's own handler, in the same dispatch).
RECORD_ALERTS = """
window.__notes = []; window.__beeps = 0; window.__asked = 0; window.__events = [];
(() => {
  const RealEventSource = window.EventSource;
  window.EventSource = class extends RealEventSource {
    constructor(...args) {
      super(...args);
      this.addEventListener("ticket", e => window.__events.push(JSON.parse(e.data)));
    }
  };
  const RealNotification = window.Notification;
  function Recorded(title, options) {
    window.__notes.push({title: String(title), body: String((options || {}).body || "")});
    try { return new RealNotification(title, options); } catch (e) { return {close() {}}; }
  }
  Object.defineProperty(Recorded, "permission", {get: () => RealNotification.permission});
  Recorded.requestPermission = (...args) => { window.__asked++; return RealNotification.requestPermission(...args); };
  window.Notification = Recorded;
  const RealContext = window.AudioContext;
  window.AudioContext = class extends RealContext {
    createOscillator() {
      const osc = super.createOscillator();
      const start = osc.start.bind(osc);
      osc.start = (...args) => { window.__beeps++; return start(...args); };
      return osc;
    }
  };
})();
"""

# Every visible control and its accessible name: aria-labelledby, aria-label, a label (for= or around it),
# its own text (without aria-hidden parts), a button input's value, or a title.
UNNAMED_CONTROLS = """() => {
  const shown = el => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
  const text = el => {
    const copy = el.cloneNode(true);
    copy.querySelectorAll("[aria-hidden=true]").forEach(n => n.remove());
    return copy.textContent.trim();
  };
  const name = el => {
    const ids = (el.getAttribute("aria-labelledby") || "").split(/\\s+/).filter(Boolean);
    const byIds = ids.map(id => { const n = document.getElementById(id); return n ? text(n) : ""; }).join(" ").trim();
    const labels = Array.from(el.labels || []).map(text).join(" ").trim();
    const own = el.tagName === "BUTTON" ? text(el)
      : (el.tagName === "INPUT" && ["submit", "button", "reset"].includes(el.type) ? el.value.trim() : "");
    return byIds || (el.getAttribute("aria-label") || "").trim() || labels || own || (el.title || "").trim();
  };
  const controls = Array.from(document.querySelectorAll("input:not([type=hidden]), select, textarea, button"))
    .filter(shown);
  return {count: controls.length, unnamed: controls.filter(el => !name(el)).map(el => el.outerHTML.slice(0, 150))};
}"""

# Touch targets smaller than 40 px either way (links inside sentences are exempt, as in WCAG 2.5.8).
SMALL_TARGETS = """() => Array.from(document.querySelectorAll(
    "button, select, input:not([type=hidden]), textarea, summary, header.top a, .pages a, .filters > a, a.num"))
  .filter(el => el.getClientRects().length > 0)
  .filter(el => { const r = el.getBoundingClientRect(); return r.height < 39.5 || r.width < 39.5; })
  .map(el => el.outerHTML.slice(0, 100))"""


def notes(page: Page) -> list[dict]:
    return page.evaluate("window.__notes")


def test_a_new_priority_1_ticket_notifies_and_beeps_until_the_agent_turns_alerts_off(desk, browser, presser):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.grant_permissions(["notifications"], origin=desk.base)
    context.add_init_script(RECORD_ALERTS)
    page = context.new_page()
    page.goto(desk.base + "/login")
    fill_sign_in(page, AGENT, AGENT_PASSWORD)
    live(page)
    alerts = page.get_by_role("button", name="P1 alerts")
    sound = page.get_by_role("button", name="Sound")
    expect(alerts).to_have_attribute("aria-pressed", "false")  # opt-in: nothing rings before the agent asks
    expect(sound).to_have_attribute("aria-pressed", "true")
    alerts.click()
    expect(alerts).to_have_attribute("aria-pressed", "true")
    expect(alerts).to_contain_text("on")
    page.evaluate("window.__notes = []; window.__beeps = 0")

    # a long press of the sales-app button (P2) reports P1
    p1 = presser.final_ack(presser.press("web-dev-0", "b3", press="long"))
    assert p1["result"] == "created", p1
    number = p1["ticket"]["number"]
    page.wait_for_function("() => window.__notes.length > 0", timeout=10_000)
    assert notes(page) == [{"title": f"P1 ticket {number}", "body": "Sales app at High Street"}]
    assert page.evaluate("window.__beeps") >= 1
    expect(page.locator("#live")).to_contain_text(f"New priority-1 ticket {number}")
    expect(row(page, p1["ticket"]["id"])).to_be_visible()

    # a P3 ticket is news for the queue, not an alert ...
    page.evaluate("window.__notes = []; window.__beeps = 0")
    p3 = presser.final_ack(presser.press("web-dev-0", "b1"))
    expect(row(page, p3["ticket"]["id"])).to_contain_text("P3", timeout=10_000)
    # ... until someone raises it to P1
    r = desk.api("PATCH", f"/api/v1/tickets/{p3['ticket']['id']}", json={"priority": 1})
    assert r.status_code == 200, r.text
    page.wait_for_function("() => window.__notes.length > 0", timeout=10_000)
    assert [n["title"] for n in notes(page)] == [f"P1 ticket {p3['ticket']['number']}"]
    assert page.evaluate("window.__beeps") >= 1

    # an installer's test ticket (a device in test mode) raised to P1 by an agent rings nothing
    desk.place("web-test-0", "hs-01")
    desk.map_button("web-test-0", "b1", "printer", label="Printer")
    assert desk.api("PATCH", "/api/v1/devices/web-test-0", json={"test_mode": True}).status_code == 200
    test = presser.final_ack(presser.press("web-test-0", "b1"))
    assert test["result"] == "created", test
    page.evaluate("window.__notes = []; window.__beeps = 0")
    r = desk.api("PATCH", f"/api/v1/tickets/{test['ticket']['id']}", json={"priority": 1})
    assert r.status_code == 200, r.text
    raised = page.wait_for_function(
        f"() => window.__events.find(e => e.ticket_id === {test['ticket']['id']} && e.priority_was === 3)",
        timeout=10_000)
    assert notes(page) == [] and page.evaluate("window.__beeps") == 0
    assert raised.json_value()["kind"] == "test.updated" and raised.json_value()["test"] is True
    expect(page.locator("#live")).not_to_contain_text(test["ticket"]["number"])
    expect(row(page, test["ticket"]["id"])).to_have_count(0)
    assert desk.api("PATCH", "/api/v1/devices/web-test-0", json={"test_mode": False}).status_code == 200

    # ... or a long press merges into it (P2 till: a long press reports P1)
    page.evaluate("window.__notes = []; window.__beeps = 0")
    p2 = presser.final_ack(presser.press("web-dev-2", "b2"))
    expect(row(page, p2["ticket"]["id"])).to_contain_text("P2", timeout=10_000)
    assert notes(page) == []
    raised = presser.final_ack(presser.press("web-dev-2", "b2", press="long"))
    assert raised["result"] == "merged", raised
    page.wait_for_function("() => window.__notes.length > 0", timeout=10_000)
    assert [n["title"] for n in notes(page)] == [f"P1 ticket {p2['ticket']['number']}"]
    expect(row(page, p2["ticket"]["id"])).to_contain_text("P1")

    # sound off: a notification still, no beep
    sound.click()
    expect(sound).to_have_attribute("aria-pressed", "false")
    page.evaluate("window.__notes = []; window.__beeps = 0")
    quiet = presser.final_ack(presser.press("web-dev-2", "b3", press="long"))
    page.wait_for_function("() => window.__notes.length > 0", timeout=10_000)
    assert [n["title"] for n in notes(page)] == [f"P1 ticket {quiet['ticket']['number']}"]
    assert page.evaluate("window.__beeps") == 0
    sound.click()
    expect(sound).to_have_attribute("aria-pressed", "true")

    # alerts off: the next P1 ticket only shows up in the queue
    alerts.click()
    expect(alerts).to_have_attribute("aria-pressed", "false")
    page.evaluate("window.__notes = []; window.__beeps = 0")
    off = presser.final_ack(presser.press("web-dev-1", "b3", press="long"))
    assert off["result"] == "created", off
    expect(row(page, off["ticket"]["id"])).to_contain_text("P1", timeout=10_000)
    time.sleep(0.5)  # a notification would have come with the event that refreshed the table
    assert notes(page) == [] and page.evaluate("window.__beeps") == 0

    # the choice stays across a reload
    assert page.evaluate("localStorage.getItem('dashdesk.alerts')") == "off"
    page.reload()
    expect(page.get_by_role("button", name="P1 alerts")).to_have_attribute("aria-pressed", "false")
    context.close()


def test_an_open_ticket_page_updates_in_place_and_keeps_what_the_agent_types(desk, browser, presser):
    ack = presser.final_ack(presser.press("web-dev-1", "b2", telemetry={"battery_pct": 64}))
    ticket_id, number = ack["ticket"]["id"], ack["ticket"]["number"]
    page = sign_in(browser, desk.base, AGENT, AGENT_PASSWORD)
    page.goto(f"{desk.base}/tickets/{ticket_id}")
    live(page)
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("#occurrences")).to_have_text("×1 press")
    expect(page.locator("#presses tbody tr")).to_have_count(1)
    expect(page.locator("#telemetry tr.problem")).to_have_count(0)
    note = page.get_by_label("Add a note")
    note.click()
    page.keyboard.type("half-typed note about the till")

    # a second press of the same button merges into the ticket; the page shows it without a reload
    merged = presser.final_ack(presser.press("web-dev-1", "b2", telemetry={"battery_pct": 9}))
    assert merged["result"] == "merged" and merged["ticket"]["id"] == ticket_id, merged
    expect(page.locator("#occurrences")).to_have_text("×2 presses", timeout=10_000)
    expect(page.locator("#presses tbody tr")).to_have_count(2)
    expect(page.get_by_role("heading", name="Presses (2)")).to_be_visible()
    expect(page.locator("#history")).to_contain_text("Another single press merged into it")
    expect(page.locator("#telemetry tr.problem")).to_contain_text("battery low")
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert page.evaluate("window.__sameDocument") is True
    expect(note).to_have_value("half-typed note about the till")
    expect(note).to_be_focused()

    # someone else resolves it while the agent writes a resolution: the actions follow, the text stays
    page.reload()  # this time the change is the first news the page gets
    live(page)
    page.evaluate("window.__sameDocument = true")
    note.fill("half-typed note about the till")
    page.get_by_text("Resolve…").click()
    resolution = page.get_by_label("Resolution note")
    resolution.fill("reseated the till's cable")
    r = desk.api("PATCH", f"/api/v1/tickets/{ticket_id}", json={"status": "resolved", "note": "done remotely"})
    assert r.status_code == 200, r.text
    expect(page.locator("#ticket-status")).to_have_text("Resolved", timeout=10_000)
    expect(page.get_by_role("button", name="Reopen")).to_be_visible()
    expect(page.get_by_role("button", name="Take")).to_have_count(0)
    expect(page.get_by_role("button", name="In progress")).to_have_count(0)
    expect(page.get_by_label("Reason for the hold")).to_be_hidden()  # nothing typed there: gone
    expect(page.get_by_label("Assign to")).to_be_hidden()
    expect(resolution).to_have_value("reseated the till's cable")
    expect(page.locator("#resolve-box .stale")).to_contain_text("resolved now: this can no longer be sent")
    expect(page.get_by_role("button", name="Resolve", exact=True)).to_be_disabled()
    expect(note).to_have_value("half-typed note about the till")
    expect(page.locator("#history")).to_contain_text("Note: done remotely")

    # reopened: the resolve form takes the text again
    r = desk.api("PATCH", f"/api/v1/tickets/{ticket_id}", json={"status": "new"})
    assert r.status_code == 200, r.text
    expect(page.locator("#ticket-status")).to_have_text("New", timeout=10_000)
    expect(page.get_by_role("button", name="Resolve", exact=True)).to_be_enabled()
    expect(page.locator("#resolve-box .stale")).to_have_count(0)
    expect(page.get_by_label("Assign to")).to_be_visible()
    expect(resolution).to_have_value("reseated the till's cable")
    assert page.evaluate("window.__sameDocument") is True

    # and what was kept is sent as usual
    page.get_by_role("button", name="Resolve", exact=True).click()
    expect(page.get_by_text(f"{number} is resolved.")).to_be_visible()
    expect(page.locator("#history")).to_contain_text("Resolution: reseated the till's cable")
    page.context.close()


@pytest.mark.parametrize("size", [TABLET, LAPTOP], ids=["tablet-768x1024", "laptop-1366x768"])
def test_queue_and_ticket_fit_the_screen_and_every_control_has_a_name(desk, browser, presser, size):
    tablet = size is TABLET
    ack = presser.final_ack(presser.press("web-dev-2", "b1", telemetry={
        "battery_pct": 17, "firmware": "1.4.2-" + "x" * 80, "rssi_dbm": -80,
        "probes": {"printer": {"ok": False, "detail": "offline: no answer on 10.2.3.40:9100 " + "y" * 60}}}))
    presser.final_ack(presser.press("web-dev-0", "b2"))
    page = sign_in(browser, desk.base, "admin", ADMIN_PASSWORD, viewport=size, has_touch=tablet)
    expect(page.locator("#queue-table tbody tr[data-id]").first).to_be_visible()
    pages = {"queue": page.url, "ticket": f"{desk.base}/tickets/{ack['ticket']['id']}"}
    for name, url in pages.items():
        page.goto(url)
        live(page)
        for details in page.locator("details:visible").all():
            details.locator("summary").click()  # the controls inside are checked too
        width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert width[0] <= width[1], f"the {name} page is {width[0]} px wide in a {width[1]} px window"
        controls = page.evaluate(UNNAMED_CONTROLS)
        assert controls["count"] >= 8 and controls["unnamed"] == [], (name, controls)
        if tablet:
            assert page.evaluate(SMALL_TARGETS) == [], name
    # on the tablet the queue's table scrolls in its own box, not the page
    page.goto(pages["queue"])
    scroller = page.locator("#queue-table .table-scroll")
    box = scroller.evaluate("el => [el.scrollWidth, el.clientWidth, getComputedStyle(el).overflowX]")
    assert box[2] == ("auto" if tablet else "visible"), box
    page.context.close()


# A browser without Web Locks (an http page on another machine than the server): the tabs elect
# the one that holds the stream among themselves.
NO_WEB_LOCKS = "Object.defineProperty(Navigator.prototype, 'locks', {get: () => undefined, configurable: true});"


@pytest.mark.parametrize("locks", [True, False], ids=["web-locks", "no-web-locks"])
def test_any_number_of_desk_tabs_load_and_stay_live(desk, browser, presser, locks):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    if not locks:
        context.add_init_script(NO_WEB_LOCKS)
    context.add_init_script(RECORD_ALERTS)
    context.grant_permissions(["notifications"], origin=desk.base)
    first = context.new_page()
    first.goto(desk.base + "/login")
    fill_sign_in(first, AGENT, AGENT_PASSWORD)
    live(first)
    device = f"web-tabs-{int(locks)}"  # its own tickets, whatever the other tests left open
    r = desk.api("POST", "/api/v1/devices", json={"device_id": device, "site": device, "site_name": "Tabs"})
    assert r.status_code in (200, 201), r.text
    for button, category in (("b1", "printer"), ("b2", "till"), ("b3", "sales-app")):
        desk.map_button(device, button, category)
    ticket = presser.final_ack(presser.press(device, "b1"))["ticket"]
    pages = [first]
    for i in range(7):  # eight desk pages in all, queues and tickets
        page = context.new_page()
        page.goto(desk.base + ("/?assignee=none" if i % 2 else f"/tickets/{ticket['id']}"))  # fails if it hangs
        live(page)
        pages.append(page)
    # the 8th page is a ticket page: its forms are sent as usual
    pages[-1].get_by_role("button", name="Take").click()
    expect(pages[-1].get_by_text(f"You took {ticket['number']}.")).to_be_visible()
    # a press reaches every open queue page, the one in front and those behind it
    queues = [p for p in pages if "/tickets/" not in p.url]
    queues[0].get_by_role("button", name="P1 alerts").click()
    pages[-1].bring_to_front()
    p1 = presser.final_ack(presser.press(device, "b3", press="long"))["ticket"]
    for page in queues:
        expect(row(page, p1["id"])).to_be_visible(timeout=5000)
    # and one of them (not one per tab) alerts, though none of them is in front
    title = f"P1 ticket {p1['number']}"
    wait_until(lambda: sum(p.evaluate(f"window.__notes.filter(n => n.title === '{title}').length") for p in queues),
               timeout=5, what="a notification")
    time.sleep(0.5)
    assert sum(p.evaluate(f"window.__notes.filter(n => n.title === '{title}').length") for p in queues) == 1
    # the first page, which opened the stream, closes: another one takes over
    first.close()
    queues = queues[1:]
    later = presser.final_ack(presser.press(device, "b2"))["ticket"]
    for page in queues:
        expect(row(page, later["id"])).to_be_visible(timeout=10_000)
    page = context.new_page()
    page.goto(desk.base + "/")
    live(page)
    context.close()


def test_signed_out_while_typing_the_page_and_its_text_stay_and_are_sent_after_signing_in_again(
        desk, browser, presser):
    device = own_device(desk, "web-signed-out")
    ticket = presser.final_ack(presser.press(device, "b2"))["ticket"]
    url = f"{desk.base}/tickets/{ticket['id']}"
    page = sign_in(browser, desk.base, AGENT, AGENT_PASSWORD)
    page.goto(url)
    live(page)
    note = page.get_by_label("Add a note")
    note.fill("the till's drawer sticks")
    # the session ends (here: signed out in another tab) ...
    other = page.context.new_page()
    other.goto(desk.base + "/")
    other.get_by_role("button", name="Sign out").click()
    expect(other).to_have_url(re.compile(r"/login"))
    other.close()
    # ... and a live update comes: the page cannot fetch it, says so, and stays
    presser.final_ack(presser.press(device, "b2"))
    banner = page.locator("#signed-out")
    expect(banner).to_be_visible(timeout=10_000)
    expect(banner).to_have_text(
        "You are signed out — sign in in another tab, then continue; your text is kept.")
    expect(banner).to_have_attribute("role", "alert")
    expect(page).to_have_url(url)
    expect(note).to_have_value("the till's drawer sticks")
    # sending the note now keeps it too
    page.get_by_role("button", name="Add note").click()
    page.wait_for_timeout(500)
    expect(page).to_have_url(url)
    expect(note).to_have_value("the till's drawer sticks")
    expect(banner).to_be_visible()
    # the banner's link signs in in a new tab
    with page.context.expect_page() as opened:
        banner.get_by_role("link", name="sign in in another tab").click()
    login = opened.value
    fill_sign_in(login, AGENT, AGENT_PASSWORD)
    expect(login).to_have_url(desk.base + "/")
    # back in the first tab, the same button sends the note (with the new session's form token)
    page.bring_to_front()
    page.get_by_role("button", name="Add note").click()
    expect(page.get_by_text("Note added.")).to_be_visible()
    expect(page.locator("#history")).to_contain_text("Note: the till's drawer sticks")
    expect(banner).to_be_hidden()
    page.context.close()


# Whatever on the page is wider than the window, or sticks out of it or out of a box that hides what overflows.
OVERFLOWS = """() => {
  const out = [];
  if (document.documentElement.scrollWidth > window.innerWidth) out.push("page " + document.documentElement.scrollWidth);
  document.querySelectorAll(".table-scroll").forEach(box => {
    if (box.scrollWidth > box.clientWidth) out.push("box " + box.scrollWidth + " > " + box.clientWidth);
  });
  document.querySelectorAll("button, select, input:not([type=hidden]), a").forEach(el => {
    const r = el.getBoundingClientRect();
    if (r.width && r.right > window.innerWidth + 0.5) out.push(el.outerHTML.slice(0, 80));
  });
  return out;
}"""


@pytest.mark.parametrize("size", [TABLET, {"width": 1280, "height": 800}], ids=["tablet-768x1024", "laptop-1280x800"])
def test_a_long_shop_name_and_an_overdue_sla_fit_the_queue_with_the_device_shown(desk, browser, presser, size):
    device = "web-fit-front-counter-01"
    r = desk.api("POST", "/api/v1/devices", json={"device_id": device, "site": "fit-01", "site_name": "N" * 200})
    assert r.status_code in (200, 201), r.text
    desk.map_button(device, "b1", "printer")
    desk.map_button(device, "b2", "sales-app")
    ticket = presser.final_ack(presser.press(device, "b1"))["ticket"]
    other = presser.final_ack(presser.press(device, "b2"))["ticket"]  # in progress, someone else's
    r = desk.api("PATCH", f"/api/v1/tickets/{other['id']}", json={"status": "in_progress", "assignee": AGENT})
    assert r.status_code == 200, r.text
    db = Database(f"sqlite:///{desk.root / 'server.sqlite3'}")
    with db.write() as s:  # reported a day ago, their targets long past: "respond overdue by 23 h 59 min"
        late = wire.utcnow() - timedelta(hours=23, minutes=59, seconds=30)
        s.execute(update(Ticket).where(Ticket.id.in_([ticket["id"], other["id"]]))
                  .values(respond_by=late, resolve_by=late, first_reported_at=late - timedelta(hours=1)))
    db.close()
    page = sign_in(browser, desk.base, "admin", ADMIN_PASSWORD, viewport=size, has_touch=size is TABLET)
    mine = row(page, ticket["id"])
    expect(mine).to_contain_text("overdue by 23 h 59 min")
    expect(mine.get_by_text(device)).to_be_visible()
    expect(mine.get_by_role("button", name=f"Take {ticket['number']}")).to_be_visible()
    assert page.evaluate(OVERFLOWS) == []
    page.select_option("select[name=site]", "fit-01")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#queue-table tbody tr[data-id]")).to_have_count(2)
    expect(row(page, other["id"])).to_contain_text("resolve overdue by 23 h 59 min")
    expect(row(page, other["id"]).get_by_role("button", name=f"Take {other['number']}")).to_be_visible()
    assert page.evaluate(OVERFLOWS) == []
    page.context.close()
