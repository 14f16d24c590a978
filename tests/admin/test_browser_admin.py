"""The admin pages in a real Chromium (Playwright) against the real stack: Mosquitto, server, bridge.

A device nobody knew presses over MQTT, shows up as pending, is approved into a site on the
page, gets its button b1 mapped to "till", and its next press over MQTT reports "till"; the device's
page then is the README's docs/screenshots/admin-device.png (DASHDESK_SAVE_SCREENSHOTS=1 writes it).
Needs Debian's chromium (/usr/bin/chromium) and the ``playwright`` package, as tests/web does.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from server.db import Database
from server.domain.users import create_user
from tests.browser import fill_sign_in, keep_screenshot, sign_in
from tests.stack import ADMIN_PASSWORD

pytestmark = pytest.mark.integration

AGENT, AGENT_PASSWORD = "adm-agent", "adm-agent-password"
DEVICE = "adm-new-1"


@pytest.fixture(scope="module")
def desk(stack):
    db = Database(f"sqlite:///{stack.root / 'server.sqlite3'}")
    create_user(db, AGENT, AGENT_PASSWORD, "agent")
    db.close()
    return stack


def test_a_new_device_is_approved_mapped_and_its_next_press_reports_till(desk, browser, presser, tmp_path):
    # 1. a device nobody knows presses b1 over MQTT: it reports (as "other") and waits as pending
    first = presser.final_ack(presser.press(DEVICE, "b1"))
    assert first["result"] == "created" and first["ticket"]["category"] == "other", first

    # 2. an admin adds the shop's site on the sites page (a tablet's width)
    page = sign_in(browser, desk.base, "admin", ADMIN_PASSWORD, width=820)
    page.get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Admin")
    expect(page.locator(f"table.pending tr[data-device='{DEVICE}']")).to_be_visible()
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Sites").click()
    page.get_by_text("Add a site").click()
    page.get_by_label("Code", exact=True).fill("adm-01")
    page.get_by_label("Name", exact=True).fill("Admin Shop")
    page.get_by_label("Time zone", exact=True).fill("Europe/Warsaw")
    page.get_by_label("Service hours", exact=True).fill("Mon-Sat 05:00-18:00")
    page.get_by_role("button", name="Add site").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Site adm-01 · Admin Shop")
    expect(page.get_by_label("Service hours", exact=True)).to_have_value("Mon–Sat 05:00–18:00; Sun closed")
    keep_screenshot(page, tmp_path, "site-tablet.png", publish=False, full_page=True)
    page.context.close()

    # 3. the device is in the pending list; approve it into the site
    page = sign_in(browser, desk.base, "admin", ADMIN_PASSWORD)
    page.goto(desk.base + "/admin/devices?status=pending")
    row = page.locator(f"table.devices tr[data-device='{DEVICE}']")
    expect(row).to_be_visible()
    expect(row).to_contain_text("Pending")
    row.get_by_role("link", name=DEVICE).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Device {DEVICE}")
    page.get_by_label("Site", exact=True).fill("adm-01")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_text(f"{DEVICE} is approved into adm-01.")).to_be_visible()
    expect(page.locator("#device-status")).to_have_text("Active")

    # 4. map its button b1 to the till category, with the label staff see
    page.get_by_label("Button", exact=True).fill("b1")
    page.get_by_label("Press type", exact=True).select_option("")
    page.get_by_label("Reports", exact=True).select_option("till")
    page.get_by_label("Label shown to staff", exact=True).fill("Till 1")
    page.get_by_role("button", name="Save mapping").click()
    expect(page.get_by_text("Button b1 (every press type) now reports till.")).to_be_visible()
    expect(page.locator("table.mappings tr[data-button='b1']")).to_contain_text("Till 1")
    # The README's picture of a device's page: approved, its button mapped.
    keep_screenshot(page, tmp_path, "admin-device.png", full_page=True)

    # 5. the next press over MQTT reports till, at the site, under the label
    second = presser.final_ack(presser.press(DEVICE, "b1"))
    assert second["result"] == "created" and second["ticket"]["category"] == "till", second
    ticket = desk.api("GET", f"/api/v1/tickets/{second['ticket']['id']}").json()
    assert (ticket["category"], ticket["site"], ticket["title"]) == ("till", "adm-01", "Till 1 at Admin Shop")
    page.goto(f"{desk.base}/tickets/{second['ticket']['id']}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Till 1 at Admin Shop")

    # 6. every step is in the audit log
    page.goto(desk.base + "/admin/audit?actor=admin")
    for action in ("site.create", "device.approve", "mapping.set"):
        expect(page.locator("table.audit")).to_contain_text(action)
    page.context.close()


def test_an_agent_is_refused_the_admin_pages(desk, browser):
    page = sign_in(browser, desk.base, AGENT, AGENT_PASSWORD)
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    for path in ("/admin", "/admin/devices?status=pending", "/admin/sites", "/admin/audit"):
        response = page.goto(desk.base + path)
        assert response.status == 403, path
        expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
        expect(page.get_by_text("This page is for admins.")).to_be_visible()
    page.context.close()
    # and signed out, the sign-in page, then back to where they were going
    page = browser.new_page()
    page.goto(desk.base + "/admin/devices?status=pending")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    fill_sign_in(page, "admin", ADMIN_PASSWORD)
    expect(page).to_have_url(desk.base + "/admin/devices?status=pending")
    page.context.close()


def test_an_admin_adds_an_agent_who_signs_in_and_a_device_in_test_mode_stays_out_of_the_queue(desk, browser,
                                                                                              presser):
    device, site = "adm-test-1", "adm-02"
    assert desk.api("POST", "/api/v1/sites", json={"code": site, "name": "Test Shop"}).status_code == 201
    assert desk.api("POST", "/api/v1/devices", json={"device_id": device, "site": site}).status_code == 201

    # 1. an admin adds an agent on the users page
    page = sign_in(browser, desk.base, "admin", ADMIN_PASSWORD)
    page.goto(desk.base + "/admin")
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Users").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Users")
    page.get_by_label("Username", exact=True).fill("brw-carol")
    page.get_by_label("Role", exact=True).select_option("agent")
    page.get_by_label("Initial password", exact=True).fill("brw-carol-password")
    page.get_by_role("button", name="Add user").click()
    expect(page.get_by_text("User brw-carol created (agent).")).to_be_visible()
    expect(page.locator("table.users tr[data-user='brw-carol']")).to_contain_text("never")

    # 2. the agent signs in and sees the queue, not the admin pages
    agent = sign_in(browser, desk.base, "brw-carol", "brw-carol-password")
    expect(agent.get_by_role("link", name="Admin")).to_have_count(0)
    page.reload()
    expect(page.locator("table.users tr[data-user='brw-carol']")).not_to_contain_text("never")

    # 3. the admin turns on test mode for the device
    page.goto(f"{desk.base}/admin/devices/{device}")
    page.get_by_role("button", name="Turn test mode on").click()
    expect(page.get_by_text(f"{device} is in test mode")).to_be_visible()
    expect(page.locator("#device-test-mode")).to_contain_text("On")

    # 4. a press over MQTT is acked as usual; its ticket is a test ticket
    ack = presser.final_ack(presser.press(device, "b1"))
    assert ack["result"] == "created", ack
    number = ack["ticket"]["number"]
    assert desk.api("GET", f"/api/v1/tickets/{ack['ticket']['id']}").json()["is_test"] is True

    # 5. it is not in the desk's queue, it is on the device page
    agent.goto(desk.base + "/")
    expect(agent.get_by_role("heading", level=1)).to_be_visible()
    expect(agent.locator("main")).not_to_contain_text(number)
    assert number not in agent.content()
    assert [t["number"] for t in desk.tickets() if t["device_id"] == device] == []
    page.reload()
    expect(page.locator("table.test-tickets")).to_contain_text(number)
    page.context.close()
    agent.context.close()
