"""MQTT clients that time things, each a ``dashdesk.press_client.PressClient``: presses published as fast or
as steadily as asked, their acks noted as they come, the bare broker's round trips."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from typing import Any, Callable

import paho.mqtt.client as mqtt

from dashdesk import wire
from dashdesk.press_client import PressClient

from .stats import clock, pace, run_id

# ---------------------------------------------------------------- MQTT


def press_payload(device_id: str, event_id: str, button: str = "b1") -> bytes:
    body = wire.new_press(device_id, button).to_dict()
    body["event_id"] = event_id
    return wire.dumps(body)


class Client(PressClient):
    """A client as dashdesk makes them (``PressClient``: Nagle off), connected and subscribed to
    ``subscriptions`` before use; each message goes to ``on_message``, on the network thread.

    ``protocol``: 5 (MQTT 5, dashdesk's default) or 4 (MQTT 3.1.1, all the embedded broker speaks).
    ``publish`` does not wait for the PUBACK: ``published`` counts them, and ``puback_done`` is set once
    ``expect_pubacks`` have come.
    """

    def __init__(self, url: str, name: str, subscriptions: list[str] = (), *,
                 on_message: Callable[[mqtt.MQTTMessage], None] | None = None, max_inflight: int = 20,
                 protocol: int = 5):
        try:
            super().__init__(url, protocol=protocol, subscriptions=list(subscriptions),
                             on_message=on_message or (lambda _msg: None), name=f"bench-{name}",
                             max_inflight=max_inflight)
        except (ConnectionError, TimeoutError) as exc:
            raise RuntimeError(f"MQTT client {name} did not connect/subscribe: {exc}") from None


class AckCollector:
    """Subscribes to every device's ack topic and notes when each event's final ack arrived."""

    def __init__(self, url: str, topics: wire.Topics = wire.Topics(), protocol: int = 5):
        self.topics = topics
        self.lock = threading.Lock()
        self.sent: dict[str, float] = {}
        self.final_at: dict[str, float] = {}
        self.final_count: Counter[str] = Counter()
        self.result_of: dict[str, str] = {}
        self.queued = 0
        self.unknown = 0
        self.wrong_topic = 0
        self.acks = 0
        self.expected_device: dict[str, str] = {}
        self._all = threading.Event()
        self._want = -1
        self.client = Client(url, "acks", [topics.subscription("ack")], on_message=self._on_message,
                             protocol=protocol)

    def expect(self, count: int) -> None:
        with self.lock:
            self._want = count
            self._all.clear()
            if len(self.final_at) >= count:
                self._all.set()

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        now = clock()
        data = json.loads(msg.payload)
        eid = data.get("event_id")
        with self.lock:
            self.acks += 1
            if eid not in self.sent:
                self.unknown += 1
                return
            device, _leaf = self.topics.split(msg.topic) or ("", "")
            if device != self.expected_device.get(eid):
                self.wrong_topic += 1
            if data.get("result") not in wire.FINAL_RESULTS:
                self.queued += 1
                return
            self.final_count[eid] += 1
            if eid not in self.final_at:
                self.final_at[eid] = now
                self.result_of[eid] = data["result"]
                if len(self.final_at) == self._want:
                    self._all.set()

    def note_sent(self, event_id: str, device_id: str, at: float) -> None:
        with self.lock:
            self.sent[event_id] = at
            self.expected_device[event_id] = device_id

    def wait_all(self, timeout: float) -> bool:
        return self._all.wait(timeout)

    def results(self, event_ids: list[str]) -> dict[str, int]:
        with self.lock:
            return dict(Counter(self.result_of[e] for e in event_ids if e in self.result_of))

    def duplicates(self, event_ids: list[str]) -> int:
        with self.lock:
            return sum(self.final_count[e] - 1 for e in event_ids if self.final_count[e] > 1)

    def latencies(self, event_ids: list[str]) -> list[float]:
        with self.lock:
            return [self.final_at[e] - self.sent[e] for e in event_ids if e in self.final_at]

    def last_final(self, event_ids: list[str]) -> float:
        """When the last of these events' final acks arrived (``clock()``); NaN if none did."""
        with self.lock:
            return max((self.final_at[e] for e in event_ids if e in self.final_at), default=float("nan"))

    def close(self) -> None:
        self.client.close()


class Echo:
    """The bare broker: a client that republishes each ping as a pong, QoS 1 both ways (two broker hops,
    like press → bridge → ack)."""

    def __init__(self, url: str, prefix: str, protocol: int = 5):
        self.prefix = prefix
        self.client = Client(url, "echo", [f"{prefix}/ping/+"], on_message=self._on_message, max_inflight=200,
                             protocol=protocol)

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        self.client.client.publish(msg.topic.replace("/ping/", "/pong/", 1), msg.payload, qos=1)

    def close(self) -> None:
        self.client.close()


class Receiver:
    """Notes the arrival time of each message on a subscription, keyed by its topic's last level."""

    def __init__(self, url: str, subscription: str, name: str = "recv", protocol: int = 5):
        self.at: dict[str, float] = {}
        self.count = 0
        self.want = -1
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.client = Client(url, name, [subscription], on_message=self._on_message, protocol=protocol)

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        now = clock()
        with self.lock:
            self.at.setdefault(msg.topic.rsplit("/", 1)[-1], now)
            self.count += 1
            if self.count == self.want:
                self.done.set()

    def close(self) -> None:
        self.client.close()


def close_all(*clients: Any) -> None:
    """Close each client that was made (``None`` for one that was not)."""
    for x in clients:
        if x is not None:
            x.close()


def round_trips(url: str, count: int, rate: float, protocol: int = 5,
                payload: bytes | None = None) -> dict[str, list[float]]:
    """The bare broker: ``count`` QoS 1 pings at ``rate`` per second, each echoed back as a QoS 1 pong
    (two broker hops, like press → bridge → ack). Seconds from publish to the pong (``rtt``) and to the
    ping's delivery (``one_way``), for those that arrived."""
    prefix = f"bench/{run_id()}"
    echo = Echo(url, prefix, protocol)
    pings = Receiver(url, f"{prefix}/ping/+", "ping-spy", protocol)  # one hop: when the broker delivered the ping
    pongs = Receiver(url, f"{prefix}/pong/+", "pong", protocol)
    pub = Client(url, "pinger", max_inflight=200, protocol=protocol)
    pongs.want = count
    payload = payload or press_payload("bench-ping", str(uuid.uuid4()))
    sent: dict[str, float] = {}

    def one(i: int) -> None:
        key = str(i)
        sent[key] = clock()
        pub.publish(f"{prefix}/ping/{key}", payload)

    try:
        pace(rate, count, one)
        pongs.done.wait(30)
        rtt = [pongs.at[k] - t for k, t in sent.items() if k in pongs.at]
        one_way = [pings.at[k] - t for k, t in sent.items() if k in pings.at]
    finally:
        close_all(pub, pongs, pings, echo)
    return {"rtt": rtt, "one_way": one_way}


