"""The migrations: together they build exactly the schema the models describe, and each one keeps every
row and the tickets' expression indexes, and goes back down and up again."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from server.migrate import alembic_config, current, upgrade
from server.models import Base

TICKET_INDEXES = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tickets' ORDER BY name"


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'm.sqlite3'}"


@pytest.fixture
def engine(url):
    e = create_engine(url)
    yield e
    e.dispose()


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def columns(engine: Any, table: str) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns(table)}


def schema(engine: Any) -> dict[str, list[str]]:
    """Every table's columns, in order."""
    return {t: [c["name"] for c in inspect(engine).get_columns(t)] for t in inspect(engine).get_table_names()}


def test_upgrade_creates_the_models_schema_and_is_repeatable(url, engine):
    upgrade(url)
    upgrade(url)  # a second run changes nothing
    assert current(url) is not None
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_0005_admin_up_down_and_up_keeps_rows_and_the_tickets_indexes(url, engine):
    upgrade(url, "0004")
    with engine.begin() as conn:
        indexes = conn.execute(text(TICKET_INDEXES)).all()
        conn.execute(text("INSERT INTO sites (code, name) VALUES ('hs-01', 'High Street')"))
        conn.execute(text("INSERT INTO categories (slug, name, icon, priority, sla) VALUES ('till', 'Till', '', 2, '{}')"))
        conn.execute(text("INSERT INTO button_mappings (device_id, button, press, category_id, label) "
                          "VALUES ('d1', 'b1', '', 1, 'Till')"))
    upgrade(url, "0005")
    assert current(url) == "0005"
    assert "audit_log" in inspect(engine).get_table_names()
    assert {"address", "timezone", "hours", "contact"} <= columns(engine, "sites")
    assert {"labels", "dedup_scope", "reopen_window_min", "notify"} <= columns(engine, "categories")
    assert "action" in columns(engine, "button_mappings")
    with engine.begin() as conn:
        assert conn.execute(text("SELECT code, name, timezone, hours, contact FROM sites")).all() == [
            ("hs-01", "High Street", "UTC", "{}", "")]
        assert conn.execute(text("SELECT dedup_scope, labels, notify, reopen_window_min FROM categories")).all() == [
            ("site", "{}", "[]", None)]
        assert conn.execute(text("SELECT label, action FROM button_mappings")).all() == [("Till", "report")]
        assert conn.execute(text(TICKET_INDEXES)).all() == indexes  # tickets was not copied
        # a "cancel" mapping has no category
        conn.execute(text("INSERT INTO button_mappings (device_id, button, press, category_id, label, action) "
                          "VALUES ('d1', 'b2', '', NULL, 'Oops', 'cancel')"))
    downgrade(url, "0004")
    assert "audit_log" not in inspect(engine).get_table_names()
    with engine.begin() as conn:
        assert conn.execute(text("SELECT * FROM sites")).all() == [(1, "hs-01", "High Street")]
        # the older schema has no place for a cancel mapping: it went, the others stayed
        assert conn.execute(text("SELECT button, label FROM button_mappings")).all() == [("b1", "Till")]
        assert conn.execute(text(TICKET_INDEXES)).all() == indexes
    upgrade(url, "0005")
    assert current(url) == "0005" and "audit_log" in inspect(engine).get_table_names()


def test_0006_test_mode_up_down_and_up_keeps_rows_and_the_tickets_indexes(url, engine):
    """Devices' test mode and replacement, and the index of test tickets."""
    upgrade(url, "0005")
    with engine.begin() as conn:
        before = conn.execute(text(TICKET_INDEXES)).all()
        conn.execute(text("INSERT INTO devices (device_id, status, kind) VALUES ('d1', 'active', 'physical')"))
    upgrade(url, "0006")
    assert current(url) == "0006"
    assert {"test_mode", "replaced_by"} <= columns(engine, "devices")
    with engine.begin() as conn:
        assert conn.execute(text("SELECT device_id, test_mode, replaced_by FROM devices")).all() == [("d1", 0, None)]
        after = conn.execute(text(TICKET_INDEXES)).all()
        # every index of 0005 as it was (tickets was not copied), and the partial index of test tickets
        assert [i for i in after if i[0] != "ix_tickets_test"] == before
        assert " ".join(dict(after)["ix_tickets_test"].split()) == (
            "CREATE INDEX ix_tickets_test ON tickets (id) WHERE is_test = 1")
    downgrade(url, "0005")
    assert {"test_mode", "replaced_by"}.isdisjoint(columns(engine, "devices"))
    with engine.begin() as conn:
        assert conn.execute(text("SELECT device_id, status FROM devices")).all() == [("d1", "active")]
        assert conn.execute(text(TICKET_INDEXES)).all() == before
    upgrade(url, "0006")
    assert current(url) == "0006"


def test_0007_enrolments_adds_only_its_table_and_goes_back(url, engine):
    from alembic.script import ScriptDirectory

    previous = ScriptDirectory.from_config(alembic_config(url)).get_revision("0007").down_revision
    upgrade(url, previous)
    before = schema(engine)
    upgrade(url, "0007")
    after = schema(engine)
    assert set(after) - set(before) == {"enrolments"}
    assert {t: c for t, c in after.items() if t != "enrolments"} == before
    downgrade(url, previous)
    assert "enrolments" not in inspect(engine).get_table_names()


@pytest.fixture
def usual_umask():
    """022, as most shells have it: files are world-readable unless made otherwise."""
    import os

    was = os.umask(0o022)
    yield
    os.umask(was)


def _modes(directory) -> dict[str, int]:
    return {p.name: p.stat().st_mode & 0o777 for p in directory.iterdir()}


def test_a_database_dashdesk_creates_is_readable_by_its_owner_only(tmp_path, usual_umask):
    """It holds password and token hashes and shops' contacts: 0600, and so are SQLite's -wal and -shm files.
    A file that exists keeps the mode it has."""
    from server.domain.tokens import create_token
    from server.db import Database

    (tmp_path / "a").mkdir()
    path = tmp_path / "a" / "dashdesk.sqlite3"
    upgrade(f"sqlite:///{path}")
    db = Database(f"sqlite:///{path}")
    create_token(db, "a bridge", "bridge")  # a write: the -wal and -shm files exist now
    assert _modes(tmp_path / "a") == {"dashdesk.sqlite3": 0o600, "dashdesk.sqlite3-wal": 0o600,
                                      "dashdesk.sqlite3-shm": 0o600}
    db.close()
    (tmp_path / "b").mkdir()
    Database(f"sqlite:///{tmp_path / 'b' / 'd.sqlite3'}").close()  # a server started on a new database
    assert _modes(tmp_path / "b") == {"d.sqlite3": 0o600}
    (tmp_path / "c").mkdir()
    kept = tmp_path / "c" / "d.sqlite3"
    kept.touch(mode=0o640)
    upgrade(f"sqlite:///{kept}")
    assert kept.stat().st_mode & 0o777 == 0o640


def test_the_bridge_outbox_is_readable_by_its_owner_only(tmp_path, usual_umask):
    from broker_bridge.outbox import PRESS, Outbox

    box = Outbox(tmp_path / "o.sqlite3")
    box.put(PRESS, "e1", {"event_id": "e1"}, "d1")
    assert _modes(tmp_path) == {"o.sqlite3": 0o600, "o.sqlite3-wal": 0o600, "o.sqlite3-shm": 0o600}
    box.close()


def test_0008_puts_site_codes_in_lower_case_with_their_history_unless_another_site_has_it(url, engine):
    upgrade(url, "0007")
    with engine.begin() as conn:
        for code in ("SHOP-003", "SHOP-001", "shop-001", "hs-01", "Abc", "ABC"):
            conn.execute(text("INSERT INTO sites (code, name) VALUES (:c, :c)"), {"c": code})
        # SHOP-003's history: an earlier site of that code, deleted, then the site of today.
        for action, target in (("site.create", "site:SHOP-003"), ("site.delete", "site:SHOP-003"),
                               ("site.create", "site:SHOP-003"), ("site.create", "site:SHOP-001"),
                               ("site.create", "device:SHOP-003")):
            conn.execute(text("INSERT INTO audit_log (created_at, actor, action, target, details) "
                              "VALUES ('2026-11-30 10:00:00', 'admin', :a, :t, '{}')"), {"a": action, "t": target})
    upgrade(url, "0008")
    with engine.begin() as conn:
        assert conn.execute(text("SELECT code FROM sites ORDER BY id")).scalars().all() == [
            "shop-003", "SHOP-001", "shop-001", "hs-01", "abc", "ABC"]  # SHOP-001 and ABC: another site has it
        # The deleted site's rows stay under the old code, as server.domain.audit.move_target leaves them.
        assert conn.execute(text("SELECT target FROM audit_log ORDER BY id")).scalars().all() == [
            "site:SHOP-003", "site:SHOP-003", "site:shop-003", "site:SHOP-001", "device:SHOP-003"]
    downgrade(url, "0007")
    assert current(url) == "0007"


def test_0009_broker_account_adds_only_its_column_keeps_the_devices_and_goes_back(url, engine):
    upgrade(url, "0008")
    with engine.begin() as conn:
        indexes = conn.execute(text(TICKET_INDEXES)).all()
        conn.execute(text("INSERT INTO devices (device_id, status, kind, online, test_mode) "
                          "VALUES ('hs-01-a', 'active', 'physical', 1, 0)"))
    before = schema(engine)
    upgrade(url, "0009")
    after = schema(engine)
    assert after["devices"] == before["devices"] + ["broker_account"]
    assert {t: c for t, c in after.items() if t != "devices"} == {t: c for t, c in before.items() if t != "devices"}
    with engine.connect() as conn:
        # Not known yet: the server asks the broker when it first needs to know.
        assert conn.execute(text("SELECT device_id, online, broker_account FROM devices")).all() == [
            ("hs-01-a", 1, None)]
        assert conn.execute(text(TICKET_INDEXES)).all() == indexes
    downgrade(url, "0008")
    assert schema(engine) == before
    with engine.connect() as conn:
        assert conn.execute(text("SELECT device_id FROM devices")).all() == [("hs-01-a",)]
    upgrade(url, "0009")
    assert "broker_account" in columns(engine, "devices")


PRESS_ROW = ("INSERT INTO presses (event_id, device_id, button, press, pressed_at, received_at, late, result, "
             "cancelled, response) VALUES (:e, :d, 'b1', 'single', '2026-12-01 10:00:00', '2026-12-01 10:00:00', 0, "
             "'created', 0, '{}')")
PRESS_INDEXES = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'presses' ORDER BY name"


def test_0010_makes_a_press_unique_per_device_keeps_the_presses_and_goes_back(url, engine):
    import sqlalchemy.exc

    upgrade(url, "0009")
    with engine.begin() as conn:
        conn.execute(text(PRESS_ROW), {"e": "e-1", "d": "till-1"})
        conn.execute(text(PRESS_ROW), {"e": "e-2", "d": "till-1"})
        indexes = conn.execute(text(TICKET_INDEXES)).all()
        press_indexes = [i for i in conn.execute(text(PRESS_INDEXES)).all() if i[1]]
    upgrade(url, "0010")
    with engine.begin() as conn:
        assert conn.execute(text("SELECT id, event_id, device_id FROM presses ORDER BY id")).all() == [
            (1, "e-1", "till-1"), (2, "e-2", "till-1")]
        conn.execute(text(PRESS_ROW), {"e": "e-1", "d": "till-2"})  # another device's press with that event_id
        assert conn.execute(text(TICKET_INDEXES)).all() == indexes  # tickets was not copied
        assert [i for i in conn.execute(text(PRESS_INDEXES)).all() if i[1]] == press_indexes
    with pytest.raises(sqlalchemy.exc.IntegrityError), engine.begin() as conn:
        conn.execute(text(PRESS_ROW), {"e": "e-1", "d": "till-1"})
    assert [u["column_names"] for u in inspect(engine).get_unique_constraints("presses")] == [["device_id", "event_id"]]
    # down again only while every event_id is one device's
    with pytest.raises(RuntimeError, match="more than one device pressed with event_id e-1"):
        downgrade(url, "0009")
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM presses WHERE device_id = 'till-2'"))
    downgrade(url, "0009")
    assert [u["column_names"] for u in inspect(engine).get_unique_constraints("presses")] == [["event_id"]]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM presses")).scalar() == 2
    upgrade(url, "0010")
    assert current(url) == "0010"


def test_0013_takes_back_the_resolved_at_a_merge_set_and_nothing_else(url, engine):
    """A merge stamped the merged ticket resolved at the moment of the merge; its own event, written with the
    same time, tells those apart from a ticket resolved before it was merged, and from resolved tickets."""
    upgrade(url, "0010")
    ticket = ("INSERT INTO tickets (id, status, priority, category_id, scope, device_id, button, title, "
              "occurrences, reopen_count, first_reported_at, last_reported_at, created_at, updated_at, resolved_at, "
              "touched, devices, is_test, held_s, merged_into_id) VALUES (:id, :status, 3, 1, 'site:1', 'd1', 'b1', "
              "'Printer', 1, 0, '2026-12-01 09:00:00', '2026-12-01 09:00:00', '2026-12-01 09:00:00', "
              "'2026-12-01 09:00:00', :resolved, 1, '[]', 0, 0, :into)")
    event = ("INSERT INTO events (kind, ticket_id, devices, actor, data, created_at) "
             "VALUES ('ticket.updated', :id, '[]', 'ann', :data, :at)")
    merged_at, earlier = "2026-12-01 10:00:00.123000", "2026-12-01 09:30:00.000000"
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO categories (slug, name, icon, priority, sla) VALUES ('printer', 'P', '', 3, '{}')"))
        conn.execute(text(ticket), {"id": 1, "status": "new", "resolved": None, "into": None})
        # merged while open: resolved_at is the merge's time
        conn.execute(text(ticket), {"id": 2, "status": "closed", "resolved": merged_at, "into": 1})
        conn.execute(text(event), {"id": 2, "at": merged_at, "data": '{"changes": {"status": ["in_progress", '
                                   '"closed"], "merged_into": [null, 1]}, "merged_into": 1, "resolution": "duplicate"}'})
        # resolved first, merged later: its own resolved_at stays
        conn.execute(text(ticket), {"id": 3, "status": "closed", "resolved": earlier, "into": 1})
        conn.execute(text(event), {"id": 3, "at": merged_at, "data": '{"changes": {"status": ["resolved", '
                                   '"closed"], "merged_into": [null, 1]}, "merged_into": 1}'})
        # resolved and closed by an agent, never merged
        conn.execute(text(ticket), {"id": 4, "status": "closed", "resolved": merged_at, "into": None})
        conn.execute(text(event), {"id": 4, "at": merged_at, "data": '{"changes": {"status": ["new", "closed"]}}'})
        indexes = conn.execute(text(TICKET_INDEXES)).all()
    upgrade(url, "0013")
    resolved = "SELECT id, resolved_at FROM tickets ORDER BY id"
    with engine.connect() as conn:
        assert conn.execute(text(resolved)).all() == [(1, None), (2, None), (3, earlier), (4, merged_at)]
        after = conn.execute(text(TICKET_INDEXES)).all()
        assert [i for i in after if i[0] != "ix_tickets_merged"] == indexes  # tickets was not copied
        assert " ".join(dict(after)["ix_tickets_merged"].split()) == (
            "CREATE INDEX ix_tickets_merged ON tickets (scope, category_id, id) WHERE merged_into_id IS NOT NULL")
        assert conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'ix_presses_device_button'")
                            ).scalar() == "CREATE INDEX ix_presses_device_button ON presses (device_id, button)"
    downgrade(url, "0010")
    with engine.connect() as conn:
        assert conn.execute(text(resolved)).all() == [(1, None), (2, merged_at), (3, earlier), (4, merged_at)]
        assert conn.execute(text(TICKET_INDEXES)).all() == indexes
        assert "ix_presses_device_button" not in [i[0] for i in conn.execute(text(PRESS_INDEXES))]
    upgrade(url, "0013")
    assert current(url) == "0013"


def test_0012_web_sessions_adds_only_its_table_and_goes_back(url, engine):
    upgrade(url, "0011")
    with engine.begin() as conn:
        indexes = conn.execute(text(TICKET_INDEXES)).all()
        conn.execute(text("INSERT INTO users (username, password_hash, role, active, created_at) "
                          "VALUES ('ann', 'x', 'agent', 1, '2026-12-01 10:00:00')"))
    before = schema(engine)
    upgrade(url, "0012")
    after = schema(engine)
    assert set(after) - set(before) == {"web_sessions"}
    assert {t: c for t, c in after.items() if t != "web_sessions"} == before
    assert {i["name"] for i in inspect(engine).get_indexes("web_sessions")} == {"ix_web_sessions_user_id"}
    with engine.begin() as conn:
        assert conn.execute(text(TICKET_INDEXES)).all() == indexes
        conn.execute(text("INSERT INTO web_sessions (key_hash, user_id, created_at, expires_at) "
                          "VALUES ('h', 1, '2026-12-01 10:00:00', '2026-12-01 22:00:00')"))
        assert conn.execute(text("SELECT user_agent, last_seen_at FROM web_sessions")).all() == [("", None)]
    downgrade(url, "0011")
    assert schema(engine) == before
    with engine.connect() as conn:
        assert conn.execute(text("SELECT username FROM users")).all() == [("ann",)]
    upgrade(url, "0012")
    assert "web_sessions" in inspect(engine).get_table_names()
