"""Press → ticket → ack through the real broker, server and bridge."""

import uuid

from tests.stack import Presser, wait_until


def dev() -> str:
    return f"shop-{uuid.uuid4().hex[:10]}"


def test_press_becomes_ticket_and_ack(stack, presser):
    device = dev()
    stack.map_button(device, "b1", "printer", label="Printer")
    event_id = presser.press(device, "b1")
    ack = presser.final_ack(event_id)
    assert ack["result"] == "created"
    assert ack["ticket"]["number"].startswith("INC-")
    assert ack["ticket"]["category"] == "printer"
    tickets = stack.tickets(device_id=device)
    assert [t["number"] for t in tickets] == [ack["ticket"]["number"]]
    detail = stack.api("GET", f"/api/v1/tickets/{ack['ticket']['id']}").json()
    assert [p["event_id"] for p in detail["presses"]] == [event_id]
    assert detail["presses"][0]["received_at"]


def test_second_press_merges_into_open_ticket(stack, presser):
    device = dev()
    stack.map_button(device, "b1", "till")
    first = presser.final_ack(presser.press(device, "b1"))
    second = presser.final_ack(presser.press(device, "b1"))
    assert (first["result"], second["result"]) == ("created", "merged")
    assert first["ticket"]["id"] == second["ticket"]["id"]
    assert stack.tickets(device_id=device)[0]["occurrences"] == 2


def test_presses_of_one_site_merge_across_devices(stack, presser):
    a, b = dev(), dev()
    site = f"site-{uuid.uuid4().hex[:6]}"
    for d in (a, b):
        stack.place(d, site)
        stack.map_button(d, "b1", "network")
    first = presser.final_ack(presser.press(a, "b1"))
    second = presser.final_ack(presser.press(b, "b1"))
    assert second["result"] == "merged" and second["ticket"]["id"] == first["ticket"]["id"]


def test_replayed_press_counts_once(stack, presser):
    device = dev()
    event_id = str(uuid.uuid4())
    presser.press(device, "b1", event_id=event_id)
    first = presser.final_ack(event_id)
    presser.press(device, "b1", event_id=event_id)
    wait_until(lambda: len(presser.ack_results(event_id)) >= 2, what="the replay's ack")
    assert presser.acks[event_id][1] == first
    assert stack.tickets(device_id=device)[0]["occurrences"] == 1


def test_unknown_device_is_registered_pending_and_still_reported(stack, presser):
    device = dev()
    ack = presser.final_ack(presser.press(device, "b7"))
    assert ack["result"] == "created" and ack["ticket"]["category"] == "other"
    d = stack.api("GET", f"/api/v1/devices/{device}").json()
    assert d["status"] == "pending"


def test_long_press_is_one_priority_step_up(stack, presser):
    device = dev()
    stack.map_button(device, "b1", "printer")  # default priority 3
    ack = presser.final_ack(presser.press(device, "b1", press="long"))
    assert stack.api("GET", f"/api/v1/tickets/{ack['ticket']['id']}").json()["priority"] == 2


def test_double_press_cancels_the_last_report(stack, presser):
    device = dev()
    stack.map_button(device, "b1", "printer")
    created = presser.final_ack(presser.press(device, "b1"))
    cancelled = presser.final_ack(presser.press(device, "b1", press="double"))
    assert cancelled["result"] == "cancelled"
    assert cancelled["ticket"]["id"] == created["ticket"]["id"]
    assert cancelled["ticket"]["status"] == "cancelled"


def test_double_press_with_nothing_to_cancel_is_rejected_with_reason(stack, presser):
    ack = presser.final_ack(presser.press(dev(), "b1", press="double"))
    assert ack["result"] == "rejected" and "nothing to cancel" in ack["reason"]


def test_mapping_change_takes_effect_on_next_press(stack, presser):
    device = dev()
    stack.map_button(device, "b1", "printer")
    assert presser.final_ack(presser.press(device, "b1"))["ticket"]["category"] == "printer"
    stack.map_button(device, "b1", "till")
    assert presser.final_ack(presser.press(device, "b1"))["ticket"]["category"] == "till"


def test_resolved_ticket_reopens_on_next_press(stack, presser):
    device = dev()
    first = presser.final_ack(presser.press(device, "b1"))
    r = stack.api("PATCH", f"/api/v1/tickets/{first['ticket']['id']}", json={"status": "resolved", "note": "fixed"})
    assert r.status_code == 200 and r.json()["status"] == "resolved"
    again = presser.final_ack(presser.press(device, "b1"))
    assert again["result"] == "reopened" and again["ticket"]["id"] == first["ticket"]["id"]


def test_tickets_topic_shows_the_devices_open_tickets(stack, presser):
    device = dev()
    ack = presser.final_ack(presser.press(device, "b1"))
    wait_until(lambda: presser.tickets.get(device, {}).get("tickets"), what="the retained tickets topic")
    assert presser.tickets[device]["tickets"][0]["number"] == ack["ticket"]["number"]
    stack.api("PATCH", f"/api/v1/tickets/{ack['ticket']['id']}", json={"status": "resolved"})
    wait_until(lambda: presser.tickets[device]["tickets"] == [], what="the resolved ticket to leave the topic")
    # Retained: a device that connects later sees it at once.
    late = Presser(stack.broker.url)
    try:
        wait_until(lambda: device in late.tickets, what="the retained message")
    finally:
        late.close()


def test_mqtt_311_press_works(stack):
    p = Presser(stack.broker.url, protocol=4)
    try:
        assert p.final_ack(p.press(dev(), "b1"))["result"] == "created"
    finally:
        p.close()


def test_telemetry_enriches_the_press(stack, presser):
    device = dev()
    presser.publish(presser.topics.telemetry(device),
                    b'{"reported_at": "2026-11-23T08:00:00.000Z", "battery_pct": 55, "probes": {"printer": {"ok": false, "detail": "paper jam"}}}')
    # No wait needed: the bridge handles one client's messages in the order they were published.
    ack = presser.final_ack(presser.press(device, "b1", telemetry={"rssi_dbm": -60}))
    t = stack.api("GET", f"/api/v1/tickets/{ack['ticket']['id']}").json()["telemetry"]
    assert t["battery_pct"] == 55 and t["rssi_dbm"] == -60
    assert t["probes"]["printer"]["ok"] is False
