"""The ticket server's tables (SQLAlchemy 2, declarative with typed columns)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text,
                        TypeDecorator, UniqueConstraint, case, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

OPEN_STATUSES = ("new", "in_progress", "on_hold")
TICKET_STATUSES = ("new", "in_progress", "on_hold", "resolved", "closed", "cancelled")
DEVICE_STATUSES = ("pending", "active", "retired")
USER_ROLES = ("agent", "admin")
# The tickets the desk's queue shows. Queries must use this very text (server.web.QUEUE_SQL) for
# SQLite to use the partial index ix_tickets_open_due. The unary + keeps SQLite from answering the
# queue with ix_tickets_queue (status) and a sort of every open ticket instead.
QUEUE_WHERE = "+status IN ('new', 'in_progress', 'on_hold') AND is_test = 0"
# The same on PostgreSQL, whose planner needs no such help (and has no unary + for text).
QUEUE_WHERE_PG = "status IN ('new', 'in_progress', 'on_hold') AND NOT is_test"


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every database (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Site(Base):
    __tablename__ = "sites"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))


class Category(Base):
    __tablename__ = "categories"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    icon: Mapped[str] = mapped_column(String(32), default="")
    priority: Mapped[int] = mapped_column(Integer, default=3)
    # {"1": {"respond_s": 900, "resolve_s": 14400}, ...}: targets per priority.
    sla: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Device(Base):
    __tablename__ = "devices"
    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[str] = mapped_column(String(63), unique=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    kind: Mapped[str] = mapped_column(String(16), default="physical")
    online: Mapped[bool | None] = mapped_column(Boolean)
    first_seen_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]
    telemetry: Mapped[dict[str, Any] | None]
    telemetry_at: Mapped[datetime | None]
    site: Mapped[Site | None] = relationship()


class ButtonMapping(Base):
    """Which category a device's button reports; ``press`` set overrides one press type."""

    __tablename__ = "button_mappings"
    __table_args__ = (UniqueConstraint("device_id", "button", "press", name="uq_button_press"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[str] = mapped_column(String(63), index=True)
    button: Mapped[str] = mapped_column(String(63))
    # "" = every press type not mapped on its own (NULL would defeat the unique key).
    press: Mapped[str] = mapped_column(String(8), default="")
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"))
    label: Mapped[str] = mapped_column(String(200), default="")
    category: Mapped[Category] = relationship()


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        # The dedup look-up: an open ticket for this scope and category.
        Index("ix_tickets_scope_open", "scope", "category_id", "status"),
        Index("ix_tickets_queue", "status", "priority", "respond_by"),
        # The desk's queue: open tickets by priority, then the SLA deadline nearest to breach
        # (``Ticket.due``); partial, so closed tickets cost the queue nothing.
        Index("ix_tickets_open_due", "priority", text("(CASE WHEN responded_at IS NULL THEN respond_by "
                                                      "ELSE resolve_by END)"), "id",
              sqlite_where=text(QUEUE_WHERE), postgresql_where=text(QUEUE_WHERE_PG)),
        # The queue's filters by site and by assignee.
        Index("ix_tickets_site_status", "site_id", "status"),
        Index("ix_tickets_assignee_status", "assignee", "status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="new")
    priority: Mapped[int] = mapped_column(Integer)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    # "site:<id>" or "device:<device_id>": what presses merge on.
    scope: Mapped[str] = mapped_column(String(80))
    device_id: Mapped[str] = mapped_column(String(63), index=True)
    button: Mapped[str] = mapped_column(String(63))
    title: Mapped[str] = mapped_column(String(300))
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    first_reported_at: Mapped[datetime]
    last_reported_at: Mapped[datetime]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    respond_by: Mapped[datetime | None]
    resolve_by: Mapped[datetime | None]
    assignee: Mapped[str | None] = mapped_column(String(100))
    # The first agent action (take, a status change, a note...): until then respond_by is the deadline.
    responded_at: Mapped[datetime | None]
    # Set when an agent merged this ticket into another one (it is then closed as a duplicate).
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    # Set once an agent changes the ticket: a double press may no longer cancel it.
    touched: Mapped[bool] = mapped_column(Boolean, default=False)
    telemetry: Mapped[dict[str, Any] | None]
    # Devices that pressed into this ticket: whose ``tickets`` topic a change must refresh.
    devices: Mapped[list[Any]] = mapped_column(default=list)
    major_incident_id: Mapped[int | None]
    is_test: Mapped[bool] = mapped_column(Boolean, default=False)
    category: Mapped[Category] = relationship()
    site: Mapped[Site | None] = relationship()

    @classmethod
    def due_expr(cls) -> Any:
        """The SLA deadline nearest to breach: respond_by until an agent responded, then resolve_by."""
        return case((cls.responded_at.is_(None), cls.respond_by), else_=cls.resolve_by)


class Press(Base):
    """Every press event the server was handed, with the answer it gave (the idempotency record)."""

    __tablename__ = "presses"
    id: Mapped[int] = mapped_column(primary_key=True)
    # The unique constraint, not a look-up, is what makes a replay harmless.
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    device_id: Mapped[str] = mapped_column(String(63), index=True)
    button: Mapped[str] = mapped_column(String(63))
    press: Mapped[str] = mapped_column(String(8))
    seq: Mapped[int | None]
    pressed_at: Mapped[datetime]
    bridge_received_at: Mapped[datetime | None]
    received_at: Mapped[datetime]
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    result: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    telemetry: Mapped[dict[str, Any] | None]
    # The exact body answered the first time, so a replay returns the first answer.
    response: Mapped[dict[str, Any]]


class Event(Base):
    """The event feed: one row per change, written in the ticket's own transaction."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    # Devices whose open-ticket list this change alters.
    devices: Mapped[list[Any]] = mapped_column(default=list)
    actor: Mapped[str] = mapped_column(String(100), default="system")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16), default="admin")
    # SHA-256 of the token: tokens are long random strings, so a plain hash suffices.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class User(Base):
    """A person who signs in to the web pages: an ``agent`` works tickets, an ``admin`` also runs the desk."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    # argon2id, in the PHC string format (argon2-cffi).
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="agent")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]


class DeadLetter(Base):
    """A payload the bridge rejected, kept for admins to look at."""

    __tablename__ = "dead_letters"
    id: Mapped[int] = mapped_column(primary_key=True)
    # The bridge's own id for it, so a re-sent dead letter is stored once.
    key: Mapped[str] = mapped_column(String(80), unique=True)
    topic: Mapped[str] = mapped_column(String(300))
    payload_prefix: Mapped[str] = mapped_column(Text)
    payload_size: Mapped[int]
    reason: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime]
