"""Bad HTTP input against the real server: always a 4xx JSON error, never a 5xx."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import requests

from tests.stack import ADMIN_TOKEN

NOW = "2026-11-23T08:15:02.120Z"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
JSON = {**AUTH, "Content-Type": "application/json"}
BIG_ID = "99999999999999999999"  # past any 64-bit integer


def good(**change: Any) -> dict[str, Any]:
    """A valid incident body of a device of its own (a row that slips through makes no noise elsewhere)."""
    body = {"event_id": f"e-{uuid.uuid4().hex[:12]}", "device_id": f"http-{uuid.uuid4().hex[:8]}",
            "button": "b1", "pressed_at": NOW}
    body.update(change)
    return body


def raw_json(text: str) -> dict[str, Any]:
    return {"data": text.encode(), "headers": JSON}


def spliced(raw_telemetry: str) -> dict[str, Any]:
    """A valid incident whose telemetry is the raw JSON text given (to send what json.dumps would not)."""
    text = json.dumps(good(telemetry={"x": "@"}))
    return raw_json(text.replace('{"x": "@"}', raw_telemetry))


def nested_text(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


# (id, method, path ({ticket} is a real ticket's id), requests keyword arguments, expected status)
CASES = [
    # --- POST /incidents: the body
    ("body-not-json", "POST", "/api/v1/incidents", raw_json("{not json"), 400),
    ("body-truncated-json", "POST", "/api/v1/incidents", raw_json(json.dumps(good())[:-3]), 400),
    ("body-array", "POST", "/api/v1/incidents", {"json": [good()], "headers": AUTH}, 400),
    ("body-null", "POST", "/api/v1/incidents", raw_json("null"), 400),
    ("body-string", "POST", "/api/v1/incidents", raw_json('"press"'), 400),
    ("body-empty-object", "POST", "/api/v1/incidents", {"json": {}, "headers": AUTH}, 400),
    ("body-as-form", "POST", "/api/v1/incidents", {"data": good(), "headers": AUTH}, 400),
    ("body-not-utf8", "POST", "/api/v1/incidents", {"data": b'{"event_id": "\xff\xfe"}', "headers": JSON}, 400),
    ("body-utf8-bom", "POST", "/api/v1/incidents",
     {"data": b"\xef\xbb\xbf" + json.dumps(good()).encode(), "headers": JSON}, 400),
    ("huge-body-300k", "POST", "/api/v1/incidents", {"data": b"{" + b" " * 300_000 + b"}", "headers": JSON}, 413),
    ("huge-telemetry-300k", "POST", "/api/v1/incidents",
     {"json": good(telemetry={"pad": "x" * 300_000}), "headers": AUTH}, 413),
    # --- POST /incidents: the fields
    ("event-id-missing", "POST", "/api/v1/incidents",
     {"json": {k: v for k, v in good().items() if k != "event_id"}, "headers": AUTH}, 400),
    ("event-id-int", "POST", "/api/v1/incidents", {"json": good(event_id=1), "headers": AUTH}, 400),
    ("event-id-65-chars", "POST", "/api/v1/incidents", {"json": good(event_id="e" * 65), "headers": AUTH}, 400),
    ("event-id-spaces", "POST", "/api/v1/incidents", {"json": good(event_id="a b"), "headers": AUTH}, 400),
    ("device-id-upper", "POST", "/api/v1/incidents", {"json": good(device_id="Shop-1"), "headers": AUTH}, 400),
    ("device-id-int", "POST", "/api/v1/incidents", {"json": good(device_id=5), "headers": AUTH}, 400),
    ("button-missing", "POST", "/api/v1/incidents",
     {"json": {k: v for k, v in good().items() if k != "button"}, "headers": AUTH}, 400),
    ("button-leading-dash", "POST", "/api/v1/incidents", {"json": good(button="-b1"), "headers": AUTH}, 400),
    ("press-unknown", "POST", "/api/v1/incidents", {"json": good(press="triple"), "headers": AUTH}, 400),
    ("pressed-at-missing", "POST", "/api/v1/incidents",
     {"json": {k: v for k, v in good().items() if k != "pressed_at"}, "headers": AUTH}, 400),
    ("pressed-at-naive", "POST", "/api/v1/incidents",
     {"json": good(pressed_at="2026-11-23T08:15:02"), "headers": AUTH}, 400),
    ("pressed-at-not-a-time", "POST", "/api/v1/incidents", {"json": good(pressed_at="soon"), "headers": AUTH}, 400),
    ("pressed-at-int", "POST", "/api/v1/incidents", {"json": good(pressed_at=1795437858), "headers": AUTH}, 400),
    ("seq-negative", "POST", "/api/v1/incidents", {"json": good(seq=-1), "headers": AUTH}, 400),
    ("seq-2-pow-64", "POST", "/api/v1/incidents", {"json": good(seq=2**64), "headers": AUTH}, 400),
    ("seq-string", "POST", "/api/v1/incidents", {"json": good(seq="x"), "headers": AUTH}, 400),
    ("telemetry-list", "POST", "/api/v1/incidents", {"json": good(telemetry=[1]), "headers": AUTH}, 400),
    ("unknown-field", "POST", "/api/v1/incidents", {"json": good(colour="red"), "headers": AUTH}, 400),
    ("idempotency-key-mismatch", "POST", "/api/v1/incidents",
     {"json": good(), "headers": {**AUTH, "Idempotency-Key": "something-else"}}, 400),
    # --- POST /incidents: input that costs the parser or the database (see the report)
    ("body-100000-brackets", "POST", "/api/v1/incidents", raw_json("[" * 100_000), 400),
    ("telemetry-nested-5000", "POST", "/api/v1/incidents", spliced(nested_text(5000)), 400),
    ("int-of-5000-digits", "POST", "/api/v1/incidents", spliced('{"x": ' + "9" * 5000 + "}"), 400),
    ("nan-in-telemetry", "POST", "/api/v1/incidents", spliced('{"x": NaN}'), 400),
    ("pressed-at-year-1-plus-0100", "POST", "/api/v1/incidents",
     {"json": good(pressed_at="0001-01-01T00:00:00+01:00"), "headers": AUTH}, 400),
    ("pressed-at-year-9999-minus-0100", "POST", "/api/v1/incidents",
     {"json": good(pressed_at="9999-12-31T23:59:59-01:00"), "headers": AUTH}, 400),
    ("received-at-year-1-plus-0100", "POST", "/api/v1/incidents",
     {"json": good(received_at="0001-01-01T00:00:00+01:00"), "headers": AUTH}, 400),
    # --- POST /incidents/batch
    ("batch-empty", "POST", "/api/v1/incidents/batch", {"json": {"items": []}, "headers": AUTH}, 400),
    ("batch-not-list", "POST", "/api/v1/incidents/batch", {"json": {"items": good()}, "headers": AUTH}, 400),
    ("batch-missing-items", "POST", "/api/v1/incidents/batch", {"json": {}, "headers": AUTH}, 400),
    ("batch-501-items", "POST", "/api/v1/incidents/batch",
     {"json": {"items": [good() for _ in range(501)]}, "headers": AUTH}, 400),
    ("batch-one-bad-item", "POST", "/api/v1/incidents/batch",
     {"json": {"items": [good(), good(button="B 1")]}, "headers": AUTH}, 400),
    ("batch-time-overflow", "POST", "/api/v1/incidents/batch",
     {"json": {"items": [good(), good(pressed_at="0001-01-01T00:00:00+01:00")]}, "headers": AUTH}, 400),
    # --- GET /tickets: query parameters
    ("limit-not-int", "GET", "/api/v1/tickets?limit=abc", {"headers": AUTH}, 400),
    ("limit-zero", "GET", "/api/v1/tickets?limit=0", {"headers": AUTH}, 400),
    ("limit-501", "GET", "/api/v1/tickets?limit=501", {"headers": AUTH}, 400),
    ("priority-9", "GET", "/api/v1/tickets?priority=9", {"headers": AUTH}, 400),
    ("status-bogus", "GET", "/api/v1/tickets?status=bogus", {"headers": AUTH}, 400),
    ("status-twice", "GET", "/api/v1/tickets?status=new&status=open", {"headers": AUTH}, 400),
    ("cursor-negative", "GET", "/api/v1/tickets?cursor=-1", {"headers": AUTH}, 400),
    ("cursor-not-int", "GET", "/api/v1/tickets?cursor=abc", {"headers": AUTH}, 400),
    ("device-id-query-upper", "GET", "/api/v1/tickets?device_id=Shop-1", {"headers": AUTH}, 400),
    ("query-misspelt", "GET", "/api/v1/tickets?stauts=open", {"headers": AUTH}, 400),
    # --- tickets by id
    ("ticket-404", "GET", "/api/v1/tickets/999999", {"headers": AUTH}, 404),
    ("ticket-id-not-int", "GET", "/api/v1/tickets/abc", {"headers": AUTH}, 404),
    ("ticket-id-negative", "GET", "/api/v1/tickets/-1", {"headers": AUTH}, 404),
    ("ticket-id-past-int64", "GET", f"/api/v1/tickets/{BIG_ID}", {"headers": AUTH}, 404),
    ("patch-bad-status", "PATCH", "/api/v1/tickets/{ticket}", {"json": {"status": "done"}, "headers": AUTH}, 400),
    ("patch-priority-text", "PATCH", "/api/v1/tickets/{ticket}", {"json": {"priority": "2"}, "headers": AUTH}, 400),
    ("patch-priority-0", "PATCH", "/api/v1/tickets/{ticket}", {"json": {"priority": 0}, "headers": AUTH}, 400),
    ("patch-unknown-field", "PATCH", "/api/v1/tickets/{ticket}", {"json": {"colour": "red"}, "headers": AUTH}, 400),
    ("patch-not-json", "PATCH", "/api/v1/tickets/{ticket}", raw_json("status=resolved"), 400),
    ("patch-404", "PATCH", "/api/v1/tickets/999999", {"json": {"status": "resolved"}, "headers": AUTH}, 404),
    ("patch-id-past-int64", "PATCH", f"/api/v1/tickets/{BIG_ID}", {"json": {"status": "resolved"}, "headers": AUTH},
     404),
    # --- devices, buttons, categories, events, dead letters
    ("map-unknown-category", "PUT", "/api/v1/devices/shop-http/buttons/b1",
     {"json": {"category": "nope"}, "headers": AUTH}, 404),
    ("map-bad-button", "PUT", "/api/v1/devices/shop-http/buttons/B%201", {"json": {"category": "printer"},
                                                                           "headers": AUTH}, 400),
    ("map-bad-device", "PUT", "/api/v1/devices/Shop-HTTP/buttons/b1", {"json": {"category": "printer"},
                                                                        "headers": AUTH}, 400),
    ("map-bad-press", "PUT", "/api/v1/devices/shop-http/buttons/b1",
     {"json": {"category": "printer", "press": "triple"}, "headers": AUTH}, 400),
    ("map-missing-category", "PUT", "/api/v1/devices/shop-http/buttons/b1", {"json": {}, "headers": AUTH}, 400),
    ("device-404", "GET", "/api/v1/devices/never-seen", {"headers": AUTH}, 404),
    ("device-post-bad-status", "POST", "/api/v1/devices", {"json": {"device_id": "d-x", "status": "asleep"},
                                                           "headers": AUTH}, 400),
    ("device-post-missing-id", "POST", "/api/v1/devices", {"json": {"site": "s1"}, "headers": AUTH}, 400),
    ("device-patch-404", "PATCH", "/api/v1/devices/never-seen", {"json": {"status": "active"}, "headers": AUTH}, 404),
    ("telemetry-404", "POST", "/api/v1/devices/never-seen/telemetry", {"json": {"telemetry": {}}, "headers": AUTH},
     404),
    ("device-telemetry-nested-5000", "POST", "/api/v1/devices/shop-http/telemetry",
     raw_json('{"telemetry": ' + nested_text(5000) + "}"), 400),
    # --- deep nesting: past 32 levels, whatever the endpoint (some hundreds would exhaust the stack)
    ("telemetry-nested-40", "POST", "/api/v1/incidents", spliced(nested_text(40)), 400),
    ("telemetry-nested-900", "POST", "/api/v1/incidents", spliced(nested_text(900)), 400),
    ("patch-note-nested-900", "PATCH", "/api/v1/tickets/{ticket}", raw_json('{"note": ' + nested_text(900) + "}"),
     400),
    ("site-hours-nested-900", "POST", "/api/v1/sites",
     raw_json('{"code": "deep-1", "name": "D", "hours": ' + "[" * 900 + "]" * 900 + "}"), 400),
    ("token-name-nested-900", "POST", "/api/v1/tokens", raw_json('{"name": ' + nested_text(900) + "}"), 400),
    ("enrolment-site-nested-900", "POST", "/api/v1/enrolments", raw_json('{"site": ' + nested_text(900) + "}"), 400),
    ("batch-nested-900", "POST", "/api/v1/incidents/batch", raw_json('{"items": ' + "[" * 900 + "]" * 900 + "}"),
     400),
    ("config-import-toml-2000-brackets", "POST", "/api/v1/config/import",
     {"data": ("version = 1\nx = " + "[" * 2000 + "]" * 2000 + "\n").encode(),
      "headers": {**AUTH, "Content-Type": "application/toml"}}, 422),
    ("status-not-bool", "POST", "/api/v1/devices/shop-http/status", {"json": {"online": "maybe"}, "headers": AUTH},
     400),
    ("category-bad-priority", "POST", "/api/v1/categories",
     {"json": {"slug": "x", "name": "X", "priority": 0}, "headers": AUTH}, 400),
    ("category-bad-sla-key", "POST", "/api/v1/categories",
     {"json": {"slug": "x", "name": "X", "sla": {"9": {"respond_min": 5}}}, "headers": AUTH}, 400),
    ("events-negative", "GET", "/api/v1/events?after=-5", {"headers": AUTH}, 400),
    ("events-unknown-param", "GET", "/api/v1/events?since=5", {"headers": AUTH}, 400),
    ("events-limit-abc", "GET", "/api/v1/events?limit=abc", {"headers": AUTH}, 400),
    ("events-with-tickets-maybe", "GET", "/api/v1/events?with_tickets=maybe", {"headers": AUTH}, 400),
    ("dead-letter-missing-fields", "POST", "/api/v1/dead-letters", {"json": {"key": "k"}, "headers": AUTH}, 400),
    ("dead-letter-time-overflow", "POST", "/api/v1/dead-letters",
     {"json": {"key": f"k-{uuid.uuid4().hex}", "topic": "t", "payload_prefix": "", "payload_size": 0,
               "reason": "r", "received_at": "0001-01-01T00:00:00+01:00"}, "headers": AUTH}, 400),
    # --- who may ask, and how
    ("no-token", "GET", "/api/v1/tickets", {}, 401),
    ("no-token-bad-body", "POST", "/api/v1/incidents", {"data": b"{not json", "headers": {"Content-Type":
                                                                                          "application/json"}}, 401),
    ("wrong-token", "GET", "/api/v1/tickets", {"headers": {"Authorization": "Bearer nope"}}, 401),
    ("empty-bearer", "GET", "/api/v1/tickets", {"headers": {"Authorization": "Bearer "}}, 401),
    ("not-bearer", "GET", "/api/v1/tickets", {"headers": {"Authorization": "Basic eDp5"}}, 401),
    ("wrong-method-delete", "DELETE", "/api/v1/tickets", {"headers": AUTH}, 405),
    ("wrong-method-get-incidents", "GET", "/api/v1/incidents", {"headers": AUTH}, 405),
    ("wrong-method-put-ticket", "PUT", "/api/v1/tickets/{ticket}", {"json": {}, "headers": AUTH}, 405),
    ("unknown-path", "GET", "/api/v1/nothing-here", {"headers": AUTH}, 404),
    # --- what the HTTP layer answers itself, before the app sees the request (server/serve.py)
    ("huge-authorization-header", "GET", "/api/v1/tickets", {"headers": {"Authorization": "Bearer " + "x" * 9000}},
     431),
    ("uri-too-long", "GET", "/api/v1/tickets?status=" + "n" * 9000, {"headers": AUTH}, 414),
]


@pytest.fixture(scope="module")
def ticket(stack) -> int:
    r = requests.post(stack.base + "/api/v1/incidents", json=good(), headers=AUTH, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()["ticket"]["id"]


def test_table_is_big_enough():
    assert len(CASES) >= 15


@pytest.mark.parametrize("method, path, kwargs, status", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_request_gets_a_4xx_json_error(stack, ticket, method, path, kwargs, status):
    r = requests.request(method, stack.base + path.format(ticket=ticket), timeout=10, **kwargs)
    assert r.status_code < 500, f"{r.status_code}: {r.text[:300]}"
    assert r.status_code == status, r.text[:300]
    assert r.headers["Content-Type"].startswith("application/json"), r.headers["Content-Type"]
    data = r.json()
    assert set(data) == {"error"}, data
    error = data["error"]
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error


def test_server_is_healthy_after_the_table(stack):
    assert stack.server.proc.poll() is None, stack.logs("server")
    assert requests.get(stack.base + "/healthz", timeout=5).status_code == 200


def test_after_bad_requests_a_good_press_and_its_replay_work(stack):
    body = good()
    headers = {**AUTH, "Idempotency-Key": body["event_id"]}
    first = requests.post(stack.base + "/api/v1/incidents", json=body, headers=headers, timeout=10)
    replay = requests.post(stack.base + "/api/v1/incidents", json=body, headers=headers, timeout=10)
    assert (first.status_code, replay.status_code) == (201, 200), (first.text, replay.text)
    assert first.json()["result"] == "created"
    assert replay.content == first.content
    listed = requests.get(stack.base + "/api/v1/tickets", params={"device_id": body["device_id"]}, headers=AUTH,
                          timeout=10).json()["items"]
    assert [t["occurrences"] for t in listed] == [1]


def test_ticket_list_stays_valid_json_whatever_was_posted(stack):
    """A browser parses the answers as strict JSON: NaN or Infinity must never come back out."""
    body = good()
    text = json.dumps(body)[:-1] + ', "telemetry": {"x": NaN, "y": 1e999}}'
    posted = requests.post(stack.base + "/api/v1/incidents", data=text.encode(), headers=JSON, timeout=10)
    assert posted.status_code < 500, posted.text

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    r = requests.get(stack.base + "/api/v1/tickets", params={"device_id": body["device_id"]}, headers=AUTH,
                     timeout=10)
    assert r.status_code == 200
    json.loads(r.text, parse_constant=refuse)
