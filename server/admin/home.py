"""The admin pages' front page (``/admin``): what needs an admin now."""

from __future__ import annotations

from typing import Any

from flask import render_template
from sqlalchemy import func, select

from server.admin.blueprint import PENDING_SHOWN, STATUS_LABELS, admin, site_choices
from server.context import ext
from server.domain import broker_accounts
from server.models import DEVICE_STATUSES, OPEN_STATUSES, AuditLog, Category, Device, Site, Ticket


@admin.get("")
def index() -> Any:
    broker_on = ext().broker.enabled
    if broker_on:
        broker_accounts.learn(ext())
    with ext().db.read() as s:
        by_status = dict(s.execute(select(Device.status, func.count()).group_by(Device.status)).all())
        counts = {
            "sites": s.scalar(select(func.count()).select_from(Site)) or 0,
            "devices": sum(by_status.values()),
            "online": s.scalar(select(func.count()).select_from(Device).where(Device.online.is_(True),
                                                                                Device.status == "active")) or 0,
            "without_account": s.scalar(select(func.count()).select_from(Device).where(
                Device.status == "active", Device.broker_account.is_not(True))) or 0 if broker_on else 0,
            "categories": s.scalar(select(func.count()).select_from(Category)) or 0,
            "open_tickets": s.scalar(select(func.count()).select_from(Ticket)
                                     .where(Ticket.status.in_(OPEN_STATUSES), Ticket.is_test.is_(False))) or 0,
        }
        pending = s.scalars(select(Device).where(Device.status == "pending")
                            .order_by(Device.first_seen_at.desc(), Device.id.desc()).limit(PENDING_SHOWN)).all()
        recent = s.scalars(select(AuditLog).order_by(AuditLog.id.desc()).limit(10)).all()
        site_codes = site_choices(s)
    return render_template("admin/index.html", counts=counts, by_status=by_status, pending=pending, recent=recent,
                           site_codes=site_codes, statuses=DEVICE_STATUSES, labels=STATUS_LABELS, broker_on=broker_on)
