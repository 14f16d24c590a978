"""The queue: open tickets only, most urgent first, filters, one page of rows in a constant number of queries."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import event, update

from server.models import Ticket

from .conftest import api, press


def place(app, device, site, site_name=None, button_category=None):
    r = api(app, "POST", "/api/v1/devices", json={"device_id": device, "site": site, "site_name": site_name or site})
    assert r.status_code in (200, 201), r.text
    if button_category:
        assert api(app, "PUT", f"/api/v1/devices/{device}/buttons/b1",
                   json={"category": button_category}).status_code == 200


def numbers(html):
    return [int(n) for n in re.findall(r'class="num">INC-(\d+)<', html)]


def shift(app, ticket_id, minutes):
    """Move a ticket's clock back, as if it had been reported ``minutes`` ago."""
    with app.extensions["dashdesk"].db.write() as s:
        t = s.get(Ticket, ticket_id)
        d = timedelta(minutes=minutes)
        s.execute(update(Ticket).where(Ticket.id == ticket_id).values(
            created_at=t.created_at - d, first_reported_at=t.first_reported_at - d,
            respond_by=t.respond_by - d, resolve_by=t.resolve_by - d))


def test_queue_orders_by_priority_then_the_deadline_nearest_to_breach(app, ann):
    place(app, "d-print", "shop-1", button_category="printer")   # P3
    place(app, "d-till", "shop-1", button_category="till")       # P2
    place(app, "d-till2", "shop-2", button_category="till")      # P2
    place(app, "d-other", "shop-3")                              # unmapped: other, P4
    other = press(app, device_id="d-other")["ticket"]["id"]
    printer = press(app, device_id="d-print")["ticket"]["id"]
    till_late = press(app, device_id="d-till")["ticket"]["id"]
    till_early = press(app, device_id="d-till2")["ticket"]["id"]
    urgent = press(app, device_id="d-print", press="long")["ticket"]["id"]  # merged into printer: now P2
    assert urgent == printer
    shift(app, till_early, 20)  # 10 of its 30 minutes to respond left
    # printer's deadlines count from its first press, made before till_late's
    assert numbers(ann.c.get("/").text) == [till_early, printer, till_late, other]
    # once someone responded, the resolve deadline (8 h) is what counts: it goes behind the others of P2
    ann.act(till_early, "take")
    assert numbers(ann.c.get("/").text) == [printer, till_late, till_early, other]


def test_queue_row_shows_what_an_agent_needs(app, ann):
    place(app, "d-print", "shop-9", site_name="Main Street", button_category="printer")
    tid = press(app, device_id="d-print")["ticket"]["id"]
    press(app, device_id="d-print")
    shift(app, tid, 100)  # 20 of 120 minutes to respond left: a warning
    html = ann.c.get("/").text
    row = html[html.index(f'data-id="{tid}"'):]
    row = row[:row.index("</tr>")]
    for text in (f"INC-{tid:06d}", "🖨", "Printer", "shop-9", "Main Street", "d-print", "×2", "new",
                 "sla-warn", "1 h 40 min"):
        assert text in row, text
    assert re.search(r">(19|20) min to respond<", row), row
    shift(app, tid, 30)
    assert "respond overdue by 10 min" in ann.c.get("/").text and "sla-breached" in ann.c.get("/").text


def test_closed_resolved_cancelled_and_test_tickets_stay_out(app, ann):
    ids = [press(app, device_id=f"d-{i}")["ticket"]["id"] for i in range(5)]
    ann.act(ids[0], "resolve", resolution="done")
    ann.act(ids[1], "cancel")
    ann.act(ids[2], "close")
    with app.extensions["dashdesk"].db.write() as s:
        s.execute(update(Ticket).where(Ticket.id == ids[3]).values(is_test=True))
    html = ann.c.get("/").text
    assert numbers(html) == [ids[4]]
    assert "1 open ticket" in html


def test_filters(app, ann):
    place(app, "d-print", "north", site_name="North Mall", button_category="printer")
    place(app, "d-till", "south", site_name="South Park", button_category="till")
    printer = press(app, device_id="d-print")["ticket"]["id"]
    till = press(app, device_id="d-till")["ticket"]["id"]
    other = press(app, device_id="loose-device")["ticket"]["id"]
    ann.act(till, "take")
    ann.act(other, "hold", reason="waiting")

    def q(query):
        return sorted(numbers(ann.c.get("/?" + query).text))

    assert q("") == sorted([printer, till, other])
    assert q("status=new") == [printer]
    assert q("status=on_hold") == [other]
    assert q("category=till") == [till]
    assert q("site=north") == [printer]
    assert q("priority=2") == [till]
    assert q("assignee=me") == [till]
    assert q("assignee=none") == sorted([printer, other])
    assert q(f"q=INC-{till:06d}") == [till]
    assert q(f"q={other}") == [other]
    assert q("q=north+mall") == [printer]  # site name, any case
    assert q("q=south") == [till]         # site code
    assert q("q=loose") == [other]        # device id
    assert q("q=%25") == []               # LIKE wildcards are searched for, not expanded
    assert q("category=till&site=north") == []
    assert q("status=bogus&priority=9") == sorted([printer, till, other])  # ignored, not an error
    assert "Nothing open matches these filters." in ann.c.get("/?category=network").text


def test_partial_is_the_table_alone_with_the_same_filters(app, ann):
    place(app, "d-till", "south", button_category="till")
    till = press(app, device_id="d-till")["ticket"]["id"]
    other = press(app, device_id="loose")["ticket"]["id"]
    r = ann.c.get("/?partial=1&category=till")
    assert r.status_code == 200 and "<html" not in r.text
    assert numbers(r.text) == [till] and other
    assert r.headers["Cache-Control"] == "no-store"
    page = ann.c.get("/?category=till").text
    assert 'data-partial="/?category=till&amp;partial=1"' in page


def test_pages_of_100(app, ann):
    db = app.extensions["dashdesk"].db
    first_id = press(app)["ticket"]["id"]
    with db.write() as s:
        src = s.get(Ticket, first_id)
        for i in range(130):
            s.add(Ticket(**{c.name: getattr(src, c.key) for c in Ticket.__table__.columns if c.name != "id"}))
    first = ann.c.get("/").text
    assert len(numbers(first)) == 100 and "131 open tickets, showing 1–100" in first and 'rel="next"' in first
    second = ann.c.get("/?page=1").text
    assert len(numbers(second)) == 31 and 'rel="prev"' in second and 'rel="next"' not in second
    assert set(numbers(first)).isdisjoint(numbers(second))


def test_the_queue_costs_the_same_few_queries_for_any_number_of_rows_and_uses_its_index(app, ann):
    db = app.extensions["dashdesk"].db
    statements: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    def page_queries():
        statements.clear()
        event.listen(db.engine, "before_cursor_execute", record)
        try:
            assert ann.c.get("/").status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
        return [s for s, _ in statements if s.startswith("SELECT")]

    for i in range(3):
        press(app, device_id=f"few-{i}")
    few = page_queries()
    for i in range(40):
        place(app, f"many-{i}", f"site-{i}")
        press(app, device_id=f"many-{i}")
    many = page_queries()
    # the signed-in user, the page of rows, its count, the categories and sites of the filters
    assert len(many) == len(few) == 5, many
    queue_sql, params = next((s, p) for s, p in statements if "ORDER BY tickets.priority" in s)
    assert "JOIN categories" in queue_sql and "JOIN sites" in queue_sql
    with db.engine.connect() as conn:
        plan = " | ".join(r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + queue_sql, params))
    assert "USING INDEX ix_tickets_open_due_filters" in plan, plan  # migration 0004's covering queue index
    assert "TEMP B-TREE" not in plan, plan  # rows come in the index's order: no sort of the whole queue


def test_the_migrations_build_the_queue_index_the_queries_match_and_go_back_down(tmp_path):
    from sqlalchemy import create_engine, inspect

    from alembic import command

    from server.migrate import alembic_config, upgrade
    from server.models import QUEUE_WHERE
    from server.desk.queue import QUEUE_SQL

    url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'ix_tickets_open_due'").scalar()
    assert sql.endswith("WHERE " + QUEUE_WHERE), sql
    assert str(QUEUE_SQL) == "+tickets.status IN ('new', 'in_progress', 'on_hold') AND tickets.is_test = 0"
    command.downgrade(alembic_config(url), "0002")
    with engine.connect() as conn:  # each step down keeps the queue's index
        assert conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'ix_tickets_open_due'").scalar() == sql
    command.downgrade(alembic_config(url), "0001")
    assert "users" not in inspect(engine).get_table_names()
    engine.dispose()
    upgrade(url)
    engine = create_engine(url)
    assert "users" in inspect(engine).get_table_names()
    engine.dispose()
