"""`dashdesk up --demo` as a user runs it, with the embedded broker (amqtt, MQTT 3.1.1) and its WebSockets
listener: the printed one-time link sets a phone (Chromium emulating a Pixel 5) up as a demo shop button,
and a tap reports through the same pipe as the demo device's presses."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.stack import Up, wait_until

pytestmark = pytest.mark.integration



def test_up_demo_prints_a_link_that_makes_a_phone_a_demo_shop_button(tmp_path, playwright, browser):
    up = Up(tmp_path / "data", "--demo", "--broker", "embedded")
    try:
        up.wait_ready(timeout=90)
        line = wait_until(lambda: next((x for x in up.lines if x.startswith("phone app: ")), None), timeout=10,
                          what="the phone app's line")
        link = re.search(r"(http://127\.0\.0\.1:\d+/app/enroll/[A-Za-z0-9_-]+)$", line)
        assert link and f"{up.base}/app;" in line, line
        ctx = browser.new_context(**playwright.devices["Pixel 5"])
        page = ctx.new_page()
        page.goto(link.group(1))
        expect(page.locator("#setup-text")).to_contain_text("Demo shop")
        page.get_by_role("button", name="Set up this phone").tap()
        expect(page.locator("#conn")).to_have_attribute("data-state", "online", timeout=20000)
        # the demo device's three buttons, copied
        assert sorted(page.locator("button.report .label").all_inner_texts()) == ["Printer", "Sales app", "Till"]
        page.locator("button.report", has_text="Sales app").tap()
        expect(page.locator("#status-text")).to_have_text(re.compile(r"^Reported — ticket INC-\d{6}$"),
                                                          timeout=15000)
        number = page.locator("#status").get_attribute("data-ticket")
        device_id = page.evaluate("window.dashdeskApp.phone")
        ctx.close()
        [ticket] = [t for t in up.tickets(device_id=device_id)]
        assert (ticket["number"], ticket["site"], ticket["category"]) == (number, "shop-demo", "sales-app")
        # the link was for one phone
        used = up.http.post(link.group(1), json={})
        assert used.status_code == 410 and used.json()["error"]["code"] == "enrolment_used"
    finally:
        assert up.stop() == 0
