"""Faults: parts killed, stopped and restarted; nothing acknowledged is lost, nothing counted twice."""

import time
import uuid

import pytest

from broker_bridge.server_client import Refused, ServerClient, TokenRefused
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


def test_presses_wait_while_the_bridge_token_is_revoked_and_count_once_with_a_new_one(fresh_stack):
    """A revoked bridge token is the server taking nothing for now: presses are kept and answered `queued`,
    never `rejected`; once the bridge runs with a valid token, each becomes a ticket exactly once."""
    stack = fresh_stack
    p = Presser(stack.broker.url)
    device = f"revoked-{uuid.uuid4().hex[:6]}"
    first = p.press(device, "b1")
    assert p.final_ack(first)["result"] == "created"
    [row] = [t for t in stack.api("GET", "/api/v1/tokens").json()["items"] if t["name"] == "bridge (tests)"]
    assert stack.api("DELETE", f"/api/v1/tokens/{row['id']}").status_code == 200  # the tokens page's Revoke

    events = [p.press(device, "b1") for _ in range(5)]
    wait_until(lambda: all(p.ack_results(e) == ["queued"] for e in events), what="queued acks for every press")
    time.sleep(1.5)  # the outbox tries the server again every 0.3 s: still refused, still no final ack
    assert all(p.ack_results(e) == ["queued"] for e in events)
    assert stack.tickets(device_id=device)[0]["occurrences"] == 1
    assert stack.api("GET", "/api/v1/dead-letters").json()["items"] == []
    assert "the server refused the bridge's API token (HTTP 401" in stack.logs("bridge")

    stack.bridge.stop()
    stack.bridge_token = stack.make_token("bridge (new)", "bridge")
    stack.start_bridge()
    finals = [p.final_ack(e, timeout=30) for e in events]
    assert [a["result"] for a in finals] == ["merged"] * 5
    assert all(p.ack_results(e) == ["queued", "merged"] for e in events)
    assert stack.tickets(device_id=device)[0]["occurrences"] == 6
    assert counted(stack, [device]) == {e: 1 for e in [first, *events]}
    assert stack.api("GET", "/api/v1/dead-letters").json()["items"] == []
    assert p.final_ack(p.press(device, "b1"))["result"] == "merged"  # and the pipe goes on
    p.close()


def test_the_bridge_client_takes_401_and_403_as_the_server_taking_nothing_now(stack):
    """A 401 (unknown or revoked token) or 403 (a token without the role) is not an answer to the press:
    retrying with a valid token will succeed. Other 4xx answers are the press's own."""
    press = {"event_id": f"e-{uuid.uuid4().hex[:12]}", "device_id": "client-1", "button": "b1",
             "press": "single", "seq": 1, "pressed_at": "2026-01-05T10:00:00Z", "telemetry": {},
             "received_at": "2026-01-05T10:00:00Z"}
    with pytest.raises(TokenRefused, match="HTTP 401"):
        ServerClient(stack.base, "dd_not-a-token").post_incident(press)
    with pytest.raises(TokenRefused, match="HTTP 403: this needs an admin token"):
        ServerClient(stack.base, stack.bridge_token).request("GET", "/api/v1/tickets")
    refused = ServerClient(stack.base, stack.bridge_token).post_incident({**press, "button": "B 1"})
    assert isinstance(refused, Refused) and refused.status == 400
