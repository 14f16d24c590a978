"""Request and response schemas: what validates input and writes the OpenAPI document."""

from __future__ import annotations

from datetime import timezone

from apiflask import Schema
from apiflask.fields import AwareDateTime, Boolean, Dict, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range, Regexp
from marshmallow import RAISE, ValidationError

from dashdesk import wire

from .models import DEVICE_STATUSES, TICKET_STATUSES

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
    telemetry = Dict(load_default=dict)
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


class TicketPatch(Strict):
    status = String(validate=OneOf(TICKET_STATUSES))
    assignee = String(allow_none=True, validate=Length(max=100))
    priority = Integer(validate=Range(1, 4))
    note = String(validate=Length(min=1, max=10000))


class SlaTarget(Schema):
    respond_min = Integer(validate=Range(1, 10**6))
    resolve_min = Integer(validate=Range(1, 10**6))


class CategoryIn(Strict):
    slug = String(required=True, validate=ID)
    name = String(required=True, validate=Length(1, 200))
    icon = String(load_default="", validate=Length(max=32))
    priority = Integer(load_default=3, validate=Range(1, 4))
    sla = Dict(keys=String(validate=OneOf(["1", "2", "3", "4"])), values=Nested(SlaTarget), load_default=None)


class CategoryOut(Schema):
    slug = String()
    name = String()
    icon = String()
    priority = Integer()
    sla = Dict()


class CategoryList(Schema):
    items = List(Nested(CategoryOut))


class ButtonOut(Schema):
    button = String()
    press = String(allow_none=True)
    category = String()
    label = String()


class DeviceIn(Strict):
    device_id = String(required=True, validate=ID)
    site = String(load_default=None, allow_none=True, validate=Length(max=64))
    site_name = String(load_default=None, allow_none=True, validate=Length(max=200))
    status = String(load_default="active", validate=OneOf(DEVICE_STATUSES))
    kind = String(load_default="physical", validate=OneOf(["physical", "phone"]))


class DevicePatch(Strict):
    site = String(allow_none=True, validate=Length(max=64))
    site_name = String(allow_none=True, validate=Length(max=200))
    status = String(validate=OneOf(DEVICE_STATUSES))


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
    buttons = List(Nested(ButtonOut))


class DeviceList(Schema):
    items = List(Nested(DeviceOut))


class ButtonIn(Strict):
    category = String(required=True, validate=ID)
    label = String(load_default="", validate=Length(max=200))
    press = String(load_default=None, allow_none=True, validate=OneOf(wire.PRESS_TYPES),
                   metadata={"description": "map only this press type (default: every type)"})


class TelemetryIn(Strict):
    telemetry = Dict(required=True)


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
