"""Devices' broker accounts, as the admin pages, the API and the command line hand them out.

With ``[broker] auth = "dynsec"`` (or ``[broker] admin_url`` set) in the configuration the
server runs with, approving a device makes its MQTT account (``server.domain.mosquitto``) and
shows its password once, with the MQTT URL to put into the device's file, unless it has one
already (made by ``dashdesk broker device-credentials`` before it first pressed, say): that
one is kept, and its password goes on working. "New broker credentials" replaces the
password; retiring deletes the account. With auth off, devices need none.

Whenever this closes a device's connection (new credentials, retiring, replacing), the
device is marked offline in the database (``Device.online``) and on its retained ``status``
topic: the broker publishes no will for a connection it closes itself. Whether a device has
an account is recorded too (``Device.broker_account``); for devices dashdesk has not asked
about yet, :func:`learn` asks the broker once for all of them.

The broker is called after the change is committed, never inside the transaction (a broker
that does not answer must not hold the database's write lock): a failure leaves the approval
standing and says so, and the admin makes the credentials again later. Each call is audited
in a short transaction of its own; a password is never stored, logged or audited.

>>> accounts = BrokerAccounts.from_config({"broker": {"auth": "none"}})
>>> accounts.issue("shop-1").result
'not_needed'
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dashdesk import config as dd_config
from dashdesk.mqtt import url_with_credentials, url_without_credentials
from server.domain import mosquitto
from server.domain.broker_store import BrokerAccountStore, BrokerAuthError

from server.db import Database
from server.domain import audit
from server.models import Device

# The log name operators filter on, kept from before the module moved.
log = logging.getLogger("dashdesk.server.credentials")

# A page waits at most this long for the broker: long enough for a loaded Mosquitto, short
# enough that an admin is not left staring at a spinner when it is down.
BROKER_TIMEOUT_S = 5.0
# After the broker did not answer a look-up (:func:`learn`), pages do not ask again for this long.
LOOKUP_PAUSE_S = 60.0
# Whether a device has an account after each result (None: unchanged).
HAS_ACCOUNT_AFTER = {"issued": True, "kept": True, "removed": False}


@dataclass(frozen=True)
class Outcome:
    """What happened to a device's broker account: ``result`` is issued (a new password), kept (it had one,
    which goes on working), removed, not_needed or failed."""

    device_id: str
    auth: str
    result: str
    # "issue" (a new account or password) or "remove" (the account deleted).
    action: str = "issue"
    password: str | None = None
    mqtt_url: str | None = None
    broker_url: str | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.result == "failed"

    def as_dict(self) -> dict[str, Any]:
        has = self.result in ("issued", "kept")
        return {"auth": self.auth, "credentials": self.result, "username": self.device_id if has else None,
                "password": self.password, "mqtt_url": self.mqtt_url, "broker_url": self.broker_url,
                "error": self.error}


class BrokerAccounts:
    """Make, replace and delete devices' accounts on the broker the configuration names."""

    def __init__(self, enabled: bool, device_url: str, manager: Callable[[], BrokerAccountStore] | None = None):
        self.enabled = enabled
        # The broker as devices reach it, without credentials: the base of the mqtt_url shown.
        self.device_url = url_without_credentials(device_url)
        self._manager = manager
        # The manager a batch (:meth:`batch`) holds, per thread, so that all its calls share one connection.
        self._pinned = threading.local()
        self._lookup_failed_at: float | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], *, mqtt_url: str | None = None, device_url: str | None = None,
                    timeout: float = BROKER_TIMEOUT_S) -> "BrokerAccounts":
        """The accounts of the broker ``cfg`` names (``mqtt_url``: another one, as ``dashdesk broker
        --mqtt-url``), shown to devices at ``device_url`` (else ``[broker] device_url``, else the broker's)."""
        broker_cfg = cfg.get("broker", {}) or {}
        enabled = dd_config.broker_accounts_enabled(cfg)
        device_url = (device_url or broker_cfg.get("device_url") or mqtt_url
                      or (cfg.get("mqtt", {}) or {}).get("url") or "mqtt://127.0.0.1:1883")

        data_dir = cfg.get("data_dir") or "./dashdesk-data"
        made: list[tuple[Any, BrokerAccountStore]] = []

        def manager() -> BrokerAccountStore:
            # Made again only when the admin's password file has changed: `dashdesk up` writes it after the
            # server may have started (until then there is none, and each call says so).
            stamp = mosquitto.service_passwords_stamp(data_dir)
            if made and made[0][0] == stamp:
                return made[0][1]
            accounts = mosquitto.DynsecAccounts.from_config(cfg, mqtt_url=mqtt_url)
            accounts.timeout = timeout
            made[:] = [(stamp, accounts)]
            return accounts

        return cls(enabled, str(device_url), manager if enabled else None)

    @property
    def auth(self) -> str:
        return "dynsec" if self.enabled else "none"

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Make the calls inside (on this thread) over one connection to the broker, not one each."""
        if not self.enabled or getattr(self._pinned, "manager", None) is not None:
            yield
            return
        assert self._manager is not None
        held = contextlib.ExitStack()
        try:
            manager = self._manager()
            held.enter_context(manager.connection())
        except (BrokerAuthError, OSError, ValueError):
            held.close()
            manager = None
        if manager is None:
            yield  # each call says why on its own
            return
        with held:
            self._pinned.manager = manager
            try:
                yield
            finally:
                self._pinned.manager = None

    def _manager_now(self) -> BrokerAccountStore:
        assert self._manager is not None
        return getattr(self._pinned, "manager", None) or self._manager()

    def _call(self, device_id: str, what: str, run: Callable[[BrokerAccountStore], Any]) -> tuple[Any, str | None]:
        try:
            done = run(self._manager_now())
        except (BrokerAuthError, OSError, ValueError) as exc:
            # BrokerAuthError's messages carry no password (url_without_credentials).
            log.warning("could not %s the broker account of %s: %s", what, device_id, exc)
            return None, str(exc) or type(exc).__name__
        self._lookup_failed_at = None  # the broker answers again: pages may ask it
        return done, None

    def issue(self, device_id: str) -> Outcome:
        """Give ``device_id`` a new account (or a new password: the old one stops working at once)."""
        if not self.enabled:
            return Outcome(device_id, self.auth, "not_needed")
        password, error = self._call(device_id, "make", lambda m: m.add_device(device_id))
        if error is not None:
            return Outcome(device_id, self.auth, "failed", error=error, broker_url=self.device_url)
        return Outcome(device_id, self.auth, "issued", password=password, broker_url=self.device_url,
                       mqtt_url=url_with_credentials(self.device_url, device_id, password))

    def keep_or_issue(self, device_id: str) -> Outcome:
        """Keep ``device_id``'s account if it has one (its password goes on working, its connection stays up),
        else give it one (:meth:`issue`)."""
        if not self.enabled:
            return Outcome(device_id, self.auth, "not_needed")
        password, error = self._call(device_id, "make", lambda m: m.keep_or_add_device(device_id))
        if error is not None:
            return Outcome(device_id, self.auth, "failed", error=error, broker_url=self.device_url)
        if password is None:
            return Outcome(device_id, self.auth, "kept", broker_url=self.device_url)
        return Outcome(device_id, self.auth, "issued", password=password, broker_url=self.device_url,
                       mqtt_url=url_with_credentials(self.device_url, device_id, password))

    def usernames(self) -> set[str] | None:
        """The usernames of every account on the broker; None if it did not answer (nor is it asked again for
        :data:`LOOKUP_PAUSE_S`, unless another call finds it answering: a page does not wait for it each time)."""
        if not self.enabled:
            return set()
        failed_at = self._lookup_failed_at
        if failed_at is not None and time.monotonic() - failed_at < LOOKUP_PAUSE_S:
            return None
        try:
            names = self._manager_now().usernames()
        except (BrokerAuthError, OSError, ValueError) as exc:
            log.warning("could not list the broker's accounts: %s", exc)
            self._lookup_failed_at = time.monotonic()
            return None
        self._lookup_failed_at = None
        return names

    def remove(self, device_id: str) -> Outcome:
        """Delete ``device_id``'s account: it is disconnected and cannot connect again."""
        if not self.enabled:
            return Outcome(device_id, self.auth, "not_needed", "remove")
        _, error = self._call(device_id, "delete", lambda m: m.remove_device(device_id))
        if error is not None:
            return Outcome(device_id, self.auth, "failed", "remove", error=error)
        return Outcome(device_id, self.auth, "removed", "remove")


@dataclass(frozen=True)
class Context:
    """Where the functions below work: the database that audits and the broker's accounts. The server's
    extension (``server.context.Extension``) is one; the command line makes its own."""

    db: Database
    broker: BrokerAccounts


class Services(Protocol):
    """What the actions on devices and their accounts need: the database that audits and the broker's accounts.
    :class:`Context` is one, the server's extension (``server.context.Extension``) another."""

    @property
    def db(self) -> Database: ...

    @property
    def broker(self) -> BrokerAccounts: ...


def recorded(db: Database, actor: str, outcome: Outcome, action: str) -> Outcome:
    """Audit what the broker did (``action``: issue or remove), unless there was nothing to do, and note it on
    the device (if the server knows it): whether it has an account, and offline if its connection was closed."""
    if outcome.result != "not_needed":
        with db.write() as s:
            audit.record(s, actor, f"broker.{action}", f"device:{outcome.device_id}", result=outcome.result,
                         **({"error": outcome.error} if outcome.error else {}))
            _note(s, outcome)
    return outcome


def _note(s: Session, outcome: Outcome) -> None:
    has = HAS_ACCOUNT_AFTER.get(outcome.result)
    if has is None:
        return
    this = Device.device_id == outcome.device_id
    s.execute(update(Device).where(this).values(broker_account=has))
    if outcome.result != "kept":
        # A new password or no account: any connection it had is closed, and the broker publishes no will
        # then (server.domain.mosquitto says offline on its status topic instead, which the bridge passes on).
        s.execute(update(Device).where(this, Device.online.is_(True)).values(online=False))


def issue(ext: Services, device_id: str, actor: str) -> Outcome:
    """New credentials for ``device_id``: the old password, if any, stops working at once."""
    return recorded(ext.db, actor, ext.broker.issue(device_id), "issue")


def keep_or_issue(ext: Services, device_id: str, actor: str) -> Outcome:
    """Credentials for a device being approved or added: the account it has is kept (``kept``), else one is
    made (``issued``)."""
    return recorded(ext.db, actor, ext.broker.keep_or_issue(device_id), "issue")


def remove(ext: Services, device_id: str, actor: str) -> Outcome:
    return recorded(ext.db, actor, ext.broker.remove(device_id), "remove")


def after_status(ext: Services, device_id: str, was: str | None, now: str, actor: str) -> Outcome | None:
    """What a device's new status means for its broker account, once the change is committed: a device
    retired (or created retired: ``was`` None) loses it, as ``POST .../retire`` does; None if nothing is
    done. A rejected device keeps its account, so that it still hears why its presses are refused; a
    device made active again gets new credentials from ``POST .../credentials``."""
    if now == "retired" and was != "retired":
        return remove(ext, device_id, actor)
    return None


def remove_many(ext: Services, device_ids: list[str], actor: str) -> list[Outcome]:
    """Delete several devices' accounts, over one connection to the broker; once the broker fails to answer,
    the rest are not tried (each would wait as long) and are reported failed with the same error."""
    out: list[Outcome] = []
    error: str | None = None
    with ext.broker.batch():
        for device_id in device_ids:
            if error is not None:
                out.append(Outcome(device_id, ext.broker.auth, "failed", "remove", error=error))
                continue
            outcome = remove(ext, device_id, actor)
            error = outcome.error if outcome.failed else None
            out.append(outcome)
    return out


def issue_many(ext: Services, device_ids: list[str], actor: str, *, new: bool = False) -> list[Outcome]:
    """Credentials for several devices over one connection to the broker: each that has an account keeps it
    (``new``: gets a new password all the same), the others get one. Once the broker fails to answer, the
    rest are not tried and are reported failed with the same error."""
    out: list[Outcome] = []
    error: str | None = None
    with ext.broker.batch():
        for device_id in device_ids:
            if error is not None:
                out.append(Outcome(device_id, ext.broker.auth, "failed", error=error,
                                   broker_url=ext.broker.device_url))
                continue
            outcome = (issue if new else keep_or_issue)(ext, device_id, actor)
            error = outcome.error if outcome.failed else None
            out.append(outcome)
    return out


def learn(ext: Services) -> bool:
    """Record which of the devices dashdesk has not asked about yet (``Device.broker_account`` None) have an
    account on the broker: one round for all of them, the first time a page needs to know. False if the
    broker did not answer (they stay unknown); True with accounts off or nothing to ask."""
    if not ext.broker.enabled:
        return True
    with ext.db.read() as s:
        unknown = list(s.scalars(select(Device.device_id).where(Device.broker_account.is_(None))))
    if not unknown:
        return True
    names = ext.broker.usernames()
    if names is None:
        return False
    with ext.db.write() as s:
        for has in (True, False):
            ids = [d for d in unknown if (d in names) is has]
            for i in range(0, len(ids), 500):
                # Only those still unknown: an account made or deleted meanwhile was recorded as it happened.
                s.execute(update(Device).where(Device.device_id.in_(ids[i:i + 500]),
                                               Device.broker_account.is_(None)).values(broker_account=has))
    return True
