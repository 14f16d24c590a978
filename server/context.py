"""What ``create_app`` binds to the application, typed: the database, the press settings, the API token cache, the
devices' broker accounts, the configuration. The API, the pages and the phone app reach them through :func:`ext`
and :func:`app_config`; nothing below this layer (``server.domain``, the data) knows of Flask.

>>> # with ext().db.read() as s: ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import current_app, request

from server.db import Database
from server.domain import enrolments
from server.domain.broker_accounts import BrokerAccounts
from server.domain.incidents import Settings
from server.domain.tokens import TokenCache


KEY = "dashdesk"


@dataclass
class Extension:
    """The server's own part of ``app.extensions``."""

    db: Database
    settings: Settings
    tokens: TokenCache
    default_sla: dict[str, Any]
    # Devices' broker accounts ([broker] auth = "dynsec"); off unless the configuration says so.
    broker: BrokerAccounts = field(default_factory=lambda: BrokerAccounts(False, "mqtt://127.0.0.1:1883"))


def ext() -> Extension:
    """The running application's :class:`Extension`."""
    return current_app.extensions[KEY]  # type: ignore[no-any-return]


def app_config() -> dict[str, Any]:
    """The whole configuration the server was made with (parts read their own section: the phone app's ``[app]``)."""
    return current_app.config.get("DASHDESK_CONFIG") or {}


def app_settings() -> dict[str, Any]:
    """The ``[app]`` section of the configuration (the phone app and its enrolment links)."""
    return dict(app_config().get("app", {}) or {})


def public_base() -> str:
    """The server's address as phones reach it: ``[app] public_url``, else the one this request came to."""
    return enrolments.public_base(app_settings(), request.host_url)
