"""admin: sites' details, categories' labels, dedup scope, reopen window and notify list,
cancel mappings, the audit log

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 10:00:00

Only ADD COLUMN on sites and categories (no table copy) and a copy of
button_mappings (its category_id becomes nullable): ``tickets`` is not touched,
so its expression index ix_tickets_open_due stays as it is.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.add_column(sa.Column('address', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('timezone', sa.String(length=64), server_default='UTC', nullable=False))
        batch_op.add_column(sa.Column('hours', sa.JSON(), server_default='{}', nullable=False))
        batch_op.add_column(sa.Column('contact', sa.String(length=300), server_default='', nullable=False))
    with op.batch_alter_table('categories', schema=None) as batch_op:
        batch_op.add_column(sa.Column('labels', sa.JSON(), server_default='{}', nullable=False))
        batch_op.add_column(sa.Column('dedup_scope', sa.String(length=8), server_default='site', nullable=False))
        batch_op.add_column(sa.Column('reopen_window_min', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('notify', sa.JSON(), server_default='[]', nullable=False))
    # A "cancel last report" mapping has no category: category_id becomes nullable (a copy on SQLite).
    with op.batch_alter_table('button_mappings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('action', sa.String(length=8), server_default='report', nullable=False))
        batch_op.alter_column('category_id', existing_type=sa.Integer(), nullable=True)
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=120), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('target', sa.String(length=200), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_actor', ['actor', 'id'], unique=False)
        batch_op.create_index('ix_audit_log_target', ['target', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_target')
        batch_op.drop_index('ix_audit_log_actor')
    op.drop_table('audit_log')
    # The older schema has no place for a "cancel" mapping: those go.
    op.execute(sa.text("DELETE FROM button_mappings WHERE category_id IS NULL"))
    with op.batch_alter_table('button_mappings', schema=None) as batch_op:
        batch_op.alter_column('category_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('action')
    with op.batch_alter_table('categories', schema=None) as batch_op:
        batch_op.drop_column('notify')
        batch_op.drop_column('reopen_window_min')
        batch_op.drop_column('dedup_scope')
        batch_op.drop_column('labels')
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.drop_column('contact')
        batch_op.drop_column('hours')
        batch_op.drop_column('timezone')
        batch_op.drop_column('address')
