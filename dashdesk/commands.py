"""What every part's commands share: exit codes, a command-line option over the configuration, and the lock a
command takes on its data (one ``dashdesk server`` per database, one ``dashdesk bridge`` per outbox)."""

from __future__ import annotations

import sys
from enum import IntEnum
from pathlib import Path
from typing import Any

import click

from . import datalock


class Exit(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    NO_ACK = 3
    # `dashdesk press`: the broker refused the connection (a wrong or revoked password, an unknown user).
    REFUSED = 4


def override(cfg: dict[str, Any], section: str | None, key: str, value: Any) -> None:
    """Set ``[section] key`` (a top-level key if ``section`` is None) to a command-line option's ``value``,
    unless it was not given (None)."""
    if value is None:
        return
    (cfg.setdefault(section, {}) if section else cfg)[key] = value


def claim(command: str, resource: Path, what: str) -> datalock.Lock:
    """Lock ``resource`` for this ``dashdesk COMMAND``; exit at once (1), naming the pid, if another one has."""
    try:
        return datalock.acquire(datalock.lock_path(resource, command), what)
    except datalock.Busy as busy:
        click.echo(f"dashdesk {command}: {busy}: another `dashdesk {command}` runs on it; stop that one first",
                   err=True)
        sys.exit(Exit.FAILED)
