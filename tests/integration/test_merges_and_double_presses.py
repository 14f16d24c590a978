"""Through the real broker, bridge and server: a merge holds for the presses that follow it, and a double
press withdraws its own button's report."""

import uuid

from tests.stack import wait_until

from .test_presses_per_device import dev


def test_after_a_merge_the_next_press_of_the_shop_joins_the_target_and_its_tickets_topic_follows(stack, presser):
    north, south = dev("north"), dev("south")
    for d, site in ((north, f"n-{uuid.uuid4().hex[:6]}"), (south, f"s-{uuid.uuid4().hex[:6]}")):
        stack.place(d, site)
        stack.map_button(d, "b1", "printer")
    source = presser.final_ack(presser.press(north, "b1"))["ticket"]
    target = presser.final_ack(presser.press(south, "b1"))["ticket"]
    assert source["id"] != target["id"]
    r = stack.api("PATCH", f"/api/v1/tickets/{source['id']}", json={"merged_into": target["number"]})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["merged_into"], r.json()["resolved_at"]) == ("closed", target["number"], None)

    def listed(device: str) -> list | None:
        """The ticket ids on ``device``'s retained tickets topic; None before its first message."""
        message = presser.tickets.get(device)
        return None if message is None else [t["id"] for t in message["tickets"]]

    # north's retained tickets topic follows its report to the target
    wait_until(lambda: listed(north) == [target["id"]], what="north's topic to list the target")
    joined = presser.final_ack(presser.press(north, "b1"))
    assert (joined["result"], joined["ticket"]["id"]) == ("merged", target["id"])
    t = stack.api("GET", f"/api/v1/tickets/{target['id']}").json()
    assert t["occurrences"] == 3 and [p["device_id"] for p in t["presses"]].count(north) == 2

    r = stack.api("PATCH", f"/api/v1/tickets/{target['id']}", json={"status": "resolved", "note": "new drum"})
    assert r.status_code == 200, r.text
    wait_until(lambda: listed(north) == [] and listed(south) == [], what="the resolved ticket to leave both topics")
    # still broken, says north: within the reopen window its press reopens the target
    again = presser.final_ack(presser.press(north, "b1"))
    assert (again["result"], again["ticket"]["id"]) == ("reopened", target["id"])
    wait_until(lambda: listed(north) == [target["id"]], what="the reopened target back on north's topic")


def test_a_double_press_of_another_button_leaves_the_long_press_report_open(stack, presser):
    device = dev()
    stack.place(device, f"d-{uuid.uuid4().hex[:6]}")
    for button, category in (("b1", "printer"), ("b2", "till"), ("b3", "sales-app")):
        stack.map_button(device, button, category)
    till = presser.final_ack(presser.press(device, "b2", press="long"))
    assert till["result"] == "created"
    refused = presser.final_ack(presser.press(device, "b3", press="double"))
    assert refused["result"] == "rejected" and refused["ticket"] is None
    assert refused["reason"] == "nothing to cancel: no report from this button in the last 120 s"
    t = stack.api("GET", f"/api/v1/tickets/{till['ticket']['id']}").json()
    assert (t["status"], t["priority"], t["occurrences"]) == ("new", 1, 1)
    # b2's own double press withdraws it
    withdrawn = presser.final_ack(presser.press(device, "b2", press="double"))
    assert (withdrawn["result"], withdrawn["ticket"]["id"], withdrawn["ticket"]["status"]) == (
        "cancelled", till["ticket"]["id"], "cancelled")
