"""The queue (``/``): the open tickets, most urgent first, with filters; partial updates for the live page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import render_template, request
from flask_login import current_user
from markupsafe import Markup, escape
from sqlalchemy import func, or_, select, text
from sqlalchemy.orm import Session

from dashdesk import wire

from server.context import ext
from server.desk.blueprint import web
from server.domain import inputs, rules, tickets
from server.domain import sites as sites_mod
from server.models import OPEN_STATUSES, QUEUE_WHERE, QUEUE_WHERE_PG, Category, Site, Ticket
from server.pages.formatting import Sla, duration, sla_state


PAGE_SIZE = 100


# The partial index ix_tickets_open_due serves only queries with this very text (see models.Ticket).
QUEUE_SQL = text(QUEUE_WHERE.replace("+status", "+tickets.status").replace("is_test", "tickets.is_test"))


QUEUE_SQL_PG = text(QUEUE_WHERE_PG.replace("status", "tickets.status").replace("is_test", "tickets.is_test"))


# Past this many, a filtered queue says "1000+": counting them all would cost more than the page.
COUNT_CAP = 1000


@dataclass
class QueueFilters:
    status: str = ""
    category: str = ""
    site: str = ""
    priority: int | None = None
    assignee: str = ""  # "", "me" or "none"
    q: str = ""
    page: int = 0

    @classmethod
    def from_args(cls, args: Any) -> "QueueFilters":
        f = cls()
        f.status = args.get("status", "") if args.get("status", "") in OPEN_STATUSES else ""
        f.category = args.get("category", "")[:63]
        f.site = args.get("site", "")[:64]
        f.priority = inputs.parse_int(args.get("priority", ""), low=1, high=4)
        f.assignee = args.get("assignee", "") if args.get("assignee", "") in ("me", "none") else ""
        f.q = args.get("q", "").strip()[:100]
        f.page = inputs.page_number(args.get("page", "0"))
        return f

    def query(self, **change: Any) -> str:
        values = {"status": self.status, "category": self.category, "site": self.site,
                  "priority": self.priority or "", "assignee": self.assignee, "q": self.q, "page": self.page or ""}
        values.update(change)
        return urlencode({k: v for k, v in values.items() if v not in ("", None, 0)})


@dataclass
class QueueRow:
    id: int
    number: str
    status: str
    priority: int
    category_slug: str
    category_name: str
    icon: str
    site_code: str | None
    site_name: str | None
    device_id: str
    title: str
    occurrences: int
    assignee: str | None
    age: str
    sla: Sla


def queue_rows(s: Session, f: QueueFilters, username: str, now: datetime) -> tuple[list[QueueRow], int, bool]:
    """One page of the open queue: most urgent priority first, then the deadline nearest to breach.

    One query for the page (categories and sites joined), one to count it unless the page, filtered and
    not full, is the count.
    """
    due = Ticket.due_expr()
    cols = (Ticket.id, Ticket.status, Ticket.priority, Ticket.device_id, Ticket.title, Ticket.occurrences,
            Ticket.assignee, Ticket.first_reported_at, Ticket.created_at, Ticket.responded_at, Ticket.respond_by,
            Ticket.resolve_by, Category.slug, Category.name, Category.icon, Site.code, Site.name, Ticket.held_s,
            Ticket.on_hold_since)
    sqlite = s.get_bind().dialect.name == "sqlite"
    conditions: list[Any] = [QUEUE_SQL if sqlite else QUEUE_SQL_PG]
    if f.status:
        # + again: walk the queue's index in order and skip the other statuses, rather than sort them all.
        conditions.append(text("+tickets.status = :status").bindparams(status=f.status) if sqlite
                          else Ticket.status == f.status)
    if f.category:
        conditions.append(Ticket.category_id == select(Category.id).where(Category.slug == f.category)
                          .scalar_subquery())
    if f.site:
        conditions.append(Ticket.site_id == sites_mod.id_of(f.site))
    if f.priority:
        conditions.append(Ticket.priority == f.priority)
    if f.assignee == "me":
        conditions.append(Ticket.assignee == username)
    elif f.assignee == "none":
        conditions.append(Ticket.assignee.is_(None))
    if f.q:
        number = rules.parse_ticket_number(f.q)
        if number is not None and f.q.strip().upper().startswith("INC-"):
            conditions.append(Ticket.id == number)
        else:
            # The sites that match, found once; then each open ticket is tested on the queue's index
            # (ix_tickets_open_due_filters holds site_id and device_id), with no join per ticket.
            sites = select(Site.id).where(or_(Site.code.contains(f.q, autoescape=True),
                                              Site.name.contains(f.q, autoescape=True)))
            found = [Ticket.site_id.in_(sites), Ticket.device_id.contains(f.q, autoescape=True)]
            if number is not None:
                found.append(Ticket.id == number)
            conditions.append(or_(*found))
    stmt = (select(*cols).select_from(Ticket).join(Category, Category.id == Ticket.category_id)
            .outerjoin(Site, Site.id == Ticket.site_id).where(*conditions)
            .order_by(Ticket.priority, due, Ticket.id).limit(PAGE_SIZE + 1).offset(f.page * PAGE_SIZE))
    rows = s.execute(stmt).all()
    matching = select(Ticket.id).where(*conditions)
    if len(conditions) == 1:
        total = s.scalar(select(func.count()).select_from(matching.subquery())) or 0
    elif len(rows) <= PAGE_SIZE and (rows or f.page == 0):
        # A filtered queue's last page holds all the rest of it: its rows tell the count.
        total = f.page * PAGE_SIZE + len(rows)
    else:
        total = s.scalar(select(func.count()).select_from(matching.limit(COUNT_CAP + 1).subquery())) or 0
    out = [QueueRow(
        id=r[0], number=rules.ticket_number(r[0]), status=r[1], priority=r[2], device_id=r[3], title=r[4],
        occurrences=r[5], assignee=r[6], age=duration((now - r[7]).total_seconds()),
        sla=sla_state(r[9], r[10], r[11], rules.sla_start(r[8], r[17], r[18], now), r[1], now),
        category_slug=r[12], category_name=r[13],
        icon=r[14], site_code=r[15], site_name=r[16]) for r in rows[:PAGE_SIZE]]
    return out, total, len(rows) > PAGE_SIZE


@web.get("/")
def queue() -> Any:
    f = QueueFilters.from_args(request.args)
    now = wire.utcnow()
    with ext().db.read() as s:
        rows, total, more = queue_rows(s, f, current_user.username, now)
        if request.args.get("partial"):
            return render_template("_queue_table.html", rows=rows, total=total, more=more, f=f, cap=COUNT_CAP)
        categories = s.execute(select(Category.slug, Category.name, Category.icon).order_by(Category.name)).all()
        sites = s.execute(select(Site.code, Site.name).order_by(Site.code).limit(2000)).all()
    return render_template("queue.html", rows=rows, total=total, more=more, f=f, cap=COUNT_CAP, categories=categories,
                           site_options=site_options(sites, f.site), statuses=OPEN_STATUSES,
                           labels=tickets.STATUS_LABELS)


def site_options(sites: Any, chosen: str) -> Markup:
    """The site filter's options, one string: a chain has hundreds of shops, and a template loop
    over them costs more than the rest of the queue page."""
    return Markup("".join(
        f'<option value="{escape(code)}"{" selected" if code == chosen else ""}>{escape(code)}'
        f'{f" — {escape(name)}" if name != code else ""}</option>' for code, name in sites))
