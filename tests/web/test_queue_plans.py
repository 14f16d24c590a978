"""The queue and the API's ticket listing find their rows through the indexes meant for them (EXPLAIN QUERY PLAN).

Each request runs for real through the Flask test client on a database seeded by
``benchmarks.seed_tickets``; every SELECT it sends is captured and explained. With no
``ANALYZE`` statistics (dashdesk never runs it) SQLite's plans do not depend on how many
rows there are, so 2,000 tickets get the plans that 100,000 get (``benchmarks.desk``).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateIndex

from benchmarks import seed_tickets
from server.app import create_app
from server.migrate import upgrade
from server.models import Ticket

from .conftest import Desk

TOKEN = "plans-admin-token"
NEW_INDEXES = ("ix_tickets_open_due_filters", "ix_tickets_open_assignee", "ix_tickets_status_id")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    data = tmp_path_factory.mktemp("plans")
    seed_tickets.seed(data, 2000, seed=3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DASHDESK_ADMIN_TOKEN", TOKEN)
        app = create_app({"data_dir": str(data)})
    agent = Desk(app, seed_tickets.AGENTS[0], seed_tickets.AGENT_PASSWORD)
    yield app, agent
    app.extensions["dashdesk"].db.close()


def plans_of(app: Any, client: Any, url: str, **headers: str) -> dict[str, str]:
    """Each SELECT on tickets that ``url`` runs, with its query plan as one line."""
    engine = app.extensions["dashdesk"].db.engine
    seen: list[tuple[str, Any]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many):
        if statement.lstrip().startswith("SELECT") and re.search(r"\btickets\b", statement):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        r = client.get(url, headers=headers)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert r.status_code == 200, r.text
    with engine.connect() as conn:
        return {sql: " | ".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params))
                for sql, params in seen}


def no_full_scan_and_sort(plan: str) -> bool:
    steps = plan.split(" | ")
    return not ("SCAN tickets" in steps and "USE TEMP B-TREE FOR ORDER BY" in steps)


def queue_plans(seeded: Any, url: str) -> tuple[str, str | None]:
    """(the page's plan, its count's plan; None when the page ran no count)."""
    app, agent = seeded
    plans = plans_of(app, agent.c, url)
    pages = [p for sql, p in plans.items() if "ORDER BY tickets.priority" in sql]
    counts = [p for sql, p in plans.items() if re.match(r"\s*SELECT count\(\*\)", sql)]
    # Every SELECT on tickets is the page or its count: a count of another shape is not overlooked.
    assert len(pages) == 1 and len(counts) <= 1 and len(plans) == len(pages) + len(counts), plans
    assert all(no_full_scan_and_sort(p) for p in plans.values()), plans
    return pages[0], counts[0] if counts else None


def on_tickets(plan: str | None) -> list[str]:
    """The steps of ``plan`` that read tickets (the others read sites or categories, or the subquery)."""
    assert plan is not None, "the page ran no count"
    return [step for step in plan.split(" | ") if re.match(r"(SCAN|SEARCH) tickets\b", step)]


# Counted on the queue's index alone: no ticket row is read, no closed ticket is met.
ON_FILTERS = ["SCAN tickets USING COVERING INDEX ix_tickets_open_due_filters"]


@pytest.mark.parametrize("url", ["/", "/?partial=1", "/?page=5", "/?status=on_hold", "/?category=network",
                                 "/?q=st-0002", "/?q=Harbour", "/?q=42"])
def test_queue_walks_the_open_queue_index_and_tests_filters_on_it(seeded, url):
    page, _ = queue_plans(seeded, url)
    # In queue order (no sort), each open ticket tested on the index before its row is read.
    assert "USING INDEX ix_tickets_open_due_filters" in page and "TEMP B-TREE" not in page, page


@pytest.mark.parametrize("url", ["/", "/?partial=1", "/?page=5"])
def test_the_whole_queue_is_counted_on_its_index(seeded, url):
    _, count = queue_plans(seeded, url)
    assert on_tickets(count) == ON_FILTERS, count


@pytest.mark.parametrize("url", ["/?status=on_hold", "/?category=network", "/?q=st-0002", "/?q=Harbour", "/?q=42",
                                 "/?q=INC-000042"])
def test_a_filtered_queue_that_fits_its_page_is_not_counted(seeded, url):
    # Fewer than a page of the 2,000 seeded tickets match: the page tells the count. Should it ever run a
    # count here, the test below must check that count's plan.
    _, count = queue_plans(seeded, url)
    assert count is None, count


@pytest.mark.parametrize(("url", "steps"), [
    ("/?status=new", ON_FILTERS),  # a full first page (167 new)
    ("/?status=on_hold&page=3", ON_FILTERS),  # a page past the end of it
    ("/?category=network&page=3", ON_FILTERS),
    ("/?q=st-0002&page=3", ON_FILTERS),
    ("/?q=Harbour&page=3", ON_FILTERS),
    ("/?q=42&page=3", ON_FILTERS),
    ("/?q=INC-000042&page=3", ["SEARCH tickets USING INTEGER PRIMARY KEY (rowid=?)"]),
    ("/?assignee=none", ["SEARCH tickets USING INDEX ix_tickets_open_assignee (assignee=?)"]),
])
def test_a_filtered_queue_past_one_page_is_counted_on_its_index(seeded, url, steps):
    _, count = queue_plans(seeded, url)
    assert on_tickets(count) == steps, count


def test_queue_of_one_priority_seeks_it_in_the_queue_index(seeded):
    page, count = queue_plans(seeded, "/?priority=1")
    assert re.search(r"SEARCH tickets USING (COVERING )?INDEX ix_tickets_open_due\w* \(priority=\?\)", page), page
    assert "TEMP B-TREE" not in page
    assert count is None, count  # 22 tickets: one page
    counted = ["SEARCH tickets USING COVERING INDEX ix_tickets_open_due_filters (priority=?)"]
    for url in ("/?priority=1&page=3", "/?priority=2"):  # past the end; a full first page (207)
        _, count = queue_plans(seeded, url)
        assert on_tickets(count) == counted, (url, count)


def test_assigned_to_me_reads_only_my_open_tickets_in_queue_order(seeded):
    page, count = queue_plans(seeded, "/?assignee=me")
    assert "SEARCH tickets USING INDEX ix_tickets_open_assignee (assignee=?)" in page, page
    assert "TEMP B-TREE" not in page
    assert count is None, count  # 35 tickets: one page
    _, count = queue_plans(seeded, "/?assignee=me&page=3")
    assert on_tickets(count) == ["SEARCH tickets USING INDEX ix_tickets_open_assignee (assignee=?)"], count


def test_one_sites_queue_reads_that_sites_tickets_only(seeded):
    page, count = queue_plans(seeded, "/?site=st-0001")
    assert "SEARCH tickets USING INDEX ix_tickets_site_status (site_id=?)" in page, page
    assert count is None, count  # 12 tickets: one page
    _, count = queue_plans(seeded, "/?site=st-0001&page=3")
    assert on_tickets(count) == ["SEARCH tickets USING INDEX ix_tickets_site_status (site_id=?)"], count


def test_a_ticket_number_is_looked_up_by_its_id(seeded):
    page, _ = queue_plans(seeded, "/?q=INC-000042")
    assert "SEARCH tickets USING INTEGER PRIMARY KEY (rowid=?)" in page, page


def api_plans(seeded: Any, query: str) -> tuple[list[str], str]:
    """(the plans of the statements finding the page's ids, the plan reading its rows)."""
    app, _ = seeded
    plans = plans_of(app, app.test_client(), "/api/v1/tickets" + query, Authorization=f"Bearer {TOKEN}")
    rows = [p for sql, p in plans.items() if "tickets.title" in sql]
    ids = [p for sql, p in plans.items() if "tickets.title" not in sql]
    assert len(rows) == 1 and ids, plans
    # The page's rows by their ids: never a scan.
    assert rows[0].startswith("SEARCH tickets USING INTEGER PRIMARY KEY (rowid=?)"), rows
    assert all(no_full_scan_and_sort(p) for p in plans.values()), plans
    return ids, rows[0]


@pytest.mark.parametrize("query", ["", "?cursor=1500", "?priority=2", "?category=till"])
def test_api_listing_walks_ticket_ids_newest_first(seeded, query):
    (ids,), _ = api_plans(seeded, query)
    assert re.match(r"SCAN tickets( \||$)|SEARCH tickets USING INTEGER PRIMARY KEY \(rowid<\?\)", ids), ids
    assert "TEMP B-TREE" not in ids, ids


@pytest.mark.parametrize("query", ["?status=closed", "?status=on_hold&cursor=1500"])
def test_api_listing_of_one_status_is_a_range_of_its_index(seeded, query):
    (ids,), _ = api_plans(seeded, query)
    assert re.match(r"SEARCH tickets USING COVERING INDEX ix_tickets_status_id \(status=\?( AND (row)?id<\?)?\)",
                    ids), ids
    assert "TEMP B-TREE" not in ids, ids


def test_api_listing_of_open_tickets_merges_each_statuses_newest(seeded):
    (ids,), _ = api_plans(seeded, "?status=open")
    # One range per status, each already newest first; only their few ids are sorted together.
    assert ids.count("SEARCH tickets USING COVERING INDEX ix_tickets_status_id (status=?)") == 3, ids
    assert "SCAN tickets" not in ids.split(" | "), ids


def test_api_listing_of_a_site_and_of_a_device_use_their_indexes(seeded):
    (site,), _ = api_plans(seeded, "?site=st-0001")
    assert "COVERING INDEX ix_tickets_site_status (site_id=?)" in site, site
    (site_status,), _ = api_plans(seeded, "?site=st-0001&status=new")
    assert "ix_tickets_site_status (site_id=? AND status=?)" in site_status and "TEMP" not in site_status
    (device,), _ = api_plans(seeded, "?device_id=st-0001-a")
    assert "ix_tickets_device_id (device_id=?)" in device and "TEMP" not in device, device


def test_the_migration_builds_the_indexes_the_models_declare(tmp_path):
    # Alembic's comparison skips expression indexes: compare the SQL SQLite keeps with the models' own DDL.
    url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        stored = dict(conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'index'").all())
    engine.dispose()
    declared = {ix.name: ix for ix in Ticket.__table__.indexes}
    for name in NEW_INDEXES:
        ddl = str(CreateIndex(declared[name]).compile(dialect=sqlite.dialect()))
        assert " ".join(stored[name].split()) == " ".join(ddl.split()), name
