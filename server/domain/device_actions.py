"""What an admin does to a device together with its broker account, for the admin pages and the API alike:
approve, register, replace, retire, new credentials, delete the account.

Each function makes the change in a write transaction of its own (with its audit rows, ``server.domain.devices``),
commits it, and only then asks the broker (``server.domain.broker_accounts``, which audits what the broker did):
a broker that does not answer never holds the database's write lock, and the change stands. A refusal is
:class:`server.domain.devices.AdminError` (nothing done); an unknown device where the action asks for one by
its page or path, :class:`server.domain.errors.NotFound`. ``ctx`` is where they work (``broker_accounts.Services``):
the database (``db``) and the broker's accounts (``broker``), as ``server.domain.broker_accounts.Context`` or the
server's extension.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.domain import broker_accounts, devices, rules
from server.domain.broker_accounts import Outcome, Services


@dataclass(frozen=True)
class Added:
    """A device approved or registered: its site's code (as kept: in lower case), and what the broker did."""

    site: str
    broker: Outcome


@dataclass(frozen=True)
class Replacement:
    """What :func:`replace` did. ``again``: the old device had been replaced by this one already, nothing was
    done (no broker step: ``new_broker`` and ``old_broker`` are None)."""

    again: bool
    site: str | None = None
    mappings: int = 0
    tickets: tuple[str, ...] = ()
    new_broker: Outcome | None = None
    old_broker: Outcome | None = None

    @property
    def outcomes(self) -> list[Outcome]:
        """What the broker did: the new device's account, then the old one's; none when ``again``."""
        return [o for o in (self.new_broker, self.old_broker) if o is not None]


@dataclass(frozen=True)
class Credentials:
    """New credentials: what the broker did, and whether the device had an account (or may have: not known)."""

    broker: Outcome
    had: bool


class NotActive(devices.AdminError):
    """Only an active device gets broker credentials; ``device_status`` is what it is."""

    def __init__(self, device_id: str, device_status: str):
        super().__init__(409, f"device {device_id} is {device_status}; only an active device gets broker credentials")
        self.device_status = device_status


def approve(ctx: Services, device_id: str, site_code: str, actor: str) -> Added:
    """A pending (or rejected) device becomes active in ``site_code`` (:func:`devices.approve`), then keeps its
    broker account or gets one."""
    with ctx.db.write() as s:
        site = devices.approve(s, device_id, site_code, actor).site.code
    return Added(site, broker_accounts.keep_or_issue(ctx, device_id, actor))


def register(ctx: Services, device_id: str, site_code: str, actor: str, kind: str) -> Added:
    """A device nobody has seen yet, active in ``site_code`` (:func:`devices.register`), with its broker account."""
    with ctx.db.write() as s:
        site = devices.register(s, device_id, site_code, actor, kind).site.code
    return Added(site, broker_accounts.keep_or_issue(ctx, device_id, actor))


def retire(ctx: Services, device_id: str, actor: str, reason: str) -> Outcome:
    """Retire the device (:func:`devices.retire`), then delete its broker account."""
    with ctx.db.write() as s:
        devices.retire(s, device_id, actor, reason)
    return broker_accounts.remove(ctx, device_id, actor)


def replace(ctx: Services, old_id: str, new_id: str, actor: str) -> Replacement:
    """``new_id`` takes ``old_id``'s place (:func:`devices.replace`), then keeps its broker account or gets one,
    and ``old_id``'s account is deleted; asked again with the same ``new_id``, nothing is done."""
    with ctx.db.write() as s:
        done = devices.replace(s, old_id, new_id, actor)
        site = done.device.site.code if done.device.site else None
        numbers = tuple(rules.ticket_number(t) for t in done.tickets)
    if done.again:
        return Replacement(again=True)
    return Replacement(False, site, done.mappings, numbers, broker_accounts.keep_or_issue(ctx, new_id, actor),
                       broker_accounts.remove(ctx, old_id, actor))


def issue_credentials(ctx: Services, device_id: str, actor: str) -> Credentials:
    """New credentials for an active device (:class:`NotActive` else): the old password stops working at once."""
    with ctx.db.read() as s:
        device = devices.get(s, device_id)
        if device.status != "active":
            raise NotActive(device_id, device.status)
        had = device.broker_account is not False
    return Credentials(broker_accounts.issue(ctx, device_id, actor), had)


def remove_credentials(ctx: Services, device_id: str, actor: str) -> Outcome:
    """Delete the device's broker account: it is disconnected and cannot connect again."""
    with ctx.db.read() as s:
        devices.get(s, device_id)
    return broker_accounts.remove(ctx, device_id, actor)
