"""The API does what its OpenAPI document says, case by case (tests/integration/test_openapi_conformance.py
has schemathesis look for more): JSON types as JSON has them, empty query parameters, `PATCH {}`, 405 with
`Allow`, paged presses and history of a ticket, and a document that lists every answer."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from server.models import AuditLog, Event, Press

NOW = "2026-11-23T08:15:02.120Z"


def presses(client, count, device="stuck-1", button="b1"):
    """``count`` presses of one button (they merge into one ticket); its id."""
    ticket = None
    for start in range(0, count, 500):
        items = [{"event_id": uuid.uuid4().hex, "device_id": device, "button": button, "pressed_at": NOW,
                  "seq": i, "telemetry": {"battery_pct": 80}} for i in range(start, min(count, start + 500))]
        r = client.post("/api/v1/incidents/batch", json={"items": items})
        assert r.status_code == 200, r.get_json()
        ticket = r.get_json()["items"][0]["ticket"]["id"]
    return ticket


def audit_count(app):
    with app.extensions["dashdesk"].db.read() as s:
        return s.scalar(select(func.count()).select_from(AuditLog))


# ------------------------------------------------------------------ JSON types


@pytest.mark.parametrize("method, path, body, field", [
    ("PATCH", "/api/v1/users/admin", {"active": 0}, "active"),
    ("PATCH", "/api/v1/devices/dev-1", {"test_mode": 0}, "test_mode"),
    ("PATCH", "/api/v1/devices/dev-1", {"test_mode": "true"}, "test_mode"),
    ("POST", "/api/v1/devices/dev-1/status", {"online": 1}, "online"),
    ("PATCH", "/api/v1/categories/printer", {"reopen_window_min": 2.6e-42}, "reopen_window_min"),
    ("PATCH", "/api/v1/categories/printer", {"priority": "2"}, "priority"),
    ("PATCH", "/api/v1/categories/printer", {"priority": True}, "priority"),
    ("PATCH", "/api/v1/tickets/1", {"priority": 1.5}, "priority"),
    ("POST", "/api/v1/incidents", {"event_id": "e-1", "device_id": "dev-1", "button": "b1", "pressed_at": NOW,
                                   "seq": "7"}, "seq"),
    # a pattern is the whole value: Python's `$` would also take one ending in a new line
    ("POST", "/api/v1/incidents", {"event_id": "e-1", "device_id": "dev-1\n", "button": "b1", "pressed_at": NOW},
     "device_id"),
    ("PUT", "/api/v1/devices/dev-1/buttons/b1", {"category": "printer\n"}, "category"),
])
def test_a_json_value_of_another_type_is_400_and_changes_nothing(app, client, method, path, body, field):
    presses(client, 1, device="dev-1")  # the device, and ticket 1
    before = audit_count(app)
    r = client.open(path, method=method, json=body)
    assert r.status_code == 400 and field in r.get_json()["error"]["detail"]["json"], r.get_json()
    assert audit_count(app) == before
    with app.extensions["dashdesk"].db.read() as s:
        assert s.scalar(select(func.count()).select_from(Press)) == 1


def test_a_whole_number_written_with_a_fraction_of_zero_is_that_number(client):
    r = client.patch("/api/v1/categories/printer", json={"reopen_window_min": 30.0, "priority": 2.0})
    assert r.status_code == 200 and (r.get_json()["reopen_window_min"], r.get_json()["priority"]) == (30, 2)


# ------------------------------------------------------------------ query parameters


def test_an_empty_query_parameter_is_one_not_given(client):
    ticket = presses(client, 1)
    for query in ("status=", "status=&limit=", "category=&site=&device_id=&priority=&cursor=&include_tests="):
        r = client.get(f"/api/v1/tickets?{query}")
        assert r.status_code == 200 and [t["id"] for t in r.get_json()["items"]] == [ticket], (query, r.get_json())
    assert client.get("/api/v1/devices?status=&site=&broker_account=").status_code == 200
    assert client.get("/api/v1/events?after=&limit=&with_tickets=").status_code == 200


@pytest.mark.parametrize("query", ["status=new&status=open", "limit=5&limit=x", "limit=%D9%A3", "limit=+5",
                                   "limit=5_0", "status=%09new", "include_tests=maybe"])
def test_a_query_parameter_given_twice_or_not_as_documented_is_400(client, query):
    r = client.get(f"/api/v1/tickets?{query}")
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "bad_request", r.get_json()


def test_statuses_may_have_spaces_around_their_commas(client):
    presses(client, 1)
    assert len(client.get("/api/v1/tickets?status=new%20,%20in_progress").get_json()["items"]) == 1


# ------------------------------------------------------------------ PATCH {}


def test_patch_with_nothing_to_change_answers_the_thing_as_it_is(app, client):
    ticket = presses(client, 1, device="dev-1")
    client.post("/api/v1/sites", json={"code": "shop-1", "name": "Shop 1"})
    client.post("/api/v1/users", json={"username": "admin", "role": "admin"})
    with app.extensions["dashdesk"].db.read() as s:
        events = s.scalar(select(func.count()).select_from(Event))
    audits = audit_count(app)
    for path in (f"/api/v1/tickets/{ticket}", "/api/v1/categories/printer", "/api/v1/sites/shop-1",
                 "/api/v1/users/admin", "/api/v1/devices/dev-1"):
        before = client.get(path).get_json() if not path.startswith("/api/v1/categories") else None
        r = client.patch(path, json={})
        assert r.status_code == 200, (path, r.get_json())
        if before is not None:
            assert r.get_json() == {k: v for k, v in before.items() if k in r.get_json()}, path
        assert client.patch(path).status_code == 200, path  # no body at all: the same
    with app.extensions["dashdesk"].db.read() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == events
    assert audit_count(app) == audits


# ------------------------------------------------------------------ 404 and 405


def test_an_unknown_devices_tickets_are_404(client):
    assert client.get("/api/v1/devices/nobody/tickets").status_code == 404
    presses(client, 1, device="dev-1")
    r = client.get("/api/v1/devices/dev-1/tickets")
    assert r.status_code == 200 and len(r.get_json()["tickets"]) == 1


@pytest.mark.parametrize("method, path, allowed", [
    ("TRACE", "/api/v1/tickets", {"GET"}),
    ("DELETE", "/api/v1/tickets/1", {"GET", "PATCH"}),
    ("PUT", "/api/v1/categories", {"GET", "POST"}),
    # the API's own paths where a device id or a site code could be: no device or site of that name
    ("GET", "/api/v1/devices/register", {"POST"}),
    ("PATCH", "/api/v1/devices/copy-mapping", {"POST"}),
    ("GET", "/api/v1/sites/import", {"POST"}),
])
def test_a_method_a_path_does_not_take_is_405_with_allow(client, method, path, allowed):
    r = client.open(path, method=method)
    assert r.status_code == 405 and r.get_json()["error"]["code"] == "method_not_allowed"
    assert set(r.headers["Allow"].replace(" ", "").split(",")) - {"HEAD", "OPTIONS"} == allowed


# ------------------------------------------------------------------ a ticket's presses and history, paged


def test_a_ticket_answers_its_newest_presses_and_history_with_totals_and_a_cursor(client):
    ticket = presses(client, 120)
    first = client.get(f"/api/v1/tickets/{ticket}").get_json()
    assert first["occurrences"] == first["presses_total"] == 120 and len(first["presses"]) == 50
    assert [p["seq"] for p in first["presses"]] == list(range(70, 120))  # the newest, oldest first
    assert first["history_total"] == 120 and len(first["history"]) == 50  # created, then 119 merges
    seen, page = [], first
    while True:
        seen[:0] = [p["seq"] for p in page["presses"]]
        if page["presses_next"] is None:
            break
        page = client.get(f"/api/v1/tickets/{ticket}?presses_limit=30&presses_before={page['presses_next']}"
                          ).get_json()
        assert page["presses_total"] == 120
    assert seen == list(range(120))
    kinds, page = [], first
    while page["history_next"] is not None:
        page = client.get(f"/api/v1/tickets/{ticket}?history_before={page['history_next']}&history_limit=500"
                          ).get_json()
        kinds[:0] = [e["kind"] for e in page["history"]]
    assert kinds[0] == "ticket.created" and len(kinds) == 70
    small = client.get(f"/api/v1/tickets/{ticket}?presses_limit=1&history_limit=1").get_json()
    assert [p["seq"] for p in small["presses"]] == [119] and small["history"][0]["kind"] == "ticket.merged"
    for query in ("presses_limit=0", "presses_limit=501", "history_before=x", "presses_before=-1"):
        assert client.get(f"/api/v1/tickets/{ticket}?{query}").status_code == 400, query


def test_a_ticket_with_few_presses_answers_them_all_as_before(client):
    ticket = presses(client, 3)
    t = client.get(f"/api/v1/tickets/{ticket}").get_json()
    assert [p["seq"] for p in t["presses"]] == [0, 1, 2] and t["presses_next"] is None and t["presses_total"] == 3
    assert [e["kind"] for e in t["history"]] == ["ticket.created", "ticket.merged", "ticket.merged"]
    assert t["history_next"] is None and t["history_total"] == 3


# ------------------------------------------------------------------ the document


def test_the_document_lists_every_answer_with_the_error_body(app, client):
    doc = client.get("/api/v1/openapi.json").get_json()
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert doc["components"]["schemas"]["ErrorBody"]["required"] == ["code", "message"]
    routes = {(m.lower(), r.rule) for r in app.url_map.iter_rules()
              if (r.rule.startswith("/api/v1/") or r.rule == "/healthz")
              and r.endpoint not in ("openapi.spec", "openapi.docs", "api_docs.docs") for m in r.methods - {"HEAD", "OPTIONS"}}
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert len(routes) == len(documented) > 40
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            responses = op["responses"]
            for code, response in responses.items():
                if code >= "400" and path != "/healthz":
                    assert response["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/Error"}, (method, path, code)
            if op.get("security"):
                assert "401" in responses, (method, path)
            if "requestBody" in op:
                assert {"400", "413"} <= set(responses), (method, path)
            for param in op.get("parameters", []):
                if param["in"] == "query":
                    assert param["allowEmptyValue"] is True, (method, path, param["name"])
    ops = doc["paths"]
    assert "403" in ops["/api/v1/tickets"]["get"]["responses"]  # a bridge token may not
    assert "403" not in ops["/api/v1/incidents"]["post"]["responses"]  # ... but hands over presses
    assert ops["/api/v1/devices"]["post"]["requestBody"]["required"] is True
    assert not ops["/api/v1/tickets/{ticket_id}"]["patch"]["requestBody"].get("required")  # {} is fine
    assert {"200", "201", "422"} <= set(ops["/api/v1/categories"]["post"]["responses"])
    assert "409" in ops["/api/v1/devices/{device_id}/reject"]["post"]["responses"]
    assert "415" in ops["/api/v1/sites/import"]["post"]["responses"]
    assert ops["/api/v1/sites/import"]["post"]["requestBody"]["content"]["text/csv"]
    assert "503" in ops["/healthz"]["get"]["responses"]
    ticket = ops["/api/v1/tickets/{ticket_id}"]["get"]
    assert {p["name"] for p in ticket["parameters"]} >= {"presses_limit", "presses_before", "history_limit",
                                                          "history_before"}
    assert ops["/api/v1/categories"]["post"]["responses"]["201"]["links"]["ChangeCategory"]["parameters"] == {
        "slug": "$response.body#/slug"}


def test_an_empty_configuration_file_is_refused_not_taken_for_one_of_nothing(client):
    r = client.post("/api/v1/config/import?prune=true", data=b"", content_type="application/toml")
    assert r.status_code == 422 and "empty" in str(r.get_json()["error"])
    assert client.get("/api/v1/categories").get_json()["items"]  # nothing pruned
