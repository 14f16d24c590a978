"""the SLA clock stops while a ticket is on hold: on_hold_since and held_s on tickets

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 17:30:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('on_hold_since', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('held_s', sa.Integer(), server_default='0', nullable=False))
    # Tickets on hold already: their clock stopped at their last change, most likely the hold itself.
    op.execute(sa.text("UPDATE tickets SET on_hold_since = updated_at WHERE status = 'on_hold'"))


OPEN = "+status IN ('new', 'in_progress', 'on_hold') AND is_test = 0"
OPEN_PG = "status IN ('new', 'in_progress', 'on_hold') AND NOT is_test"
DUE = "(CASE WHEN responded_at IS NULL THEN respond_by ELSE resolve_by END)"


def downgrade() -> None:
    # SQLite drops columns by copying the table, which cannot carry the queue's
    # expression index along: drop it first and build it again after.
    op.drop_index('ix_tickets_open_due', table_name='tickets')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('held_s')
        batch_op.drop_column('on_hold_since')
    op.create_index('ix_tickets_open_due', 'tickets', ['priority', sa.text(DUE), 'id'], unique=False,
                    sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN_PG))
