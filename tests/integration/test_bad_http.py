"""Bad HTTP input against the real server: always a 4xx JSON error, never a 5xx."""

import uuid

import pytest
import requests

from tests.stack import ADMIN_TOKEN

NOW = "2026-11-23T08:15:02.120Z"
GOOD = {"event_id": "e-good", "device_id": "shop-http", "button": "b1", "pressed_at": NOW}
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
JSON = {**AUTH, "Content-Type": "application/json"}

# (id, method, path, keyword arguments for requests, expected status)
CASES = [
    ("body-not-json", "POST", "/api/v1/incidents", {"data": b"{not json", "headers": JSON}, 400),
    ("body-array", "POST", "/api/v1/incidents", {"json": [GOOD], "headers": AUTH}, 400),
    ("body-empty-object", "POST", "/api/v1/incidents", {"json": {}, "headers": AUTH}, 400),
    ("event-id-int", "POST", "/api/v1/incidents", {"json": {**GOOD, "event_id": 1}, "headers": AUTH}, 400),
    ("unknown-field", "POST", "/api/v1/incidents", {"json": {**GOOD, "colour": "red"}, "headers": AUTH}, 400),
    ("naive-time", "POST", "/api/v1/incidents",
     {"json": {**GOOD, "pressed_at": "2026-11-23T08:15:02"}, "headers": AUTH}, 400),
    ("bad-device-id", "POST", "/api/v1/incidents", {"json": {**GOOD, "device_id": "A B"}, "headers": AUTH}, 400),
    ("key-mismatch", "POST", "/api/v1/incidents",
     {"json": GOOD, "headers": {**AUTH, "Idempotency-Key": "something-else"}}, 400),
    ("huge-body", "POST", "/api/v1/incidents", {"data": b"{" + b" " * 300_000 + b"}", "headers": JSON}, 413),
    ("batch-empty", "POST", "/api/v1/incidents/batch", {"json": {"items": []}, "headers": AUTH}, 400),
    ("batch-not-list", "POST", "/api/v1/incidents/batch", {"json": {"items": GOOD}, "headers": AUTH}, 400),
    ("limit-not-int", "GET", "/api/v1/tickets?limit=abc", {"headers": AUTH}, 400),
    ("limit-zero", "GET", "/api/v1/tickets?limit=0", {"headers": AUTH}, 400),
    ("priority-9", "GET", "/api/v1/tickets?priority=9", {"headers": AUTH}, 400),
    ("status-bogus", "GET", "/api/v1/tickets?status=bogus", {"headers": AUTH}, 400),
    ("cursor-negative", "GET", "/api/v1/tickets?cursor=-1", {"headers": AUTH}, 400),
    ("ticket-404", "GET", "/api/v1/tickets/999999", {"headers": AUTH}, 404),
    ("ticket-id-not-int", "GET", "/api/v1/tickets/abc", {"headers": AUTH}, 404),
    ("patch-bad-status", "PATCH", "/api/v1/tickets/1", {"json": {"status": "done"}, "headers": AUTH}, 400),
    ("patch-nothing", "PATCH", "/api/v1/tickets/999999", {"json": {}, "headers": AUTH}, 400),
    ("map-unknown-category", "PUT", "/api/v1/devices/shop-http/buttons/b1",
     {"json": {"category": "nope"}, "headers": AUTH}, 404),
    ("map-bad-button", "PUT", "/api/v1/devices/shop-http/buttons/B%201",
     {"json": {"category": "printer"}, "headers": AUTH}, 400),
    ("device-404", "GET", "/api/v1/devices/never-seen", {"headers": AUTH}, 404),
    ("category-bad-priority", "POST", "/api/v1/categories",
     {"json": {"slug": "x", "name": "X", "priority": 0}, "headers": AUTH}, 400),
    ("events-negative", "GET", "/api/v1/events?after=-5", {"headers": AUTH}, 400),
    ("no-token", "GET", "/api/v1/tickets", {}, 401),
    ("wrong-token", "GET", "/api/v1/tickets", {"headers": {"Authorization": "Bearer nope"}}, 401),
    ("not-bearer", "GET", "/api/v1/tickets", {"headers": {"Authorization": "Basic eDp5"}}, 401),
    ("wrong-method", "DELETE", "/api/v1/tickets", {"headers": AUTH}, 405),
    ("unknown-path", "GET", "/api/v1/nothing-here", {"headers": AUTH}, 404),
]


@pytest.mark.parametrize("method, path, kwargs, status", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_request_gets_a_4xx_json_error(stack, method, path, kwargs, status):
    r = requests.request(method, stack.base + path, timeout=10, **kwargs)
    assert r.status_code == status, r.text[:300]
    assert r.headers["Content-Type"].startswith("application/json")
    error = r.json()["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]


def test_after_bad_requests_a_good_press_and_its_replay_work(stack):
    body = {**GOOD, "event_id": f"e-{uuid.uuid4().hex[:10]}"}
    headers = {**AUTH, "Idempotency-Key": body["event_id"]}
    first = requests.post(stack.base + "/api/v1/incidents", json=body, headers=headers, timeout=10)
    replay = requests.post(stack.base + "/api/v1/incidents", json=body, headers=headers, timeout=10)
    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.json() == first.json()
