"""What a press writes to ``tickets``: the same rows as ever, through statements that leave the queue's
indexes alone unless the press changes what they hold.

SQLite rewrites an entry in every index that holds a column an UPDATE names in its SET (whether or not
the value changes), and the queue's indexes (migrations 0001-0006) hold status, priority and the SLA
deadlines. A press that merges into an open ticket changes none of them; a reopen and a priority raise
(a long press) have statements of their own.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from dashdesk import wire
from server.app import create_app
from server.models import Ticket

from .conftest import TOKEN

T0 = wire.parse_time("2026-11-23T10:00:00.250Z")
GOLDEN = Path(__file__).with_name("press_writes_golden.json")


class Clock:
    """The server's clock in these tests: it says what the test sets it to."""

    def __init__(self) -> None:
        self.now = T0

    def at(self, seconds: float) -> None:
        self.now = T0 + timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(wire, "utcnow", lambda: c.now)
    return c


def make_app(tmp_path: Path, monkeypatch: Any, fast: bool) -> Any:
    monkeypatch.setenv("DASHDESK_ADMIN_TOKEN", TOKEN)
    return create_app({"data_dir": str(tmp_path / ("fast" if fast else "session")),
                       "server": {"reopen_window_s": 3600, "sqlite_fast_path": fast}})


def client_of(app: Any) -> Any:
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"
    return c


def press(client: Any, clock: Clock, device: str = "shop-1", button: str = "b1", kind: str = "single",
          pressed_before_s: float = 0, **extra: Any) -> dict[str, Any]:
    body = {"event_id": f"e-{uuid.uuid4().hex[:12]}", "device_id": device, "button": button, "press": kind,
            "pressed_at": wire.format_time(clock.now - timedelta(seconds=pressed_before_s)), **extra}
    r = client.post("/api/v1/incidents", json=body)
    assert r.status_code in (200, 201), r.get_json()
    return r.get_json()


def patch(client: Any, ticket_id: int, **body: Any) -> None:
    r = client.patch(f"/api/v1/tickets/{ticket_id}", json=body)
    assert r.status_code == 200, r.get_json()


def two_devices_in_a_site(c: Any) -> None:
    """shop-1 and shop-2 at High Street: b1 reports the printer (P3), b2 the till (P2)."""
    for device in ("shop-1", "shop-2"):
        assert c.post("/api/v1/devices", json={"device_id": device, "site": "hs-01",
                                               "site_name": "High Street"}).status_code == 201
        assert c.put(f"/api/v1/devices/{device}/buttons/b1", json={"category": "printer"}).status_code == 200
        assert c.put(f"/api/v1/devices/{device}/buttons/b2", json={"category": "till"}).status_code == 200


def play(app: Any, clock: Clock) -> list[str]:
    """Every kind of press a ticket meets, with agents' changes between them; returns the results."""
    c = client_of(app)
    two_devices_in_a_site(c)
    out = []

    def step(at: float, **kw: Any) -> int:
        clock.at(at)
        answer = press(c, clock, **kw)
        out.append(answer["result"])
        return answer["ticket"]["id"] if answer.get("ticket") else 0

    printer = step(0)                                               # created, P3
    step(10, telemetry={"battery_pct": 50})                         # merged, new telemetry
    step(20, device="shop-2")                                       # merged, a second device
    step(30, pressed_before_s=300)                                  # merged, late: reported earlier
    clock.at(40)
    patch(c, printer, status="on_hold")
    step(100, kind="long")                                          # merged, raised to P2 while on hold
    clock.at(160)
    patch(c, printer, status="in_progress")
    step(170, kind="long")                                          # merged, already P2
    clock.at(180)
    patch(c, printer, status="resolved")
    step(240)                                                       # reopened
    step(250)                                                       # merged
    till = step(300, button="b2")                                   # created, P2
    step(302, device="shop-2", button="b2")                         # merged
    step(304, device="shop-2", button="b2", kind="double")          # cancels that merge (b2's last report)
    clock.at(310)
    patch(c, till, status="resolved")
    step(320, button="b2", kind="long")                             # reopened and raised to P1
    clock.at(330)
    patch(c, till, priority=3)
    step(340, button="b2")                                          # merged, raised to P2 again
    assert c.patch("/api/v1/devices/shop-2", json={"test_mode": True}).status_code == 200
    step(400, device="shop-2")                                      # a test ticket
    step(410, device="shop-2")                                      # merged into it
    return out


def stored(app: Any) -> dict[str, list[list[Any]]]:
    """Every row a press may write, as SQLite holds it."""
    with app.extensions["dashdesk"].db.engine.connect() as conn:
        def rows(sql: str) -> list[list[Any]]:
            return [list(r) for r in conn.execute(text(sql))]

        return {"tickets": rows("SELECT * FROM tickets ORDER BY id"),
                "presses": rows("SELECT event_id IS NOT NULL, device_id, button, press, pressed_at, received_at, "
                                "late, ticket_id, result, reason, cancelled, telemetry FROM presses ORDER BY id"),
                "events": rows("SELECT kind, ticket_id, devices, actor, created_at, "
                               "json_remove(data, '$.event_id') FROM events ORDER BY id")}


@pytest.mark.parametrize("fast", [True, False], ids=["sqlite-cursor", "session"])
def test_presses_store_the_same_rows_as_before(tmp_path, monkeypatch, clock, fast):
    """The rows a run of presses and agents' changes leaves, as the press path stored them before its
    statements were split (press_writes_golden.json), on both paths.

    One change since: the long press that raised the printer ticket while it was on hold counted that
    hold into its deadlines, and leaving the hold moved them by the whole hold again (respond_by 10:33,
    resolve_by 18:03, a minute late); the hold now counts once (``rules.sla_start``). And a reopen clears
    ``touched`` (no agent has handled the reopened ticket yet, so its presser may withdraw it): the printer
    ticket, reopened at 240 s and only pressed since, is untouched (the till ticket is touched again by the
    agent's priority change at 330 s). And a double press withdraws the last report of its own button: the
    cancel at 304 s is shop-2's b2 (the button that made the report it withdraws), where it was b1 when a double
    press withdrew the device's last report, whichever button made it; the rows are the same but that one."""
    app = make_app(tmp_path, monkeypatch, fast)
    results = play(app, clock)
    assert results == ["created", "merged", "merged", "merged", "merged", "merged", "reopened", "merged",
                       "created", "merged", "cancelled", "reopened", "merged", "created", "merged"]
    got = json.loads(json.dumps(stored(app)))
    app.extensions["dashdesk"].db.close()
    assert got == json.loads(GOLDEN.read_text())


def indexed_columns(app: Any) -> set[str]:
    """The columns of ``tickets`` that some index of it holds (in its key, expression or WHERE)."""
    with app.extensions["dashdesk"].db.engine.connect() as conn:
        sqls = list(conn.execute(text("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tickets' "
                                      "AND sql IS NOT NULL")).scalars())
    return {c for c in Ticket.__table__.columns.keys() if any(re.search(rf"\b{c}\b", sql) for sql in sqls)}


def columns_set_by(app: Any, action: Any) -> set[str]:
    """The ``tickets`` columns the UPDATE statements that ``action()`` prepares name in their SET.

    SQLite asks an authorizer about each column an UPDATE sets as it prepares the statement; the
    connections are made anew first, so that every statement of ``action`` is prepared while it listens.
    """
    engine = app.extensions["dashdesk"].db.engine
    seen: set[str] = set()

    def authorizer(code: int, table: str | None, column: str | None, *_: Any) -> int:
        if code == 23 and table == "tickets":  # SQLITE_UPDATE
            seen.add(column or "")
        return 0  # SQLITE_OK

    def listen(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.set_authorizer(authorizer)

    engine.dispose()
    event.listen(engine, "connect", listen)
    try:
        action()
    finally:
        event.remove(engine, "connect", listen)
        engine.dispose()
    return seen


@pytest.mark.parametrize("fast", [True, False], ids=["sqlite-cursor", "session"])
def test_a_merging_press_names_no_column_an_index_holds(tmp_path, monkeypatch, clock, fast):
    app = make_app(tmp_path, monkeypatch, fast)
    c = client_of(app)
    indexed = indexed_columns(app)
    # what the queue's indexes are made of, as the migrations left them
    assert {"status", "priority", "respond_by", "resolve_by", "responded_at", "is_test", "site_id"} <= indexed
    two_devices_in_a_site(c)
    tid = press(c, clock)["ticket"]["id"]

    def merge(**kw: Any) -> None:
        clock.now += timedelta(seconds=10)
        assert press(c, clock, **kw)["result"] == "merged"

    merged = columns_set_by(app, lambda: merge(telemetry={"battery_pct": 40}))
    assert merged and merged.isdisjoint(indexed), merged & indexed
    assert merged == {"occurrences", "updated_at", "last_reported_at", "telemetry"}
    late = columns_set_by(app, lambda: merge(pressed_before_s=600, device="shop-2"))
    assert late == {"occurrences", "updated_at", "last_reported_at", "first_reported_at", "devices"}

    # a long press more urgent than the ticket: priority and deadlines, no more
    raised = columns_set_by(app, lambda: merge(kind="long"))
    assert raised - merged == {"priority", "respond_by", "resolve_by"}
    patch(c, tid, status="resolved")

    def reopen() -> None:
        clock.now += timedelta(seconds=10)
        assert press(c, clock)["result"] == "reopened"

    reopened = columns_set_by(app, reopen)
    assert reopened - merged == {"status", "resolved_at", "reopen_count", "touched"}
    app.extensions["dashdesk"].db.close()
