"""Idempotency per device: a press is its device's event_id. Through the API on a real SQLite database, on both
press paths (sqlite3's cursor and the session)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from dashdesk import wire
from server.domain import incidents
from server.models import Press

from .test_incidents import app, press  # noqa: F401  (the app fixture: both press paths)


def place(client: Any, device: str, site: str, **buttons: str) -> None:
    """``device`` in ``site``, its buttons mapped to categories (b1="printer", ...)."""
    assert client.post("/api/v1/devices", json={"device_id": device, "site": site}).status_code in (200, 201)
    for button, category in buttons.items():
        assert client.put(f"/api/v1/devices/{device}/buttons/{button}", json={"category": category}).status_code == 200


def ticket(client: Any, tid: int) -> dict[str, Any]:
    r = client.get(f"/api/v1/tickets/{tid}")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def presses_of(app: Any) -> list[tuple[str, str, str]]:
    with app.extensions["dashdesk"].db.read() as s:
        return [tuple(r) for r in s.execute(select(Press.device_id, Press.event_id, Press.result).order_by(Press.id))]


# ---------------------------------------------------------------- idempotency per device


def test_the_same_event_id_from_another_device_is_a_press_of_that_device(app, client):
    first = press(client, device="till-1", event_id="e-1")
    other = press(client, device="till-2", event_id="e-1")
    # till-2's own press: its own ticket (unplaced devices are scopes of their own), not till-1's answer
    assert first["result"] == other["result"] == "created"
    assert other["ticket"]["id"] != first["ticket"]["id"] and other["event_id"] == "e-1"
    assert ticket(client, other["ticket"]["id"])["device_id"] == "till-2"
    assert client.get("/api/v1/devices/till-2").get_json()["status"] == "pending"  # registered by its press
    # a replay from each device is still its own first answer, and counts nothing
    assert press(client, device="till-1", event_id="e-1") == first
    assert press(client, device="till-2", event_id="e-1") == other
    assert presses_of(app) == [("till-1", "e-1", "created"), ("till-2", "e-1", "created")]


def test_the_same_event_id_from_two_devices_of_a_site_is_two_reports_of_one_ticket(app, client):
    place(client, "hs-a", "hs-01", b1="printer")
    place(client, "hs-b", "hs-01", b1="printer")
    first = press(client, device="hs-a", event_id="e-2")
    second = press(client, device="hs-b", event_id="e-2")
    assert (first["result"], second["result"]) == ("created", "merged")
    assert second["ticket"]["id"] == first["ticket"]["id"]
    t = ticket(client, first["ticket"]["id"])
    assert t["occurrences"] == 2 and [(p["device_id"], p["event_id"]) for p in t["presses"]] == [
        ("hs-a", "e-2"), ("hs-b", "e-2")]


def test_a_batch_is_idempotent_per_device(app, client):
    now = wire.format_time(wire.utcnow())

    def item(device: str, event_id: str) -> dict[str, Any]:
        return {"event_id": event_id, "device_id": device, "button": "b1", "press": "single", "pressed_at": now}

    r = client.post("/api/v1/incidents/batch", json={"items": [item("d-1", "e-3"), item("d-2", "e-3"),
                                                               item("d-1", "e-3")]})
    assert r.status_code == 200, r.get_json()
    a, b, again = r.get_json()["items"]
    assert (a["result"], b["result"]) == ("created", "created") and a["ticket"]["id"] != b["ticket"]["id"]
    assert again == a  # the same device's event_id again, in the same batch: the first answer
    assert presses_of(app) == [("d-1", "e-3", "created"), ("d-2", "e-3", "created")]


def test_a_press_that_loses_the_race_answers_its_own_devices_stored_answer(app, client, monkeypatch):
    """The fallback after a unique-key race (PostgreSQL, which has no IMMEDIATE transactions) reads the
    answer stored for this device's event_id, not another device's with the same event_id."""
    mine = press(client, device="d-2", event_id="e-4")
    press(client, device="d-1", event_id="e-4")  # another device's, stored after
    raced = wire.IncidentBody("e-4", "d-2", "b1", "single", wire.utcnow(), None, {})
    # as if the look-up had run before the other request committed the same press
    monkeypatch.setattr(incidents, "_once", lambda s, x, p, settings: (incidents._apply(s, x, p, settings), True))
    [(answer, first_time)] = incidents.handle_presses(app.extensions["dashdesk"].db, [raced],
                                                      app.extensions["dashdesk"].settings)
    assert (answer, first_time) == (mine, False)
    assert len(presses_of(app)) == 2
