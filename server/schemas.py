"""Request and response schemas: what validates input and writes the OpenAPI document."""

from __future__ import annotations

from datetime import timezone

from apiflask import Schema
from apiflask.fields import AwareDateTime, Boolean, Dict, List, Nested, Raw, String
from apiflask.validators import Length, OneOf, Range
from marshmallow import RAISE, ValidationError

from dashdesk import wire

# Numbers in ASCII digits, patterns matched whole, telemetry without lone surrogates (server.inputs).
from .fields import Integer, Plain, Regexp, Telemetry
from .models import DEDUP_SCOPES, DEVICE_KINDS, DEVICE_STATUSES, MAPPING_ACTIONS, TICKET_STATUSES

# Marshmallow formats the message with str.format: the pattern's braces must be doubled.
ID = Regexp(wire.ID_PATTERN, error="must match " + wire.ID_PATTERN.pattern.replace("{", "{{").replace("}", "}}"))
EVENT_ID = Regexp(wire.EVENT_ID_PATTERN, error="must be 1-64 letters, digits and . _ : -")


class UTCTime(AwareDateTime):
    """An RFC 3339 time with a zone that also exists in UTC (0001-01-01T00:00+01:00 does not)."""

    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[no-untyped-def]
        t = super()._deserialize(value, attr, data, **kwargs)
        try:
            return t.astimezone(timezone.utc)
        except OverflowError:
            raise ValidationError("time is out of range") from None


class Strict(Schema):
    class Meta:
        unknown = RAISE


class IncidentIn(Strict):
    event_id = String(required=True, validate=EVENT_ID)
    device_id = String(required=True, validate=ID)
    button = String(required=True, validate=ID)
    press = String(load_default="single", validate=OneOf(wire.PRESS_TYPES))
    pressed_at = UTCTime(required=True)
    seq = Integer(load_default=None, allow_none=True, validate=Range(0, 2**63 - 1))
    telemetry = Telemetry(load_default=dict)
    received_at = UTCTime(load_default=None, allow_none=True,
                                metadata={"description": "when the bridge received the press"})


class IncidentBatchIn(Strict):
    items = List(Nested(IncidentIn), required=True, validate=Length(1, 500))


class TicketSummary(Schema):
    id = Integer()
    number = String()
    status = String()
    category = String()


class Answer(Schema):
    event_id = String(allow_none=True)
    result = String(metadata={"enum": list(wire.RESULTS)})
    ticket = Nested(TicketSummary, allow_none=True)
    reason = String(allow_none=True)


class AnswerList(Schema):
    items = List(Nested(Answer))


class PressOut(Schema):
    event_id = String()
    device_id = String()
    button = String()
    press = String()
    seq = Integer(allow_none=True)
    pressed_at = String()
    received_at = String()
    late = Boolean()
    result = String()
    cancelled = Boolean()
    telemetry = Dict(allow_none=True)


class EventOut(Schema):
    id = Integer()
    kind = String()
    ticket_id = Integer(allow_none=True)
    devices = List(String())
    actor = String()
    data = Dict()
    created_at = String()


class TicketOut(Schema):
    id = Integer()
    number = String()
    status = String()
    priority = Integer()
    category = String()
    site = String(allow_none=True)
    device_id = String()
    button = String()
    title = String()
    occurrences = Integer()
    reopen_count = Integer()
    assignee = String(allow_none=True)
    first_reported_at = String()
    last_reported_at = String()
    created_at = String()
    updated_at = String()
    resolved_at = String(allow_none=True)
    respond_by = String(allow_none=True)
    resolve_by = String(allow_none=True)
    responded_at = String(allow_none=True, metadata={"description": "first agent action; from then on resolve_by "
                                                                   "is the deadline that counts"})
    on_hold_since = String(allow_none=True, metadata={"description": "set while on hold: the SLA clock is stopped"})
    held_s = Integer(metadata={"description": "seconds spent on hold before now; the deadlines moved by them"})
    merged_into = String(allow_none=True, metadata={"description": "the ticket number this one was merged into"})
    telemetry = Dict(allow_none=True)
    major_incident_id = Integer(allow_none=True)
    is_test = Boolean()


class TicketDetail(TicketOut):
    presses = List(Nested(PressOut))
    history = List(Nested(EventOut))


class TicketPage(Schema):
    items = List(Nested(TicketOut))
    next = String(allow_none=True)


class TicketQuery(Strict):
    status = String(metadata={"description": "a status, a comma-separated list, or `open`"})
    category = String(validate=ID)
    site = String(validate=Length(max=64))
    device_id = String(validate=ID)
    priority = Integer(validate=Range(1, 4))
    cursor = String(validate=Regexp(r"^[0-9]{1,12}$"))
    limit = Integer(load_default=50, validate=Range(1, 500))
    include_tests = Boolean(load_default=False, metadata={
        "description": "also list test tickets (`is_test`: made by devices in test mode); left out by default"})


class TicketPatch(Strict):
    status = String(validate=OneOf(TICKET_STATUSES))
    assignee = String(allow_none=True, validate=[Length(max=100), Plain()])
    priority = Integer(validate=Range(1, 4))
    note = String(validate=[Length(min=1, max=10000), Plain(multiline=True)])
    merged_into = String(validate=[Length(min=1, max=30), Plain()], metadata={
        "description": "merge this ticket into another open one (its number, e.g. `INC-000042`, or id): given "
                       "alone; the ticket is closed as a duplicate and later presses that would have merged into "
                       "it join that one"})


class SlaTarget(Schema):
    respond_min = Integer(validate=Range(1, 10**6))
    resolve_min = Integer(validate=Range(1, 10**6))


LABELS = {"description": 'the name shown to staff per language, e.g. {"en": "Printer", "pl": "Drukarka"}'}
DEDUP = {"description": "what presses merge on: `site` (one open ticket per site) or `device`"}
REOPEN = {"description": "minutes after resolution in which a press reopens the ticket; null: the server's "
                         "`reopen_window_s`"}
NOTIFY = {"description": "who is told of new tickets: user names or e-mail addresses (stored and shown for now)"}


SLA_TARGETS = {"description": "targets per priority; the priorities given replace theirs"}
CATEGORY_NAME = Length(1, 200)


class CategoryPatch(Strict):
    """A category's fields to change (``PATCH``): only those given change."""

    name = String(validate=CATEGORY_NAME)
    icon = String(validate=Length(max=32))
    priority = Integer(validate=Range(1, 4))
    sla = Dict(keys=String(validate=OneOf(["1", "2", "3", "4"])), values=Nested(SlaTarget), metadata=SLA_TARGETS)
    labels = Dict(keys=String(), values=String(), metadata=LABELS)
    dedup_scope = String(validate=OneOf(DEDUP_SCOPES), metadata=DEDUP)
    reopen_window_min = Integer(allow_none=True, validate=Range(0, 60 * 24 * 365), metadata=REOPEN)
    notify = List(String(validate=Length(1, 200)), metadata=NOTIFY)


class CategoryIn(CategoryPatch):
    """A category made (or replaced) whole: :class:`CategoryPatch`'s fields, with a slug and a name required
    and what a new category has unless given."""

    slug = String(required=True, validate=ID)
    name = String(required=True, validate=CATEGORY_NAME)
    icon = String(load_default="", validate=Length(max=32))
    priority = Integer(load_default=3, validate=Range(1, 4))
    sla = Dict(keys=String(validate=OneOf(["1", "2", "3", "4"])), values=Nested(SlaTarget), load_default=None,
               metadata=SLA_TARGETS)


class CategoryOut(Schema):
    slug = String()
    name = String()
    icon = String()
    priority = Integer()
    sla = Dict()
    labels = Dict()
    dedup_scope = String()
    reopen_window_min = Integer(allow_none=True)
    notify = List(String())


class CategoryList(Schema):
    items = List(Nested(CategoryOut))


class ButtonOut(Schema):
    button = String()
    press = String(allow_none=True)
    category = String(allow_none=True, metadata={"description": "null for a `cancel` mapping"})
    label = String()
    action = String(metadata={"enum": list(MAPPING_ACTIONS)})


class DeviceIn(Strict):
    device_id = String(required=True, validate=ID)
    # No defaults: a known device keeps what it is not given; a new one gets NEW_DEVICE's (and no site).
    site = String(allow_none=True, validate=Length(max=64),
                  metadata={"description": "the site's code, in any case (made if unknown, checked as a new "
                                           "site's code is); null: no site"})
    site_name = String(allow_none=True, validate=Length(max=200))
    status = String(validate=OneOf(DEVICE_STATUSES),
                    metadata={"description": "a new device: `active` if not given; a known one keeps its own"})
    kind = String(validate=OneOf(DEVICE_KINDS),
                  metadata={"description": "a new device: `physical` if not given; a known one keeps its own"})


# What POST /api/v1/devices gives a new device that it is not told.
NEW_DEVICE = {"status": "active", "kind": "physical"}


class DevicePatch(Strict):
    site = String(allow_none=True, validate=Length(max=64))
    site_name = String(allow_none=True, validate=Length(max=200))
    status = String(validate=OneOf(DEVICE_STATUSES))
    test_mode = Boolean(metadata={"description": "test mode (admin): presses make test tickets, kept out of the "
                                                 "queue and the ticket list; turning it off closes open ones"})


class DeviceOut(Schema):
    device_id = String()
    site = String(allow_none=True)
    status = String()
    kind = String()
    online = Boolean(allow_none=True)
    first_seen_at = String(allow_none=True)
    last_seen_at = String(allow_none=True)
    telemetry = Dict(allow_none=True)
    telemetry_at = String(allow_none=True)
    firmware = String(allow_none=True, metadata={"description": "from the latest telemetry, if it says"})
    test_mode = Boolean(metadata={"description": "its presses make test tickets (`is_test`)"})
    replaced_by = String(allow_none=True, metadata={"description": "the device that took its place"})
    broker_account = Boolean(allow_none=True, metadata={
        "description": "with broker accounts on: whether it has its own account on the broker (null: not known "
                       "yet, dashdesk has not asked the broker)"})
    buttons = List(Nested(ButtonOut))


class DeviceList(Schema):
    items = List(Nested(DeviceOut))


class ButtonIn(Strict):
    category = String(validate=ID, allow_none=True,
                      metadata={"description": "the category reported; required unless `action` is cancel"})
    label = String(load_default="", validate=[Length(max=200), Plain()], metadata={"description": "shown to staff"})
    press = String(load_default=None, allow_none=True, validate=OneOf(wire.PRESS_TYPES),
                   metadata={"description": "map only this press type (default: every type)"})
    action = String(load_default="report", validate=OneOf(MAPPING_ACTIONS),
                    metadata={"description": "`report` the category, or `cancel` the device's last report"})


class DeviceQuery(Strict):
    status = String(validate=OneOf(DEVICE_STATUSES))
    site = String(validate=Length(max=64))
    broker_account = Boolean(metadata={"description": "`false`: only devices without a broker account (or whose "
                                                      "account is not known yet), `true`: only those with one"})


class DeviceButtonQuery(Strict):
    press = String(validate=OneOf(wire.PRESS_TYPES), metadata={"description": "that press type's own mapping"})


class BrokerOut(Schema):
    auth = String(metadata={"enum": ["none", "dynsec"], "description": "the broker's `[broker] auth`"})
    credentials = String(metadata={
        "enum": ["issued", "kept", "removed", "not_needed", "failed"],
        "description": "`issued`: a new account (or password), its password below, shown this once; `kept`: the "
                       "device had an account, which it keeps (its password goes on working; none is shown); "
                       "`removed`: the account is gone and its connection closed; `not_needed`: the broker has no "
                       "accounts; `failed`: the broker did not answer (`error`), try again with `.../credentials`"})
    username = String(allow_none=True)
    password = String(allow_none=True, metadata={"description": "shown this once; stored only as a hash"})
    mqtt_url = String(allow_none=True, metadata={"description": "put into the device's TOML file (`mqtt_url`)"})
    broker_url = String(allow_none=True, metadata={"description": "the broker as devices reach it"})
    error = String(allow_none=True)


class DeviceBrokerOut(DeviceOut):
    broker = Nested(BrokerOut, metadata={"description": "what happened to the device's broker account"})


class BrokerItemOut(BrokerOut):
    device_id = String()


class CredentialsIn(Strict):
    device_ids = List(String(validate=ID), required=True, validate=Length(1, 500),
                      metadata={"description": "active devices"})
    new = Boolean(load_default=False, metadata={
        "description": "`true`: a new password for those that have an account too (their old one stops working "
                       "and they are disconnected); `false`: those keep theirs (`kept`)"})


class CredentialsOut(Schema):
    items = List(Nested(BrokerItemOut), metadata={"description": "one per device, in the order asked"})


class RegisterIn(Strict):
    device_id = String(required=True, validate=ID)
    site = String(required=True, validate=Length(1, 64))
    kind = String(load_default="physical", validate=OneOf(DEVICE_KINDS))


class ReplaceIn(Strict):
    by = String(required=True, validate=ID, metadata={"description": "the new device's id (created if unknown)"})


class ReplaceOut(Schema):
    device = Nested(DeviceBrokerOut, metadata={"description": "the new device, active in the old one's site"})
    replaced = Nested(DeviceBrokerOut, metadata={"description": "the old device, now retired"})
    mappings = Integer(metadata={"description": "button mapping rows copied"})
    tickets = List(String(), metadata={"description": "the open tickets taken over"})
    already_replaced = Boolean(metadata={"description": "true: the old device had been replaced by this one "
                                                        "already; nothing was done (no new credentials)"})


class ConfigImportQuery(Strict):
    dry_run = Boolean(load_default=False, metadata={"description": "say what would change; change nothing"})
    prune = Boolean(load_default=False, metadata={"description": "also remove what the file does not have"})


class ImportCounts(Schema):
    added = Integer()
    changed = Integer()
    unchanged = Integer()
    removed = Integer()


class ConfigImportOut(Schema):
    dry_run = Boolean()
    prune = Boolean()
    counts = Dict(keys=String(metadata={"enum": ["categories", "sites", "devices", "mappings"]}),
                  values=Nested(ImportCounts))
    changes = List(String(), metadata={"description": "what changed, one line each (the first 500)"})
    more_changes = Integer(metadata={"description": "changes past those listed"})
    kept = List(String(), metadata={"description": "with prune: what stays because something refers to it"})
    retired = List(String(), metadata={"description": "devices the import retired"})
    broker = List(Nested(BrokerOut), metadata={"description": "their broker accounts, with accounts on"})


USERNAME = Regexp(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$",
                  error="1-100 letters, digits and . _ @ -, starting with a letter or digit")


class UserOut(Schema):
    username = String()
    role = String(metadata={"enum": ["agent", "admin"]})
    active = Boolean()
    created_at = String()
    last_login_at = String(allow_none=True, metadata={"description": "the last sign-in"})
    password = String(metadata={"description": "only when dashdesk made the password: shown this once"})


class UserList(Schema):
    items = List(Nested(UserOut))


class UserIn(Strict):
    username = String(required=True, validate=USERNAME)
    role = String(load_default="agent", validate=OneOf(["agent", "admin"]))
    password = String(validate=Length(8, 1024), metadata={
        "description": "the initial password; left out, dashdesk makes one and answers it (shown this once)"})


class UserPatch(Strict):
    role = String(validate=OneOf(["agent", "admin"]))
    active = Boolean(metadata={"description": "false: signed out at the next request, cannot sign in"})


class PasswordIn(Strict):
    password = String(validate=Length(8, 1024), metadata={"description": "left out: dashdesk makes one"})


class TokenOut(Schema):
    id = Integer()
    name = String()
    role = String(metadata={"enum": ["admin", "bridge"]})
    created_at = String()
    last_used_at = String(allow_none=True, metadata={"description": "written at most once a minute"})
    revoked_at = String(allow_none=True)
    token = String(metadata={"description": "only when created: shown this once, stored as a hash"})


class TokenList(Schema):
    items = List(Nested(TokenOut))


class TokenIn(Strict):
    name = String(required=True, validate=[Length(1, 100), Plain()])
    role = String(load_default="admin", validate=OneOf(["admin", "bridge"]))


class ApproveIn(Strict):
    site = String(required=True, validate=Length(1, 64), metadata={"description": "the site's code"})


class ReasonIn(Strict):
    reason = String(load_default="", validate=[Length(max=500), Plain(multiline=True)])


class CopyMappingIn(Strict):
    from_ = String(required=True, validate=ID, data_key="from", metadata={"description": "the template device"})
    to = List(String(validate=ID), required=True, validate=Length(1, 2000),
              metadata={"description": "devices whose mapping is replaced by the template's"})


class CopyMappingOut(Schema):
    copied = Integer(metadata={"description": "mappings per device"})
    devices = List(String())


SITE_CODE = Length(1, 64)
SITE_NAME = Length(1, 200)


class SitePatch(Strict):
    """A site's fields to change (``PATCH``): only those given change."""

    code = String(validate=SITE_CODE)
    name = String(validate=SITE_NAME)
    address = String(validate=Length(max=1000))
    timezone = String(validate=Length(max=64), metadata={"description": "an IANA time zone, e.g. Europe/Warsaw"})
    hours = Raw(metadata={"description": 'service hours: "Mon–Sat 05:00–18:00; Sun closed", or '
                                         '{"mon": [["05:00", "18:00"]], ..., "sun": []}'})
    contact = String(validate=Length(max=300))


class SiteIn(SitePatch):
    """A new site: :class:`SitePatch`'s fields, with its code and name required."""

    code = String(required=True, validate=SITE_CODE)
    name = String(required=True, validate=SITE_NAME)


class SiteOut(Schema):
    code = String()
    name = String()
    address = String()
    timezone = String()
    hours = Dict()
    hours_text = String(metadata={"description": "the hours as people write them"})
    contact = String()
    devices = Integer()


class SitePage(Schema):
    items = List(Nested(SiteOut))
    next = String(allow_none=True)


class SiteQuery(Strict):
    q = String(validate=Length(max=100), metadata={"description": "part of the code, name or address"})
    cursor = String(validate=Length(max=64))
    limit = Integer(load_default=100, validate=Range(1, 1000))


class ImportOut(Schema):
    rows = Integer()
    created = Integer()
    updated = Integer()
    unchanged = Integer()


class AuditOut(Schema):
    id = Integer()
    created_at = String()
    actor = String()
    action = String()
    target = String()
    details = Dict()


class AuditPage(Schema):
    items = List(Nested(AuditOut))
    next = String(allow_none=True)


class AuditQuery(Strict):
    actor = String(validate=Length(max=120))
    target = String(validate=Length(max=200), metadata={"description": "a target or its start, e.g. `site:`"})
    cursor = String(validate=Regexp(r"^[0-9]{1,12}$"))
    limit = Integer(load_default=100, validate=Range(1, 500))


class TelemetryIn(Strict):
    telemetry = Telemetry(required=True)


class StatusIn(Strict):
    online = Boolean(required=True)


class OpenTickets(Schema):
    tickets = List(Nested(TicketSummary))


class EventQuery(Strict):
    after = Integer(load_default=0, validate=Range(0, 2**63 - 1))
    limit = Integer(load_default=200, validate=Range(1, 1000))
    with_tickets = Boolean(load_default=False,
                           metadata={"description": "add `device_tickets`: each affected device's open tickets"})


class EventPage(Schema):
    items = List(Nested(EventOut))
    last_id = Integer()
    device_tickets = Dict(keys=String(), values=List(Nested(TicketSummary)))


class DeadLetterIn(Strict):
    key = String(required=True, validate=Length(1, 80))
    topic = String(required=True, validate=Length(max=300))
    payload_prefix = String(required=True, validate=Length(max=2048))
    payload_size = Integer(required=True, validate=Range(0, 2**31))
    reason = String(required=True, validate=Length(1, 2000))
    received_at = UTCTime(required=True)


class DeadLetterOut(Schema):
    id = Integer()
    topic = String()
    payload_prefix = String()
    payload_size = Integer()
    reason = String()
    received_at = String()


class DeadLetterList(Schema):
    items = List(Nested(DeadLetterOut))


class Health(Schema):
    status = String()
