"""The ticket server's tables (SQLAlchemy 2, declarative with typed columns)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text,
                        TypeDecorator, UniqueConstraint, case, false, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

OPEN_STATUSES = ("new", "in_progress", "on_hold")
TICKET_STATUSES = ("new", "in_progress", "on_hold", "resolved", "closed", "cancelled")
# pending: pressed before anyone knew it (its presses still report); rejected and retired: presses refused.
DEVICE_STATUSES = ("pending", "active", "retired", "rejected")
DEVICE_KINDS = ("physical", "phone")
# What merges presses into one open ticket: the same site (the default) or the same device.
DEDUP_SCOPES = ("site", "device")
# What a button mapping does: report its category, or cancel the device's last report.
MAPPING_ACTIONS = ("report", "cancel")
USER_ROLES = ("agent", "admin")
# The tickets the desk's queue shows. Queries must use this very text (server.desk.queue.QUEUE_SQL) for
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
    """A shop. ``hours``: ``{"mon": [["05:00", "18:00"]], ..., "sun": []}`` ({} while not given)."""

    __tablename__ = "sites"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(Text, default="", server_default="")
    # An IANA time zone name (checked with zoneinfo): the shop's service hours are in it.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    hours: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    contact: Mapped[str] = mapped_column(String(300), default="", server_default="")


class Category(Base):
    __tablename__ = "categories"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    icon: Mapped[str] = mapped_column(String(32), default="")
    priority: Mapped[int] = mapped_column(Integer, default=3)
    # {"1": {"respond_min": 15, "resolve_min": 240}, ...}: targets per priority.
    sla: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The name shown to staff per language: {"en": "Printer", "pl": "Drukarka"}.
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    # "site": presses at one site merge into its open ticket; "device": each device has its own.
    dedup_scope: Mapped[str] = mapped_column(String(8), default="site", server_default="site")
    # How long after resolution a press reopens the ticket; None: the server's reopen_window_s.
    reopen_window_min: Mapped[int | None] = mapped_column(Integer)
    # Who is told about new tickets (user names or e-mail addresses); stored and shown for now.
    notify: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")


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
    # Test mode: presses go through the whole pipe and are acked, but make ``is_test`` tickets that
    # stay out of the queue, the API's listing and real tickets' dedup (an installer checks a button).
    test_mode: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The device that took this one's place (``devices.replace``): its tickets topic lists this one's.
    replaced_by: Mapped[str | None] = mapped_column(String(63), index=True)
    # With broker accounts on: whether the device has its own account on the broker (``server.domain.broker_accounts``
    # records it when it makes, keeps or deletes one); None while dashdesk has not asked the broker yet (a
    # device first seen by a press, added by an import or the API, or known before this was recorded).
    broker_account: Mapped[bool | None] = mapped_column(Boolean)
    site: Mapped[Site | None] = relationship()


class ButtonMapping(Base):
    """Which category a device's button reports (or, ``action`` cancel, that it cancels the last report);
    ``press`` set overrides one press type."""

    __tablename__ = "button_mappings"
    __table_args__ = (UniqueConstraint("device_id", "button", "press", name="uq_button_press"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[str] = mapped_column(String(63), index=True)
    button: Mapped[str] = mapped_column(String(63))
    # "" = every press type not mapped on its own (NULL would defeat the unique key).
    press: Mapped[str] = mapped_column(String(8), default="")
    # None for a mapping whose action is "cancel".
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"))
    label: Mapped[str] = mapped_column(String(200), default="")
    action: Mapped[str] = mapped_column(String(8), default="report", server_default="report")
    category: Mapped[Category | None] = relationship()


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
        # Migration 0004 (benchmarks.desk at 100,000 tickets): the queue in ix_tickets_open_due's order with
        # every column its filters, search and counts read, so they never read a closed ticket nor, until
        # it matches, an open ticket's row (status and is_test too: SQLite 3.40 calls an index covering
        # only if it holds every column the query names); "assigned to me" in queue order; the API's
        # listing per status, newest first.
        Index("ix_tickets_open_due_filters", "priority", text("(CASE WHEN responded_at IS NULL THEN respond_by "
                                                              "ELSE resolve_by END)"), "id", "status", "is_test",
              "category_id", "site_id", "assignee", "device_id",
              sqlite_where=text(QUEUE_WHERE), postgresql_where=text(QUEUE_WHERE_PG)),
        Index("ix_tickets_open_assignee", "assignee", "priority", text("(CASE WHEN responded_at IS NULL THEN "
                                                                       "respond_by ELSE resolve_by END)"), "id",
              sqlite_where=text(QUEUE_WHERE), postgresql_where=text(QUEUE_WHERE_PG)),
        Index("ix_tickets_status_id", "status", "id"),
        # Migration 0006: the few test tickets (devices in test mode), so that the API's listing leaves them
        # out with one small look-up while it walks the indexes above as before.
        Index("ix_tickets_test", "id", sqlite_where=text("is_test = 1"), postgresql_where=text("is_test")),
        # Migration 0013: the few tickets merged into another, by dedup scope: a press whose scope has no open
        # ticket looks here for where an agent merged the scope's ticket (``incidents._merged_target``).
        Index("ix_tickets_merged", "scope", "category_id", "id", sqlite_where=text("merged_into_id IS NOT NULL"),
              postgresql_where=text("merged_into_id IS NOT NULL")),
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
    # The SLA clock stops while a ticket is on hold: since when, and the seconds held before now.
    # The clock started at creation plus the time held (rules.sla_start); leaving hold counts respond_by
    # and resolve_by from that later start.
    on_hold_since: Mapped[datetime | None]
    held_s: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Set when an agent merged this ticket into another one: it is then closed as a duplicate, without a
    # ``resolved_at`` of its own (the other ticket's resolution is its), and later presses that would have
    # merged into it go to that ticket.
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
    # A press is its device's ``event_id`` (migration 0010): the same event_id from another device is another
    # press. The unique constraint, not a look-up, is what makes a replay harmless.
    __table_args__ = (UniqueConstraint("device_id", "event_id", name="uq_presses_device_event"),
                      # Migration 0013: a double press's look-up of its button's last report.
                      Index("ix_presses_device_button", "device_id", "button"))
    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64))
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


class WebSession(Base):
    """One sign-in to the web pages (``server.domain.web_sessions``): the session cookie carries a random key whose
    SHA-256 is ``key_hash``. Signing out deletes the row; so do a new password, disabling the user and a change
    of their role, for every session of theirs. Expired rows are deleted at the next sign-in."""

    __tablename__ = "web_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime]
    # created_at + [server] session_lifetime_h: the session ends then, whatever happens meanwhile.
    expires_at: Mapped[datetime]
    # Updated at most every few minutes (server.domain.web_sessions.SEEN_EVERY), not at each request.
    last_seen_at: Mapped[datetime | None]
    # The browser's User-Agent at sign-in (cut to 300 characters), for admins to tell sessions apart.
    user_agent: Mapped[str] = mapped_column(String(300), default="", server_default="")


class AuditLog(Base):
    """One admin action (web page or API), written in the transaction of the change it records."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_actor", "actor", "id"), Index("ix_audit_log_target", "target", "id"))
    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime]
    # A web user's name, or "token:<name>" for an API token.
    actor: Mapped[str] = mapped_column(String(120))
    # What was done: "site.create", "device.approve", "mapping.copy", ...
    action: Mapped[str] = mapped_column(String(40))
    # What it was done to: "site:<code>", "device:<device_id>", "category:<slug>", "sites:import".
    target: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


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


class Enrolment(Base):
    """A one-time link that turns a phone into a device of a site (the phone app, ``server.phone``).

    The link's code and, once redeemed, the phone's app token are kept as SHA-256 hashes only:
    both are long random strings, shown once.
    """

    __tablename__ = "enrolments"
    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The code's first characters, so admins can tell links apart in a list.
    code_hint: Mapped[str] = mapped_column(String(8))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    # The device whose button mapping the phone gets; None: one button per category.
    source_device: Mapped[str | None] = mapped_column(String(63))
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(120))
    used_at: Mapped[datetime | None]
    # The phone's device id and the token it reads its configuration with, once redeemed.
    device_id: Mapped[str | None] = mapped_column(String(63), unique=True)
    app_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    used_user_agent: Mapped[str | None] = mapped_column(String(300))
    site: Mapped[Site] = relationship()
