"""The agent against a real Mosquitto: status, presses, acks, re-publishing after a restart."""

from __future__ import annotations

import json

import pytest

from dashdesk import wire
from device.agent import DeviceAgent
from device.config import load_device_config

TOPICS = wire.Topics()
DEVICE = "shop-test"
PRESS, ACK, STATUS = TOPICS.press(DEVICE), TOPICS.ack(DEVICE), TOPICS.status(DEVICE)
TICKET = {"id": "t-1", "number": 7, "status": "open", "category": "printer"}


@pytest.fixture
def make_agent(device_config):
    """Make agents for the test broker that share one queue file; all are stopped at the end."""
    agents: list[DeviceAgent] = []

    def make(**changes) -> DeviceAgent:
        lines: list[str] = []
        agent = DeviceAgent(load_device_config(device_config | changes, env={}), report=lines.append)
        agent.lines = lines
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        agent.stop()


@pytest.fixture
def agent(make_agent, wait_until) -> DeviceAgent:
    agent = make_agent()
    agent.start()
    wait_until(lambda: agent.connected, what="the agent's connection")
    return agent


def ack(observer, event_id, result: str, ticket=None) -> None:
    observer.publish(ACK, wire.dumps(wire.ack(event_id, result, ticket)))


def test_status_online_and_telemetry_are_retained(agent, observer, observe):
    [status] = observer.wait_for(STATUS)
    assert (status.payload, status.qos) == (b"online", 1)
    late = observe()  # subscribes only now: it sees what the broker retained
    [status] = late.wait_for(STATUS)
    assert (status.payload, status.retain) == (b"online", True)
    [telemetry] = late.wait_for(TOPICS.telemetry(DEVICE))
    assert telemetry.retain
    data = wire.parse_telemetry(telemetry.payload)
    assert data["hostname"] and data["uptime_s"] > 0 and "reported_at" in data


def test_button_press_is_published_and_a_final_ack_empties_the_queue(agent, observer, wait_until):
    [telemetry] = observer.wait_for(TOPICS.telemetry(DEVICE))
    button = agent.pin_factory.pin(17)  # b1: double off, so it is sent at release
    button.drive_low()
    button.drive_high()
    [message] = observer.wait_for(PRESS)
    assert (message.qos, message.retain) == (1, False)
    press = wire.parse_press(DEVICE, message.payload)  # the bridge's own validation
    assert set(json.loads(message.payload)) == wire.PRESS_KEYS
    assert (press.device_id, press.button, press.press, press.seq) == (DEVICE, "b1", "single", 1)
    assert press.telemetry == json.loads(telemetry.payload)  # the cached snapshot rides along
    assert [p.event_id for p in agent.queue.pending()] == [press.event_id]

    ack(observer, press.event_id, "queued")
    wait_until(lambda: [p.state for p in agent.queue.pending()] == ["queued"], what="state queued")
    ack(observer, press.event_id, "created", TICKET)
    wait_until(lambda: agent.queue.pending() == [], what="the queue to empty")
    wait_until(lambda: any(line.startswith("ack button=b1 result=created ticket=7")
                           for line in agent.lines), what="the ack line")


def test_bad_messages_are_ignored_and_tickets_kept(agent, observer, wait_until):
    event = agent.press("b2", "double")
    observer.wait_for(PRESS)
    for junk in (b"not json", b"[1]", b'{"event_id": 5, "result": "created"}',
                 wire.dumps({"event_id": event.event_id, "result": "exploded"}),
                 wire.dumps(wire.ack("someone-else", "created"))):
        observer.publish(ACK, junk)
    tickets = {"tickets": [TICKET]}
    observer.publish(TOPICS.tickets(DEVICE), wire.dumps(tickets), retain=True)
    wait_until(lambda: agent.tickets == [TICKET], what="the tickets list")
    assert [p.event_id for p in agent.queue.pending()] == [event.event_id]
    ack(observer, event.event_id, "merged", TICKET)  # the loop thread survived the junk
    wait_until(lambda: agent.queue.pending() == [], what="the queue to empty")


@pytest.mark.parametrize("protocol", [5, 4])
def test_unacked_presses_are_sent_again_after_a_restart(make_agent, observer, wait_until, protocol):
    first = make_agent(protocol=protocol)
    first.start()
    wait_until(lambda: first.connected, what="the first agent's connection")
    event = first.press("b2", "long")
    [sent] = observer.wait_for(PRESS)
    first.stop()
    observer.wait_for(STATUS, lambda m: m.payload == b"offline")

    second = make_agent(protocol=protocol)
    second.start()
    again = observer.wait_for(PRESS, count=2)[1]
    assert again.payload == sent.payload  # same event_id, same bytes
    assert json.loads(again.payload)["event_id"] == event.event_id
    wait_until(lambda: second.queue.pending()[0].attempts == 2, what="the second attempt counted")
    assert second.press("b1").seq == 2  # seq went on from the stored counter
    ack(observer, event.event_id, "created", TICKET)
    wait_until(lambda: [p.button for p in second.queue.pending()] == ["b1"], what="the ack")


def test_press_made_before_connecting_is_sent_on_connect(make_agent, observer, wait_until):
    agent = make_agent()
    event = agent.press("b1")
    agent.start()
    [message] = observer.wait_for(PRESS)
    assert json.loads(message.payload)["event_id"] == event.event_id
    wait_until(lambda: agent.queue.pending()[0].attempts == 1, what="the attempt to be counted")
