"""What ``benchmarks.seed_tickets`` writes is a desk the app reads: the queue, the API and ticket pages answer."""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from datetime import datetime, timezone

import pytest

from benchmarks import seed_tickets
from server.app import create_app

from .conftest import Desk

TOKEN = "seeded-admin-token"
API = {"Authorization": f"Bearer {TOKEN}"}
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    data = tmp_path_factory.mktemp("seeded")
    result = seed_tickets.seed(data, 2000, seed=5)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DASHDESK_ADMIN_TOKEN", TOKEN)
        app = create_app({"data_dir": str(data)})
    yield app, result
    app.extensions["dashdesk"].db.close()


def test_the_seed_writes_the_tickets_asked_for_with_a_realistic_mix(seeded):
    _, result = seeded
    assert result.tickets == 2000 and sum(result.statuses.values()) == 2000
    assert result.open_tickets == 400  # --open-share 0.2
    assert result.statuses["closed"] > result.statuses["resolved"] > result.statuses["cancelled"] > 0
    assert all(result.statuses[s] for s in ("new", "in_progress", "on_hold"))
    assert 0 < result.open_tickets - result.queue < 20  # a few test tickets stay out of the queue
    assert result.presses >= result.tickets and result.events > result.presses


def test_the_queue_shows_the_seeded_open_tickets(seeded):
    app, result = seeded
    agent = Desk(app, seed_tickets.AGENTS[0], seed_tickets.AGENT_PASSWORD)
    page = agent.c.get("/")
    assert page.status_code == 200
    assert f"{result.queue} open tickets, showing 1–100" in page.text
    assert len(re.findall(r'class="num">INC-\d+<', page.text)) == 100
    mine = agent.c.get("/?assignee=me")
    assert mine.status_code == 200 and "Nothing open" not in mine.text
    for url in ("/?page=3", "/?partial=1", "/?status=on_hold", "/?site=st-0001", "/?q=st-0002", "/?category=till"):
        assert agent.c.get(url).status_code == 200, url


def api_ids(app, **query) -> list[tuple[int, str]]:
    """(id, status) of every ticket the listing gives, page after page."""
    client = app.test_client()
    out: list[tuple[int, str]] = []
    cursor = None
    while True:
        r = client.get("/api/v1/tickets", query_string={**query, **({"cursor": cursor} if cursor else {})},
                       headers=API)
        assert r.status_code == 200, r.text
        body = r.get_json()
        out += [(t["id"], t["status"]) for t in body["items"]]
        cursor = body["next"]
        if cursor is None:
            return out


def test_the_api_lists_every_seeded_ticket_once_with_its_status(seeded):
    app, result = seeded
    db = sqlite3.connect(result.path)
    try:
        tests = db.execute("SELECT count(*) FROM tickets WHERE is_test").fetchone()[0]
        open_tests = db.execute("SELECT count(*) FROM tickets WHERE is_test AND status IN ('new', 'in_progress', "
                                "'on_hold')").fetchone()[0]
    finally:
        db.close()
    everything = api_ids(app, limit=500, include_tests=1)
    ids = [i for i, _ in everything]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 2000
    assert Counter(status for _, status in everything) == result.statuses
    assert len(api_ids(app, limit=500)) == 2000 - tests > 1900  # test tickets are left out by default
    open_ids = [i for i, _ in api_ids(app, status="open", limit=150)]
    assert open_ids == sorted(open_ids, reverse=True) and len(open_ids) == result.open_tickets - open_tests


def test_ticket_pages_of_every_status_open(seeded):
    app, result = seeded
    agent = Desk(app, seed_tickets.AGENTS[1], seed_tickets.AGENT_PASSWORD)
    db = sqlite3.connect(result.path)
    try:
        picks = db.execute("SELECT status, min(id), max(id) FROM tickets GROUP BY status").fetchall()
    finally:
        db.close()
    assert len(picks) == 6
    for status, first, last in picks:
        for ticket_id in (first, last):
            page = agent.c.get(f"/tickets/{ticket_id}")
            assert page.status_code == 200 and f"INC-{ticket_id:06d}" in page.text, (status, ticket_id)
            detail = app.test_client().get(f"/api/v1/tickets/{ticket_id}", headers=API).get_json()
            assert detail["status"] == status and detail["presses"] and detail["history"]
            assert detail["history"][0]["kind"] == "ticket.created"


def test_the_same_seed_writes_the_same_rows(tmp_path):
    dumps = []
    for name in ("a", "b"):
        result = seed_tickets.seed(tmp_path / name, 200, seed=9, sites=20, now=NOW)
        db = sqlite3.connect(result.path)
        try:
            dumps.append([db.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
                          for table in ("sites", "devices", "tickets", "presses", "events")])
            latest = db.execute("SELECT max(created_at) FROM events").fetchone()[0]
        finally:
            db.close()
        assert latest < "2026-11-20 12:00:00"  # nothing happens after --now
    assert dumps[0] == dumps[1]
