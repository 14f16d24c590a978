"""What admins do to devices: approve, reject, retire (or any status, :func:`set_status`), map buttons,
copy a mapping to many.

Each function works in the caller's session (one transaction with its audit row) and raises
:class:`AdminError` with an HTTP status and a sentence for people when it refuses. The press
path (``server.domain.incidents``) reads the mappings on every press, so a change here takes effect on
the next press, with no restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, joinedload

from dashdesk import wire

from server.domain import audit, inputs, rules, sites, tickets
from server.domain.incidents import ticket_summary
from server.domain import events
from server.domain.errors import NotFound
from server.models import (DEVICE_KINDS, DEVICE_STATUSES, MAPPING_ACTIONS, OPEN_STATUSES, ButtonMapping, Category,
    Device, Event, Press, Site, Ticket)

# A rollout template goes to at most this many devices at once.
MAX_COPY_TARGETS = 2000
PRESS_LABELS = {"": "every press type", "single": "single press", "double": "double press", "long": "long press"}


class AdminError(Exception):
    """An admin action refused: ``status`` is the HTTP status, the message says why."""

    def __init__(self, status: int, message: str, detail: Any = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail


def get(s: Session, device_id: str) -> Device:
    """The device of that id, with its site; :class:`NotFound` if there is none."""
    device = s.scalar(select(Device).options(joinedload(Device.site)).where(Device.device_id == device_id))
    if device is None:
        raise NotFound("device", device_id[:70])
    return device


def _known(s: Session, device_id: str) -> Device:
    """:func:`get` for an action: an unknown device refuses it (:class:`AdminError` 404), said where the action
    was asked (the device's page says so and stays there)."""
    try:
        return get(s, device_id)
    except NotFound as exc:
        raise AdminError(404, exc.message) from None


def site_by_code(s: Session, code: str) -> Site:
    """The site of ``code``, in any case (codes are case-insensitive: ``SHOP-003`` is ``shop-003``)."""
    site = sites.by_code(s, code)
    if site is None:
        raise AdminError(404 if code else 400, f"no site {code.strip()[:70]}; create it first (Admin → Sites)"
                         if code and code.strip() else "choose the site the device is in")
    return site


def approve(s: Session, device_id: str, site_code: str, actor: str) -> Device:
    """A pending (or rejected) device becomes active in ``site_code``: its presses report for that site, and
    the open tickets it reported while it had no site are placed there (:func:`place_tickets`)."""
    device = _known(s, device_id)
    if device.status not in ("pending", "rejected"):
        raise AdminError(409, f"device {device_id} is {device.status}; only pending or rejected devices "
                              "can be approved")
    device.site = site_by_code(s, site_code)
    _activate(s, device, actor)
    return device


def _activate(s: Session, device: Device, actor: str) -> None:
    was = device.status
    device.status = "active"
    placed = place_tickets(s, device, actor)
    audit.record(s, actor, "device.approve", f"device:{device.device_id}",
                 site=device.site.code if device.site else None, was=was,
                 **({"placed": [rules.ticket_number(t) for t in placed]} if placed else {}))


def place_tickets(s: Session, device: Device, actor: str) -> list[int]:
    """Place in ``device``'s site the open tickets it reported while it had none (a pending device's presses
    make unplaced tickets): the ticket gets the site, and its title the shop's name instead of the device's
    id, so that agents see where the problem is. Returns the tickets placed.

    Dedup per site then applies: the ticket joins its site's scope, so later presses at that site merge into
    it, unless the site has an open ticket of that category already. Then the two are left as they are (each
    may have been worked on; an agent merges them if they are one problem): later presses go to the site's
    ticket, and this one's history says which it is. A category that merges per device, and a test ticket,
    keep their scope (the device's own).

    Each placed ticket gets a ``ticket.updated`` event (``test.updated`` for a test ticket) by ``actor``, with
    what changed; placing is no agent's action, so the ticket's SLA and its double-press cancel stay as they
    were.
    """
    site = device.site
    if site is None:
        return []
    unplaced = s.scalars(select(Ticket).options(joinedload(Ticket.category))
                         .where(Ticket.device_id == device.device_id, Ticket.site_id.is_(None),
                                Ticket.status.in_(OPEN_STATUSES)).order_by(Ticket.id)).all()
    now = wire.utcnow()
    for ticket in unplaced:
        changes: dict[str, list[Any]] = {"site": [None, site.code]}
        data: dict[str, Any] = {"changes": changes, "status": ticket.status,
                                "note": f"{device.device_id} was placed in {site.code}"}
        ticket.site_id = site.id
        suffix = f" at {device.device_id}"
        if ticket.title.endswith(suffix):
            title = (ticket.title[:-len(suffix)] + f" at {site.name}")[:300]
            changes["title"] = [ticket.title, title]
            ticket.title = title
        if not ticket.is_test and ticket.category.dedup_scope != "device":
            scope = rules.dedup_scope(site.id, device.device_id, ticket.category.dedup_scope)
            there = s.scalar(select(Ticket.id).where(Ticket.scope == scope, Ticket.category_id == ticket.category_id,
                                                     Ticket.status.in_(OPEN_STATUSES), Ticket.id != ticket.id)
                             .order_by(Ticket.id).limit(1))
            if there is None:
                ticket.scope = scope
                s.flush()  # the next ticket of this category sees this one in the site's scope
            else:
                data["note"] += (f"; {rules.ticket_number(there)} was open for the same category there already: "
                                 "later presses go to it (merge the two if they are one problem)")
        ticket.updated_at = now
        s.add(Event(kind=events.UPDATED.of(test=ticket.is_test), ticket_id=ticket.id,
                    devices=list(ticket.devices), actor=actor, created_at=now, data=data))
    return [t.id for t in unplaced]


def reject(s: Session, device_id: str, actor: str, reason: str = "") -> Device:
    """A pending device is refused: its presses come back ``rejected`` (approving it later undoes this)."""
    device = _known(s, device_id)
    if device.status != "pending":
        raise AdminError(409, f"device {device_id} is {device.status}; only a pending device can be rejected"
                              + (" (retire an active one)" if device.status == "active" else ""))
    _reject(s, device, actor, check_reason(reason))
    return device


MAX_REASON = 500


def check_reason(reason: str | None) -> str:
    """An admin's reason for rejecting or retiring a device: text of at most 500 characters (cut there), lines
    allowed (``server.domain.inputs.text_problem``); :class:`AdminError` (400) otherwise."""
    reason = (reason or "").strip()[:MAX_REASON]
    problem = inputs.text_problem(reason, multiline=True)
    if problem:
        raise AdminError(400, f"the reason {problem}")
    return reason


def _reject(s: Session, device: Device, actor: str, reason: str) -> None:
    """The device's open tickets stay open for an agent (someone pressed; the problem may be real), unplaced if
    they were: each gets a note in its history saying that their device was rejected, and why."""
    was = device.status
    device.status = "rejected"
    reason = (reason or "").strip()[:500]
    now = wire.utcnow()
    for ticket in s.scalars(select(Ticket).where(Ticket.device_id == device.device_id, Ticket.is_test.is_(False),
                                                 Ticket.status.in_(OPEN_STATUSES)).order_by(Ticket.id)):
        note = (f"{device.device_id}, which reported this, was rejected by an admin"
                + (f" ({reason})" if reason else "") + ": its later presses are refused."
                + (" Approving it into a site places this ticket there." if ticket.site_id is None else ""))
        s.add(Event(kind=events.NOTE.name, ticket_id=ticket.id, devices=list(ticket.devices), actor=actor,
                    created_at=now, data={"changes": {}, "status": ticket.status, "note": note,
                                          "device_rejected": device.device_id}))
    audit.record(s, actor, "device.reject", f"device:{device.device_id}", was=was, reason=reason)


def register(s: Session, device_id: str, site_code: str, actor: str, kind: str = "physical") -> Device:
    """A device nobody has seen yet becomes active in ``site_code`` (with broker accounts on, a device
    cannot press before it has its credentials, so it never shows up as pending by itself)."""
    device_id = (device_id or "").strip()
    if not wire.valid_id(device_id):
        raise AdminError(400, f"device id '{device_id[:70]}' must match {wire.ID_PATTERN.pattern} "
                              "(e.g. shop-042-front)")
    if kind not in DEVICE_KINDS:
        raise AdminError(400, f"kind must be one of {', '.join(DEVICE_KINDS)}")
    existing = s.scalar(select(Device).where(Device.device_id == device_id))
    if existing is not None:
        raise AdminError(409, f"there is already a device {device_id} ({existing.status}); open its page")
    site = site_by_code(s, site_code)
    device = Device(device_id=device_id, status="active", kind=kind, site=site, test_mode=False)
    s.add(device)
    audit.record(s, actor, "device.create", f"device:{device_id}", site=site.code, kind=kind, status="active")
    return device


def retire(s: Session, device_id: str, actor: str, reason: str = "") -> Device:
    """The device stops reporting (its presses come back ``rejected``: "device retired"); its history stays."""
    device = _known(s, device_id)
    if device.status == "retired":
        raise AdminError(409, f"device {device_id} is already retired")
    _retire(s, device, actor, check_reason(reason))
    return device


def _retire(s: Session, device: Device, actor: str, reason: str) -> None:
    was = device.status
    device.status = "retired"
    audit.record(s, actor, "device.retire", f"device:{device.device_id}", was=was, reason=(reason or "").strip()[:500])


def set_status(s: Session, device: Device, status: str, actor: str, reason: str = "") -> bool:
    """Give ``device`` ``status`` as an edit of the device does (``PATCH`` and ``POST /api/v1/devices``, a
    configuration import): through the step of that name, with its audit row, as the admin pages' buttons
    (``device.approve`` for active, in the site it has; ``device.reject``; ``device.retire``); "pending",
    which no button sets, is ``device.update``. False if it had that status already.

    Unlike the buttons, which refuse what does not fit their purpose (only a pending device is rejected,
    say), an edit may set any status. What the broker then does (a retired device's account is deleted)
    follows the commit: ``server.domain.broker_accounts.after_status``.
    """
    if status not in DEVICE_STATUSES:
        raise AdminError(400, f"status must be one of {', '.join(DEVICE_STATUSES)}")
    if device.status == status:
        return False
    if status == "active":
        _activate(s, device, actor)
    elif status == "rejected":
        _reject(s, device, actor, reason)
    elif status == "retired":
        _retire(s, device, actor, reason)
    else:
        was, device.status = device.status, status
        audit.record(s, actor, "device.update", f"device:{device.device_id}", changes={"status": [was, status]})
    return True


@dataclass(frozen=True)
class MappingIn:
    """One line of a button mapping: ``press`` "" means every press type not mapped on its own."""

    button: str
    press: str
    action: str
    category: str | None
    label: str


def check_mapping(button: str, press: str | None, action: str | None, category: str | None,
                  label: str | None) -> MappingIn:
    button = (button or "").strip()
    press = (press or "").strip()
    action = (action or "report").strip()
    category = (category or "").strip() or None
    label = (label or "").strip()
    if not wire.valid_id(button):
        raise AdminError(400, f"button '{button[:70]}' must match {wire.ID_PATTERN.pattern} (e.g. b1)")
    if press not in PRESS_LABELS:
        raise AdminError(400, "press must be single, double, long, or empty for every press type")
    if action not in MAPPING_ACTIONS:
        raise AdminError(400, "action must be report or cancel")
    if action == "report" and category is None:
        raise AdminError(400, "choose the category the button reports (or cancel last report)")
    if action == "cancel":
        category = None
    if len(label) > 200:
        raise AdminError(400, "the label has at most 200 characters")
    problem = inputs.text_problem(label)
    if problem:
        raise AdminError(400, f"the label {problem}")
    return MappingIn(button, press, action, category, label)


def _category(s: Session, slug: str) -> Category:
    category = s.scalar(select(Category).where(Category.slug == slug))
    if category is None:
        raise AdminError(404, f"no category {slug[:70]}")
    return category


def set_mapping(s: Session, device: Device, m: MappingIn, actor: str) -> ButtonMapping:
    """Map one button (or one press type of it); replaces what that button and press type did."""
    category = _category(s, m.category) if m.category else None
    mapping = s.scalar(select(ButtonMapping).where(ButtonMapping.device_id == device.device_id,
                                                   ButtonMapping.button == m.button, ButtonMapping.press == m.press))
    before = describe(mapping) if mapping is not None else None
    if mapping is None:
        mapping = ButtonMapping(device_id=device.device_id, button=m.button, press=m.press)
        s.add(mapping)
    mapping.category, mapping.label, mapping.action = category, m.label, m.action
    after = {"button": m.button, "press": m.press or None, "action": m.action, "category": m.category,
             "label": m.label}
    if before != after:
        audit.record(s, actor, "mapping.set", f"device:{device.device_id}", was=before, now=after)
    return mapping


def remove_mapping(s: Session, device: Device, button: str, press: str, actor: str) -> None:
    mapping = s.scalar(select(ButtonMapping).where(ButtonMapping.device_id == device.device_id,
                                                   ButtonMapping.button == button, ButtonMapping.press == (press or "")))
    if mapping is None:
        raise AdminError(404, f"button {button[:63]} ({PRESS_LABELS.get(press or '', press)}) of {device.device_id} "
                              "is not mapped")
    was = describe(mapping)
    s.delete(mapping)
    audit.record(s, actor, "mapping.remove", f"device:{device.device_id}", was=was)


def describe(m: ButtonMapping) -> dict[str, Any]:
    return {"button": m.button, "press": m.press or None, "action": m.action,
            "category": m.category.slug if m.category else None, "label": m.label}


def mappings(s: Session, device_id: str) -> list[ButtonMapping]:
    return list(s.scalars(select(ButtonMapping).options(joinedload(ButtonMapping.category))
                          .where(ButtonMapping.device_id == device_id)
                          .order_by(ButtonMapping.button, ButtonMapping.press)))


def copy_rows(template: list[ButtonMapping], device_id: str | None = None) -> list[ButtonMapping]:
    """New, unsaved rows doing what ``template``'s do (button, press type, category, label, action), for
    ``device_id`` (None: for no device yet; the caller names it before adding them)."""
    owner = {} if device_id is None else {"device_id": device_id}
    return [ButtonMapping(**owner, button=m.button, press=m.press, category_id=m.category_id, label=m.label,
                          action=m.action) for m in template]


def _give_mapping(s: Session, device_ids: list[str], template: list[ButtonMapping]) -> None:
    """Replace the mapping of every device of ``device_ids`` with a copy of ``template``."""
    for i in range(0, len(device_ids), 500):
        s.execute(delete(ButtonMapping).where(ButtonMapping.device_id.in_(device_ids[i:i + 500])))
    for device_id in device_ids:
        s.add_all(copy_rows(template, device_id))


def copy_mapping(s: Session, source: str, targets: list[str], actor: str) -> tuple[int, list[str]]:
    """Give every device of ``targets`` the mapping of ``source`` (theirs is replaced): a rollout template.

    All or nothing: an unknown or retired target refuses the whole copy. Returns
    (mappings per device, the devices changed).
    """
    src = _known(s, source)
    wanted: list[str] = []
    for t in targets:
        t = t.strip()
        if t and t not in wanted:
            wanted.append(t)
    if not wanted:
        raise AdminError(400, "name the devices to copy the mapping to")
    if len(wanted) > MAX_COPY_TARGETS:
        raise AdminError(400, f"at most {MAX_COPY_TARGETS} devices at once")
    bad = [t for t in wanted if not wire.valid_id(t)]
    if bad:
        raise AdminError(400, f"not a device id: {', '.join(b[:63] for b in bad[:10])}")
    if src.device_id in wanted:
        raise AdminError(409, f"{src.device_id} is the device copied from; leave it out of the targets")
    found: dict[str, Device] = {}
    for i in range(0, len(wanted), 500):
        found.update((d.device_id, d) for d in s.scalars(select(Device).where(Device.device_id.in_(wanted[i:i + 500]))))
    missing = [t for t in wanted if t not in found]
    if missing:
        raise AdminError(404, f"no device {', '.join(missing[:10])}" + (f" and {len(missing) - 10} more"
                                                                          if len(missing) > 10 else ""),
                         {"missing": missing})
    retired = [t for t in wanted if found[t].status == "retired"]
    if retired:
        raise AdminError(409, f"retired: {', '.join(retired[:10])}; leave retired devices out")
    template = mappings(s, src.device_id)
    if not template:
        raise AdminError(409, f"{src.device_id} has no button mapping to copy")
    now = [describe(m) for m in template]
    had: dict[str, list[dict[str, Any]]] = {t: [] for t in wanted}
    for i in range(0, len(wanted), 500):
        for m in s.scalars(select(ButtonMapping).options(joinedload(ButtonMapping.category))
                           .where(ButtonMapping.device_id.in_(wanted[i:i + 500]))
                           .order_by(ButtonMapping.device_id, ButtonMapping.button, ButtonMapping.press)):
            had[m.device_id].append(describe(m))
    _give_mapping(s, wanted, template)
    audit.record(s, actor, "mapping.copy", f"device:{src.device_id}", to=wanted, mapping=now)
    # Each device whose mapping this changed has its own row (its page's history): what it had, what it has.
    audit.record_many(s, actor, [("mapping.copied", f"device:{t}", {"from": src.device_id, "was": had[t], "now": now})
                                 for t in wanted if had[t] != now])
    return len(template), wanted


# ------------------------------------------------------------------ test mode


def set_test_mode(s: Session, device: Device, on: bool, actor: str) -> list[int]:
    """Turn test mode on or off; returns the test tickets closed (turning it off closes the device's
    open test tickets, so that they leave its ``tickets`` topic: nobody works them)."""
    if bool(device.test_mode) == on:
        return []
    device.test_mode = on
    closed: list[int] = []
    if not on:
        now = wire.utcnow()
        for ticket in s.scalars(select(Ticket).where(Ticket.device_id == device.device_id, Ticket.is_test.is_(True),
                                                     Ticket.status.in_(OPEN_STATUSES))):
            data: dict[str, Any] = {"changes": {"status": [ticket.status, "closed"]}, "status": "closed",
                                    "reason": "test mode turned off"}
            # A held one leaves its hold as it closes, counted as when an agent ends one: none is left running.
            held = tickets.end_hold(ticket, now)
            if held:
                data["sla_paused_s"] = held
            s.add(Event(kind=events.UPDATED.of(test=True), ticket_id=ticket.id, devices=list(ticket.devices), actor=actor,
                        created_at=now, data=data))
            ticket.status, ticket.resolved_at, ticket.updated_at = "closed", now, now
            closed.append(ticket.id)
    audit.record(s, actor, "device.test_mode", f"device:{device.device_id}", on=on,
                 **({"closed": [rules.ticket_number(t) for t in closed]} if closed else {}))
    return closed


def test_tickets(s: Session, device_id: str, limit: int = 10) -> list[Ticket]:
    """The device's latest test tickets, newest first."""
    return list(s.scalars(select(Ticket).options(joinedload(Ticket.category))
                          .where(Ticket.device_id == device_id, Ticket.is_test.is_(True))
                          .order_by(Ticket.id.desc()).limit(limit)))


# ------------------------------------------------------------------ replacement


@dataclass
class Replaced:
    """What :func:`replace` did: the new device, the old one, and what moved over."""

    device: Device
    old: Device
    mappings: int
    tickets: list[int]
    scopes: int
    created: bool
    # The old device had been replaced by this very device already: nothing was done this time.
    again: bool = False


def predecessors(s: Session, device_ids: list[str], depth: int = 10) -> dict[str, set[str]]:
    """{replaced device: the devices of ``device_ids`` that stand in its place}, following chains of
    replacements (a replaced by b replaced by c: a's tickets are c's, and b's if b is asked for)."""
    out: dict[str, set[str]] = {}
    frontier: dict[str, set[str]] = {d: {d} for d in device_ids}
    for _ in range(depth):
        found: dict[str, set[str]] = {}
        keys = list(frontier)
        for i in range(0, len(keys), 500):
            for old, new in s.execute(select(Device.device_id, Device.replaced_by)
                                      .where(Device.replaced_by.in_(keys[i:i + 500]))):
                found.setdefault(old, set()).update(frontier[new])
        for old, owners in found.items():
            out.setdefault(old, set()).update(owners)
        if not found:
            break
        frontier = found
    return out


def replace(s: Session, old_id: str, new_id: str, actor: str) -> Replaced:
    """``new_id`` takes ``old_id``'s place: its site, its button mapping (the mapping belongs to the place,
    not the hardware: the rows are copied), its open tickets; ``old_id`` is retired.

    The open tickets ``old_id`` reported (or pressed into) now name ``new_id`` (``device_id`` of those it
    created, ``devices`` of all), so the new device's ``tickets`` topic lists them; the dedup scope
    ``device:<old_id>`` of its device-scoped tickets (open, and resolved ones a press may reopen)
    becomes ``device:<new_id>``, so its presses merge into them. An unknown ``new_id`` is created.
    An active ``old_id`` is retired as :func:`retire` does it (``device.retire``, "replaced by ...") before
    ``device.replace`` records the replacement.

    A device is replaced once: asked again with the device that replaced it (a form sent twice, a request
    retried), nothing is done and ``again`` says so (the new device keeps its mapping and its broker
    password); with another device, :class:`AdminError` 409 (replace the one that took its place instead).
    """
    new_id = (new_id or "").strip()
    if not wire.valid_id(new_id):
        raise AdminError(400, f"the new device id '{new_id[:70]}' must match {wire.ID_PATTERN.pattern}")
    old = _known(s, old_id)
    if new_id == old.device_id:
        raise AdminError(409, "a device cannot replace itself; name the new device")
    if old.replaced_by:
        done = s.scalar(select(Device).options(joinedload(Device.site)).where(Device.device_id == old.replaced_by))
        if new_id == old.replaced_by and done is not None:
            return Replaced(done, old, 0, [], 0, False, again=True)
        raise AdminError(409, f"device {old.device_id} was already replaced by {old.replaced_by}; "
                              f"to swap that one too, replace {old.replaced_by}")
    if old.status not in ("active", "retired"):
        raise AdminError(409, f"device {old.device_id} is {old.status}: only an active (or retired) device is "
                              "replaced; approve the new one instead")
    if old.site is None:
        raise AdminError(409, f"device {old.device_id} has no site; there is nothing to take over")
    new = s.scalar(select(Device).options(joinedload(Device.site)).where(Device.device_id == new_id))
    created = new is None
    if new is None:
        new = Device(device_id=new_id, status="active", kind=old.kind, test_mode=False, first_seen_at=None)
        s.add(new)
    elif new.status == "retired":
        raise AdminError(409, f"device {new_id} is retired; a retired device cannot take another's place")
    was = {"status": new.status, "site": new.site.code if new.site else None, "test_mode": bool(new.test_mode)}
    if new.test_mode:
        set_test_mode(s, new, False, actor)
    new.status, new.site = "active", old.site
    s.flush()
    # What the new device reported before it had a site (pressed while pending) is placed in its new one.
    place_tickets(s, new, actor)

    template = mappings(s, old.device_id)
    _give_mapping(s, [new_id], template)

    now = wire.utcnow()
    taken = _tickets_of(s, old.device_id)
    for ticket in taken:
        changes: dict[str, list[Any]] = {}
        if ticket.device_id == old.device_id:
            changes["device_id"] = [old.device_id, new_id]
            ticket.device_id = new_id
        devices = [d for d in ticket.devices if d != old.device_id]
        ticket.devices = sorted({*devices, new_id})
        ticket.updated_at = now
        s.add(Event(kind=events.UPDATED.name, ticket_id=ticket.id, devices=sorted({old.device_id, *ticket.devices}),
                    actor=actor, created_at=now,
                    data={"changes": changes, "status": ticket.status,
                          "note": f"{new_id} replaced {old.device_id}"}))
    scopes = s.execute(update(Ticket).where(Ticket.scope == f"device:{old.device_id}",
                                            Ticket.status.in_((*OPEN_STATUSES, "resolved")))
                       .values(scope=f"device:{new_id}")).rowcount or 0

    old_status = old.status
    if old.test_mode:
        set_test_mode(s, old, False, actor)
    if old.status != "retired":
        # The retire step of the page's and the API's button, with its device.retire row; the caller deletes
        # the broker account after the commit, as after any retirement (server.domain.broker_accounts.remove).
        _retire(s, old, actor, f"replaced by {new_id}")
    old.replaced_by = new_id
    numbers = [rules.ticket_number(t.id) for t in taken]
    audit.record(s, actor, "device.replace", f"device:{old.device_id}", by=new_id, was=old_status,
                 mappings=len(template), tickets=numbers)
    audit.record(s, actor, "device.replaces", f"device:{new_id}", replaces=old.device_id, site=old.site.code,
                 created=created, was=None if created else was)
    return Replaced(new, old, len(template), [t.id for t in taken], scopes, created)


def _tickets_of(s: Session, device_id: str) -> list[Ticket]:
    """The device's open real tickets: those it pressed into (a press not cancelled) or that name it."""
    pressed = select(Press.ticket_id).where(Press.device_id == device_id, Press.cancelled.is_(False),
                                            Press.ticket_id.is_not(None))
    return list(s.scalars(select(Ticket).where(Ticket.status.in_(OPEN_STATUSES), Ticket.is_test.is_(False),
                                               (Ticket.id.in_(pressed)) | (Ticket.device_id == device_id))
                          .order_by(Ticket.id)))


def open_tickets_by_device(s: Session, devices: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each device's open tickets: those with a press of the device that was not cancelled, or of a
    device it replaced (``Device.replaced_by``: the new button took over the broken one's tickets)."""
    out: dict[str, list[dict[str, Any]]] = {d: [] for d in devices}
    # Whose list a press of each device goes to: its own (if asked for), and its successor's.
    owners: dict[str, list[str]] = {d: [d] for d in devices}
    for old, successors in predecessors(s, devices).items():
        owners.setdefault(old, []).extend(sorted(successors - set(owners.get(old, []))))
    pressers = list(owners)
    seen: set[tuple[str, int]] = set()
    for chunk in (pressers[i:i + 500] for i in range(0, len(pressers), 500)):
        rows = s.execute(select(Press.device_id, Ticket).join(Ticket, Press.ticket_id == Ticket.id)
                         .options(joinedload(Ticket.category))
                         .where(Press.device_id.in_(chunk), Press.cancelled.is_(False),
                                Ticket.status.in_(OPEN_STATUSES))
                         .distinct().order_by(Ticket.id)).all()
        for device_id, ticket in rows:
            for owner in owners[device_id]:
                if (owner, ticket.id) not in seen:
                    seen.add((owner, ticket.id))
                    out[owner].append(ticket_summary(ticket))
    if len(pressers) > len(devices):
        for listed in out.values():
            listed.sort(key=lambda t: t["id"])
    return out
