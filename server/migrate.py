"""Alembic, driven from code: ``dashdesk db upgrade`` and ``dashdesk up`` call ``upgrade``."""

from __future__ import annotations

import warnings
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (creating it if new: an SQLite file 0600)."""
    from server.db import create_private

    create_private(url)
    with warnings.catch_warnings():
        # A migration in SQLite's batch mode reflects the tables it copies and those they refer to (tickets): the
        # queue's partial indexes on expressions are kept as they are, which SQLAlchemy says it cannot reflect.
        warnings.filterwarnings("ignore", message="Skipped unsupported reflection of expression-based index")
        command.upgrade(alembic_config(url), revision)


def head() -> str:
    """The newest revision this code knows."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current(url: str) -> str | None:
    from sqlalchemy import create_engine
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
