"""The agent re-sends a press nobody answered, on a backoff, until an ack comes (real Mosquitto).

A broker may forget a press in flight (the embedded one does when the bridge
dies before its PUBACK): the device's re-send, with the same event_id, is what
then gets it through. A ``queued`` press is held by the bridge and is not
re-sent on the timer; an acked one never is.
"""

from __future__ import annotations

import json
import time

import pytest

from dashdesk import wire
from device.agent import DeviceAgent
from device.config import load_device_config

TOPICS = wire.Topics()
DEVICE = "shop-test"
PRESS, ACK = TOPICS.press(DEVICE), TOPICS.ack(DEVICE)
TICKET = {"id": 1, "number": "INC-000001", "status": "new", "category": "printer"}
ACK_TIMEOUT_S = 0.4
RESEND_MAX_S = 0.8


@pytest.fixture
def agent(device_config, wait_until):
    timings = dict(device_config["timings"], ack_timeout_s=ACK_TIMEOUT_S, resend_max_s=RESEND_MAX_S)
    lines: list[str] = []
    agent = DeviceAgent(load_device_config(device_config | {"timings": timings}, env={}), report=lines.append)
    agent.lines = lines
    agent.start()
    wait_until(lambda: agent.connected, what="the agent's connection")
    yield agent
    agent.stop()


def presses_of(observer, event_id: str):
    return [m for m in observer.on(PRESS) if json.loads(m.payload)["event_id"] == event_id]


def ack(observer, event_id: str, result: str, ticket=None) -> None:
    observer.publish(ACK, wire.dumps(wire.ack(event_id, result, ticket)))


def test_unanswered_press_is_sent_again_with_backoff_until_acked(agent, observer, wait_until):
    led = agent.pin_factory.pin(23)  # b2's LED
    led.clear_states()
    event = agent.press("b2")
    sent = observer.wait_for(PRESS, count=4, timeout=10)  # the press, then three re-sends
    assert len({m.payload for m in sent}) == 1  # same bytes each time: same event_id, seq, pressed_at
    assert json.loads(sent[0].payload)["event_id"] == event.event_id
    gaps = [b.timestamp - a.timestamp for a, b in zip(sent, sent[1:])]
    # After ack_timeout_s, then doubled, then capped at resend_max_s.
    assert ACK_TIMEOUT_S - 0.05 <= gaps[0] < RESEND_MAX_S - 0.1, gaps
    assert RESEND_MAX_S - 0.05 <= gaps[1] < RESEND_MAX_S + 0.4, gaps
    assert RESEND_MAX_S - 0.05 <= gaps[2] < RESEND_MAX_S + 0.4, gaps
    # FAILED showed at the first timeout: an "on" of 0.8 s (a MockPin state's timestamp is the
    # time since the previous change), where the accepted pattern's are 0.2 s.
    assert any(s.state is False and s.timestamp >= 0.75 for s in led.states), led.states
    assert any(line.startswith("timeout button=b2") and "sent again" in line for line in agent.lines)
    wait_until(lambda: agent.queue.pending()[0].attempts >= 4, what="the attempts counted")

    ack(observer, event.event_id, "created", TICKET)
    wait_until(lambda: agent.queue.pending() == [], what="the ack to empty the queue")
    count = len(presses_of(observer, event.event_id))
    time.sleep(3 * RESEND_MAX_S)
    assert len(presses_of(observer, event.event_id)) == count  # no more re-sends once acked
    assert any(line.startswith("ack button=b2 result=created") for line in agent.lines)


def test_queued_press_is_not_resent_by_the_timer(agent, observer, wait_until):
    event = agent.press("b1")
    [first] = observer.wait_for(PRESS)
    ack(observer, event.event_id, "queued")
    wait_until(lambda: [p.state for p in agent.queue.pending()] == ["queued"], what="state queued")
    time.sleep(4 * RESEND_MAX_S)
    assert [m.payload for m in observer.on(PRESS)] == [first.payload]
    assert agent.queue.pending()[0].attempts == 1
    ack(observer, event.event_id, "merged", TICKET)  # the final ack still empties the queue
    wait_until(lambda: agent.queue.pending() == [], what="the final ack")


def test_acked_press_is_never_resent(agent, observer, wait_until):
    led = agent.pin_factory.pin(27)  # b1's LED
    events = []
    for _ in range(3):
        events.append(agent.press("b1"))
        observer.wait_for(PRESS, lambda m: json.loads(m.payload)["event_id"] == events[-1].event_id)
        ack(observer, events[-1].event_id, "created", TICKET)
    wait_until(lambda: agent.queue.pending() == [], what="every ack")
    time.sleep(1.5)  # the accepted pattern (three 0.2 s blinks) is over
    led.clear_states()
    time.sleep(4 * RESEND_MAX_S)
    assert [json.loads(m.payload)["event_id"] for m in observer.on(PRESS)] == [e.event_id for e in events]
    assert not any(line.startswith("timeout") for line in agent.lines)
    assert [s.state for s in led.states] == [False]  # no FAILED pattern, nothing lit the LED again


def test_press_resent_after_a_lost_publish_reaches_a_late_subscriber(agent, observe, wait_until):
    """Nobody subscribed when it was first published (as a press a broker forgot): a re-send gets it there."""
    event = agent.press("b2")
    time.sleep(0.1)  # published to nobody: the observer is not there yet
    late = observe()
    [again] = late.wait_for(PRESS, lambda m: json.loads(m.payload)["event_id"] == event.event_id, timeout=5)
    assert wire.parse_press(DEVICE, again.payload).event_id == event.event_id
    ack(late, event.event_id, "created", TICKET)
    wait_until(lambda: agent.queue.pending() == [], what="the ack")
