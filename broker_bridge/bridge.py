"""The bridge: MQTT in, ticket server over HTTP, acks and ticket lists back out.

A press is acknowledged to the broker only once it is safe: the server has
committed it, or it sits in the bridge's durable outbox. Until then the
broker keeps it in the bridge's persistent session and hands it over again
after a crash; the server's unique ``(device_id, event_id)`` makes that replay harmless.
A server that refuses the bridge's API token (401, 403) is treated as one that
is down: the press waits in the outbox (``queued``), never ``rejected`` for it.

A press the server has not answered QUEUED_AFTER_S after it arrived (a
database held by another writer, say, or a backlog) is not kept waiting for
its ack either: it goes to the outbox, the device gets ``queued`` and the
broker its ack, while the request goes on. Whichever answers first then, that
request or the outbox's drain trying again, sends the final ack, once: the
outbox rows of a press still out with its first request are that request's
(``_Flight``), and the drain waits for them. A request itself out that long
means the server is not answering: later presses go to the outbox straight
away, as when it is down, and another worker takes the stuck one's place.
A press still waiting for a worker that long (every worker busy) is taken
from the queue into the outbox the same way, and later presses queue behind
it: they reach the server in the order they arrived.

A final ack that answers a press from the outbox goes out only through a
client connected to the broker, and its row is removed only once the broker
has taken the ack (PUBACK). Stopping, or with the broker away, the row stays
for the drain (after the reconnect, or the next start): the server answers
the press the same again, and the device gets its final ack once.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from dashdesk import wire
from dashdesk import mqtt as dd_mqtt

from .acks import InOrderAcker
from .enrich import enrich
from .outbox import DEAD_LETTER, PRESS, Outbox, press_key
from .presses import PressQueue, Waiting
from .server_client import Refused, ServerClient, ServerDown, TokenRefused

log = logging.getLogger("dashdesk.bridge")

# How many unacknowledged presses the broker may hand the bridge at once
# (MQTT 5 Receive Maximum): enough to keep every worker busy during a storm.
RECEIVE_MAXIMUM = 200
# The most presses one worker hands to the server in one request; at 50 a
# batch the server's per-request cost is a small part of a press's.
BATCH_MAX = 50
# The most presses the outbox's drain hands over in one request. One thread drains, one request at a time
# (presses stay in order), so each request carries more than a worker's: a backlog goes at the pace of the
# server's commits, not of the round trips (the server takes up to 500 in one transaction).
DRAIN_BATCH_MAX = 250
# The first bytes of a rejected payload kept as a dead letter; enough to see what it was.
DEAD_LETTER_PREFIX = 512
FEED_CURSOR = "feed_cursor"
# While the server refuses the bridge's token, the error is logged again this often (with the presses waiting).
TOKEN_REFUSED_LOG_EVERY_S = 60.0
# A press the server has not answered this long after it arrived is answered `queued` from the outbox while
# its request goes on: devices get an ack within 2 s (docs/devices.md), with room for the outbox's write,
# the ack's way back and a busy machine. The server answers in milliseconds otherwise.
QUEUED_AFTER_S = 1.0
# How often the bridge looks for presses the server is slow with, or that wait for a worker.
WATCH_EVERY_S = 0.1
# How long the bridge waits for the broker to take the final acks of presses answered from the outbox before it
# goes on (the broker answers in milliseconds; the rows of acks it has not taken yet are removed later).
FINAL_ACK_WAIT_S = 1.0
# How long stop() waits for the workers to finish the presses they hold.
STOP_WORKERS_S = 5.0


class _Flight:
    """A batch of presses out with the server, each item (body, done, arrived).

    ``rows`` is None while the request alone answers it; once a press of it is due an ack (``due``) it
    holds the outbox row of each press (None for a press the outbox had already), which this request then
    owns: it sends the final ack of each and removes it, or leaves them to the drain if it fails.
    ``replaced``: the request has been out so long (``started``) that another worker took this one's place.
    ``lock`` keeps the hand-over and the request's end apart.
    """

    __slots__ = ("batch", "due", "started", "lock", "settled", "rows", "replaced")

    def __init__(self, batch: list[Waiting]):
        self.batch = batch
        self.due = min(arrived for _, _, arrived in batch) + QUEUED_AFTER_S
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.settled = False
        self.replaced = False
        self.rows: list[int | None] | None = None


@dataclass(frozen=True)
class BridgeSettings:
    mqtt_url: str
    server_url: str
    api_token: str
    state_path: Path
    topic_root: str = wire.DEFAULT_TOPIC_ROOT
    protocol: int = 5
    client_id: str = "dashdesk-bridge"
    workers: int = 2
    retry_s: float = 1.0
    feed_poll_s: float = 0.2

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "BridgeSettings":
        b, m = cfg.get("bridge", {}), cfg.get("mqtt", {})
        data_dir = Path(cfg.get("data_dir") or ".")
        data_dir.mkdir(parents=True, exist_ok=True)
        return cls(mqtt_url=bridge_mqtt_url(cfg), server_url=b.get("server_url", ""),
                   api_token=b.get("api_token", ""), state_path=data_dir / "bridge-outbox.sqlite3",
                   topic_root=m.get("topic_root", wire.DEFAULT_TOPIC_ROOT), protocol=int(m.get("protocol", 5)),
                   client_id=b.get("client_id", "dashdesk-bridge"), workers=int(b.get("workers", 2)),
                   retry_s=float(b.get("retry_s", 1.0)), feed_poll_s=float(b.get("feed_poll_s", 0.2)))


def bridge_mqtt_url(cfg: dict[str, Any]) -> str:
    """The broker URL the bridge connects with, credentials and all: its own (``[bridge] mqtt_url``,
    ``DASHDESK_BRIDGE_MQTT_URL``), else ``[mqtt] url`` (``DASHDESK_MQTT_URL``). From the configuration only:
    `dashdesk up` passes the bridge its URL with its account's password in its environment."""
    return cfg.get("bridge", {}).get("mqtt_url") or cfg.get("mqtt", {}).get("url", "mqtt://127.0.0.1:1883")


class Bridge:
    """Owns the MQTT client, the outbox and the threads that drain it and tail the feed."""

    def __init__(self, settings: BridgeSettings):
        self.settings = settings
        self.topics = wire.Topics(settings.topic_root)
        self.server = ServerClient(settings.server_url, settings.api_token)
        self.outbox = Outbox(settings.state_path)
        self.client, self._broker = dd_mqtt.make_client(settings.mqtt_url, settings.client_id,
                                                        protocol=settings.protocol, manual_ack=True)
        # No cap on acks in flight: paho holds a QoS 1 publish back once 20 are unconfirmed,
        # while the PUBACK of the press it answers goes out at once. A bridge killed then
        # would have let go of the press without its ack ever leaving. Uncapped, the ack is
        # written to the socket before that PUBACK, so the broker has it first.
        self.client.max_inflight_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.acker = InOrderAcker(lambda mid: self.client.ack(mid, 1))
        # Presses waiting for a worker, with the callback that acks each to the broker and when each arrived.
        self._presses = PressQueue()
        # Taking presses from that queue and writing those that go to the outbox is one step under this lock
        # (a worker's, or the watchdog's for those that waited too long): the outbox keeps them in the order
        # they arrived, and no press is taken for the server while earlier ones are on their way to the outbox.
        self._order_lock = threading.Lock()
        # Batches out with the server; the outbox rows of those the server was late with (the drain leaves
        # them to their request), and the lock that makes storing and claiming such rows one step.
        self._flights: set[_Flight] = set()
        self._flights_lock = threading.Lock()
        self._owned: set[int] = set()
        self._owned_lock = threading.Lock()
        # Outbox rows whose final ack is published, until the broker has it (then the row goes); the drain
        # leaves them alone. Under _owned_lock.
        self._awaiting: dict[int, mqtt.MQTTMessageInfo] = {}
        # Final acks of outbox rows are published under this lock, and only while ``_closing`` is False and
        # the client is connected: stop() sets it before it disconnects.
        self._gate = threading.Lock()
        self._closing = False
        self._watch_stop = threading.Event()
        self.latest_telemetry: dict[str, dict[str, Any]] = {}
        self._presence: dict[str, tuple[str, Any]] = {}
        self._presence_lock = threading.Lock()
        # Set while presses wait in the outbox: later ones queue behind them, in order.
        self._server_down = threading.Event()
        if self.outbox.count(PRESS):
            self._server_down.set()
        self._stop = threading.Event()
        self._wake_outbox = threading.Event()
        # When the server last refused the bridge's API token was logged (None: it takes the token).
        self._token_refused_logged: float | None = None
        self._token_lock = threading.Lock()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        dd_mqtt.connect(self.client, self._broker, protocol=self.settings.protocol, persistent=True,
                        receive_maximum=RECEIVE_MAXIMUM)
        self.client.loop_start()
        for target, name in ((self._drain_outbox, "bridge-outbox"), (self._tail_feed, "bridge-feed"),
                             (self._forward_presence, "bridge-presence"), (self._watch_flights, "bridge-late")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        self._workers: list[threading.Thread] = []
        self._worker_numbers = itertools.count()
        for _ in range(self.settings.workers):
            self._add_worker()

    def _add_worker(self) -> None:
        self._workers = [t for t in self._workers if t.is_alive()]
        t = threading.Thread(target=self._work, name=f"bridge-press-{next(self._worker_numbers)}", daemon=True)
        self._workers.append(t)
        t.start()

    def stop(self) -> None:
        """Stop taking presses, finish the ones in hand, then disconnect.

        The subscriptions stay: the broker keeps queuing presses in the bridge's
        session until it is back, and hands over again those it never acked.
        A final ack of a press from the outbox that is not out by the disconnect
        (its request answers later) is not sent: the press stays in the outbox
        for the next start.
        """
        self._stop.set()
        self._wake_outbox.set()
        workers = list(self._workers)
        self._presses.close()
        # Meanwhile presses the server is slow with still go to the outbox (and are acked) on time.
        deadline = time.monotonic() + STOP_WORKERS_S
        for t in workers:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        self._watch_stop.set()
        for t in self._threads:
            t.join(timeout=5)
        with self._gate:
            self._closing = True
        try:
            self._let_go(FINAL_ACK_WAIT_S)  # the rows of final acks the broker takes before the disconnect go
        except Exception:
            log.exception("could not remove the outbox rows of final acks sent; the next start sends them again")
        self.client.disconnect()
        self.client.loop_stop()
        self.outbox.close()

    # ------------------------------------------------------------ MQTT callbacks

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any,
                    _props: Any = None) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        dd_mqtt.set_nodelay(client)
        self.acker.reset()
        client.subscribe([(self.topics.subscription(leaf), 1) for leaf in ("press", "telemetry", "status")])
        self.connected.set()
        self._wake_outbox.set()  # final acks that waited for the broker
        log.info("connected to the broker at %s:%s", self._broker.host, self._broker.port)

    def _on_subscribe(self, _client: mqtt.Client, _userdata: Any, _mid: int, reason_codes: list[Any],
                      _props: Any = None) -> None:
        refused = [str(rc) for rc in reason_codes if getattr(rc, "is_failure", False)]
        if refused:
            # A broker with accounts whose role for the bridge lacks these topics: presses would go unseen.
            log.error("the broker refused the bridge's subscriptions (%s): check its account's role",
                      ", ".join(refused))
        self.subscribed.set()

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any,
                       _props: Any = None) -> None:
        self.connected.clear()
        self.acker.reset()
        if not self._stop.is_set():
            log.warning("lost the broker (%s); reconnecting", reason_code)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # An exception escaping a paho callback kills its network thread: never let one out.
        try:
            self._route(msg)
        except Exception:
            log.exception("failed to handle a message on %s", msg.topic[:200])

    def _route(self, msg: mqtt.MQTTMessage) -> None:
        received_at = wire.utcnow()
        generation = self.acker.received(msg.mid) if msg.qos > 0 else None

        def done() -> None:
            if generation is not None:
                self.acker.done(msg.mid, generation)

        parts = self.topics.split(msg.topic)
        leaf = parts[1] if parts else None
        if leaf == "press":
            if self._stop.is_set():
                return  # not acked: the broker hands it over again after the restart
            self._on_press(parts[0], bytes(msg.payload), msg.topic, received_at, done)
        elif leaf == "telemetry":
            self._on_telemetry(parts[0], bytes(msg.payload), msg.topic, received_at)
            done()
        elif leaf == "status":
            self._on_status(parts[0], bytes(msg.payload))
            done()
        else:
            done()

    # ------------------------------------------------------------ presses

    def _on_press(self, device_id: str, payload: bytes, topic: str, received_at: Any, done: Any) -> None:
        try:
            press = wire.parse_press(device_id, payload)
        except Exception as exc:
            if not isinstance(exc, wire.Rejected):
                # A payload that breaks the parser must not hold back every later ack.
                log.exception("unexpected failure parsing a press on %s", topic[:200])
                exc = wire.Rejected(f"payload could not be read ({type(exc).__name__})", device_id=device_id)
            self._dead_letter(topic, payload, exc.reason, received_at)
            if exc.device_id and wire.valid_id(exc.device_id):
                self._publish_ack(exc.device_id, wire.ack(exc.event_id, "rejected", None, exc.reason))
            done()
            return
        # Carried as its JSON from here on, as the outbox keeps it: a press from the queue and one from the
        # outbox (of this run or an earlier one) are the same to the rest of the bridge.
        body = wire.IncidentBody.of(press, enrich(press.telemetry, self.latest_telemetry.get(device_id)), received_at)
        self._presses.put((body.to_dict(), done, time.monotonic()))

    def _work(self) -> None:
        """Take the presses waiting (up to BATCH_MAX) and make them safe, until told to stop, or until the
        server was late with a batch of this worker's (another worker took its place then)."""
        while self._presses.wait():
            with self._order_lock:
                batch = self._presses.take(BATCH_MAX)
                if not batch:
                    continue  # the watchdog took them to the outbox
                if self._server_down.is_set():
                    try:
                        self._queue([body for body, _, _ in batch])
                    except Exception:
                        # Not acked: the broker redelivers them after a reconnect; nothing is lost.
                        log.exception("could not keep %d presses in the outbox", len(batch))
                        continue
                    flight = None
                else:
                    flight = _Flight(batch)
                    with self._flights_lock:
                        self._flights.add(flight)
            if flight is None:
                for _, done, _ in batch:
                    done()
            elif not self._deliver(flight):
                return

    def _deliver(self, flight: _Flight) -> bool:
        """Make the presses of ``flight`` safe; False if the server was so slow with them that another worker
        took this one's place meanwhile (then this one ends)."""
        batch = flight.batch
        bodies = [body for body, _, _ in batch]
        replaced = False
        try:
            try:
                answers = self.server.post_incidents(bodies)
            except Exception as exc:
                answers, failure = None, exc
            else:
                failure = None
            down = isinstance(failure, ServerDown)
            try:
                # Presses that go to the outbox now get there before any later one is taken from the queue.
                with self._order_lock if down else contextlib.nullcontext():
                    with flight.lock:  # waits for a hand-over in progress
                        flight.settled = True
                        if down and flight.rows is None:
                            self._server_unreachable(failure, bodies)
            finally:
                with self._flights_lock:
                    self._flights.discard(flight)
                replaced = flight.replaced
            if flight.rows is not None:  # answered `queued` and acked already: only the final acks are left
                self._settle(flight, answers, failure)
                return not replaced
            if failure is not None and not down:
                raise failure
            if failure is None:
                self._token_taken()
                for body, answer in zip(bodies, answers):
                    self._answer(body, answer)
            for _, done, _ in batch:
                done()
        except Exception:
            # Not acked: the broker redelivers them after a reconnect; nothing is lost.
            log.exception("could not make %d presses safe", len(batch))
        return not replaced

    def _server_unreachable(self, exc: ServerDown, bodies: list[dict[str, Any]]) -> None:
        if isinstance(exc, TokenRefused):
            self._token_refused(exc)
        else:
            log.warning("server unreachable (%s): %d presses go to the outbox", exc, len(bodies))
        self._server_down.set()
        self._wake_outbox.set()
        self._queue(bodies)

    # ------------------------------------------------------------ presses the server is late with

    def _watch_flights(self) -> None:
        """Every WATCH_EVERY_S: hand over to the outbox every batch with a press due its ack, take the place of
        a worker whose request the server has not answered in QUEUED_AFTER_S, and take to the outbox the
        presses that have waited that long for a worker."""
        while not self._watch_stop.wait(WATCH_EVERY_S):
            try:
                self._watch(time.monotonic())
            except Exception:
                log.exception("the watch over presses the server is late with failed; it goes on")

    def _watch(self, now: float) -> None:
        with self._order_lock:  # no worker takes a press meanwhile: these reach the outbox first, oldest first
            with self._flights_lock:
                flights = sorted(self._flights, key=lambda f: f.due)
            for flight in flights:
                try:
                    if flight.rows is None and flight.due <= now:
                        self._hand_over(flight)
                    if not flight.replaced and flight.started + QUEUED_AFTER_S <= now:
                        self._server_slow(flight)
                except Exception:
                    flight.due = flight.started = float("inf")  # its request answers them, however late
                    log.exception("could not hand %d presses the server is late with to the outbox",
                                  len(flight.batch))
            late = self._presses.take_late(now - QUEUED_AFTER_S)
            if late:
                self._queue_late(late)

    def _queue_late(self, late: list[Waiting]) -> None:
        """Keep presses that waited QUEUED_AFTER_S for a worker in the outbox, answer them `queued` and ack
        them; later presses queue behind them, and the drain hands them over."""
        try:
            self._queue([body for body, _, _ in late])
        except Exception:
            self._presses.give_back(late)  # a worker takes them after all
            raise
        with self._owned_lock:  # not cleared by a drain that found the outbox empty just now
            behind = self._server_down.is_set()
            self._server_down.set()
        self._wake_outbox.set()
        for _, done, _ in late:
            done()
        if not behind:
            log.warning("%d presses waited %g s for a worker: they are answered `queued`, and later presses kept "
                        "in the outbox behind them until it is empty", len(late), QUEUED_AFTER_S)

    def _hand_over(self, flight: _Flight) -> None:
        """Store the presses of ``flight`` in the outbox, answer them `queued` and ack them to the broker; its
        request, still out, sends their final acks (``_settle``)."""
        with flight.lock:
            if flight.settled or flight.rows is not None:
                return
            bodies = [body for body, _, _ in flight.batch]
            with self._owned_lock:  # the drain sees these rows only as this request's
                rows = self.outbox.put_many(PRESS, [(self._press_key(b), b, b["device_id"]) for b in bodies])
                self._owned.update(r for r in rows if r is not None)
            flight.rows = rows
            for body in bodies:
                self._publish_ack(body["device_id"], wire.ack(body["event_id"], "queued"))
            for _, done, _ in flight.batch:
                done()

    def _server_slow(self, flight: _Flight) -> None:
        """The server has not answered the request of ``flight`` in QUEUED_AFTER_S: later presses go to the
        outbox straight away (behind this one's), and a new worker takes them while this one waits."""
        with flight.lock:
            if flight.settled or flight.replaced:
                return
            flight.replaced = True
            with self._owned_lock:  # not cleared by a drain that found the outbox empty just now
                self._server_down.set()
        log.warning("the server has not answered a request for %g s: presses are answered `queued` and kept in "
                    "the outbox until it does", QUEUED_AFTER_S)
        if not self._stop.is_set():
            self._add_worker()

    def _settle(self, flight: _Flight, answers: list[Any] | None, failure: Exception | None) -> None:
        """The request of a handed-over ``flight`` ended: send the final ack of each press it owns and let go
        of its outbox row; on a failure leave them all to the drain."""
        rows = [r for r in flight.rows or () if r is not None]
        try:
            if failure is not None:
                if isinstance(failure, TokenRefused):
                    self._token_refused(failure)
                elif isinstance(failure, ServerDown):
                    log.warning("server unreachable (%s): %d presses answered `queued` wait in the outbox", failure,
                                len(rows))
                else:
                    log.error("handing over %d presses failed (%r); the outbox tries again", len(rows), failure)
                with self._owned_lock:  # later presses queue behind these, in order
                    self._server_down.set()
            else:
                self._token_taken()
                finals = [(row, body, answer) for (body, _, _), answer, row
                          in zip(flight.batch, answers or (), flight.rows or ()) if row is not None]
                if self._send_finals(finals):
                    log.info("the server answered %d presses late; their final acks are sent", len(rows))
                    self._let_go(FINAL_ACK_WAIT_S)
                else:
                    log.info("the server answered %d presses late, with the broker away or the bridge stopping: "
                             "they wait in the outbox for their final acks", len(rows))
        except Exception:
            log.exception("could not finish %d presses; the outbox tries again", len(rows))
        finally:
            with self._owned_lock:
                self._owned.difference_update(rows)
            self._wake_outbox.set()

    @staticmethod
    def _press_key(body: dict[str, Any]) -> str:
        """A press's key in the outbox: a press there once, however often it arrives (a press is its device's
        ``event_id``)."""
        return press_key(body["device_id"], body["event_id"])

    def _token_refused(self, exc: TokenRefused) -> None:
        """Say (now, then once a minute while it lasts) that the server refuses the bridge's token."""
        now = time.monotonic()
        with self._token_lock:
            if self._token_refused_logged is not None and now - self._token_refused_logged < TOKEN_REFUSED_LOG_EVERY_S:
                return
            self._token_refused_logged = now
        log.error("the server refused the bridge's API token (%s): presses wait in the outbox (%d now), answered "
                  "`queued`, until the bridge runs with a valid token (DASHDESK_API_TOKEN, or [bridge] api_token; "
                  "`dashdesk up` makes a new one when it starts again)", exc, self.outbox.count(PRESS))

    def _token_taken(self) -> None:
        with self._token_lock:
            was_refused, self._token_refused_logged = self._token_refused_logged is not None, None
        if was_refused:
            log.warning("the server takes the bridge's API token again")

    def _queue(self, bodies: list[dict[str, Any]]) -> None:
        """Keep presses in the outbox (one disk write for them all) and answer them `queued`."""
        self.outbox.put_many(PRESS, [(self._press_key(b), b, b["device_id"]) for b in bodies])
        for body in bodies:
            self._publish_ack(body["device_id"], wire.ack(body["event_id"], "queued"))

    def _answer(self, body: dict[str, Any], answer: dict[str, Any] | Refused) -> mqtt.MQTTMessageInfo:
        if isinstance(answer, Refused):
            raw = wire.dumps({k: v for k, v in body.items() if k != "telemetry"})
            self._dead_letter(self.topics.press(body["device_id"]), raw, answer.reason, wire.utcnow())
            answer = wire.ack(body["event_id"], "rejected", None, answer.reason)
        return self._publish_ack(body["device_id"], answer)

    def _publish_ack(self, device_id: str, ack: dict[str, Any]) -> mqtt.MQTTMessageInfo:
        return self.client.publish(self.topics.ack(device_id), wire.dumps(ack), qos=1)

    def _send_finals(self, finals: list[tuple[int, dict[str, Any], dict[str, Any] | Refused]]) -> bool:
        """Send the final ack of each ``(outbox row, press, server's answer)``; each row goes once the broker has
        taken its ack (``_let_go``, later). False, with nothing sent and every row kept, unless a client connected to
        the broker can take them: never once stop() has begun to disconnect, nor while the broker is away. The
        drain hands those over again later (after the reconnect, or the next start); the server answers them
        the same, and each device gets its final ack once."""
        with self._gate:
            if self._closing or not self.connected.is_set():
                return False
            sent: list[tuple[int, mqtt.MQTTMessageInfo]] = []
            try:
                for row, body, answer in finals:
                    sent.append((row, self._answer(body, answer)))
            finally:  # those sent are out, whatever stopped the rest: never sent again
                with self._owned_lock:
                    self._awaiting.update(sent)
                    self._owned.difference_update(row for row, _ in sent)
        return True

    def _let_go(self, wait: float = 0.0) -> None:
        """Remove the outbox rows whose final ack the broker has taken, waiting up to ``wait`` s for those out.

        An ack paho could not write (the connection went in the instant after the check) stays with paho, which
        sends it after a reconnect; its row stays too, for the drain: a device may then get that answer twice
        (the protocol allows it), never not at all."""
        with self._owned_lock:
            out = list(self._awaiting.values())
        deadline = time.monotonic() + wait
        for info in out:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                info.wait_for_publish(remaining)
        with self._owned_lock:
            taken = [row for row, info in self._awaiting.items()
                     if info.rc == mqtt.MQTT_ERR_SUCCESS and info.is_published()]
            self.outbox.remove_many(taken)
            for row in [row for row, info in self._awaiting.items() if info.rc != mqtt.MQTT_ERR_SUCCESS] + taken:
                del self._awaiting[row]

    def _dead_letter(self, topic: str, payload: bytes, reason: str, received_at: Any) -> None:
        key = hashlib.sha256(topic.encode(errors="replace") + b"\0" + payload + b"\0"
                             + wire.format_time(received_at).encode()).hexdigest()[:40]
        log.info("rejected a payload on %s: %s", topic[:200], reason)
        self.outbox.put(DEAD_LETTER, key, {
            "key": key, "topic": topic[:300], "payload_size": len(payload), "reason": reason[:2000],
            "payload_prefix": payload[:DEAD_LETTER_PREFIX].decode("utf-8", errors="backslashreplace"),
            "received_at": wire.format_time(received_at)})
        self._wake_outbox.set()

    def _drain_outbox(self) -> None:
        """Hand what waits in the outbox to the server, oldest first, until it is empty."""
        while not self._stop.is_set():
            self._wake_outbox.wait(timeout=self.settings.retry_s)
            self._wake_outbox.clear()
            try:
                while not self._stop.is_set() and self.connected.is_set():
                    # Under _order_lock: no press taken from the queue is on its way here when the outbox is empty.
                    with self._order_lock, self._owned_lock:
                        items = [item for item in self.outbox.oldest(2 * DRAIN_BATCH_MAX + len(self._awaiting))
                                 if item.id not in self._awaiting]
                        if not items:
                            self._server_down.clear()  # presses go to the server straight away again
                            break
                        # Rows of presses still out with their first request are that request's to finish;
                        # the drain goes on behind them once it has (or has failed).
                        held = next((i for i, item in enumerate(items) if item.id in self._owned), None)
                    todo = items[:held]
                    while todo:
                        self._let_go()  # the rows of the final acks sent last time round (taken by now, mostly)
                        # Presses in batches, as the workers hand them over: a backlog drains as fast.
                        n = next((i for i, item in enumerate(todo[:DRAIN_BATCH_MAX]) if item.kind != PRESS),
                                 min(len(todo), DRAIN_BATCH_MAX))
                        presses, todo = todo[:n], todo[n:]
                        if presses:
                            answers = self.server.post_incidents([item.body for item in presses])
                            self._token_taken()
                            if not self._send_finals([(item.id, item.body, answer)
                                                      for item, answer in zip(presses, answers)]):
                                break  # the broker is away (or the bridge stopping): they wait for it
                        else:
                            item, todo = todo[0], todo[1:]
                            self.server.request("POST", "/api/v1/dead-letters", json=item.body)
                            self.outbox.remove(item.id)
                            self._token_taken()
                    if held is not None or todo:
                        break
                self._let_go(FINAL_ACK_WAIT_S)  # before it waits: no row of an ack taken is left behind
            except ServerDown as exc:
                if isinstance(exc, TokenRefused):
                    self._token_refused(exc)
                if self.outbox.count(PRESS):
                    self._server_down.set()
                self._stop.wait(self.settings.retry_s)
            except Exception:
                log.exception("outbox drain failed; retrying")
                self._stop.wait(self.settings.retry_s)

    # ------------------------------------------------------------ telemetry and status

    def _on_telemetry(self, device_id: str, payload: bytes, topic: str, received_at: Any) -> None:
        if not wire.valid_id(device_id):
            self._dead_letter(topic, payload, "device id in topic is not valid", received_at)
            return
        if not payload:
            self.latest_telemetry.pop(device_id, None)  # a cleared retained message
            return
        try:
            telemetry = wire.parse_telemetry(payload)
        except wire.Rejected as exc:
            self._dead_letter(topic, payload, exc.reason, received_at)
            return
        self.latest_telemetry[device_id] = telemetry
        with self._presence_lock:
            self._presence[f"t:{device_id}"] = ("telemetry", {"telemetry": telemetry})

    def _on_status(self, device_id: str, payload: bytes) -> None:
        text = payload.decode("utf-8", errors="replace").strip()
        if wire.valid_id(device_id) and text in ("online", "offline"):
            with self._presence_lock:
                self._presence[f"s:{device_id}"] = ("status", {"online": text == "online"})

    def _forward_presence(self) -> None:
        """Pass the latest telemetry and status of each device on to the server, newest only."""
        while not self._stop.wait(1.0):
            with self._presence_lock:
                batch, self._presence = self._presence, {}
            for key, (kind, body) in batch.items():
                try:
                    self.server.request("POST", f"/api/v1/devices/{key[2:]}/{kind}", json=body)
                except ServerDown:
                    with self._presence_lock:
                        self._presence.setdefault(key, (kind, body))
                    break

    # ------------------------------------------------------------ event feed → tickets topics

    def _tail_feed(self) -> None:
        """Publish each device's open tickets (retained) whenever the feed says they changed."""
        cursor = int(self.outbox.get_state(FEED_CURSOR, "0") or 0)
        while not self._stop.wait(self.settings.feed_poll_s):
            try:
                page = self.server.request("GET", "/api/v1/events",
                                           params={"after": cursor, "limit": 500, "with_tickets": 1})
            except ServerDown as exc:
                if isinstance(exc, TokenRefused):
                    self._token_refused(exc)  # said at once, even before a press comes
                self._stop.wait(self.settings.retry_s)
                continue
            if isinstance(page, Refused) or not self.connected.is_set():
                continue
            for device_id, tickets in page.get("device_tickets", {}).items():
                self.client.publish(self.topics.tickets(device_id), wire.dumps({"tickets": tickets}),
                                    qos=1, retain=True)
            if page["last_id"] != cursor:
                cursor = page["last_id"]
                self.outbox.set_state(FEED_CURSOR, str(cursor))


def run_bridge(cfg: dict[str, Any], ready_file: Path | None = None, settings: BridgeSettings | None = None) -> int:
    """Run the bridge until SIGINT or SIGTERM; touch ``ready_file`` once subscribed. ``settings``: those
    ``cfg`` gives, when the caller has them already."""
    import signal

    bridge = Bridge(settings or BridgeSettings.from_config(cfg))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    bridge.start()
    if ready_file is not None:
        while not bridge.subscribed.wait(0.2):
            if stop.is_set():
                break
        ready_file.touch()
    log.info("bridge running: %s → %s", dd_mqtt.url_without_credentials(bridge.settings.mqtt_url),
             bridge.settings.server_url)
    stop.wait()
    bridge.stop()
    return 0
