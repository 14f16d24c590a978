"""devices' broker accounts: whether each device has its own account on the broker

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 10:00:00

Only ADD COLUMN on ``devices`` going up (NULL: not known yet; the server asks the broker
the first time it needs to know). Going down, ``devices`` is copied (SQLite cannot drop
a column otherwise); no other table is touched.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0009'
down_revision: Union[str, Sequence[str], None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column('devices', sa.Column('broker_account', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_column('broker_account')
