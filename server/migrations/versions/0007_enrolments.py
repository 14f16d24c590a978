"""enrolments: one-time links that turn a phone into a device of a site (the phone app)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 10:00:00

Only a new table: no existing table is copied or changed.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('enrolments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('code_hint', sa.String(length=8), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('source_device', sa.String(length=63), nullable=True),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_by', sa.String(length=120), nullable=True),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.Column('device_id', sa.String(length=63), nullable=True),
    sa.Column('app_token_hash', sa.String(length=64), nullable=True),
    sa.Column('used_user_agent', sa.String(length=300), nullable=True),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('app_token_hash'),
    sa.UniqueConstraint('code_hash'),
    sa.UniqueConstraint('device_id')
    )
    op.create_index('ix_enrolments_site_id', 'enrolments', ['site_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_enrolments_site_id', table_name='enrolments')
    op.drop_table('enrolments')
