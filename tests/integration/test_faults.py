"""Faults: parts killed, stopped and restarted; nothing acknowledged is lost, nothing counted twice."""

import time
import uuid

from tests.stack import Presser, counted, kill_bridge_mid_stream, presses_across_broker_restart, wait_until


def test_server_down_presses_are_queued_then_all_become_tickets(fresh_stack):
    stack = fresh_stack
    p = Presser(stack.broker.url)
    devices = [f"down-{i}" for i in range(5)]
    stack.server.kill()
    events = [p.press(devices[i % 5], "b1") for i in range(20)]
    wait_until(lambda: all("queued" in p.ack_results(e) for e in events), what="queued acks for every press")
    assert not any(r != "queued" for e in events for r in p.ack_results(e))

    stack.start_server()
    finals = [p.final_ack(e, timeout=30) for e in events]
    assert {a["result"] for a in finals} <= {"created", "merged"}
    assert counted(stack, devices) == {e: 1 for e in events}
    # And the pipe goes on as before.
    assert p.final_ack(p.press(devices[0], "b1"))["result"] == "merged"
    p.close()


def test_bridge_killed_mid_stream_loses_nothing_and_counts_nothing_twice(fresh_stack):
    stack = fresh_stack
    p = Presser(stack.broker.url)
    devices = [f"storm-{i}" for i in range(20)]
    events = kill_bridge_mid_stream(stack, p, devices, presses=400)

    for e in events:
        p.final_ack(e, timeout=60)
    assert len(events) == 400
    assert counted(stack, devices) == {e: 1 for e in events}
    p.close()


def test_server_killed_mid_stream_loses_nothing(fresh_stack):
    stack = fresh_stack
    p = Presser(stack.broker.url)
    devices = [f"skill-{i}" for i in range(10)]
    events = [p.press(devices[i % 10], "b1") for i in range(100)]
    wait_until(lambda: sum(1 for e in events if p.ack_results(e)) >= 20, what="some presses acked")
    stack.server.kill()
    events += [p.press(devices[i % 10], "b1") for i in range(100)]
    time.sleep(0.5)
    stack.start_server()
    for e in events:
        p.final_ack(e, timeout=60)
    assert counted(stack, devices) == {e: 1 for e in events}
    p.close()


def test_presses_published_while_bridge_and_broker_restart_are_delivered(fresh_stack):
    """The bridge's persistent session keeps presses in the broker's store across a broker restart."""
    stack = fresh_stack
    device = f"restart-{uuid.uuid4().hex[:6]}"
    p, events = presses_across_broker_restart(stack, device, 10)
    for e in events:
        assert p.final_ack(e, timeout=30)["result"] in ("created", "merged")
    assert counted(stack, [device]) == {e: 1 for e in events}
    p.close()


def test_bridge_reconnects_after_broker_killed(fresh_stack):
    """A broker killed with SIGKILL forgets what it had not saved; the device's re-sends cover that."""
    stack = fresh_stack
    stack.broker.kill()
    stack.broker.start()
    p = Presser(stack.broker.url)
    device = f"reconn-{uuid.uuid4().hex[:6]}"
    event_id = str(uuid.uuid4())

    def resend_until_acked():
        # What a device does: the same event_id again until its ack arrives.
        p.press(device, "b1", event_id=event_id)
        return next((a for a in p.acks.get(event_id, []) if a["result"] != "queued"), None)

    ack = wait_until(resend_until_acked, timeout=30, interval=1.0, what="an ack after the broker came back")
    assert ack["result"] == "created"
    tickets = stack.tickets(device_id=device)
    assert len(tickets) == 1 and tickets[0]["occurrences"] == 1
    p.close()


def test_bridge_outbox_survives_bridge_kill_while_server_is_down(fresh_stack):
    stack = fresh_stack
    p = Presser(stack.broker.url)
    device = f"outbox-{uuid.uuid4().hex[:6]}"
    stack.server.kill()
    events = [p.press(device, "b1") for _ in range(10)]
    wait_until(lambda: all(p.ack_results(e) == ["queued"] for e in events), what="queued acks")
    # The presses are now only in the bridge's outbox (the broker has forgotten them).
    stack.bridge.kill()
    stack.start_server()
    stack.start_bridge()
    for e in events:
        p.final_ack(e, timeout=30)
    assert counted(stack, [device]) == {e: 1 for e in events}
    p.close()
