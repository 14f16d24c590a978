"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 12:38:53.479299

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_used_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_table('categories',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=63), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('icon', sa.String(length=32), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('sla', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('slug')
    )
    op.create_table('dead_letters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=80), nullable=False),
    sa.Column('topic', sa.String(length=300), nullable=False),
    sa.Column('payload_prefix', sa.Text(), nullable=False),
    sa.Column('payload_size', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    op.create_table('sites',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_table('button_mappings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.String(length=63), nullable=False),
    sa.Column('button', sa.String(length=63), nullable=False),
    sa.Column('press', sa.String(length=8), nullable=False),
    sa.Column('category_id', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['category_id'], ['categories.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('device_id', 'button', 'press', name='uq_button_press')
    )
    with op.batch_alter_table('button_mappings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_button_mappings_device_id'), ['device_id'], unique=False)

    op.create_table('devices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.String(length=63), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('online', sa.Boolean(), nullable=True),
    sa.Column('first_seen_at', sa.DateTime(), nullable=True),
    sa.Column('last_seen_at', sa.DateTime(), nullable=True),
    sa.Column('telemetry', sa.JSON(), nullable=True),
    sa.Column('telemetry_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('device_id')
    )
    op.create_table('tickets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('category_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=True),
    sa.Column('scope', sa.String(length=80), nullable=False),
    sa.Column('device_id', sa.String(length=63), nullable=False),
    sa.Column('button', sa.String(length=63), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('occurrences', sa.Integer(), nullable=False),
    sa.Column('reopen_count', sa.Integer(), nullable=False),
    sa.Column('first_reported_at', sa.DateTime(), nullable=False),
    sa.Column('last_reported_at', sa.DateTime(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('resolved_at', sa.DateTime(), nullable=True),
    sa.Column('respond_by', sa.DateTime(), nullable=True),
    sa.Column('resolve_by', sa.DateTime(), nullable=True),
    sa.Column('assignee', sa.String(length=100), nullable=True),
    sa.Column('touched', sa.Boolean(), nullable=False),
    sa.Column('telemetry', sa.JSON(), nullable=True),
    sa.Column('devices', sa.JSON(), nullable=False),
    sa.Column('major_incident_id', sa.Integer(), nullable=True),
    sa.Column('is_test', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['category_id'], ['categories.id'], ),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tickets_device_id'), ['device_id'], unique=False)
        batch_op.create_index('ix_tickets_queue', ['status', 'priority', 'respond_by'], unique=False)
        batch_op.create_index('ix_tickets_scope_open', ['scope', 'category_id', 'status'], unique=False)

    op.create_table('events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('devices', sa.JSON(), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('presses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('device_id', sa.String(length=63), nullable=False),
    sa.Column('button', sa.String(length=63), nullable=False),
    sa.Column('press', sa.String(length=8), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=True),
    sa.Column('pressed_at', sa.DateTime(), nullable=False),
    sa.Column('bridge_received_at', sa.DateTime(), nullable=True),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('result', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('cancelled', sa.Boolean(), nullable=False),
    sa.Column('telemetry', sa.JSON(), nullable=True),
    sa.Column('response', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id')
    )
    with op.batch_alter_table('presses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_presses_device_id'), ['device_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_presses_ticket_id'), ['ticket_id'], unique=False)



def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('presses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_presses_ticket_id'))
        batch_op.drop_index(batch_op.f('ix_presses_device_id'))

    op.drop_table('presses')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_ticket_id'))

    op.drop_table('events')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_scope_open')
        batch_op.drop_index('ix_tickets_queue')
        batch_op.drop_index(batch_op.f('ix_tickets_device_id'))

    op.drop_table('tickets')
    op.drop_table('devices')
    with op.batch_alter_table('button_mappings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_button_mappings_device_id'))

    op.drop_table('button_mappings')
    op.drop_table('sites')
    op.drop_table('dead_letters')
    op.drop_table('categories')
    op.drop_table('api_tokens')
