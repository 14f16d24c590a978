"""The rules of a request's text and numbers (server.domain.inputs) and of telemetry's text (dashdesk.wire), on their own."""

from __future__ import annotations

import json

import pytest

from dashdesk import wire
from server.domain import inputs, rules
from server.api.fields import JsonInteger, JsonNumber, QueryInteger, Telemetry
from server.api.schemas import ID
from marshmallow import ValidationError

NOT_ASCII_DIGITS = ["\u00b9", "\u00b2\u00b3", "\u0661\u0662", "\uff11\uff12", "\u0967", "\U0001d7d9", " 7", "7 ", "+7",
                    "-7", "7.0", "0x7", "1_000", "", "٣"]


@pytest.mark.parametrize("text", NOT_ASCII_DIGITS)
def test_parse_int_takes_ascii_digits_only(text):
    assert inputs.parse_int(text) is None
    assert inputs.page_number(text) == 0
    if text.strip() == text:  # a ticket number typed with spaces around it is still read
        assert rules.parse_ticket_number(text) is None and rules.parse_ticket_number("INC-" + text) is None


def test_parse_int_bounds_length_and_range():
    assert inputs.parse_int("0042") == 42
    assert inputs.parse_int("9" * 18) == 10**18 - 1 and inputs.parse_int("9" * 19) is None
    assert inputs.parse_int("5", low=1, high=4) is None and inputs.parse_int("4", low=1, high=4) == 4
    assert inputs.parse_int(7) == 7 and inputs.parse_int(True) is None and inputs.parse_int(None) is None
    assert inputs.page_number("2000000") == 10**6
    assert rules.parse_ticket_number(" inc-000042 ") == 42


@pytest.mark.parametrize("text, value", [("24", 24.0), ("0.5", 0.5), (".5", 0.5), ("1e3", None), ("nan", None),
                                          ("inf", None), ("２４", None), ("-1", None), ("1.", None)])
def test_parse_decimal(text, value):
    assert inputs.parse_decimal(text) == value


@pytest.mark.parametrize("text, multiline, says", [
    ("a\ud800", False, "lone surrogate (U+D800)"),
    ("a\udfff", True, "lone surrogate (U+DFFF)"),
    ("a\x00b", True, "NUL (U+0000)"),
    ("a\x01b", True, "control character U+0001"),
    ("\x1b[31m", True, "control character U+001B"),
    ("a\x7fb", True, "control character U+007F"),
    ("a\x85b", False, "line break"),
    ("a\x9fb", True, "control character U+009F"),
    ("one\ntwo", False, "line break"),
    ("one\rtwo", False, "line break"),
    ("a\u2028b", True, "line break"),
    ("a\tb", False, "control character U+0009"),
    ("e" + "\u0301" * 31, False, "31 combining marks"),
    ("e" + "\u0301" * 10_000, True, "10000 combining marks"),
])
def test_text_problem_says_what_is_wrong(text, multiline, says):
    assert says in inputs.text_problem(text, multiline=multiline)


@pytest.mark.parametrize("text", ["Till 1", "Drukarka przy kasie", "\u202eexe.txt", "ok \U0001f600", "\u00b9\u00b2",
                                  "\u0661\u0662", "e" + "\u0301" * 30, "Ti\u1ebfng Vi\u1ec7t",
                                  "\u05e9\u05dc\u05d5\u05dd", "क्षि", "\u200d\u200c", "\\ud800"])
def test_text_problem_takes_text_of_any_script(text):
    assert inputs.text_problem(text) is None


def test_several_lines_take_tab_and_line_breaks_and_lengths_are_counted_in_characters():
    assert inputs.text_problem("one\r\ntwo\tthree", multiline=True) is None
    assert inputs.text_problem("\U0001f600" * 10, max_len=10) is None
    assert "at most 10" in inputs.text_problem("x" * 11, max_len=10)


def test_lone_surrogate_at_names_where_it_is_and_skips_what_it_is_told():
    body = json.loads('{"items": [{"telemetry": {"x": "\\ud800"}}, {"telemetry": {}, "note": "\\udc00"}]}')
    assert inputs.lone_surrogate_at(body) == ("items", 0, "telemetry", "x")
    in_telemetry = lambda path: len(path) >= 3 and path[2] == "telemetry"  # noqa: E731
    assert inputs.lone_surrogate_at(body, in_telemetry) == ("items", 1, "note")
    assert inputs.lone_surrogate_at(json.loads('{"ok": "\\ud83d\\ude00"}')) is None  # a pair is one character
    assert inputs.path_text(("items", 1, "no\ud800te")) == "items[1].no\\ud800te"


def test_telemetry_keeps_everything_but_lone_surrogates():
    sent = json.loads('{"fw": "1.2\\ud800", "k\\udc00": [{"v": "\\ude00\\ud83d"}], "ok": "\\ud83d\\ude00", '
                      '"nul": "a\\u0000b", "n": 1.5}')
    assert wire.replace_lone_surrogates(sent) == {"fw": "1.2\ufffd", "k\ufffd": [{"v": "\ufffd\ufffd"}],
                                                  "ok": "\U0001f600", "nul": "a\x00b", "n": 1.5}
    plain = {"battery_pct": 81, "probes": {"printer": {"ok": True}}}
    assert wire.replace_lone_surrogates(plain) == plain


def test_a_press_and_a_telemetry_message_lose_their_lone_surrogates_not_themselves():
    payload = ('{"event_id": "e1", "device_id": "d1", "button": "b1", "pressed_at": "2026-11-23T08:15:02.120Z", '
               '"telemetry": {"note": "jam \\ud800", "\\udc00": 1}}').encode()
    press = wire.parse_press("d1", payload)
    assert press.telemetry == {"note": "jam \ufffd", "\ufffd": 1}
    assert wire.dumps(press.to_dict()).decode().encode("utf-8")  # encodable, so a page can show it
    assert wire.parse_telemetry(b'{"firmware": "\\ud800", "probes": {"p\\udfff": {"ok": false}}}') == {
        "firmware": "\ufffd", "probes": {"p\ufffd": {"ok": False}}}


@pytest.mark.parametrize("field", ["event_id", "button", "pressed_at", "press"])
def test_a_lone_surrogate_outside_telemetry_rejects_the_press(field):
    body = {"event_id": "e1", "device_id": "d1", "button": "b1", "pressed_at": "2026-11-23T08:15:02.120Z"}
    body[field] = "b\ud800"
    with pytest.raises(wire.Rejected):
        wire.parse_press("d1", json.dumps(body).encode())


def test_the_api_fields_read_numbers_in_ascii_digits_and_match_patterns_whole():
    assert QueryInteger().deserialize("12") == 12 and JsonInteger().deserialize(12) == 12
    for text in ("\u0661\u0662", "\uff11\uff12", "\u00b9", " 12", "12\n", "-1", "+1"):
        with pytest.raises(ValidationError):
            QueryInteger().deserialize(text)
        with pytest.raises(ValidationError):
            JsonInteger().deserialize(text)  # a JSON body's number is never a string
        with pytest.raises(ValidationError):
            JsonNumber().deserialize(text)
    assert JsonNumber().deserialize(0.5) == 0.5
    with pytest.raises(ValidationError):
        ID("b1\n")
    assert ID("b1") == "b1"
    assert Telemetry().deserialize({"x": "\ud800"}) == {"x": "\ufffd"}
