"""The agent without a broker: LED on button-down, presses stored first, failure on no ack."""

from __future__ import annotations

import json

import pytest

from dashdesk import wire
from device.agent import DeviceAgent
from device.config import load_device_config


@pytest.fixture
def agent(tmp_path):
    cfg = load_device_config({
        "device_id": "shop-offline",
        "mqtt_url": "mqtt://127.0.0.1:1",  # never connected: start() is not called
        "queue_path": str(tmp_path / "queue.sqlite3"),
        "pin_factory": "mock",
        "timings": {"ack_timeout_s": 0.3},
        "buttons": {"b1": {"pin": 17, "led": 27}, "b2": {"pin": 22, "led": 23, "double": False}},
    }, env={})
    agent = DeviceAgent(cfg, report=lambda line: None)
    yield agent
    agent.stop()


def test_led_lights_on_button_down_before_the_press_type_is_known(agent, wait_until):
    button, led = agent.pin_factory.pin(17), agent.pin_factory.pin(27)
    button.drive_low()
    assert led.state is True
    assert agent.queue.pending() == []  # single, double or long: not known yet
    button.drive_high()
    wait_until(lambda: agent.queue.pending(), what="the press in the queue")
    [item] = agent.queue.pending()
    press = wire.parse_press("shop-offline", item.payload)
    assert (press.button, press.press, press.seq) == ("b1", "single", 1)


def test_press_is_stored_before_it_is_sent_and_kept_while_offline(agent):
    event = agent.press("b2", "long")
    [item] = agent.queue.pending()
    assert item.event_id == event.event_id and item.payload == event.to_json()
    assert item.attempts == 0  # not connected: on_connect will send it
    assert json.loads(item.payload)["press"] == "long"
    assert agent.press("b2").seq == 2


def test_no_ack_within_the_timeout_shows_failed(agent, wait_until):
    led = agent.pin_factory.pin(23)
    led.clear_states()
    agent.press("b2")
    wait_until(lambda: len(led.states) >= 5, what="the failed pattern")
    led.assert_states([False, True, False, True, False])  # sending, then long blinks
    assert led.states[2].timestamp >= 0.3  # solid on for the whole ack timeout
    assert 0.75 <= led.states[4].timestamp  # a long blink, not an accepted one (0.2 s)
    assert len(agent.queue.pending()) == 1  # still kept for a later attempt


def test_unknown_buttons_and_press_types_are_refused(agent):
    with pytest.raises(KeyError):
        agent.press("b9")
    with pytest.raises(ValueError):
        agent.press("b1", "triple")
    assert agent.queue.pending() == []
