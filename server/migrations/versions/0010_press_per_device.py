"""idempotency per device: a press is unique by (device_id, event_id), no longer by event_id alone

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 10:00:00

The same ``event_id`` from two devices is two presses. Every row stays: a unique event_id is unique
per device too. On SQLite ``presses`` is copied (batch mode: its UNIQUE (event_id), which has no name,
is named by the naming convention so that it can be dropped); its indexes are made again with it.
Elsewhere the constraint is dropped by the name the database gave it. Going down needs event_ids unique
across devices again: a database that has the same event_id from two devices cannot go down (the
migration says which).
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0010'
down_revision: Union[str, Sequence[str], None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# SQLite keeps 0001's UNIQUE (event_id) without a name: batch mode names it by this convention.
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
OLD, NEW = 'uq_presses_event_id', 'uq_presses_device_event'


def _unique_name(columns: list[str]) -> str | None:
    for uc in sa.inspect(op.get_bind()).get_unique_constraints('presses'):
        if uc['column_names'] == columns:
            return uc['name']
    return None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        with op.batch_alter_table('presses', naming_convention=NAMING, recreate='always') as batch_op:
            batch_op.drop_constraint(OLD, type_='unique')
            batch_op.create_unique_constraint(NEW, ['device_id', 'event_id'])
    else:
        op.drop_constraint(_unique_name(['event_id']) or OLD, 'presses', type_='unique')
        op.create_unique_constraint(NEW, 'presses', ['device_id', 'event_id'])


def downgrade() -> None:
    shared = op.get_bind().execute(sa.text(
        'SELECT event_id FROM presses GROUP BY event_id HAVING count(*) > 1 LIMIT 3')).scalars().all()
    if shared:
        raise RuntimeError(f"cannot go below 0010: more than one device pressed with event_id {', '.join(shared)}")
    if op.get_bind().dialect.name == 'sqlite':
        with op.batch_alter_table('presses', recreate='always') as batch_op:
            batch_op.drop_constraint(NEW, type_='unique')
            batch_op.create_unique_constraint(OLD, ['event_id'])
    else:
        op.drop_constraint(NEW, 'presses', type_='unique')
        op.create_unique_constraint(OLD, 'presses', ['event_id'])
