"""Migration 0011 repairs what lone surrogates broke: rows stored the way they got there before dashdesk refused
them (the ORM's JSON type writing ``\\ud800`` escapes into SQLite) break pages with a 500 until it runs, and
render after it, with U+FFFD where the lone surrogates were and every valid character kept."""

from __future__ import annotations

import json
import sqlite3

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import select, text

from server.app import create_app
from server.db import Database
from server.migrate import alembic_config, current, upgrade
from server.models import AuditLog, Category, Device, Event, Press, Ticket
from tests.web.conftest import ADMIN_PASSWORD, TOKEN, Desk, press

REVISION = "0011"
SURROGATE = "\ud800"
# What must survive the repair as it is: an emoji (stored as the escaped pair \ud83d\ude00) and the six
# characters backslash-u-d-8-0-0 (stored as \\ud800).
EMOJI = "\U0001f600"
LITERAL = "\\ud800"
PAGES = ["/tickets/1", "/admin", "/admin/devices", "/admin/devices/shop-1", "/admin/categories",
         "/admin/categories/printer", "/admin/audit", "/admin/config/export"]


def before_repair() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_revision(REVISION).down_revision


@pytest.fixture
def seeded(tmp_path, monkeypatch):
    """A database at the revision before the repair, with a ticket, its device and category, and lone surrogates
    (high and low, in keys and values) written by the ORM as the server wrote them."""
    monkeypatch.setenv("DASHDESK_ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("DASHDESK_ADMIN_PASSWORD", ADMIN_PASSWORD)
    url = f"sqlite:///{tmp_path / 'dashdesk.sqlite3'}"
    # Seeded on the whole schema, which today's app needs to render its pages; ``repair`` then goes back to the
    # revision before the repair (the data stay) and up again, through it.
    upgrade(url)
    app = create_app({"data_dir": str(tmp_path), "server": {"database_url": url}}, upgrade=False)
    press(app, "shop-1", "b1")
    db = app.extensions["dashdesk"].db
    hostile = {"firmware": f"fw-{SURROGATE}", f"key\udc00": 1, "emoji": EMOJI, "literal": LITERAL,
               "probes": {"printer": {"ok": False, "detail": f"jam \udfff"}}}
    with db.write() as s:
        ticket = s.get(Ticket, 1)
        ticket.telemetry = hostile
        s.scalar(select(Press).where(Press.ticket_id == 1)).telemetry = hostile
        s.scalar(select(Device).where(Device.device_id == "shop-1")).telemetry = hostile
        s.add(Event(kind="ticket.note", ticket_id=1, devices=["shop-1"], actor="admin", created_at=ticket.created_at,
                    data={"changes": {}, "status": "new", "note": f"call {SURROGATE} back {EMOJI}"}))
        s.scalar(select(Category).where(Category.slug == "printer")).labels = {"en": f"Printer {SURROGATE}",
                                                                               "pl": f"Drukarka {EMOJI}"}
        s.add(AuditLog(created_at=ticket.created_at, actor="admin", action="site.create", target="site:x",
                       details={"name": f"Shop {SURROGATE}", "contact": LITERAL}))
    yield app, url
    db.close()


def repair(url: str) -> None:
    """Run the repair on the seeded database: down to the revision before it, and up to the newest again."""
    command.downgrade(alembic_config(url), before_repair())
    assert current(url) == before_repair()
    upgrade(url)


def test_the_rows_hold_escapes_as_the_server_wrote_them(seeded):
    _, url = seeded
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        stored = conn.execute("SELECT telemetry FROM tickets WHERE id = 1").fetchone()[0]
    assert "\\ud800" in stored and "\\ud83d\\ude00" in stored and "\\\\ud800" in stored


def test_plain_text_columns_cannot_take_a_lone_surrogate(tmp_path):
    """Why 0011 repairs JSON columns only: Python's sqlite3 refuses to write one into text, so a request that
    tried (a site's name, say) failed with a 500 before it stored anything."""
    conn = sqlite3.connect(tmp_path / "t.sqlite3")
    conn.execute("CREATE TABLE t (name TEXT)")
    with pytest.raises(UnicodeEncodeError):
        conn.execute("INSERT INTO t VALUES (?)", (f"Shop {SURROGATE}",))
    conn.close()


def test_pages_that_broke_on_lone_surrogates_render_after_the_repair(seeded):
    app, url = seeded
    admin = Desk(app, "admin")
    broken = {path: admin.c.get(path).status_code for path in PAGES}
    assert broken == {path: 500 for path in PAGES}, "the seeded rows break these pages before the repair"

    repair(url)
    admin = Desk(app, "admin")  # signed in again: going down and up took the sessions table with it
    fixed = {path: admin.c.get(path) for path in PAGES}
    assert {path: r.status_code for path, r in fixed.items()} == {path: 200 for path in PAGES}
    assert "fw-\ufffd" in fixed["/tickets/1"].text and EMOJI in fixed["/tickets/1"].text
    assert "call \ufffd back" in fixed["/tickets/1"].text
    assert "Printer \ufffd" in fixed["/admin/categories/printer"].text
    assert app.test_client().get("/api/v1/config/export", headers={"Authorization": f"Bearer {TOKEN}"}
                                 ).status_code == 200


def test_the_repair_replaces_lone_surrogates_only(seeded):
    app, url = seeded
    repair(url)
    db = Database(url)
    try:
        with db.read() as s:
            ticket = s.get(Ticket, 1)
            device = s.scalar(select(Device).where(Device.device_id == "shop-1"))
            category = s.scalar(select(Category).where(Category.slug == "printer"))
            note = s.scalar(select(Event).where(Event.kind == "ticket.note"))
            details = s.scalar(select(AuditLog).where(AuditLog.target == "site:x")).details
            pressed = s.scalar(select(Press).where(Press.ticket_id == 1))
        want = {"firmware": "fw-\ufffd", "key\ufffd": 1, "emoji": EMOJI, "literal": LITERAL,
                "probes": {"printer": {"ok": False, "detail": "jam \ufffd"}}}
        assert ticket.telemetry == want and device.telemetry == want and pressed.telemetry == want
        assert category.labels == {"en": "Printer \ufffd", "pl": f"Drukarka {EMOJI}"}
        assert note.data["note"] == f"call \ufffd back {EMOJI}"
        assert details == {"name": "Shop \ufffd", "contact": LITERAL}
        # Nothing else was rewritten: the press's answer, the other events, as they were.
        with db.read() as s:
            untouched = s.execute(text("SELECT count(*) FROM events WHERE data LIKE '%fffd%'")).scalar()
        assert untouched == 1
        assert json.dumps(ticket.telemetry)  # valid for any JSON encoder
    finally:
        db.close()
