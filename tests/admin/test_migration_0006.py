"""Migration 0006 (devices' test mode and replacement, the index of test tickets): adds its columns and index,
keeps every row and the tickets' expression indexes, and goes back down to 0005 and up again."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, inspect, text

from server.migrate import alembic_config, current, upgrade

TICKET_INDEXES = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tickets' ORDER BY name"


def test_0006_up_down_and_up_keeps_rows_and_the_tickets_indexes(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    upgrade(url, "0005")
    engine = create_engine(url)
    with engine.begin() as conn:
        before = conn.execute(text(TICKET_INDEXES)).all()
        conn.execute(text("INSERT INTO devices (device_id, status, kind) VALUES ('d1', 'active', 'physical')"))
    upgrade(url, "0006")
    assert current(url) == "0006"
    columns = {c["name"] for c in inspect(engine).get_columns("devices")}
    assert {"test_mode", "replaced_by"} <= columns
    with engine.begin() as conn:
        assert conn.execute(text("SELECT device_id, test_mode, replaced_by FROM devices")).all() == [("d1", 0, None)]
        after = conn.execute(text(TICKET_INDEXES)).all()
        # every index of 0005 as it was (tickets was not copied), and the partial index of test tickets
        assert [i for i in after if i[0] != "ix_tickets_test"] == before
        assert " ".join(dict(after)["ix_tickets_test"].split()) == (
            "CREATE INDEX ix_tickets_test ON tickets (id) WHERE is_test = 1")
    command.downgrade(alembic_config(url), "0005")
    assert {"test_mode", "replaced_by"}.isdisjoint(c["name"] for c in inspect(engine).get_columns("devices"))
    with engine.begin() as conn:
        assert conn.execute(text("SELECT device_id, status FROM devices")).all() == [("d1", "active")]
        assert conn.execute(text(TICKET_INDEXES)).all() == before
    upgrade(url, "0006")
    assert current(url) == "0006"
    engine.dispose()
