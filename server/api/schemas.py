"""Request and response schemas: what validates input and writes the OpenAPI document.

The document says everything a request must be that a schema can say (types, patterns, lengths,
which fields a body needs), and the schemas below check exactly that, on the value as sent: a JSON
number for an integer (``2.6e-42`` is none), a JSON boolean for a boolean (not ``0``), a name that
is not blank. What only the server can know (a site that exists, a ticket's status allowing a
change) answers 404 or 409; a rule between fields or a registry no schema can list (an IANA time
zone, opening hours whose spans overlap) answers 422, and the field's description says so.
``server.api.openapi`` adds the rest of the document: error bodies, every status an operation answers,
links between operations.
"""

from __future__ import annotations

import re
from datetime import timezone
from typing import Any

from apiflask import Schema
from apiflask.fields import AwareDateTime, Boolean, Dict, Integer, List, Nested, Raw, String
from apiflask.validators import Length, OneOf, Range, Regexp
from marshmallow import RAISE, ValidationError, post_load, pre_load

from dashdesk import wire

# Numbers and booleans as JSON and query strings carry them, text that can be stored and shown, telemetry
# without lone surrogates (server.api.fields, server.domain.inputs).
from server.api.fields import JsonBoolean, JsonInteger, Plain, QueryBoolean, QueryInteger, Telemetry
from server.domain.categories import LANGUAGE, MAX_RECIPIENTS, RECIPIENT, SPACE
from server.models import DEDUP_SCOPES, DEVICE_KINDS, DEVICE_STATUSES, MAPPING_ACTIONS, TICKET_STATUSES


class Pattern(Regexp):
    """A JSON Schema ``pattern`` (which the document shows), checked as JSON Schema checks it: found anywhere
    in the value unless anchored, and ``$`` is the very end (Python's ``$`` also takes a value ending in a
    new line: ``"b1\\n"`` is no button id)."""

    def __init__(self, regex: str, error: str):
        # Marshmallow formats the message with str.format: braces must be doubled.
        super().__init__(regex, error=error.replace("{", "{{").replace("}", "}}"))
        self._whole = re.compile(re.sub(r"(?<!\\)\$", r"\\Z", regex))

    def __call__(self, value: str) -> str:
        if self._whole.search(value) is None:
            raise ValidationError(self._format_error(value))
        return value


def _pattern(regex: str, error: str) -> Pattern:
    return Pattern(regex, error)


ID = _pattern(wire.ID_PATTERN.pattern, "must match " + wire.ID_PATTERN.pattern)
EVENT_ID = _pattern(wire.EVENT_ID_PATTERN.pattern, "must be 1-64 letters, digits and . _ : -")
# Path segments that are the API's own paths where a device id or a site code could be: `/api/v1/devices/register`
# is no device (a device of that id is reached on its admin page), `/api/v1/sites/import` no site.
RESERVED_IN_PATH = {"device": ("device_id", ("register", "credentials", "copy-mapping")),
                    "site": ("code", ("import",))}
# A page's cursor: an id from the answer (`next`).
CURSOR = _pattern(r"^[0-9]{1,12}$", "a cursor from the answer's `next`")
# A device id, or "" for none.
DEVICE_OR_NONE = _pattern("^$|" + wire.ID_PATTERN.pattern, "a device id, or empty for none")
# Text that must not be blank: at least one character that is not white space.
NOT_BLANK = _pattern(f"[^{SPACE}]", "must not be blank")
# A site's code as given (any case; kept in lower case), never "import" (the import endpoints' name).
SITE_CODE_PATTERN = r"^(?![Ii][Mm][Pp][Oo][Rr][Tt]$)[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
SITE_CODE = _pattern(SITE_CODE_PATTERN, "1-64 letters, digits and . _ -, starting with a letter or digit "
                                        "(not 'import')")


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


class Query(Strict):
    """Query parameters: one given empty (``?status=``) is one not given (the document says
    ``allowEmptyValue``); one given twice (``?limit=5&limit=x``) is refused, not read as its first value."""

    @pre_load
    def _once_each(self, data: Any, **kwargs: Any) -> Any:
        values = getattr(data, "getlist", None)
        if values is None:
            return data
        twice = sorted(k for k in data if len(values(k)) > 1)
        if twice:
            raise ValidationError({k: ["given more than once"] for k in twice})
        return {k: data[k] for k in data if data[k] != ""}


class IncidentIn(Strict):
    event_id = String(required=True, validate=EVENT_ID)
    device_id = String(required=True, validate=ID)
    button = String(required=True, validate=ID)
    press = String(load_default="single", validate=OneOf(wire.PRESS_TYPES))
    pressed_at = UTCTime(required=True)
    seq = JsonInteger(load_default=None, allow_none=True, validate=Range(0, 2**63 - 1))
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
    presses = List(Nested(PressOut), metadata={"description": "the newest presses (`presses_limit`), oldest first"})
    presses_total = Integer(metadata={"description": "the ticket's presses in all"})
    presses_next = String(allow_none=True, metadata={
        "description": "null, or the cursor of the presses before these: `?presses_before=`"})
    history = List(Nested(EventOut), metadata={"description": "the newest history entries (`history_limit`), "
                                                              "oldest first"})
    history_total = Integer(metadata={"description": "the ticket's history entries in all"})
    history_next = String(allow_none=True, metadata={
        "description": "null, or the cursor of the entries before these: `?history_before=`"})


class TicketDetailQuery(Query):
    presses_limit = QueryInteger(load_default=50, validate=Range(1, 500),
                                 metadata={"description": "how many of the newest presses"})
    presses_before = String(validate=CURSOR, metadata={"description": "`presses_next` of the page after"})
    history_limit = QueryInteger(load_default=50, validate=Range(1, 500),
                                 metadata={"description": "how many of the newest history entries"})
    history_before = String(validate=CURSOR, metadata={"description": "`history_next` of the page after"})


class TicketPage(Schema):
    items = List(Nested(TicketOut))
    next = String(allow_none=True)


_STATUS_WORD = "(?:open|" + "|".join(TICKET_STATUSES) + ")"
# A status, or several separated by commas (spaces around them allowed); `open` is new, in_progress and on_hold.
STATUS_LIST = _pattern(rf"^ *{_STATUS_WORD} *(?:, *{_STATUS_WORD} *)*$",
                       "a status, or several separated by commas: " + ", ".join(TICKET_STATUSES) + " or open")


class TicketQuery(Query):
    status = String(validate=STATUS_LIST, metadata={"description": "a status, a comma-separated list, or `open`"})
    category = String(validate=ID)
    site = String(validate=[Length(max=64), Plain()])
    device_id = String(validate=ID)
    priority = QueryInteger(validate=Range(1, 4))
    cursor = String(validate=CURSOR)
    limit = QueryInteger(load_default=50, validate=Range(1, 500))
    include_tests = QueryBoolean(load_default=False, metadata={
        "description": "also list test tickets (`is_test`: made by devices in test mode); left out by default"})


class TicketPatch(Strict):
    """What to change; ``{}`` changes nothing (the ticket as it is)."""

    status = String(validate=OneOf(TICKET_STATUSES))
    assignee = String(allow_none=True, validate=[Length(max=100), Plain()])
    priority = JsonInteger(validate=Range(1, 4))
    note = String(validate=[Length(min=1, max=10000), Plain(multiline=True)])
    merged_into = String(validate=[Length(min=1, max=30), Plain()], metadata={
        "description": "merge this ticket into another open one (its number, e.g. `INC-000042`, or id): given "
                       "alone (409 with other fields); the ticket is closed as a duplicate and later presses that "
                       "would have merged into it join that one"})


class SlaTarget(Strict):
    respond_min = JsonInteger(validate=Range(1, 10**6))
    resolve_min = JsonInteger(validate=Range(1, 10**6), metadata={
        "description": "not less than `respond_min` (422 otherwise)"})


class SlaTargets(Strict):
    """Targets per priority: ``{"1": {"respond_min": 15, "resolve_min": 240}, ...}``."""

    p1 = Nested(SlaTarget, data_key="1")
    p2 = Nested(SlaTarget, data_key="2")
    p3 = Nested(SlaTarget, data_key="3")
    p4 = Nested(SlaTarget, data_key="4")

    @post_load
    def _by_priority(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {k[1:]: v for k, v in data.items()}


LABELS = {"description": 'the name shown to staff per language, e.g. {"en": "Printer", "pl": "Drukarka"}; '
                         'a blank or null label is left out'}
DEDUP = {"description": "what presses merge on: `site` (one open ticket per site) or `device`"}
REOPEN = {"description": "minutes after resolution in which a press reopens the ticket; null: the server's "
                         "`reopen_window_s`"}
NOTIFY = {"description": "who is told of new tickets: user names or e-mail addresses (stored and shown for now)"}


SLA_TARGETS = {"description": "targets per priority; the priorities given replace theirs"}
CATEGORY_NAME = Length(1, 200)


class CategoryPatch(Strict):
    """A category's fields to change (``PATCH``): only those given change; ``{}`` changes nothing."""

    name = String(validate=[CATEGORY_NAME, Plain(blank=False)])
    icon = String(validate=[Length(max=32), Plain()])
    priority = JsonInteger(validate=Range(1, 4))
    sla = Nested(SlaTargets, metadata=SLA_TARGETS)
    labels = Dict(keys=String(validate=_pattern(LANGUAGE.pattern, "a language code (en, pl, pt-BR)")),
                  values=String(allow_none=True, validate=[Length(max=200), Plain()]), metadata=LABELS)
    dedup_scope = String(validate=OneOf(DEDUP_SCOPES), metadata=DEDUP)
    reopen_window_min = JsonInteger(allow_none=True, validate=Range(0, 60 * 24 * 365), metadata=REOPEN)
    notify = List(String(validate=[Length(1, 200), _pattern(RECIPIENT.pattern, "a user name or an e-mail address")]),
                  validate=Length(max=MAX_RECIPIENTS), metadata=NOTIFY)


class CategoryIn(CategoryPatch):
    """A category made (or replaced) whole: :class:`CategoryPatch`'s fields, with a slug and a name required
    and what a new category has unless given."""

    slug = String(required=True, validate=ID)
    name = String(required=True, validate=[CATEGORY_NAME, Plain(blank=False)])
    icon = String(load_default="", validate=[Length(max=32), Plain()])
    priority = JsonInteger(load_default=3, validate=Range(1, 4))
    sla = Nested(SlaTargets, load_default=None, allow_none=True, metadata=SLA_TARGETS)


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


# A device's site: a site code (in any case; the site is made if unknown), or "" (or null) for no site.
SITE_OR_NONE = _pattern("^$|" + SITE_CODE_PATTERN, "a site code (1-64 letters, digits and . _ -), or empty for none")
# The name of the site a device's `site` makes: blank is not a name.
SITE_NAME_OR_NONE = Plain(blank=False, empty_ok=True)
DEVICE_SITE = {"description": "the site's code, in any case (a site dashdesk does not know is made, named "
                              "`site_name`, else its code); empty or null: no site"}


class DeviceIn(Strict):
    device_id = String(required=True, validate=ID)
    # No defaults: a known device keeps what it is not given; a new one gets NEW_DEVICE's (and no site).
    site = String(allow_none=True, validate=SITE_OR_NONE, metadata=DEVICE_SITE)
    site_name = String(allow_none=True, validate=[Length(max=200), SITE_NAME_OR_NONE])
    status = String(validate=OneOf(DEVICE_STATUSES),
                    metadata={"description": "a new device: `active` if not given; a known one keeps its own"})
    kind = String(validate=OneOf(DEVICE_KINDS),
                  metadata={"description": "a new device: `physical` if not given; a known one keeps its own"})


# What POST /api/v1/devices gives a new device that it is not told.
NEW_DEVICE = {"status": "active", "kind": "physical"}


class DevicePatch(Strict):
    """What to change; ``{}`` changes nothing."""

    site = String(allow_none=True, validate=SITE_OR_NONE, metadata=DEVICE_SITE)
    site_name = String(allow_none=True, validate=[Length(max=200), SITE_NAME_OR_NONE])
    status = String(validate=OneOf(DEVICE_STATUSES))
    test_mode = JsonBoolean(metadata={"description": "test mode (admin): presses make test tickets, kept out of the "
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
    # JSON Schema the fields cannot say: reporting (the default action) needs a category.
    json_schema = {"if": {"properties": {"action": {"const": "report"}}},
                   "then": {"required": ["category"], "properties": {"category": {"type": "string"}}}}

    category = String(validate=ID, allow_none=True,
                      metadata={"description": "the category reported; required unless `action` is cancel"})
    label = String(load_default="", validate=[Length(max=200), Plain()], metadata={"description": "shown to staff"})
    press = String(load_default=None, allow_none=True, validate=OneOf(wire.PRESS_TYPES),
                   metadata={"description": "map only this press type (default: every type)"})
    action = String(load_default="report", validate=OneOf(MAPPING_ACTIONS),
                    metadata={"description": "`report` the category, or `cancel` the device's last report"})


class DeviceQuery(Query):
    status = String(validate=OneOf(DEVICE_STATUSES))
    site = String(validate=[Length(max=64), Plain()])
    broker_account = QueryBoolean(metadata={"description": "`false`: only devices without a broker account (or whose "
                                                      "account is not known yet), `true`: only those with one"})


class DeviceButtonQuery(Query):
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
    new = JsonBoolean(load_default=False, metadata={
        "description": "`true`: a new password for those that have an account too (their old one stops working "
                       "and they are disconnected); `false`: those keep theirs (`kept`)"})


class CredentialsOut(Schema):
    items = List(Nested(BrokerItemOut), metadata={"description": "one per device, in the order asked"})


class RegisterIn(Strict):
    device_id = String(required=True, validate=ID)
    site = String(required=True, validate=[Length(1, 64), NOT_BLANK],
                  metadata={"description": "an existing site's code"})
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


class ConfigImportQuery(Query):
    dry_run = QueryBoolean(load_default=False, metadata={"description": "say what would change; change nothing"})
    prune = QueryBoolean(load_default=False, metadata={"description": "also remove what the file does not have"})


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


USERNAME = _pattern(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$",
                   "1-100 letters, digits and . _ @ -, starting with a letter or digit")


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
    """What to change; ``{}`` changes nothing."""

    role = String(validate=OneOf(["agent", "admin"]))
    active = JsonBoolean(metadata={"description": "false: signed out at the next request, cannot sign in"})


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
    name = String(required=True, validate=[Length(1, 100), Plain(blank=False)])
    role = String(load_default="admin", validate=OneOf(["admin", "bridge"]))


class ApproveIn(Strict):
    site = String(required=True, validate=[Length(1, 64), NOT_BLANK],
                  metadata={"description": "an existing site's code"})


class ReasonIn(Strict):
    reason = String(load_default="", validate=[Length(max=500), Plain(multiline=True)])


class CopyMappingIn(Strict):
    from_ = String(required=True, validate=ID, data_key="from", metadata={"description": "the template device"})
    to = List(String(validate=ID), required=True, validate=Length(1, 2000),
              metadata={"description": "devices whose mapping is replaced by the template's"})


class CopyMappingOut(Schema):
    copied = Integer(metadata={"description": "mappings per device"})
    devices = List(String())


SITE_NAME = [Length(1, 200), Plain(blank=False)]
SITE_CODE_DOC = {"description": "letters, digits and . _ - in any case (kept in lower case); another site's code "
                                "is 409"}
# An IANA time zone name: the server checks it against its list of zones (422 for one it does not know).
TIME_ZONE = _pattern(r"^$|^[A-Za-z][A-Za-z0-9_+\-/]{0,63}$", "an IANA time zone name, e.g. Europe/Warsaw")
_TIME = r"^(?:(?:[01]?[0-9]|2[0-3])(?:[:.][0-5][0-9])?|24(?:[:.]00)?)$"
HOURS_DOC = {
    "description": 'service hours as text ("Mon–Sat 05:00–18:00; Sun closed") or per day ({"mon": [["05:00", '
                   '"18:00"]], ..., "sun": []}; a day left out is closed); empty or null: not given. Spans must '
                   "open before they close and not overlap, and text must read as days then hours: 422 otherwise",
    "anyOf": [{"type": "string", "format": "service-hours"},
              {"type": "null"},
              {"type": "object", "additionalProperties": False,
               "properties": {day: {"type": ["array", "null"], "items": {
                   "type": "array", "minItems": 2, "maxItems": 2,
                   "items": {"type": "string", "pattern": _TIME}}} for day in
                   ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}]}


class Hours(Raw):
    """A site's service hours as sent: text, null, or an object of days (``server.domain.sites.check_hours`` reads
    either); the shape is checked here, the spans by the server (422)."""

    _DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    _TIME_RE = re.compile(_TIME.replace("$", r"\Z"))

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if not isinstance(value, dict) or any(k not in self._DAYS for k in value):
            raise ValidationError("text, or an object of days (mon ... sun)")
        for spans in value.values():
            if spans is None:
                continue
            if not isinstance(spans, list) or not all(
                    isinstance(span, list) and len(span) == 2
                    and all(isinstance(t, str) and self._TIME_RE.match(t) for t in span) for span in spans):
                raise ValidationError('a day is a list of [opens, closes] pairs like [["05:00", "18:00"]]')
        return value


class SitePatch(Strict):
    """A site's fields to change (``PATCH``): only those given change; ``{}`` changes nothing."""

    code = String(validate=SITE_CODE, metadata=SITE_CODE_DOC)
    name = String(validate=SITE_NAME)
    address = String(validate=[Length(max=1000), Plain(multiline=True)])
    timezone = String(validate=TIME_ZONE, metadata={
        "description": "an IANA time zone, e.g. Europe/Warsaw (422 for one the server does not know); empty: UTC",
        "format": "iana-time-zone"})
    hours = Hours(allow_none=True, metadata=HOURS_DOC)
    contact = String(validate=[Length(max=300), Plain()])


class SiteIn(SitePatch):
    """A new site: :class:`SitePatch`'s fields, with its code and name required."""

    code = String(required=True, validate=SITE_CODE, metadata=SITE_CODE_DOC)
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


class SiteQuery(Query):
    q = String(validate=[Length(max=100), Plain()], metadata={"description": "part of the code, name or address"})
    cursor = String(validate=[Length(max=64), Plain()])
    limit = QueryInteger(load_default=100, validate=Range(1, 1000))


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


class AuditQuery(Query):
    actor = String(validate=[Length(max=120), Plain()])
    target = String(validate=[Length(max=200), Plain()], metadata={"description": "a target or its start, e.g. `site:`"})
    cursor = String(validate=CURSOR)
    limit = QueryInteger(load_default=100, validate=Range(1, 500))


class TelemetryIn(Strict):
    telemetry = Telemetry(required=True)


class StatusIn(Strict):
    online = JsonBoolean(required=True)


class OpenTickets(Schema):
    tickets = List(Nested(TicketSummary))


class EventQuery(Query):
    after = QueryInteger(load_default=0, validate=Range(0, 2**63 - 1))
    limit = QueryInteger(load_default=200, validate=Range(1, 1000))
    with_tickets = QueryBoolean(load_default=False,
                           metadata={"description": "add `device_tickets`: each affected device's open tickets"})


class EventPage(Schema):
    items = List(Nested(EventOut))
    last_id = Integer()
    device_tickets = Dict(keys=String(), values=List(Nested(TicketSummary)))


class DeadLetterIn(Strict):
    key = String(required=True, validate=Length(1, 80))
    topic = String(required=True, validate=Length(max=300))
    payload_prefix = String(required=True, validate=Length(max=2048))
    payload_size = JsonInteger(required=True, validate=Range(0, 2**31))
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


class ErrorBody(Schema):
    code = String(required=True, metadata={"description": "what kind of refusal: `bad_request`, `unauthorized`, "
                                                          "`forbidden`, `not_found`, `conflict`, `invalid`, ..."})
    message = String(required=True, metadata={"description": "why, in words"})
    detail = Raw(metadata={"description": "more, where there is: the fields or lines that are wrong"})


class Error(Schema):
    """Every 4xx and 5xx answer of the API: ``{"error": {"code", "message", "detail"}}``."""

    error = Nested(ErrorBody, required=True)
