"""Fixtures for the device tests: a real Mosquitto, an MQTT observer, a device config."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.stack import Broker

# Generous waits for messages and state: they end as soon as the thing happens.
WAIT_S = 10.0


@pytest.fixture
def mosquitto(tmp_path: Path):
    """A real Mosquitto of the test's own; yields its mqtt:// URL."""
    broker = Broker(tmp_path / "broker")
    broker.start()
    yield broker.url
    broker.stop()


@pytest.fixture
def wait_until() -> Callable[..., None]:
    """Wait until ``condition()`` is true, failing the test after ``timeout`` seconds."""
    def wait(condition: Callable[[], Any], timeout: float = WAIT_S, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout} s in vain for {what or condition}")
            time.sleep(0.02)
    return wait


class Observer:
    """A plain paho client that records everything under ``dashdesk/v1/devices/+/#``."""

    def __init__(self, url: str, client_id: str):
        port = int(url.rsplit(":", 1)[1])
        self.messages: list[paho.MQTTMessage] = []
        self._changed = threading.Condition()
        subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=paho.MQTTv5)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("dashdesk/v1/devices/+/#", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
        self.client.on_message = self._record
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not subscribed.wait(WAIT_S):
            raise RuntimeError("the observer could not subscribe")

    def _record(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    def on(self, topic: str) -> list[paho.MQTTMessage]:
        """Messages received on ``topic`` so far."""
        with self._changed:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, topic: str, match: Callable[[paho.MQTTMessage], bool] = lambda m: True,
                 count: int = 1, timeout: float = WAIT_S) -> list[paho.MQTTMessage]:
        """Wait for ``count`` messages on ``topic`` that ``match``; return them."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m for m in self.messages if m.topic == topic and match(m)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"got {len(found)} of {count} messages on {topic}; "
                                         f"all: {[(m.topic, m.payload[:80]) for m in self.messages]}")
                self._changed.wait(left)

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        """Publish and wait until the broker has it."""
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(WAIT_S)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def observe(mosquitto: str):
    """Make :class:`Observer` clients of the test's Mosquitto (each subscribes when made)."""
    made: list[Observer] = []

    def make() -> Observer:
        made.append(Observer(mosquitto, client_id=f"test-observer-{len(made)}"))
        return made[-1]

    yield make
    for obs in made:
        obs.close()


@pytest.fixture
def observer(observe) -> Observer:
    """An :class:`Observer` subscribed before the test starts anything."""
    return observe()


@pytest.fixture
def device_config(tmp_path: Path, mosquitto: str) -> dict[str, Any]:
    """A device TOML (as a dict) for the test broker: mock pins, short timings, queue in tmp_path."""
    return {
        "device_id": "shop-test",
        "mqtt_url": mosquitto,
        "queue_path": str(tmp_path / "queue.sqlite3"),
        "pin_factory": "mock",
        "keepalive_s": 2,
        "timings": {"long_press_s": 1.0, "double_window_s": 0.4, "ack_timeout_s": 5.0,
                    "telemetry_interval_s": 60},
        "buttons": {
            "b1": {"pin": 17, "led": 27, "label": "Printer", "double": False},
            "b2": {"pin": 22, "led": 23, "label": "Till"},
        },
    }
