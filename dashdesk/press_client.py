"""The one "publish a press and wait for its ack" client: ``dashdesk press``, the tests and the benchmarks use it.

A :class:`PressClient` connects as a device does (paho-mqtt 2 through :mod:`dashdesk.mqtt`: Nagle off, no kept
session), subscribes to the acks (and the ``tickets`` topics) of every device or of the devices named, and is
ready once the broker has answered that subscription. Then :meth:`PressClient.press` publishes a press
(:mod:`dashdesk.wire`) and :meth:`PressClient.wait_final` waits for its final ack::

    with PressClient("mqtt://127.0.0.1:1883", devices=["shop-1"]) as client:
        event_id = client.press("shop-1", "b1")
        ack = client.wait_final(event_id, timeout=10)  # None if none came

A client given ``on_message`` hands every message to it instead of keeping the acks (a benchmark that keeps its
own figures, a client on topics other than dashdesk's).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any, Callable, Iterable

import paho.mqtt.client as mqtt

from . import mqtt as dd_mqtt
from . import wire

# How long an MQTT 5 client waits for the broker's CONNACK before it says the broker does not take MQTT 5:
# an MQTT 3.1.1-only broker (amqtt) may answer an MQTT 5 CONNECT with properties with nothing at all.
MQTT5_CONNACK_WAIT_S = 3.0


class Refused(ConnectionError):
    """The broker refused the connection: a wrong or revoked password, an unknown user (``reason`` says)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ProtocolRefused(ConnectionError):
    """The broker did not take this MQTT protocol version (it refused it, or closed or ignored the CONNECT)."""


class NotConnected(TimeoutError):
    """No connection to the broker (and no answer to the subscription) within the time given."""


class PressClient:
    """A device's view of the broker: publish presses, hear their acks.

    ``devices``: the devices whose acks and tickets to hear (None: every device's); ``subscriptions``: these
    topic filters instead. ``protocol``: 5, or 4 for MQTT 3.1.1 (all the embedded broker speaks).
    ``on_message``: called with every message on the network thread, in place of keeping the acks.
    Raises :class:`Refused`, or :class:`NotConnected` if it is not connected and subscribed within
    ``connect_timeout`` seconds (it tries again meanwhile). ``protocol_check``, with MQTT 5: raise
    :class:`ProtocolRefused` instead as soon as the broker shows it does not take MQTT 5 (it refuses it, closes
    the connection during the handshake or before, or does not answer within :data:`MQTT5_CONNACK_WAIT_S`).
    """

    def __init__(self, url: str, *, topics: wire.Topics = wire.Topics(), protocol: int = 5,
                 devices: Iterable[str] | None = None, subscriptions: Iterable[str] | None = None,
                 on_message: Callable[[mqtt.MQTTMessage], None] | None = None, name: str = "dashdesk-press",
                 max_inflight: int = 20, connect_timeout: float = 10.0, protocol_check: bool = False):
        self.topics = topics
        self.protocol = int(protocol)
        self._protocol_check = protocol_check and self.protocol == 5
        if subscriptions is None:
            subscriptions = ([topics.subscription("ack"), topics.subscription("tickets")] if devices is None else
                             [t for d in devices for t in (topics.ack(d), topics.tickets(d))])
        self.subscriptions = list(subscriptions)
        # Every ack, by event id, in order of arrival; with the device whose topic it came on; when (monotonic)
        # the first ack of each event id came; the latest ticket summary of each device.
        self.acks: dict[str, list[dict[str, Any]]] = {}
        self.raw_acks: list[tuple[str, dict[str, Any]]] = []
        self.first_ack_at: dict[str, float] = {}
        self.tickets: dict[str, dict[str, Any]] = {}
        self.lock = threading.RLock()
        self._arrived = threading.Condition(self.lock)
        # PUBACKs the broker has sent this client; ``puback_done`` is set when ``expect_pubacks`` of them came.
        self.published = 0
        self.expect_pubacks = -1
        self.puback_done = threading.Event()
        self._ready = threading.Event()
        self._connected = threading.Event()
        self._refusal: str | None = None
        self._wrong_protocol = False
        self._handler = on_message
        self.client, broker = dd_mqtt.make_client(url, f"{name}-{uuid.uuid4().hex[:12]}", protocol=self.protocol,
                                                  persistent=False)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        if self._protocol_check:
            self.client.on_connect_fail = self._on_connect_fail
        dd_mqtt.connect(self.client, broker, protocol=self.protocol, persistent=False)
        self.client.loop_start()
        try:
            self._wait_ready(connect_timeout)
        except BaseException:
            self.close()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        # An MQTT 5 CONNECT the broker does not answer at all: it does not speak MQTT 5.
        connack_by = time.monotonic() + min(timeout, MQTT5_CONNACK_WAIT_S) if self._protocol_check else deadline
        while not self._ready.wait(0.02):
            if self._refusal is not None:
                raise Refused(self._refusal)
            if self._wrong_protocol or (not self._connected.is_set() and time.monotonic() > connack_by):
                raise ProtocolRefused(f"the broker did not take MQTT {self.protocol}")
            if time.monotonic() > deadline:
                raise NotConnected(f"not connected and subscribed within {timeout:g} s")

    # ------------------------------------------------------------ the network thread

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if rc.is_failure:
            if rc == "Unsupported protocol version" and self._protocol_check:
                self._wrong_protocol = True
            elif self._refusal is None:
                self._refusal = str(rc)  # "Not authorized", "Bad user name or password", ...
            return
        self._connected.set()
        dd_mqtt.set_nodelay(client)
        if self.subscriptions:
            client.subscribe([(t, 1) for t in self.subscriptions])
        else:
            self._ready.set()

    def _on_connect_fail(self, _c: Any, _u: Any) -> None:
        if not self._connected.is_set():  # reset during the handshake, or nothing listening yet
            self._wrong_protocol = True

    def _on_publish(self, *_: Any) -> None:
        self.published += 1  # only the network thread touches it
        if self.published == self.expect_pubacks:
            self.puback_done.set()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if self._handler is not None:
            self._handler(msg)
            return
        device_id, leaf = self.topics.split(msg.topic) or ("", "")
        try:
            data = json.loads(msg.payload)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        with self.lock:
            if leaf == "ack":
                self.raw_acks.append((device_id, data))
                self.first_ack_at.setdefault(data.get("event_id") or "", time.monotonic())
                self.acks.setdefault(data.get("event_id") or f"?{len(self.raw_acks)}", []).append(data)
                self._arrived.notify_all()
            elif leaf == "tickets":
                self.tickets[device_id] = data

    # ------------------------------------------------------------ presses and acks

    def publish(self, topic: str, payload: bytes | str, *, wait: bool = False) -> None:
        """Publish ``payload`` at QoS 1; ``wait``: until the broker's PUBACK (10 s at most)."""
        info = self.client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"publish failed: {mqtt.error_string(info.rc)}")
        if wait:
            info.wait_for_publish(10)

    def press(self, device_id: str, button: str, press: str = "single", event_id: str | None = None, *,
              wait: bool = True, **extra: Any) -> str:
        """Publish a new press of ``button`` as ``device_id`` (``event_id`` and ``extra`` fields: the press as
        given, wrong or not) and return its event id; ``wait``: until the broker has it (PUBACK)."""
        body = wire.new_press(device_id, button, press).to_dict()
        if event_id:
            body["event_id"] = event_id
        body.update(extra)
        self.publish(self.topics.press(device_id), wire.dumps(body), wait=wait)
        return body["event_id"]

    def send(self, event: wire.PressEvent) -> str:
        """Publish ``event`` (made with :func:`dashdesk.wire.new_press`) as it is, without waiting."""
        self.publish(self.topics.press(event.device_id), event.to_json())
        return event.event_id

    def _final(self, event_id: str, device_id: str | None) -> dict[str, Any] | None:
        if device_id is not None:
            return next((a for d, a in self.raw_acks if d == device_id and a.get("event_id") == event_id
                         and a.get("result") != "queued"), None)
        return next((a for a in self.acks.get(event_id, []) if a.get("result") != "queued"), None)

    def wait_final(self, event_id: str, timeout: float = 10.0, device_id: str | None = None,
                   on_ack: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any] | None:
        """The first final ack of ``event_id`` (on ``device_id``'s ack topic only, if given: an event id is
        unique per device only), None if none came within ``timeout``. ``on_ack``: called with each ack of
        ``event_id`` as it comes (``queued`` ones too), on this thread."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self.lock:
            while True:
                if on_ack is not None:
                    mine = self.acks_of(event_id, device_id)
                    for ack in mine[seen:]:
                        on_ack(ack)
                    seen = len(mine)
                final = self._final(event_id, device_id)
                left = deadline - time.monotonic()
                if final is not None or left <= 0:
                    return final
                self._arrived.wait(left)

    def acks_of(self, event_id: str, device_id: str | None = None) -> list[dict[str, Any]]:
        """Every ack of ``event_id`` so far (on ``device_id``'s ack topic only, if given), in order."""
        with self.lock:
            if device_id is None:
                return list(self.acks.get(event_id, []))
            return [a for d, a in self.raw_acks if d == device_id and a.get("event_id") == event_id]

    def acks_on(self, device_id: str) -> list[dict[str, Any]]:
        """Every ack that came on ``device_id``'s ack topic so far, in order."""
        with self.lock:
            return [a for d, a in self.raw_acks if d == device_id]

    def ack_results(self, event_id: str) -> list[str]:
        with self.lock:
            return [a["result"] for a in self.acks.get(event_id, [])]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> "PressClient":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
