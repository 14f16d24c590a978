"""Through the real broker, bridge and server: a press is its device's event_id."""

import uuid

from tests.stack import Presser, Stack, counted, wait_until


def dev(prefix: str = "shop") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def acks_of(presser: Presser, device: str, event_id: str) -> list[dict]:
    return [a for d, a in list(presser.raw_acks) if d == device and a.get("event_id") == event_id]


def test_two_devices_with_one_event_id_make_two_presses_and_each_hears_its_own_ticket(stack, presser):
    a, b = dev(), dev()
    event_id = str(uuid.uuid4())
    presser.press(a, "b1", event_id=event_id)
    first = presser.final_ack(event_id, device_id=a)
    presser.press(b, "b1", event_id=event_id)
    second = presser.final_ack(event_id, device_id=b)
    # two devices without a site: two scopes, two tickets, each ack names its own device's
    assert (first["result"], second["result"]) == ("created", "created")
    assert first["ticket"]["id"] != second["ticket"]["id"]
    assert [t["id"] for t in stack.tickets(device_id=a)] == [first["ticket"]["id"]]
    assert [t["id"] for t in stack.tickets(device_id=b)] == [second["ticket"]["id"]]
    assert stack.api("GET", f"/api/v1/devices/{b}").json()["status"] == "pending"  # b is registered too
    # a replay from b is still b's first answer, and counts nothing
    presser.press(b, "b1", event_id=event_id)
    wait_until(lambda: len(acks_of(presser, b, event_id)) >= 2, what="the replay's ack")
    assert acks_of(presser, b, event_id) == [second, second]
    assert acks_of(presser, a, event_id) == [first]
    assert counted(stack, [a, b]) == {event_id: 2}


def test_two_devices_of_a_site_with_one_event_id_are_two_reports_of_its_ticket(stack, presser):
    a, b = dev(), dev()
    site = f"site-{uuid.uuid4().hex[:6]}"
    for d in (a, b):
        stack.place(d, site)
        stack.map_button(d, "b1", "printer")
    event_id = str(uuid.uuid4())
    presser.press(a, "b1", event_id=event_id)
    first = presser.final_ack(event_id, device_id=a)
    presser.press(b, "b1", event_id=event_id)
    second = presser.final_ack(event_id, device_id=b)
    assert (first["result"], second["result"]) == ("created", "merged")
    assert second["ticket"]["id"] == first["ticket"]["id"]
    assert stack.api("GET", f"/api/v1/tickets/{first['ticket']['id']}").json()["occurrences"] == 2


def test_presses_with_one_event_id_from_two_devices_both_wait_in_the_bridges_outbox(tmp_path):
    """The server is down: both presses are queued by the bridge (its outbox keys a press by device and
    event_id), and both become presses once it is back."""
    stack = Stack(tmp_path / "stack").start()
    p = Presser(stack.broker.url)
    try:
        a, b = dev("down"), dev("down")
        event_id = str(uuid.uuid4())
        stack.server.kill()
        for d in (a, b):
            p.press(d, "b1", event_id=event_id)
        wait_until(lambda: all(any(x["result"] == "queued" for x in acks_of(p, d, event_id)) for d in (a, b)),
                   what="a queued ack for each device")
        stack.start_server()
        finals = [p.final_ack(event_id, timeout=30, device_id=d) for d in (a, b)]
        assert [f["result"] for f in finals] == ["created", "created"]
        assert finals[0]["ticket"]["id"] != finals[1]["ticket"]["id"]
        assert counted(stack, [a, b]) == {event_id: 2}
    finally:
        p.close()
        stack.stop()
