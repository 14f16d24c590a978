"""admin, more: devices' test mode and replacement, the index of test tickets

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 10:00:00

Only ADD COLUMN on ``devices`` and a new partial index on ``tickets`` (no table copy
going up): ``tickets`` keeps its expression indexes. Going down, ``devices`` is
copied (SQLite cannot drop a column otherwise); ``tickets`` is still not touched.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('test_mode', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('replaced_by', sa.String(length=63), nullable=True))
    op.create_index('ix_devices_replaced_by', 'devices', ['replaced_by'], unique=False)
    op.create_index('ix_tickets_test', 'tickets', ['id'], unique=False,
                    sqlite_where=sa.text('is_test = 1'), postgresql_where=sa.text('is_test'))


def downgrade() -> None:
    op.drop_index('ix_tickets_test', table_name='tickets')
    op.drop_index('ix_devices_replaced_by', table_name='devices')
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_column('replaced_by')
        batch_op.drop_column('test_mode')
