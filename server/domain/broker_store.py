"""Devices' accounts on the broker: the interface the server uses, whichever broker holds them.

Approving, replacing and retiring a device decide its account (``server.domain.broker_accounts``); a
:class:`BrokerAccountStore` carries that out on the broker. Mosquitto's dynamic security plugin is
the one adapter so far (``server.domain.mosquitto.DynsecAccounts``); another broker (EMQX's or
HiveMQ's HTTP API, say) is one more class with these methods.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Protocol


class BrokerAuthError(RuntimeError):
    """The broker, or what holds its accounts, did not do what was asked (the message names no password)."""


class NoSuchDevice(BrokerAuthError, KeyError):
    """The device has no broker account (``add_device`` makes one)."""


@dataclass(frozen=True)
class DeviceAccount:
    """A device's account on the broker."""

    device_id: str
    enabled: bool


class BrokerAccountStore(Protocol):
    """Each device its own account on the broker, allowed its own topics only.

    Every method may raise :class:`BrokerAuthError` (or ``OSError``); each is safe to repeat.
    """

    def add_device(self, device_id: str) -> str:
        """Create or replace ``device_id``'s account and return its new password; the old one stops working
        and its connection is closed."""

    def keep_or_add_device(self, device_id: str) -> str | None:
        """Give ``device_id`` an account if it has none and return its password; None if it has one (kept,
        enabled)."""

    def remove_device(self, device_id: str) -> None:
        """Close ``device_id``'s connection and delete its account (no error if it has none)."""

    def set_device_enabled(self, device_id: str, enabled: bool) -> None:
        """Let ``device_id`` connect again, or close its connection and refuse it (:class:`NoSuchDevice`)."""

    def device(self, device_id: str) -> DeviceAccount | None:
        """``device_id``'s account, None if it has none."""

    def usernames(self) -> set[str]:
        """Every account's username on the broker."""

    def connection(self) -> contextlib.AbstractContextManager[None]:
        """Make the calls inside (on this thread) over one connection to the broker."""
