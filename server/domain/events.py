"""Every kind of event the feed carries (``GET /api/v1/events``, the desk's live updates, a ticket's History),
declared once, each with when it happens and the keys of its ``data``. docs/api.md "Event kinds" lists the same
(tests/unit/test_events.py holds them together); a new kind starts here.

A test ticket's events (a device in test mode) are the same kinds under ``test.`` instead of ``ticket.``: the
desk's live updates leave them out, the bridge and a ticket's History treat them alike.

>>> press_kind("created", test=False)
'ticket.created'
"""

from __future__ import annotations

from dataclasses import dataclass

TICKET = "ticket"
TEST = "test"
PRESS = ("event_id", "press", "status", "late")


@dataclass(frozen=True)
class Kind:
    """One event kind: its name (``ticket.created``), when it happens, and the keys its ``data`` may hold."""

    name: str
    when: str
    data: tuple[str, ...]

    def of(self, test: bool) -> str:
        """The name an event of this kind takes on a test ticket (``test.``) or a real one."""
        return f"{TEST if test else TICKET}.{self.name.partition('.')[2]}"


CREATED = Kind("ticket.created", "a press made a new ticket", PRESS)
MERGED = Kind("ticket.merged", "a press joined an open ticket", PRESS + ("changes",))
REOPENED = Kind("ticket.reopened", "a press reopened a resolved ticket", PRESS + ("changes",))
CANCELLED = Kind("ticket.cancelled", "a double press (or a cancel button) withdrew a report", PRESS)
UPDATED = Kind("ticket.updated", "a person changed the ticket, a merge, a device placed in a site or replaced",
               ("changes", "status", "note", "reason", "resolution", "sla_paused_s", "merged_from",
                "merged_from_number", "presses_moved", "merged_into", "merged_into_number"))
NOTE = Kind("ticket.note", "a note with no other change, or its device was rejected",
            ("changes", "status", "note", "device_rejected"))

# What a press does to a ticket (an ack's ``result``), and the event it writes.
BY_PRESS_RESULT = {"created": CREATED, "merged": MERGED, "reopened": REOPENED, "cancelled": CANCELLED}

# Every kind the feed carries: the ``ticket.`` ones, and the ``test.`` ones a test ticket's presses and placements
# write. A note on a test ticket is written as ``ticket.note``; only the desk's live stream, which leaves test
# tickets out, calls it ``test.note`` for itself.
KINDS: dict[str, Kind] = {k.name: k for k in (CREATED, MERGED, REOPENED, CANCELLED, UPDATED, NOTE)}
TEST_KINDS: tuple[str, ...] = tuple(k.of(test=True) for k in (CREATED, MERGED, REOPENED, CANCELLED, UPDATED))


def press_kind(result: str, test: bool) -> str:
    """The event a press writes for its ``result`` (created, merged, reopened, cancelled)."""
    return BY_PRESS_RESULT[result].of(test)


def all_names() -> list[str]:
    """Every event kind's name, ``ticket.`` ones first."""
    return [*KINDS, *TEST_KINDS]
