"""Malformed presses over the real broker: each gets a `rejected` ack with a reason, nothing else breaks."""

import json
import uuid

import pytest

from dashdesk import wire
from tests.stack import wait_until

NOW = "2026-11-23T08:15:02.120Z"


def valid(topic_device, **change):
    body = {"event_id": f"ev-{uuid.uuid4().hex[:12]}", "device_id": topic_device, "button": "b1", "press": "single",
            "pressed_at": NOW, "seq": 1}
    body.update(change)
    return body


def drop(key):
    return lambda d: {k: v for k, v in valid(d).items() if k != key}


def change(**kw):
    return lambda d: valid(d, **kw)


def raw(data):
    return lambda d: data


def nested(levels):
    inner = {}
    for _ in range(levels):
        inner = {"x": inner}
    return lambda d: valid(d, telemetry=inner)


# (id, payload maker: device_id -> dict or bytes, a word the reason must contain, event_id readable?)
CASES = [
    ("empty", raw(b""), "not JSON", False),
    ("not-json", raw(b"press!"), "not JSON", False),
    ("truncated-json", raw(b'{"event_id": "e1", "device_id": '), "not JSON", False),
    ("json-array", raw(b"[1, 2]"), "not a JSON object", False),
    ("json-string", raw(b'"hello"'), "not a JSON object", False),
    ("json-null", raw(b"null"), "not a JSON object", False),
    ("json-number", raw(b"42"), "not a JSON object", False),
    ("not-utf8", raw(b'{"event_id": "\xff\xfe"}'), "UTF-8", False),
    ("nan-constant", lambda d: f'{{"event_id": "e1", "device_id": "{d}", "seq": NaN}}'.encode(), "not JSON", False),
    ("oversized", lambda d: valid(d, telemetry={"pad": "x" * 17000}), "16384", False),
    ("nested-100", nested(100), "nested", False),
    ("nested-8000-brackets", raw(b"[" * 8000 + b"]" * 8000), "nested", False),
    ("nested-100000-brackets", raw(b"[" * 100000 + b"]" * 100000), "16384", False),
    ("event-id-missing", drop("event_id"), "event_id", False),
    ("event-id-int", change(event_id=7), "event_id", False),
    ("event-id-empty", change(event_id=""), "event_id", False),
    ("event-id-too-long", change(event_id="e" * 65), "event_id", False),
    ("event-id-spaces", change(event_id="a b"), "event_id", False),
    ("device-id-missing", drop("device_id"), "device_id", True),
    ("device-id-int", change(device_id=5), "device_id", True),
    ("device-id-mismatch", change(device_id="someone-else"), "does not match the topic", True),
    ("button-missing", drop("button"), "button", True),
    ("button-upper-case", change(button="B1"), "button", True),
    ("button-too-long", change(button="b" * 64), "button", True),
    ("button-leading-dash", change(button="-b1"), "button", True),
    ("button-int", change(button=1), "button", True),
    ("press-unknown", change(press="triple"), "press", True),
    ("press-int", change(press=2), "press", True),
    ("pressed-at-missing", drop("pressed_at"), "pressed_at", True),
    ("pressed-at-not-a-time", change(pressed_at="yesterday"), "pressed_at", True),
    ("pressed-at-naive", change(pressed_at="2026-11-23T08:15:02"), "pressed_at", True),
    ("pressed-at-int", change(pressed_at=1732349702), "pressed_at", True),
    ("seq-negative", change(seq=-1), "seq", True),
    ("seq-string", change(seq="7"), "seq", True),
    ("seq-float", change(seq=1.5), "seq", True),
    ("seq-bool", change(seq=True), "seq", True),
    ("telemetry-list", change(telemetry=[1, 2]), "telemetry", True),
    ("telemetry-string", change(telemetry="ok"), "telemetry", True),
]


@pytest.mark.parametrize("make, word, readable", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_press_is_rejected_with_reason_and_nothing_else_breaks(stack, presser, make, word, readable):
    device = f"bad-{uuid.uuid4().hex[:10]}"
    body = make(device)
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    presser.publish(presser.topics.press(device), payload)

    acks = wait_until(lambda: [a for d, a in presser.raw_acks if d == device], what="a rejected ack")
    assert acks[0]["result"] == "rejected" and acks[0]["ticket"] is None
    assert word in acks[0]["reason"], acks[0]["reason"]
    # The device can match the answer to its press wherever the event_id could be read.
    assert acks[0]["event_id"] == (body["event_id"] if readable else None)
    assert stack.tickets(device_id=device) == []
    topic = presser.topics.press(device)
    letters = wait_until(lambda: [d for d in stack.api("GET", "/api/v1/dead-letters").json()["items"]
                                  if d["topic"] == topic], what="the dead letter")
    assert word in letters[0]["reason"] and letters[0]["payload_size"] == len(payload)

    # The next valid press from the same device works.
    assert presser.final_ack(presser.press(device, "b1"))["result"] == "created"


@pytest.mark.parametrize("device_id", ["Shop-Upper", "x" * 64, "has space", "-dash"])
def test_press_on_a_topic_with_a_bad_device_id_is_kept_as_a_dead_letter(stack, presser, device_id):
    topic = f"{presser.topics.root}/devices/{device_id}/press"
    presser.publish(topic, wire.dumps(valid(device_id)))
    letters = wait_until(lambda: [d for d in stack.api("GET", "/api/v1/dead-letters").json()["items"]
                                  if d["topic"] == topic], what="the dead letter")
    assert "device id" in letters[0]["reason"]


def test_bridge_survives_the_whole_table(stack, presser):
    assert stack.bridge.proc.poll() is None
    assert presser.final_ack(presser.press(f"after-{uuid.uuid4().hex[:6]}", "b1"))["result"] == "created"
