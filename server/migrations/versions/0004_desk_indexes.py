"""desk indexes: the open queue with the columns its filters read, the open queue per assignee, tickets
per status newest first

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 18:00:00

Measured with ``benchmarks.desk`` at 100,000 tickets (see benchmarks/README.md):

* ``ix_tickets_open_due_filters``: ix_tickets_open_due's order (priority, deadline, id) and partial
  WHERE, plus every column the queue's filters, search and counts read. A filtered or searched
  queue walks it in order and tests each open ticket on the index alone (no table row read), and
  every count of the queue is answered from it. ``status`` and ``is_test`` are columns too although
  the WHERE fixes them: SQLite (3.40) counts an index as covering only if it holds every column the
  query names.
* ``ix_tickets_open_assignee``: "assigned to me" in queue order, without reading the agent's closed
  tickets (ix_tickets_assignee_status read and sorted every ticket the agent ever had).
* ``ix_tickets_status_id``: ``GET /api/v1/tickets?status=...`` newest first without sorting every
  ticket of that status.

Each index is one more entry to rewrite when an UPDATE names a column it holds (the press path then
set status, priority and the deadlines on every merge; since, a merge names none of them:
``server.domain.incidents.merge_statement``): a site's queue is left to ix_tickets_site_status, which
reads the site's closed tickets too but at 100,000 tickets stays under a few milliseconds.

Plain CREATE INDEX (no table copy). A later migration that copies ``tickets`` (batch_alter_table on
SQLite) must drop these expression indexes first and create them again after, as 0003 does for
ix_tickets_open_due.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

OPEN = "+status IN ('new', 'in_progress', 'on_hold') AND is_test = 0"
OPEN_PG = "status IN ('new', 'in_progress', 'on_hold') AND NOT is_test"
DUE = "(CASE WHEN responded_at IS NULL THEN respond_by ELSE resolve_by END)"


def upgrade() -> None:
    queue = {"sqlite_where": sa.text(OPEN), "postgresql_where": sa.text(OPEN_PG)}
    op.create_index('ix_tickets_open_due_filters', 'tickets',
                    ['priority', sa.text(DUE), 'id', 'status', 'is_test', 'category_id', 'site_id', 'assignee',
                     'device_id'], unique=False, **queue)
    op.create_index('ix_tickets_open_assignee', 'tickets', ['assignee', 'priority', sa.text(DUE), 'id'],
                    unique=False, **queue)
    op.create_index('ix_tickets_status_id', 'tickets', ['status', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_tickets_status_id', table_name='tickets')
    op.drop_index('ix_tickets_open_assignee', table_name='tickets')
    op.drop_index('ix_tickets_open_due_filters', table_name='tickets')
