"""A final ack that answers a press from the bridge's outbox is never lost to a stop or to the broker going
away: the outbox row stays until the broker has taken the ack, and a later start (or the reconnect) sends it,
once.

The bridge runs in this process (real Mosquitto, real server process) so that a test can let the server
answer a request at a chosen moment of ``Bridge.stop()``.
"""

import sqlite3
import time
import uuid

import pytest

import broker_bridge.bridge as bridge_module
from broker_bridge.bridge import Bridge, BridgeSettings
from broker_bridge.outbox import PRESS, Outbox, press_key
from tests.stack import Presser, Stack, counted, wait_until

ACK_WITHIN_S = 2.0


@pytest.fixture
def stack(tmp_path):
    """Mosquitto and the server, without a bridge process."""
    s = Stack(tmp_path / "stack")
    s.broker.start()
    s.start_server()
    s.bridge_token = s.make_token("bridge (tests)", "bridge")
    yield s
    s.server.stop()
    s.broker.stop()


def start_bridge(stack: Stack) -> Bridge:
    """A bridge in this process, on the stack's outbox (the same one across restarts)."""
    bridge = Bridge(BridgeSettings(mqtt_url=stack.broker.url, server_url=stack.base, api_token=stack.bridge_token,
                                   state_path=stack.root / "bridge-outbox.sqlite3", retry_s=0.3, feed_poll_s=0.1))
    bridge.start()
    assert bridge.subscribed.wait(10), "the bridge did not subscribe"
    return bridge


def lock_database(stack: Stack) -> sqlite3.Connection:
    """Take the server's write lock, as another process would: the server's requests wait for it (up to 5 s)."""
    holder = sqlite3.connect(stack.root / "server.sqlite3", isolation_level=None, timeout=30)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def presses_in_outbox(stack: Stack) -> list[str]:
    box = Outbox(stack.root / "bridge-outbox.sqlite3")
    try:
        return [item.key for item in box.oldest() if item.kind == PRESS]
    finally:
        box.close()


def final_ack_once(stack: Stack, device: str, event: str, result: str) -> None:
    """After the broker is back: a new device connection gets ``event``'s final ack from a new bridge, once."""
    p = Presser(stack.broker.url)
    bridge = start_bridge(stack)
    try:
        assert p.final_ack(event, timeout=15)["result"] == result
        time.sleep(1.0)  # a second final ack, had one been sent, would have come by now
        assert p.ack_results(event) == [result]
        assert presses_in_outbox(stack) == []
        assert counted(stack, [device])[event] == 1
    finally:
        bridge.stop()
        p.close()


def test_a_final_ack_due_as_the_bridge_disconnects_to_stop_waits_in_the_outbox_for_the_next_start(stack, monkeypatch):
    """A press answered `queued` whose request the server answers after stop() gave up waiting for the workers
    and disconnected: its final ack cannot go out any more; its outbox row stays, and the next start sends it."""
    monkeypatch.setattr(bridge_module, "STOP_WORKERS_S", 0.5)  # the server's answer then comes after the wait
    device = f"stopping-{uuid.uuid4().hex[:6]}"
    p = Presser(stack.broker.url)
    bridge = start_bridge(stack)
    try:
        warm_up = p.press(device, "b1")
        assert p.final_ack(warm_up)["result"] == "created"
        holder = lock_database(stack)
        event = p.press(device, "b1")
        wait_until(lambda: p.ack_results(event), timeout=ACK_WITHIN_S, what="an ack within 2 s")
        assert p.ack_results(event) == ["queued"]

        disconnect = bridge.client.disconnect

        def disconnect_then_the_server_answers(*args, **kwargs):
            rc = disconnect(*args, **kwargs)
            holder.execute("ROLLBACK")  # the request still out is answered now
            holder.close()
            wait_until(lambda: not bridge._owned, timeout=10, what="the request's end")
            return rc

        bridge.client.disconnect = disconnect_then_the_server_answers
        bridge.stop()
        assert counted(stack, [device]) == {warm_up: 1, event: 1}  # the server took it
        time.sleep(0.5)
        assert p.ack_results(event) == ["queued"]
        assert presses_in_outbox(stack) == [press_key(device, event)]
    finally:
        p.close()
    final_ack_once(stack, device, event, "merged")


def test_a_final_ack_due_while_the_broker_is_away_waits_in_the_outbox(stack):
    """The broker goes away while a press answered `queued` is still out with its request; the server answers
    it meanwhile. Its final ack cannot be handed to a connected client: the row stays, and the bridge stopped
    before the broker is back leaves it for its next start, which sends the final ack once."""
    device = f"away-{uuid.uuid4().hex[:6]}"
    p = Presser(stack.broker.url)
    bridge = start_bridge(stack)
    try:
        warm_up = p.press(device, "b1")
        assert p.final_ack(warm_up)["result"] == "created"
        holder = lock_database(stack)
        try:
            event = p.press(device, "b1")
            wait_until(lambda: p.ack_results(event), timeout=ACK_WITHIN_S, what="an ack within 2 s")
            assert p.ack_results(event) == ["queued"]
            p.close()
            stack.broker.stop()
            wait_until(lambda: not bridge.connected.is_set(), what="the bridge to lose the broker")
        finally:
            holder.execute("ROLLBACK")  # the request still out is answered now
            holder.close()
        wait_until(lambda: not bridge._owned, timeout=10, what="the request's end")
        assert counted(stack, [device]) == {warm_up: 1, event: 1}
        assert presses_in_outbox(stack) == [press_key(device, event)]
    finally:
        bridge.stop()
    stack.broker.start()
    final_ack_once(stack, device, event, "merged")


def test_the_outbox_is_not_drained_into_a_client_without_the_broker(stack):
    """Presses wait in the outbox (the server was down); the broker goes away, the server comes back: the drain
    hands nothing over whose final ack could not go out. Stopped before the broker is back, the bridge leaves
    the press to its next start, which sends the final ack once."""
    device = f"drain-away-{uuid.uuid4().hex[:6]}"
    p = Presser(stack.broker.url)
    bridge = start_bridge(stack)
    try:
        warm_up = p.press(device, "b1")
        assert p.final_ack(warm_up)["result"] == "created"
        stack.server.kill()
        event = p.press(device, "b1")
        wait_until(lambda: p.ack_results(event), timeout=ACK_WITHIN_S, what="an ack within 2 s")
        assert p.ack_results(event) == ["queued"]
        p.close()
        stack.broker.stop()
        wait_until(lambda: not bridge.connected.is_set(), what="the bridge to lose the broker")
        stack.start_server()
        time.sleep(1.5)  # the drain, every 0.3 s, has had its chances
        assert presses_in_outbox(stack) == [press_key(device, event)]
    finally:
        bridge.stop()
    stack.broker.start()
    final_ack_once(stack, device, event, "merged")


def test_final_acks_due_while_the_broker_is_away_go_out_once_it_is_back(stack):
    """The same without a stop: the bridge reconnects and the drain sends each final ack, once."""
    device = f"back-{uuid.uuid4().hex[:6]}"
    p = Presser(stack.broker.url)
    bridge = start_bridge(stack)
    try:
        warm_up = p.press(device, "b1")
        assert p.final_ack(warm_up)["result"] == "created"
        stack.server.kill()
        events = [p.press(device, "b1") for _ in range(3)]
        wait_until(lambda: all(p.ack_results(e) == ["queued"] for e in events), timeout=ACK_WITHIN_S,
                   what="queued acks within 2 s")
        p.close()
        stack.broker.stop()
        wait_until(lambda: not bridge.connected.is_set(), what="the bridge to lose the broker")
        stack.start_server()
        time.sleep(1.0)
        stack.broker.start()
        p = Presser(stack.broker.url)
        assert [p.final_ack(e, timeout=15)["result"] for e in events] == ["merged"] * 3
        time.sleep(1.0)
        assert [p.ack_results(e) for e in events] == [["merged"]] * 3
        assert counted(stack, [device]) == {e: 1 for e in [warm_up, *events]}
        wait_until(lambda: presses_in_outbox(stack) == [], timeout=5, what="the outbox to be empty")
    finally:
        bridge.stop()
        p.close()
