"""site codes in lower case: codes are case-insensitive from now on

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 10:00:00

Data only: no table is copied or changed. Every site code with capitals is put in lower case (``SHOP-003``
becomes ``shop-003``), and the audit log's rows about that site (target ``site:SHOP-003``) follow it, so its
page keeps its history. A code whose lower case another site has already (``SHOP-001`` beside
``shop-001``: two sites made of one shop) is left as it is, for an admin to merge or rename: dashdesk still
finds it by its code as written. Going down changes nothing back: lower-case codes are valid codes.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, code FROM sites ORDER BY id")).all()
    taken = {code for _, code in rows}
    for site_id, code in rows:
        lower = code.lower()
        if lower == code or lower in taken:
            continue
        conn.execute(sa.text("UPDATE sites SET code = :lower WHERE id = :id"), {"lower": lower, "id": site_id})
        # As server.domain.audit.move_target does: rows from before a delete of that code (another site that had it)
        # stay where they are.
        deleted = conn.execute(sa.text("SELECT max(id) FROM audit_log WHERE target = :old AND action LIKE '%.delete'"),
                               {"old": f"site:{code}"}).scalar()
        conn.execute(sa.text("UPDATE audit_log SET target = :new WHERE target = :old AND id > :after"),
                     {"new": f"site:{lower}", "old": f"site:{code}", "after": deleted or 0})
        taken.discard(code)
        taken.add(lower)


def downgrade() -> None:
    pass
