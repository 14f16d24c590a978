"""The v1 wire format: topics, payloads and their validation, defined once.

Every side (device, bridge, server, phone app tests) imports from here, so a
rule changes in one place. The JSON Schema of a press (``press.schema.json``
beside this module) is what other people's firmware validates against; the
checks below are the same rules with a reason a person can read.

The shapes a press takes, from the button to the database:

1. the device's payload on ``.../press`` (JSON, ``press.schema.json``);
2. :class:`PressEvent`: that payload validated by the bridge (:func:`parse_press`);
3. :class:`IncidentBody`: the press enriched with the device's latest telemetry and the time the bridge
   received it, the body of ``POST /api/v1/incidents`` (an item of ``/incidents/batch``); the bridge
   builds it and sends ``to_dict()``, the server's schema validates that JSON and makes it again;
4. the server's domain takes that same ``IncidentBody`` (``server.domain.incidents.handle_presses``);
5. rows of one transaction: the press, the ticket it made or counted on, the event feed; the answer is
   the ack (:func:`ack`), stored with the press so that a replay gets it again.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

DEFAULT_TOPIC_ROOT = "dashdesk/v1"
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MAX_PAYLOAD_BYTES = 16 * 1024
# Nesting deeper than this is no telemetry a button sends; refusing it keeps
# a hostile payload from costing the parser and the database much.
MAX_DEPTH = 8
PRESS_TYPES = ("single", "double", "long")
RESULTS = ("created", "merged", "reopened", "cancelled", "rejected", "queued")
FINAL_RESULTS = ("created", "merged", "reopened", "cancelled", "rejected")
MAX_EVENT_ID_LEN = 64
EVENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
PRESS_KEYS = {"event_id", "device_id", "button", "press", "pressed_at", "seq", "telemetry"}


# A lone surrogate (U+D800-U+DFFF on its own; JSON's "\ud800") is no Unicode text: no UTF-8 encodes it.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# What a lone surrogate in telemetry becomes: REPLACEMENT CHARACTER, as a decoder shows bytes it cannot read.
REPLACEMENT = "\ufffd"


class Rejected(ValueError):
    """A payload broke a rule of the contract; ``reason`` says which."""

    def __init__(self, reason: str, event_id: str | None = None, device_id: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id
        self.device_id = device_id


# ---------------------------------------------------------------- time


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def format_time(t: datetime) -> str:
    """RFC 3339 in UTC with milliseconds: ``2026-11-23T08:15:02.120Z``."""
    t = t.astimezone(timezone.utc)
    # %Y does not pad years before 1000, which RFC 3339 needs as four digits.
    return f"{t.year:04d}-" + t.strftime("%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_time(value: Any) -> datetime:
    """Parse an RFC 3339 time with a zone; naive or malformed times raise ValueError."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        raise ValueError("not an RFC 3339 time")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        raise ValueError("time has no zone")
    try:
        return t.astimezone(timezone.utc)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the year 1 in UTC
        raise ValueError("time is out of range") from None


# ---------------------------------------------------------------- topics


@dataclass(frozen=True)
class Topics:
    """Topic names under one root (``dashdesk/v1`` unless configured)."""

    root: str = DEFAULT_TOPIC_ROOT

    def device(self, device_id: str, leaf: str) -> str:
        return f"{self.root}/devices/{device_id}/{leaf}"

    def press(self, device_id: str) -> str:
        return self.device(device_id, "press")

    def telemetry(self, device_id: str) -> str:
        return self.device(device_id, "telemetry")

    def status(self, device_id: str) -> str:
        return self.device(device_id, "status")

    def ack(self, device_id: str) -> str:
        return self.device(device_id, "ack")

    def tickets(self, device_id: str) -> str:
        return self.device(device_id, "tickets")

    def subscription(self, leaf: str) -> str:
        return f"{self.root}/devices/+/{leaf}"

    def split(self, topic: str) -> tuple[str, str] | None:
        """Return ``(device_id, leaf)`` for a device topic under this root, else None.

        The device id is returned as it stands in the topic, valid or not, so
        a caller can still answer a device whose id breaks the rules.
        """
        prefix = f"{self.root}/devices/"
        if not topic.startswith(prefix):
            return None
        rest = topic[len(prefix):].split("/")
        if len(rest) != 2:
            return None
        return rest[0], rest[1]


def valid_id(value: Any) -> bool:
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def replace_lone_surrogates(value: Any) -> Any:
    """``value`` (parsed JSON) with every lone surrogate in its keys and strings replaced by U+FFFD.

    Telemetry is kept as a device sends it, but a lone surrogate (``"\\ud800"``) is no text a page or a
    database can hold: rather than lose a press for a bad string in its telemetry, it is replaced. Two keys
    that become the same keep the later value. What has none is returned as it is.

    >>> replace_lone_surrogates({"x\\ud800": ["ok", "a\\udc00b", 1]})
    {'x\ufffd': ['ok', 'a\ufffdb', 1]}
    """
    return _replaced(value) if has_lone_surrogate(value) else value


def has_lone_surrogate(value: Any) -> bool:
    """Whether ``value`` (a string, or parsed JSON) holds a lone surrogate in a string or a key."""
    if type(value) is str:
        return not value.isascii() and LONE_SURROGATE.search(value) is not None
    if type(value) is dict:
        for k, v in value.items():
            if type(k) is str and not k.isascii() and LONE_SURROGATE.search(k) or has_lone_surrogate(v):
                return True
    elif type(value) is list:
        for v in value:
            if has_lone_surrogate(v):
                return True
    return False


def _replaced(value: Any) -> Any:
    if isinstance(value, str):
        return LONE_SURROGATE.sub(REPLACEMENT, value) if not value.isascii() else value
    if isinstance(value, dict):
        return {_replaced(k): _replaced(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replaced(v) for v in value]
    return value


# ---------------------------------------------------------------- press


@dataclass(frozen=True)
class PressEvent:
    """A button press as a device publishes it on ``.../press``."""

    event_id: str
    device_id: str
    button: str
    press: str
    pressed_at: datetime
    seq: int | None = None
    telemetry: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = _press_fields(self)
        if self.telemetry:
            d["telemetry"] = self.telemetry
        return d

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()


def _press_fields(p: PressEvent | IncidentBody) -> dict[str, Any]:
    """What a press and the bridge's body of it both carry first, in this order: ``seq`` only if set."""
    d: dict[str, Any] = {"event_id": p.event_id, "device_id": p.device_id, "button": p.button, "press": p.press,
                         "pressed_at": format_time(p.pressed_at)}
    if p.seq is not None:
        d["seq"] = p.seq
    return d


@dataclass(frozen=True)
class IncidentBody:
    """A press as the bridge hands it to the server: the body of ``POST /api/v1/incidents``.

    Its fields are the JSON's names (the server's schema ``IncidentIn`` loads them as they are):
    ``telemetry`` is the press's merged over the device's latest published telemetry, ``received_at``
    when the bridge received the press (None from a client that does not say: the server counts lateness
    from its own time then).
    """

    event_id: str
    device_id: str
    button: str
    press: str
    pressed_at: datetime
    seq: int | None = None
    telemetry: dict[str, Any] = field(default_factory=dict)
    received_at: datetime | None = None

    @classmethod
    def of(cls, p: PressEvent, telemetry: dict[str, Any], received_at: datetime) -> "IncidentBody":
        """The body of press ``p`` with its enriched ``telemetry``, received by the bridge at ``received_at``."""
        return cls(p.event_id, p.device_id, p.button, p.press, p.pressed_at, p.seq, telemetry, received_at)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object sent (and kept in the bridge's outbox): ``seq`` only if set, ``telemetry`` always."""
        d = _press_fields(self)
        d["telemetry"] = self.telemetry
        if self.received_at is not None:
            d["received_at"] = format_time(self.received_at)
        return d


def new_press(device_id: str, button: str, press: str = "single", seq: int | None = None,
              telemetry: dict[str, Any] | None = None, pressed_at: datetime | None = None) -> PressEvent:
    """Make a press with a fresh ``event_id``, as a device does at button-down."""
    return PressEvent(
        event_id=str(uuid.uuid4()),
        device_id=device_id,
        button=button,
        press=press,
        pressed_at=pressed_at or utcnow(),
        seq=seq,
        telemetry=telemetry or {},
    )


def _depth(value: Any, limit: int, level: int = 0) -> int:
    """Depth of nested containers, stopping early past ``limit``."""
    if level > limit:
        return level
    if isinstance(value, dict):
        return max([_depth(v, limit, level + 1) for v in value.values()] or [level + 1])
    if isinstance(value, list):
        return max([_depth(v, limit, level + 1) for v in value] or [level + 1])
    return level


def nesting_depth(value: Any, limit: int) -> int:
    """How deep lists and dicts nest in ``value`` (a scalar: 0), counted only up to just past ``limit``."""
    return _depth(value, limit)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def loads_strict(text: str | bytes) -> Any:
    """Parse standard JSON only: no NaN or Infinity, no number too big for a float.

    Every failure, a nesting that exhausts the parser's stack included, is a ValueError.
    """
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def decode_json_object(payload: bytes, max_depth: int | None = MAX_DEPTH) -> dict[str, Any]:
    """Decode a payload that must be one UTF-8 JSON object of at most 16 KiB."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise Rejected(f"payload is {len(payload)} bytes; at most {MAX_PAYLOAD_BYTES} are allowed")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected("payload is not UTF-8") from None
    try:
        data = loads_strict(text)
    except ValueError as exc:
        if str(exc) == "nested too deeply":
            raise Rejected(f"payload is nested deeper than {MAX_DEPTH} levels") from None
        raise Rejected(f"payload is not JSON: {str(exc)[:80]}") from None
    if not isinstance(data, dict):
        raise Rejected("payload is not a JSON object")
    if max_depth is not None and _depth(data, max_depth) > max_depth:
        raise Rejected(f"payload is nested deeper than {max_depth} levels")
    return data


def parse_press(topic_device_id: str, payload: bytes) -> PressEvent:
    """Validate a press payload published on ``topic_device_id``'s press topic.

    Raises :class:`Rejected` with a reason (and whatever ids could be read, so
    the device can still be answered) for any breach of the contract.
    """
    if not valid_id(topic_device_id):
        raise Rejected(f"device id in topic {topic_device_id[:70]!r} does not match {ID_PATTERN.pattern}")
    try:
        data = decode_json_object(payload, max_depth=None)
    except Rejected as exc:
        exc.device_id = topic_device_id
        raise
    raw_event_id = data.get("event_id")
    event_id = raw_event_id if isinstance(raw_event_id, str) and EVENT_ID_PATTERN.fullmatch(raw_event_id) else None

    def reject(reason: str) -> Rejected:
        return Rejected(reason, event_id=event_id, device_id=topic_device_id)

    # Checked once the event_id is read, so the device can match the refusal to its press.
    if _depth(data, MAX_DEPTH) > MAX_DEPTH:
        raise reject(f"payload is nested deeper than {MAX_DEPTH} levels")

    if "event_id" not in data:
        raise reject("event_id is missing")
    if not isinstance(raw_event_id, str):
        raise reject("event_id must be a string")
    if event_id is None:
        raise reject("event_id must be 1-64 characters of letters, digits and . _ : -")
    if "device_id" not in data:
        raise reject("device_id is missing")
    if not isinstance(data["device_id"], str):
        raise reject("device_id must be a string")
    if data["device_id"] != topic_device_id:
        raise reject("device_id in payload does not match the topic")
    if "button" not in data:
        raise reject("button is missing")
    if not isinstance(data["button"], str):
        raise reject("button must be a string")
    if not valid_id(data["button"]):
        raise reject(f"button does not match {ID_PATTERN.pattern}")
    press = data.get("press", "single")
    if press not in PRESS_TYPES:
        raise reject("press must be one of single, double, long")
    if "pressed_at" not in data:
        raise reject("pressed_at is missing")
    try:
        pressed_at = parse_time(data["pressed_at"])
    except (ValueError, TypeError):
        raise reject("pressed_at is not an RFC 3339 time with a zone") from None
    seq = data.get("seq")
    if seq is not None and (type(seq) is not int or not 0 <= seq < 2**63):
        raise reject("seq must be a non-negative integer")
    telemetry = data.get("telemetry", {})
    if telemetry is None:
        telemetry = {}
    if not isinstance(telemetry, dict):
        raise reject("telemetry must be an object")
    telemetry = replace_lone_surrogates(telemetry)
    # Keys beyond PRESS_KEYS are ignored, not refused: newer firmware may add some.
    return PressEvent(event_id, topic_device_id, data["button"], press, pressed_at, seq, telemetry)


# ---------------------------------------------------------------- telemetry


def parse_telemetry(payload: bytes) -> dict[str, Any]:
    """Validate a telemetry payload: one JSON object; ``probes`` must be an object of objects. Lone surrogates
    in it are replaced (:func:`replace_lone_surrogates`)."""
    data = replace_lone_surrogates(decode_json_object(payload))
    probes = data.get("probes")
    if probes is not None and (not isinstance(probes, dict)
                               or not all(isinstance(v, dict) for v in probes.values())):
        raise Rejected("probes must be an object of objects")
    return data


# ---------------------------------------------------------------- ack


def ack(event_id: str | None, result: str, ticket: dict[str, Any] | None = None,
        reason: str | None = None) -> dict[str, Any]:
    """Build an ack payload (``ticket`` is the ticket summary or None)."""
    if result not in RESULTS:
        raise ValueError(f"unknown result {result!r}")
    return {"event_id": event_id, "result": result, "ticket": ticket, "reason": reason}


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()
