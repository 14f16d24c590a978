"""merges hold, double presses withdraw their button's report: two indexes, and no resolved_at that a merge set

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 11:00:00

A press whose dedup scope has no open ticket follows the scope's latest merged ticket to the ticket
an agent merged it into: the new partial index ``ix_tickets_merged`` holds only merged tickets. A double
press withdraws the last report of its own button: ``ix_presses_device_button`` finds it without walking
the device's other presses. Neither copies a table.

A merge used to set the merged ticket's ``resolved_at`` to the time of the merge, so that it counted as
resolved. Those rows are told apart by the merge's own event, written in the same transaction with the
same time: a ``ticket.updated`` event of the merged ticket whose data has ``merged_into`` and whose
``changes.status`` starts from an open status (a ticket resolved before its merge kept its own
``resolved_at``, which stays), created at exactly that ``resolved_at``. Those get ``resolved_at`` NULL;
going down puts the merge's time back.
"""
import json
from typing import Any, Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0013'
down_revision: Union[str, Sequence[str], None] = '0012'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

OPEN = ('new', 'in_progress', 'on_hold')
MERGED = 'merged_into_id IS NOT NULL'
tickets = sa.table('tickets', sa.column('id', sa.Integer), sa.column('merged_into_id', sa.Integer),
                   sa.column('resolved_at', sa.DateTime))
events = sa.table('events', sa.column('ticket_id', sa.Integer), sa.column('kind', sa.String),
                  sa.column('data', sa.JSON), sa.column('created_at', sa.DateTime))


def _merged_at() -> dict[int, Any]:
    """Each merged ticket that was open when merged: the time of its merge, from its merge event."""
    bind = op.get_bind()
    rows = bind.execute(sa.select(events.c.ticket_id, events.c.data, events.c.created_at)
                        .join(tickets, tickets.c.id == events.c.ticket_id)
                        .where(tickets.c.merged_into_id.is_not(None), events.c.kind == 'ticket.updated')).all()
    out: dict[int, Any] = {}
    for ticket_id, data, created_at in rows:
        if isinstance(data, str):
            data = json.loads(data)
        status = ((data or {}).get('changes') or {}).get('status') or [None]
        if (data or {}).get('merged_into') is not None and status[0] in OPEN:
            out[ticket_id] = created_at
    return out


def upgrade() -> None:
    op.create_index('ix_tickets_merged', 'tickets', ['scope', 'category_id', 'id'], unique=False,
                    sqlite_where=sa.text(MERGED), postgresql_where=sa.text(MERGED))
    op.create_index('ix_presses_device_button', 'presses', ['device_id', 'button'], unique=False)
    for ticket_id, merged_at in _merged_at().items():
        op.get_bind().execute(tickets.update().where(tickets.c.id == ticket_id, tickets.c.resolved_at == merged_at)
                              .values(resolved_at=None))


def downgrade() -> None:
    for ticket_id, merged_at in _merged_at().items():
        op.get_bind().execute(tickets.update().where(tickets.c.id == ticket_id, tickets.c.resolved_at.is_(None))
                              .values(resolved_at=merged_at))
    op.drop_index('ix_presses_device_button', table_name='presses')
    op.drop_index('ix_tickets_merged', table_name='tickets')
