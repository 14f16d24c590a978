"""Malformed presses through the real broker and bridge: each one is refused with a reason.

Every row of the table is published by a real MQTT client on a fresh device's
press topic. The bridge must answer it with a ``rejected`` ack that says what
was wrong, keep it as a dead letter, make no ticket, and still take the next
valid press of the same device.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import pytest

from dashdesk import wire
from tests.stack import Presser, wait_until

ACK_TIMEOUT = 3.0


def dev() -> str:
    return f"bad-{uuid.uuid4().hex[:10]}"


def body(device_id: str, event_id: str, drop: tuple[str, ...] = (), fields: dict[str, Any] | None = None
         ) -> dict[str, Any]:
    """A valid press as a dict, with ``fields`` replaced and ``drop`` removed."""
    d: dict[str, Any] = {"event_id": event_id, "device_id": device_id, "button": "b1", "press": "single",
                         "pressed_at": "2026-11-23T08:15:02.120Z", "seq": 7, "telemetry": {"rssi_dbm": -60}}
    d.update(fields or {})
    for key in drop:
        d.pop(key, None)
    return d


def js(**fields: Any) -> Callable[[str, str], bytes]:
    """A payload maker: the valid press with some fields changed, as compact JSON."""
    drop = tuple(fields.pop("drop", ()))
    return lambda d, e: json.dumps(body(d, e, drop, fields), separators=(",", ":"), ensure_ascii=False).encode()


def raw(data: bytes) -> Callable[[str, str], bytes]:
    return lambda d, e: data


def splice(marker: str, text: bytes) -> Callable[[str, str], bytes]:
    """The valid press with telemetry ``{"x": "<marker>"}`` whose string is replaced by raw ``text``."""
    def make(d: str, e: str) -> bytes:
        out = json.dumps(body(d, e, fields={"telemetry": {"x": marker}}), separators=(",", ":")).encode()
        return out.replace(json.dumps(marker).encode(), text)
    return make


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"n": value}
    return value


@dataclass(frozen=True)
class Case:
    make: Callable[[str, str], bytes]
    keyword: str  # a word of the reason that names the fault
    readable: bool = True  # the ack carries the payload's event_id (else null)
    topic_id: Callable[[str], str] | None = None  # a broken device id for the topic


def case(id: str, make: Callable[[str, str], bytes], keyword: str, readable: bool = True,
         topic_id: Callable[[str], str] | None = None) -> Any:
    return pytest.param(Case(make, keyword, readable, topic_id), id=id)


OVERSIZED_PAD = "x" * (wire.MAX_PAYLOAD_BYTES + 1)

CASES = [
    # --- not a JSON object at all
    case("empty-payload", raw(b""), "not JSON", readable=False),
    case("not-json-text", raw(b"help the printer is on fire"), "not JSON", readable=False),
    case("truncated-json", lambda d, e: js()(d, e)[:-7], "not JSON", readable=False),
    case("single-quoted-json", lambda d, e: js()(d, e).replace(b'"', b"'"), "not JSON", readable=False),
    case("trailing-garbage", lambda d, e: js()(d, e) + b"}", "not JSON", readable=False),
    case("json-array", lambda d, e: b"[" + js()(d, e) + b"]", "not a JSON object", readable=False),
    case("json-string", raw(b'"press"'), "not a JSON object", readable=False),
    case("json-null", raw(b"null"), "not a JSON object", readable=False),
    case("json-number", raw(b"42"), "not a JSON object", readable=False),
    case("json-true", raw(b"true"), "not a JSON object", readable=False),
    case("non-utf8-bytes", raw(b"\xff\xfe\x00{\x80\x81}"), "UTF-8", readable=False),
    case("latin1-encoded", lambda d, e: js(telemetry={"note": "caf\u00e9"})(d, e).decode().encode("latin-1"),
         "UTF-8", readable=False),
    case("utf8-bom", lambda d, e: b"\xef\xbb\xbf" + js()(d, e), "not JSON", readable=False),
    case("nan-constant", splice("@", b"NaN"), "NaN", readable=False),
    case("infinity-constant", splice("@", b"-Infinity"), "Infinity", readable=False),
    case("int-over-4300-digits", splice("@", b"9" * 5000), "not JSON", readable=False),
    # --- event_id
    case("event_id-missing", js(drop=["event_id"]), "event_id is missing", readable=False),
    case("event_id-int", js(event_id=12345), "event_id must be a string", readable=False),
    case("event_id-null", js(event_id=None), "event_id must be a string", readable=False),
    case("event_id-empty", js(event_id=""), "event_id must be 1-64", readable=False),
    case("event_id-65-chars", js(event_id="e" * 65), "event_id must be 1-64", readable=False),
    case("event_id-with-spaces", js(event_id="my event 1"), "event_id must be 1-64",
         readable=False),
    case("event_id-leading-dash", js(event_id="-abc"), "event_id must be 1-64",
         readable=False),
    # --- device_id
    case("device_id-missing", js(drop=["device_id"]), "device_id is missing"),
    case("device_id-int", lambda d, e: json.dumps(body(d, e, fields={"device_id": 17})).encode(),
         "device_id must be a string"),
    case("device_id-mismatch", lambda d, e: json.dumps(body(d, e, fields={"device_id": "someone-else"})).encode(),
         "does not match the topic"),
    case("device_id-other-case", lambda d, e: json.dumps(body(d, e, fields={"device_id": d.upper()})).encode(),
         "does not match the topic"),
    case("duplicate-key-last-wins", lambda d, e: json.dumps(body(d, e)).encode()[:-1] + b',"device_id":"intruder"}',
         "does not match the topic"),
    # --- button
    case("button-missing", js(drop=["button"]), "button is missing"),
    case("button-upper-case", js(button="B1"), "button does not match"),
    case("button-64-chars", js(button="b" * 64), "button does not match"),
    case("button-leading-dash", js(button="-b1"), "button does not match"),
    case("button-empty", js(button=""), "button does not match"),
    case("button-int", js(button=1), "button must be a string"),
    # --- press
    case("press-unknown", js(press="triple"), "press must be one of"),
    case("press-int", js(press=2), "press must be one of"),
    case("press-list", js(press=["single"]), "press must be one of"),
    # --- pressed_at
    case("pressed_at-missing", js(drop=["pressed_at"]), "pressed_at is missing"),
    case("pressed_at-not-a-time", js(pressed_at="yesterday"), "pressed_at is not an RFC 3339"),
    case("pressed_at-naive", js(pressed_at="2026-11-23T08:15:02"), "pressed_at is not an RFC 3339"),
    case("pressed_at-date-only", js(pressed_at="2026-11-23"), "pressed_at is not an RFC 3339"),
    case("pressed_at-feb-30", js(pressed_at="2026-02-30T08:15:02Z"), "pressed_at is not an RFC 3339"),
    case("pressed_at-epoch-int", js(pressed_at=1795437858), "pressed_at is not an RFC 3339"),
    # --- seq
    case("seq-negative", js(seq=-1), "seq must be a non-negative integer"),
    case("seq-string", js(seq="7"), "seq must be a non-negative integer"),
    case("seq-float", js(seq=7.5), "seq must be a non-negative integer"),
    case("seq-bool", js(seq=True), "seq must be a non-negative integer"),
    case("seq-2-pow-63", js(seq=2**63), "seq must be a non-negative integer"),
    # --- telemetry
    case("telemetry-list", js(telemetry=[1, 2]), "telemetry must be an object"),
    case("telemetry-string", js(telemetry="ok"), "telemetry must be an object"),
    case("telemetry-nested-9", js(telemetry=nested(8)), "nested"),
    case("telemetry-nested-100", js(telemetry=nested(100)), "nested"),
    # --- size and parser abuse
    case("oversized-16385", js(telemetry={"pad": OVERSIZED_PAD}), "16384", readable=False),
    case("oversized-100000-brackets", raw(b"[" * 100_000), "16384", readable=False),
    case("brackets-16000-deep", raw(b"[" * 16_000), "nested", readable=False),
    case("objects-2000-deep", raw(b'{"a":' * 2000 + b"1" + b"}" * 2000), "nested", readable=False),
    # --- a device id in the topic that breaks the pattern: no ack topic to answer on
    case("topic-id-upper-case", js(), "does not match", readable=False, topic_id=lambda d: d.upper()),
    case("topic-id-64-chars", js(), "does not match", readable=False, topic_id=lambda d: (d + "x" * 64)[:64]),
    case("topic-id-leading-dash", js(), "does not match", readable=False, topic_id=lambda d: "-" + d),
    case("topic-id-empty", js(), "does not match", readable=False, topic_id=lambda d: ""),
    case("topic-id-non-ascii", js(), "does not match", readable=False, topic_id=lambda d: d + "-caf\u00e9"),
    # --- last: an in-range-looking time that overflows once converted to UTC (see the report)
    case("pressed_at-year-1-plus-0100", js(pressed_at="0001-01-01T00:00:00+01:00"),
         "pressed_at is not an RFC 3339"),
]


def acks_of(presser: Presser, device_id: str) -> list[dict[str, Any]]:
    return presser.acks_on(device_id)


def dead_letters(stack: Any) -> list[dict[str, Any]]:
    r = stack.api("GET", "/api/v1/dead-letters")
    assert r.status_code == 200, r.text
    return r.json()["items"]


def dead_letter_for(stack: Any, topic: str, keyword: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        return next((x for x in dead_letters(stack) if x["topic"] == topic and keyword in x["reason"]), None)

    return wait_until(find, timeout=ACK_TIMEOUT, interval=0.05, what=f"a dead letter on {topic} about {keyword!r}")


def all_tickets_of(stack: Any, device_id: str) -> list[dict[str, Any]]:
    """Tickets of a device by listing (the query refuses an id that breaks the pattern)."""
    return [t for t in stack.tickets() if t["device_id"] == device_id]


def test_table_is_big_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("c", CASES)
def test_malformed_press_is_rejected_with_a_reason(stack, presser, c: Case):
    device = dev()
    event_id = f"ev-{uuid.uuid4().hex[:12]}"
    payload = c.make(device, event_id)
    topic_id = c.topic_id(device) if c.topic_id else device
    topic = presser.topics.press(topic_id)
    presser.publish(topic, payload)

    if c.topic_id is None:
        acks = wait_until(lambda: acks_of(presser, device), timeout=ACK_TIMEOUT,
                          what=f"a rejected ack for {device}")
        ack = acks[0]
        assert ack["result"] == "rejected", ack
        assert ack["ticket"] is None
        assert isinstance(ack["reason"], str) and ack["reason"].strip(), ack
        assert c.keyword in ack["reason"], ack["reason"]
        assert ack["event_id"] == (event_id if c.readable else None), ack
        assert stack.tickets(device_id=device) == []
    else:
        assert not wire.valid_id(topic_id)

    letter = dead_letter_for(stack, topic[:300], c.keyword)
    assert letter["payload_size"] == len(payload)
    assert letter["received_at"]
    if c.topic_id is None:
        assert letter["reason"] == ack["reason"]
        assert acks_of(presser, device) == [ack], "exactly one ack per malformed press"
    else:
        # Nobody can be answered on a topic that breaks the rules, and nothing became a ticket.
        assert acks_of(presser, topic_id) == []
        assert all_tickets_of(stack, topic_id) == []

    # The device (or the valid device behind the broken topic id) is not blocked by it.
    answer = presser.final_ack(presser.press(device, "b1"), timeout=ACK_TIMEOUT)
    assert answer["result"] == "created", answer
    assert len(stack.tickets(device_id=device)) == 1


BURST = [p for p in CASES if p.values[0].topic_id is None and p.id != "pressed_at-year-1-plus-0100"]


def test_burst_of_every_malformed_press_from_one_device(stack, presser):
    """The whole table at once from one device: one rejected ack each, in order, then a valid press works."""
    device = dev()
    sent = []
    for p in BURST:
        c: Case = p.values[0]
        event_id = f"ev-{uuid.uuid4().hex[:12]}"
        presser.publish(presser.topics.press(device), c.make(device, event_id))
        sent.append((c, event_id))
    answer = presser.final_ack(presser.press(device, "b1"), timeout=15)
    assert answer["result"] == "created"
    acks = acks_of(presser, device)
    rejected = [a for a in acks if a["result"] == "rejected"]
    assert len(rejected) == len(sent), [a["reason"] for a in rejected]
    # In publishing order (the event_id of each is checked row by row in the table).
    for (c, _), a in zip(sent, rejected):
        assert c.keyword in a["reason"], (c, a)
    assert [t["occurrences"] for t in stack.tickets(device_id=device)] == [1]


def test_bridge_is_alive_after_the_table(stack, presser):
    assert stack.bridge.proc.poll() is None, stack.logs("bridge")
    assert stack.server.proc.poll() is None, stack.logs("server")
    assert "Traceback" not in stack.logs("server"), stack.logs("server")
    device = dev()
    answer = presser.final_ack(presser.press(device, "b1"), timeout=ACK_TIMEOUT)
    assert answer["result"] == "created"


# ------------------------------------------------------------------ presses that jam the bridge (see the report)


def test_press_with_out_of_range_float_does_not_block_every_later_press(fresh_stack):
    """``1e999`` is JSON syntax but no finite number: it must be refused, not jam the outbox.

    It parses to ``inf``; the bridge's HTTP client cannot encode that and the press is
    treated as "server down", so it and every press after it stay ``queued`` forever.
    On a stack of its own: while the bug is there it jams the bridge's outbox.
    """
    p = Presser(fresh_stack.broker.url)
    try:
        device = dev()
        payload = splice("@", b"1e999")(device, "ev-inf")
        p.publish(p.topics.press(device), payload)
        final = wait_until(lambda: [a for a in acks_of(p, device) if a["result"] != "queued"], timeout=3,
                           what="a final ack (rejected or created) for the press with 1e999")
        assert final[0]["result"] in ("rejected", "created"), final
        other = dev()
        answer = p.final_ack(p.press(other, "b1"), timeout=3)
        assert answer["result"] == "created", p.ack_results(answer["event_id"])
    finally:
        p.close()


def test_press_that_fails_to_parse_unexpectedly_does_not_stall_the_bridge(stack):
    """A payload whose time overflows on conversion to UTC must not leave its MQTT message unacked.

    The bridge acks in arrival order; a message never marked done blocks every later
    PUBACK, and once 200 are outstanding (Receive Maximum) the broker sends it nothing more.
    Last in the module on purpose: while the bug is there it leaves the shared stack deaf.
    """
    p = Presser(stack.broker.url)
    try:
        device = dev()
        p.publish(p.topics.press(device), js(pressed_at="0001-01-01T00:00:00+01:00")(device, "ev-overflow"))
        for _ in range(210):  # cheap rejections, each needs a free inflight slot
            p.publish(p.topics.press(device), b"")
        answer = p.final_ack(p.press(device, "b1"), timeout=4)
        assert answer["result"] == "created"
        assert stack.bridge.proc.poll() is None
    finally:
        p.close()
