"""The audit log: who did what to which thing, written in the transaction of the change itself.

Every admin action (a web page's form, the API or the command line) calls :func:`record`
with the session it changes things in, so the change and its audit row commit together
or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from dashdesk import wire

from server.models import AuditLog


MAX_DETAIL_CHARS = 4000


def record(s: Session, actor: str, action: str, target: str, **details: Any) -> AuditLog:
    """Add one audit row to ``s``'s transaction."""
    row = AuditLog(created_at=wire.utcnow(), actor=actor[:120], action=action[:40], target=target[:200],
                   details=_short(details))
    s.add(row)
    return row


def record_many(s: Session, actor: str, rows: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Add one audit row per (action, target, details) of ``rows`` to ``s``'s transaction, in that order, in
    one statement: what a bulk action (an import of 500 shops) changed, each thing under its own target."""
    if not rows:
        return
    now = wire.utcnow()
    s.execute(insert(AuditLog), [{"created_at": now, "actor": actor[:120], "action": action[:40],
                                  "target": target[:200], "details": _short(details)}
                                 for action, target, details in rows])


def move_target(s: Session, old: str, new: str) -> int:
    """Give the rows about ``old`` the target ``new`` (a site's code changed: its history follows it); rows from
    before a ``*.delete`` row of ``old`` (another thing that had that name) stay. Returns the rows moved."""
    deleted = s.scalar(select(func.max(AuditLog.id)).where(AuditLog.target == old, AuditLog.action.like("%.delete")))
    return s.execute(update(AuditLog).where(AuditLog.target == old, AuditLog.id > (deleted or 0))
                     .values(target=new)).rowcount or 0


def _short(details: dict[str, Any]) -> dict[str, Any]:
    """Long lists (a copy to 500 devices) are kept whole; a long string is cut, so one row stays small."""
    return {k: (v[:MAX_DETAIL_CHARS] if isinstance(v, str) else v) for k, v in details.items()}


def token_actor(name: str) -> str:
    """The actor of an API call: the token's name."""
    return f"token:{name}"


def cli_actor() -> str:
    """The actor of a ``dashdesk`` command: the name of the system user who ran it."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # a user id without a name (a container, say)
        return "cli:unknown"


@dataclass
class AuditFilter:
    actor: str = ""
    # A target ("site:hs-01") or the start of one ("site:").
    target: str = ""


def query(f: AuditFilter) -> Any:
    """The rows ``f`` selects, newest first."""
    stmt = select(AuditLog).order_by(AuditLog.id.desc())
    if f.actor:
        stmt = stmt.where(AuditLog.actor == f.actor)
    if f.target:
        # A prefix as a range, so the index serves it (LIKE would not on SQLite).
        stmt = stmt.where(AuditLog.target >= f.target, AuditLog.target < f.target + "\U0010ffff")
    return stmt


def count(s: Session, f: AuditFilter, cap: int = 10000) -> int:
    return s.scalar(select(func.count()).select_from(query(f).limit(cap).subquery())) or 0


def as_dict(row: AuditLog) -> dict[str, Any]:
    return {"id": row.id, "created_at": wire.format_time(row.created_at), "actor": row.actor,
            "action": row.action, "target": row.target, "details": row.details}


