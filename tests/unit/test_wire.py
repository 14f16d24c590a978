"""Fast tests of the wire format: press validation, times, topics, payload limits."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from dashdesk import wire

NOW = "2026-11-23T08:15:02.120Z"


def payload(**change) -> bytes:
    body = {"event_id": "e-1", "device_id": "shop-1", "button": "b1", "pressed_at": NOW}
    body.update(change)
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


# ---------------------------------------------------------------- parse_press


def test_valid_press_is_parsed_and_defaults_are_filled():
    p = wire.parse_press("shop-1", payload())
    assert (p.event_id, p.device_id, p.button) == ("e-1", "shop-1", "b1")
    assert p.press == "single"
    assert p.seq is None
    assert p.telemetry == {}
    assert p.pressed_at == datetime(2026, 11, 23, 8, 15, 2, 120000, tzinfo=timezone.utc)


def test_valid_press_keeps_every_field_and_round_trips_through_to_json():
    raw = payload(press="long", seq=0, telemetry={"battery_pct": 80, "probes": {"net": {"ok": True}}})
    p = wire.parse_press("shop-1", raw)
    assert (p.press, p.seq, p.telemetry["battery_pct"]) == ("long", 0, 80)
    assert wire.parse_press("shop-1", p.to_json()) == p


# ---------------------------------------------------------------- the bridge's body


def test_incident_body_is_the_press_with_its_telemetry_and_the_bridges_time():
    """The JSON the bridge sends, field by field and in this order: ``seq`` only if the press had one,
    ``telemetry`` always (empty too), ``received_at`` in the wire's time format."""
    received = datetime(2026, 11, 23, 8, 15, 3, 5000, tzinfo=timezone.utc)
    p = wire.parse_press("shop-1", payload(press="long", seq=7, telemetry={"rssi": -60}))
    body = wire.IncidentBody.of(p, {"rssi": -60, "battery_pct": 80}, received)
    assert list(body.to_dict().items()) == [
        ("event_id", "e-1"), ("device_id", "shop-1"), ("button", "b1"), ("press", "long"),
        ("pressed_at", "2026-11-23T08:15:02.120Z"), ("seq", 7), ("telemetry", {"rssi": -60, "battery_pct": 80}),
        ("received_at", "2026-11-23T08:15:03.005Z")]
    bare = wire.IncidentBody.of(wire.parse_press("shop-1", payload()), {}, received).to_dict()
    assert list(bare) == ["event_id", "device_id", "button", "press", "pressed_at", "telemetry", "received_at"]
    assert bare["telemetry"] == {} and bare["press"] == "single"


def test_null_telemetry_means_none_and_unknown_keys_are_ignored():
    p = wire.parse_press("shop-1", payload(telemetry=None, firmware="2.1"))
    assert p.telemetry == {}


def test_time_with_an_offset_is_kept_as_utc():
    p = wire.parse_press("shop-1", payload(pressed_at="2026-11-23T09:15:02.120+01:00"))
    assert wire.format_time(p.pressed_at) == NOW


@pytest.mark.parametrize("raw, reason, event_id", [
    (b"", "not JSON", None),
    (b"[]", "not a JSON object", None),
    (b"\xff", "UTF-8", None),
    (payload(event_id=...), "event_id is missing", None),
    (payload(event_id="a b"), "event_id must be", None),
    (payload(device_id="shop-2"), "does not match the topic", "e-1"),
    (payload(button="B1"), "button does not match", "e-1"),
    (payload(press="triple"), "press must be one of", "e-1"),
    (payload(pressed_at="2026-11-23T08:15:02"), "pressed_at", "e-1"),
    (payload(seq=True), "seq", "e-1"),
    (payload(telemetry=[]), "telemetry must be an object", "e-1"),
], ids=["empty", "array", "not-utf8", "no-event-id", "bad-event-id", "mismatch", "button", "press",
        "naive-time", "seq-bool", "telemetry-list"])
def test_rejections_carry_a_reason_and_what_ids_could_be_read(raw, reason, event_id):
    with pytest.raises(wire.Rejected) as info:
        wire.parse_press("shop-1", raw)
    assert reason in info.value.reason
    assert info.value.event_id == event_id
    assert info.value.device_id == "shop-1"


def test_bad_device_id_in_topic_leaves_no_device_to_answer():
    with pytest.raises(wire.Rejected) as info:
        wire.parse_press("Shop-1", payload(device_id="Shop-1"))
    assert "does not match" in info.value.reason
    assert info.value.device_id is None and info.value.event_id is None


def test_too_deep_telemetry_is_rejected_with_the_readable_event_id():
    """The payload parsed and its event_id is valid, so the device can be told which press it was.

    The device agent ignores acks with a null event_id: without it the press stays queued for ever.
    """
    deep: dict = {"leaf": 1}
    for _ in range(wire.MAX_DEPTH):
        deep = {"n": deep}
    with pytest.raises(wire.Rejected) as info:
        wire.parse_press("shop-1", payload(telemetry=deep))
    assert "nested" in info.value.reason
    assert info.value.event_id == "e-1"


@pytest.mark.parametrize("pressed_at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_time_that_overflows_in_utc_is_rejected_not_raised(pressed_at):
    """Any breach must be a Rejected: the bridge acks the MQTT message only on that path."""
    with pytest.raises(wire.Rejected) as info:
        wire.parse_press("shop-1", payload(pressed_at=pressed_at))
    assert "pressed_at" in info.value.reason


# ---------------------------------------------------------------- times


@pytest.mark.parametrize("t", [
    datetime(2026, 11, 23, 8, 15, 2, 120000, tzinfo=timezone.utc),
    datetime(2026, 1, 1, tzinfo=timezone.utc),
    datetime(2026, 6, 30, 23, 59, 59, 999000, tzinfo=timezone(timedelta(hours=-7))),
])
def test_format_time_has_milliseconds_and_z_and_round_trips(t):
    text = wire.format_time(t)
    assert text.endswith("Z") and len(text) == len("2026-11-23T08:15:02.120Z")
    assert text[-5] == "." and text[-4:-1].isdigit()
    assert wire.parse_time(text) == t


def test_format_time_truncates_to_milliseconds():
    t = datetime(2026, 11, 23, 8, 15, 2, 120999, tzinfo=timezone.utc)
    assert wire.format_time(t) == "2026-11-23T08:15:02.120Z"


@pytest.mark.parametrize("year", [1, 999])
def test_format_time_pads_the_year_to_four_digits(year):
    """RFC 3339 years have four digits; strftime("%Y") does not pad them on glibc."""
    t = datetime(year, 1, 1, tzinfo=timezone.utc)
    text = wire.format_time(t)
    assert text == f"{year:04d}-01-01T00:00:00.000Z"
    assert wire.parse_time(text) == t


@pytest.mark.parametrize("text, expected", [
    ("2026-11-23T08:15:02Z", datetime(2026, 11, 23, 8, 15, 2, tzinfo=timezone.utc)),
    ("2026-11-23T08:15:02.5z", datetime(2026, 11, 23, 8, 15, 2, 500000, tzinfo=timezone.utc)),
    ("2026-11-23T09:15:02+01:00", datetime(2026, 11, 23, 8, 15, 2, tzinfo=timezone.utc)),
])
def test_parse_time_accepts_zones_and_returns_utc(text, expected):
    t = wire.parse_time(text)
    assert t == expected and t.utcoffset() == timedelta(0)


@pytest.mark.parametrize("value", ["2026-11-23T08:15:02", "2026-11-23", "yesterday", "", 1795437858, None,
                                   "2026-11-23T08:15:02Z" + " " * 40])
def test_parse_time_refuses_naive_malformed_and_non_strings(value):
    with pytest.raises(ValueError):
        wire.parse_time(value)


# ---------------------------------------------------------------- topics


def test_topics_build_and_split():
    topics = wire.Topics()
    assert topics.press("shop-1") == "dashdesk/v1/devices/shop-1/press"
    assert topics.ack("shop-1") == "dashdesk/v1/devices/shop-1/ack"
    assert topics.subscription("press") == "dashdesk/v1/devices/+/press"
    assert topics.split("dashdesk/v1/devices/shop-1/press") == ("shop-1", "press")


@pytest.mark.parametrize("topic, expected", [
    ("dashdesk/v1/devices/Shop ONE/press", ("Shop ONE", "press")),  # kept as it stands, valid or not
    ("dashdesk/v1/devices//press", ("", "press")),
    ("dashdesk/v1/devices/shop-1/press/extra", None),
    ("dashdesk/v1/devices/shop-1", None),
    ("dashdesk/v2/devices/shop-1/press", None),
    ("other/dashdesk/v1/devices/shop-1/press", None),
])
def test_topics_split_edge_cases(topic, expected):
    assert wire.Topics().split(topic) == expected


def test_topics_under_another_root():
    topics = wire.Topics("acme/dd")
    assert topics.split(topics.tickets("till-2")) == ("till-2", "tickets")
    assert topics.split("dashdesk/v1/devices/till-2/tickets") is None


# ---------------------------------------------------------------- decode_json_object


def test_decode_accepts_an_object_of_exactly_the_limit():
    head = b'{"pad":"'
    data = head + b"x" * (wire.MAX_PAYLOAD_BYTES - len(head) - 2) + b'"}'
    assert len(data) == wire.MAX_PAYLOAD_BYTES
    assert len(wire.decode_json_object(data)["pad"]) == wire.MAX_PAYLOAD_BYTES - len(head) - 2


def test_decode_refuses_one_byte_more_and_says_the_limit():
    data = b'{"pad":"' + b"x" * wire.MAX_PAYLOAD_BYTES + b'"}'
    with pytest.raises(wire.Rejected) as info:
        wire.decode_json_object(data)
    assert str(wire.MAX_PAYLOAD_BYTES) in info.value.reason and str(len(data)) in info.value.reason


def test_decode_depth_limit_is_inclusive():
    ok: dict = {}
    for _ in range(wire.MAX_DEPTH - 1):
        ok = {"n": ok}
    assert wire.decode_json_object(json.dumps(ok).encode())
    with pytest.raises(wire.Rejected, match="nested"):
        wire.decode_json_object(json.dumps({"n": ok}).encode())


@pytest.mark.parametrize("data", [b"[" * 15000, b'{"a":' * 2000 + b"1" + b"}" * 2000],
                         ids=["brackets", "objects"])
def test_decode_survives_parser_recursion_within_the_size_limit(data):
    assert len(data) <= wire.MAX_PAYLOAD_BYTES
    with pytest.raises(wire.Rejected, match="nested"):
        wire.decode_json_object(data)


@pytest.mark.parametrize("data, reason", [
    (b'{"x": NaN}', "NaN"),
    (b'{"x": Infinity}', "Infinity"),
    (b'{"x": ' + b"9" * 5000 + b"}", "not JSON"),
    (b"\xef\xbb\xbf{}", "not JSON"),
    (b'"text"', "not a JSON object"),
    (b'{"x": "\xc3"}', "UTF-8"),
])
def test_decode_refuses_what_is_not_one_strict_json_object(data, reason):
    with pytest.raises(wire.Rejected) as info:
        wire.decode_json_object(data)
    assert reason in info.value.reason


def test_decode_refuses_numbers_out_of_float_range():
    """``1e999`` parses to inf, which no JSON encoder downstream will write back (see the report)."""
    with pytest.raises(wire.Rejected):
        wire.decode_json_object(b'{"x": 1e999}')


# ---------------------------------------------------------------- acks


def test_ack_shape_and_unknown_result():
    assert wire.ack(None, "rejected", reason="why") == {"event_id": None, "result": "rejected", "ticket": None,
                                                        "reason": "why"}
    with pytest.raises(ValueError):
        wire.ack("e-1", "lost")
