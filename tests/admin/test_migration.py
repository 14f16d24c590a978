"""Migration 0005 (admin): adds its columns and table, keeps every row and the tickets' expression
indexes, and goes back down to 0004 and up again."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, inspect, text

from server.migrate import alembic_config, current, upgrade

EXPRESSION_INDEXES = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tickets' ORDER BY name"


def test_0005_up_down_and_up_keeps_rows_and_the_tickets_indexes(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    upgrade(url, "0004")
    engine = create_engine(url)
    with engine.begin() as conn:
        indexes = conn.execute(text(EXPRESSION_INDEXES)).all()
        conn.execute(text("INSERT INTO sites (code, name) VALUES ('hs-01', 'High Street')"))
        conn.execute(text("INSERT INTO categories (slug, name, icon, priority, sla) VALUES ('till', 'Till', '', 2, '{}')"))
        conn.execute(text("INSERT INTO button_mappings (device_id, button, press, category_id, label) "
                          "VALUES ('d1', 'b1', '', 1, 'Till')"))
    upgrade(url, "0005")
    assert current(url) == "0005"
    names = inspect(engine).get_table_names()
    assert "audit_log" in names
    columns = {t: {c["name"] for c in inspect(engine).get_columns(t)} for t in ("sites", "categories", "button_mappings")}
    assert {"address", "timezone", "hours", "contact"} <= columns["sites"]
    assert {"labels", "dedup_scope", "reopen_window_min", "notify"} <= columns["categories"]
    assert "action" in columns["button_mappings"]
    with engine.begin() as conn:
        assert conn.execute(text("SELECT code, name, timezone, hours, contact FROM sites")).all() == [
            ("hs-01", "High Street", "UTC", "{}", "")]
        assert conn.execute(text("SELECT dedup_scope, labels, notify, reopen_window_min FROM categories")).all() == [
            ("site", "{}", "[]", None)]
        assert conn.execute(text("SELECT label, action FROM button_mappings")).all() == [("Till", "report")]
        assert conn.execute(text(EXPRESSION_INDEXES)).all() == indexes  # tickets was not copied
        # a "cancel" mapping has no category
        conn.execute(text("INSERT INTO button_mappings (device_id, button, press, category_id, label, action) "
                          "VALUES ('d1', 'b2', '', NULL, 'Oops', 'cancel')"))
    command.downgrade(alembic_config(url), "0004")
    assert "audit_log" not in inspect(engine).get_table_names()
    with engine.begin() as conn:
        assert conn.execute(text("SELECT * FROM sites")).all() == [(1, "hs-01", "High Street")]
        # the older schema has no place for a cancel mapping: it went, the others stayed
        assert conn.execute(text("SELECT button, label FROM button_mappings")).all() == [("b1", "Till")]
        assert conn.execute(text(EXPRESSION_INDEXES)).all() == indexes
    upgrade(url, "0005")
    assert current(url) == "0005" and "audit_log" in inspect(engine).get_table_names()
    engine.dispose()
