"""The device agent: buttons and LEDs, the press queue, telemetry and one MQTT connection."""

from __future__ import annotations

import functools
import logging
import threading
from datetime import datetime
from typing import Any, Callable

from paho.mqtt.client import MQTTMessage

from dashdesk import mqtt, wire
from device.buttons import ButtonInput, make_pin_factory
from device.config import DeviceConfig
from device.leds import FAILED, ButtonLed
from device.probes import build_probes
from device.queue import PENDING, PressQueue
from device.telemetry import TelemetryReporter

log = logging.getLogger(__name__)

# How long stop() waits for the broker to take the "offline" status; a broker
# on the shop's network answers in milliseconds.
OFFLINE_PUBLISH_TIMEOUT_S = 2.0


def _guarded(callback: Callable[..., None]) -> Callable[..., None]:
    """Log and swallow an exception from a paho callback: one escaping kills paho's loop thread."""
    @functools.wraps(callback)
    def run(*args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("error in MQTT callback %s", callback.__name__)
    return run


class DeviceAgent:
    """Run one device: report presses over MQTT until acked, show feedback, publish telemetry."""

    def __init__(self, config: DeviceConfig, *, mqtt_url: str | None = None,
                 report: Callable[[str], None] | None = None):
        self.config = config
        self.tickets: list[Any] | None = None  # the last ``tickets`` list the bridge sent
        self._say = report or log.info
        self._topics = wire.Topics(config.topic_root)
        self._lock = threading.Lock()
        # One timer per press awaiting its first answer: when it fires the press
        # is published again and the timer armed anew, later each time.
        self._ack_timers: dict[str, threading.Timer] = {}
        self._failed_shown: set[str] = set()  # presses whose LED showed FAILED already (once is enough)
        self._closed = False
        self._queue = PressQueue(config.queue_path)
        self.pin_factory = make_pin_factory(config.pin_factory)
        self._leds = {b.name: ButtonLed(b.led, pin_factory=self.pin_factory) for b in config.buttons}
        self._buttons = [
            ButtonInput(b.name, b.pin, pin_factory=self.pin_factory, on_down=self._button_down,
                        on_press=self._button_pressed, long_press_s=config.long_press_s,
                        double_window_s=config.double_window_s, double=b.double)
            for b in config.buttons
        ]
        self._telemetry = TelemetryReporter(build_probes(config.probes), self._publish_telemetry,
                                            config.telemetry_interval_s)
        self._client, self._broker = mqtt.make_client(
            mqtt_url or config.mqtt_url, f"dashdesk-device-{config.device_id}",
            protocol=config.protocol, persistent=True)
        self._client.will_set(self._topic("status"), "offline", qos=1, retain=True)
        self._client.on_connect = _guarded(self._on_connect)
        self._client.on_message = _guarded(self._on_message)
        self._started = False

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Start telemetry and connect (in the background; presses are kept until it is up)."""
        self._started = True
        self._telemetry.start()
        mqtt.connect(self._client, self._broker, protocol=self.config.protocol, persistent=True,
                     keepalive=self.config.keepalive_s)
        self._client.loop_start()

    def stop(self) -> None:
        """Say ``offline``, disconnect and release pins, timers and the queue; safe to repeat."""
        for button in self._buttons:
            button.close()
        with self._lock:
            self._closed = True  # no timer re-arms (or re-sends) from now on
        if self._started:
            self._started = False
            self._telemetry.stop()
            if self._client.is_connected():
                info = self._client.publish(self._topic("status"), "offline", qos=1, retain=True)
                info.wait_for_publish(OFFLINE_PUBLISH_TIMEOUT_S)
            self._client.disconnect()
            self._client.loop_stop()
        with self._lock:
            timers, self._ack_timers = list(self._ack_timers.values()), {}
        for timer in timers:
            timer.cancel()
        for led in self._leds.values():
            led.close()
        self._queue.close()

    @property
    def connected(self) -> bool:
        """Whether the MQTT connection is up."""
        return self._client.is_connected()

    @property
    def queue(self) -> PressQueue:
        """The press queue (presses not finally acked)."""
        return self._queue

    # ------------------------------------------------------------ presses

    def press(self, button: str, press_type: str = "single",
              pressed_at: datetime | None = None) -> wire.PressEvent:
        """Report a press of ``button`` as if it came from the pin (keyboard or CLI injection)."""
        self.config.button(button)  # KeyError for a button this device does not have
        if press_type not in wire.PRESS_TYPES:
            raise ValueError(f"press must be one of {', '.join(wire.PRESS_TYPES)}, not {press_type!r}")
        self._leds[button].sending()
        event = wire.new_press(self.config.device_id, button, press_type, seq=self._queue.next_seq(),
                               telemetry=self._telemetry.latest, pressed_at=pressed_at)
        payload = event.to_json()
        self._queue.put(event.event_id, button, payload)  # durable before it leaves the device
        self._arm_ack_timeout(event.event_id, button, self.config.ack_timeout_s)
        self._say(f"press button={button} press={press_type} seq={event.seq} event_id={event.event_id}")
        if self._client.is_connected():  # otherwise on_connect publishes it from the queue
            self._client.publish(self._topic("press"), payload, qos=1, retain=False)
            self._queue.sent([event.event_id])
        return event

    def _button_down(self, button: str) -> None:
        self._leds[button].sending()

    def _button_pressed(self, button: str, press_type: str, pressed_at: datetime) -> None:
        try:
            self.press(button, press_type, pressed_at)
        except Exception:  # on gpiozero's thread: log it rather than lose it unseen
            log.exception("could not report a %s press of %s", press_type, button)

    def _arm_ack_timeout(self, event_id: str, button: str, delay: float, *,
                         replacing: threading.Timer | None = None) -> None:
        """(Re)start the timer that re-sends ``event_id`` if no ack has come within ``delay`` s.

        With ``replacing``, only if that timer is still the press's (no ack took it meanwhile).
        """
        timer = threading.Timer(delay, self._ack_timed_out, (event_id, button, delay))
        timer.daemon = True
        with self._lock:
            if self._closed or (replacing is not None and self._ack_timers.get(event_id) is not replacing):
                return
            old = self._ack_timers.get(event_id)
            self._ack_timers[event_id] = timer
            # Started under the lock: a stop() or an ack that comes next finds it and cancels it.
            timer.start()
        if old is not None and old is not replacing:
            old.cancel()

    def _ack_timed_out(self, event_id: str, button: str, delay: float) -> None:
        with self._lock:
            me = self._ack_timers.get(event_id)
            if self._closed or me is None or me is not threading.current_thread():
                return  # the ack won the race, or a reconnect armed a fresh timer
        try:
            item = self._queue.get(event_id)
        except RuntimeError:  # the queue closed under us: the agent is stopping
            return
        if item is None or item.state != PENDING:
            # Acked meanwhile, or "queued": the bridge holds it durably and a
            # final ack follows; it is sent again only after a reconnect.
            with self._lock:
                if self._ack_timers.get(event_id) is me:
                    del self._ack_timers[event_id]
            return
        next_delay = min(max(delay * 2, self.config.ack_timeout_s), self.config.resend_max_s)
        with self._lock:
            show = event_id not in self._failed_shown
            self._failed_shown.add(event_id)
        led = self._leds.get(button)
        if show and led is not None:  # None: the button left the config while its press was queued
            led.show(FAILED)
        sent = False
        if self._client.is_connected():  # otherwise on_connect publishes it from the queue
            self._client.publish(self._topic("press"), item.payload, qos=1, retain=False)
            try:
                self._queue.sent([event_id])
            except RuntimeError:  # the queue closed under us: the agent is stopping
                return
            sent = True
        self._say(f"timeout button={button} event_id={event_id} attempts={item.attempts + sent} "
                  f"({'sent again' if sent else 'kept; not connected'}; next try in {next_delay:g} s)")
        self._arm_ack_timeout(event_id, button, next_delay, replacing=me)  # type: ignore[arg-type]

    # ------------------------------------------------------------ MQTT

    def _topic(self, leaf: str) -> str:
        return self._topics.device(self.config.device_id, leaf)

    def _publish_telemetry(self, data: dict[str, Any]) -> None:
        # Only while connected: paho would otherwise pile up stale snapshots
        # for the reconnect, which publishes the latest one itself.
        if self._client.is_connected():
            self._client.publish(self._topic("telemetry"), wire.dumps(data), qos=1, retain=True)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            log.warning("broker refused the connection: %s", reason_code)
            return
        mqtt.set_nodelay(client)
        client.publish(self._topic("status"), "online", qos=1, retain=True)
        client.subscribe([(self._topic("ack"), 1), (self._topic("tickets"), 1)])
        telemetry = self._telemetry.latest
        if telemetry:
            client.publish(self._topic("telemetry"), wire.dumps(telemetry), qos=1, retain=True)
        # Every press not finally acked goes again, "queued" ones too: the
        # bridge answers a repeated event_id without making a second ticket,
        # and a lost final ack is then sent again.
        pending = self._queue.pending()
        for item in pending:
            client.publish(self._topic("press"), item.payload, qos=1, retain=False)
            if item.state == PENDING:  # unanswered: sent again on the timer too, from now
                self._arm_ack_timeout(item.event_id, item.button, self.config.ack_timeout_s)
        if pending:
            self._queue.sent([item.event_id for item in pending])
            log.info("re-published %d unacked presses", len(pending))

    def _on_message(self, client: Any, userdata: Any, message: MQTTMessage) -> None:
        try:
            data = wire.decode_json_object(message.payload)
        except wire.Rejected as exc:
            log.warning("ignoring a bad message on %s: %s", message.topic, exc.reason)
            return
        if message.topic == self._topic("ack"):
            self._on_ack(data)
        elif message.topic == self._topic("tickets"):
            tickets = data.get("tickets")
            if isinstance(tickets, list):
                self.tickets = tickets
                self._say(f"tickets open={len(tickets)}")

    def _on_ack(self, data: dict[str, Any]) -> None:
        event_id, result = data.get("event_id"), data.get("result")
        if not isinstance(event_id, str) or result not in wire.RESULTS:
            log.warning("ignoring an ack without a usable event_id and result: %r", data)
            return
        item = self._queue.ack(event_id, result)
        if item is None:
            log.info("ack %s for event %s, which is no longer queued", result, event_id)
            return
        with self._lock:
            timer = self._ack_timers.pop(event_id, None)
            self._failed_shown.discard(event_id)
        if timer is not None:
            timer.cancel()
        led = self._leds.get(item.button)
        if led is not None:  # None: the button left the config while its press was queued
            led.show_result(result)
        ticket = data.get("ticket") if isinstance(data.get("ticket"), dict) else {}
        self._say(f"ack button={item.button} result={result} ticket={ticket.get('number')} "
                  f"status={ticket.get('status')} event_id={event_id} reason={data.get('reason')}")
