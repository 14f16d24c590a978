"""LED feedback patterns on a mock pin, timed with gpiozero's own tolerance."""

from __future__ import annotations

import time

import pytest
from gpiozero.pins.mock import MockFactory

from dashdesk import wire
from device.leds import ACCEPTED, FAILED, QUEUED, RESULT_PATTERNS, ButtonLed

LED_PIN = 27


@pytest.fixture
def factory():
    return MockFactory()


@pytest.fixture
def led(factory):
    led = ButtonLed(LED_PIN, pin_factory=factory)
    yield led
    led.close()


def played(pin, count: int, wait_until) -> None:
    """Wait until the pin has changed ``count - 1`` times, then make sure it stays put."""
    wait_until(lambda: len(pin.states) >= count, what=f"{count} pin states")
    time.sleep(0.3)
    assert len(pin.states) == count


def test_sending_is_solid_on(factory, led):
    pin = factory.pin(LED_PIN)
    led.sending()
    pin.assert_states([False, True])
    time.sleep(0.3)
    assert len(pin.states) == 2 and pin.state is True


def test_accepted_is_three_quick_blinks_then_off(factory, led, wait_until):
    pin = factory.pin(LED_PIN)
    led.sending()
    pin.clear_states()
    led.show(ACCEPTED)
    played(pin, 8, wait_until)
    pin.assert_states_and_times([
        (0.0, True), (0.0, False),
        (0.0, True), (0.2, False), (0.2, True), (0.2, False), (0.2, True), (0.2, False),
    ])


def test_failed_is_three_long_blinks_then_off(factory, led, wait_until):
    pin = factory.pin(LED_PIN)
    led.sending()
    pin.clear_states()
    led.show_result("rejected")
    played(pin, 8, wait_until)
    pin.assert_states_and_times([
        (0.0, True), (0.0, False),
        (0.0, True), (0.8, False), (0.2, True), (0.8, False), (0.2, True), (0.8, False),
    ])


def test_queued_is_a_slow_blink_that_repeats_until_replaced(factory, led, wait_until):
    pin = factory.pin(LED_PIN)
    led.sending()
    pin.clear_states()
    led.show_result("queued")
    wait_until(lambda: len(pin.states) >= 7, what="two slow blinks")
    pin.assert_states_and_times([
        (0.0, True), (0.0, False), (0.0, True), (0.3, False), (1.0, True), (0.3, False), (1.0, True),
    ])
    led.sending()  # the next press takes the LED over at once
    changes = len(pin.states)
    time.sleep(1.5)  # longer than a whole slow blink
    assert len(pin.states) == changes and pin.state is True


def test_every_ack_result_has_a_pattern_and_only_rejected_fails():
    assert set(RESULT_PATTERNS) == set(wire.RESULTS)
    assert {r for r, p in RESULT_PATTERNS.items() if p is FAILED} == {"rejected"}
    assert {r for r, p in RESULT_PATTERNS.items() if p is QUEUED} == {"queued"}
    assert len({ACCEPTED, QUEUED, FAILED}) == 3
