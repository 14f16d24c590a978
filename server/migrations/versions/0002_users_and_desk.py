"""web users; the desk's queue index; responded_at and merged_into_id on tickets

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

OPEN = "+status IN ('new', 'in_progress', 'on_hold') AND is_test = 0"
OPEN_PG = "status IN ('new', 'in_progress', 'on_hold') AND NOT is_test"
DUE = "(CASE WHEN responded_at IS NULL THEN respond_by ELSE resolve_by END)"


def upgrade() -> None:
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_login_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('username')
    )
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('responded_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('merged_into_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_tickets_merged_into_id_tickets', 'tickets', ['merged_into_id'], ['id'])
    # Tickets an agent already changed count as responded to (their first change is not known).
    op.execute(sa.text("UPDATE tickets SET responded_at = updated_at WHERE touched = :yes")
               .bindparams(sa.bindparam("yes", True, type_=sa.Boolean())))
    op.create_index('ix_tickets_open_due', 'tickets', ['priority', sa.text(DUE), 'id'], unique=False,
                    sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN_PG))
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('ix_tickets_site_status', ['site_id', 'status'], unique=False)
        batch_op.create_index('ix_tickets_assignee_status', ['assignee', 'status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_assignee_status')
        batch_op.drop_index('ix_tickets_site_status')
    op.drop_index('ix_tickets_open_due', table_name='tickets')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_constraint('fk_tickets_merged_into_id_tickets', type_='foreignkey')
        batch_op.drop_column('merged_into_id')
        batch_op.drop_column('responded_at')
    op.drop_table('users')
