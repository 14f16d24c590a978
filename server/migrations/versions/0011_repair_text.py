"""repair text: lone surrogates kept in JSON columns become U+FFFD, so that the pages showing them render again

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 18:00:00

Data only: no table is copied or changed. Before dashdesk refused them, a lone surrogate (JSON's ``"\\ud800"``
on its own) in a press's telemetry, a retained telemetry message, a ticket note, a category's label or an
audit row's details was stored: SQLAlchemy's JSON type writes it as the ASCII escape ``\\ud800``, which SQLite
keeps, and every page that showed it then failed (no UTF-8 encodes a lone surrogate). Each such value in
every JSON column (its keys too) has its lone surrogates replaced by U+FFFD, as dashdesk now does with
telemetry; a valid pair (``\\ud83d\\ude00``, an emoji) and a literal backslash-u stay as they are. Plain text
columns never took one: Python's sqlite3 refuses to write it (the request failed with a 500 and stored
nothing). Going down changes nothing back: U+FFFD is valid text.
"""
import json
import re
from typing import Any, Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0011'
down_revision: Union[str, Sequence[str], None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# Every JSON column of the schema, by table (each table's key is ``id``).
JSON_COLUMNS = {
    "sites": ("hours",),
    "categories": ("sla", "labels", "notify"),
    "devices": ("telemetry",),
    "tickets": ("telemetry", "devices"),
    "presses": ("telemetry", "response"),
    "events": ("devices", "data"),
    "audit_log": ("details",),
}
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def repaired(value: Any) -> Any:
    if isinstance(value, str):
        return LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {repaired(k): repaired(v) for k, v in value.items()}
    if isinstance(value, list):
        return [repaired(v) for v in value]
    return value


def upgrade() -> None:
    conn = op.get_bind()
    for table, columns in JSON_COLUMNS.items():
        texts = [sa.cast(sa.column(column), sa.Text) for column in columns]
        # One pass over each table: only rows whose JSON text has an escape \ud... (a surrogate, alone or in a
        # pair) in some column are read. ESCAPE '!': the backslash is literal on every database.
        found = conn.execute(sa.select(sa.column("id"), *texts).select_from(sa.table(table))
                             .where(sa.or_(*(sa.func.lower(t).like("%\\ud%", escape="!") for t in texts)))).all()
        target = sa.table(table, sa.column("id"), *(sa.column(column, sa.JSON) for column in columns))
        for row_id, *stored in found:
            changes = {}
            for column, text in zip(columns, stored):
                value = json.loads(text) if text is not None else None
                if value is not None and LONE_SURROGATE.search(json.dumps(value, ensure_ascii=False)):
                    changes[column] = repaired(value)
            if changes:
                conn.execute(target.update().where(target.c.id == row_id).values(changes))


def downgrade() -> None:
    pass
