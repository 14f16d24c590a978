"""The API's bearer tokens: who may call what (the tokens themselves: ``server.domain.tokens``)."""

from __future__ import annotations

from apiflask import HTTPTokenAuth, abort
from flask import request

from server.context import ext
from server.domain.tokens import Caller


auth = HTTPTokenAuth(scheme="Bearer", description="an API token made by an admin or at bootstrap")

# Every request `dashdesk bridge` makes (broker_bridge/), and nothing else: a bridge token gets 403 on any other
# endpoint, tickets and admin ones alike, those added later too.
BRIDGE_ENDPOINTS = frozenset({
    "api.post_incident", "api.post_incident_batch",  # presses
    "api.list_events",  # the feed, with each device's open tickets
    "api.post_dead_letter",  # payloads it rejected
    "api.post_telemetry", "api.post_status",  # each device's latest telemetry and online state
})


def allowed(caller: Caller, endpoint: str | None) -> bool:
    """Whether ``caller``'s role may call ``endpoint``: an admin token everything, a bridge token only what the
    bridge calls."""
    return caller.role == "admin" or (caller.role == "bridge" and endpoint in BRIDGE_ENDPOINTS)


@auth.verify_token
def _verify(token: str) -> Caller | None:
    if not token:
        return None
    services = ext()
    caller = services.tokens.verify(services.db, token)
    if caller is not None and not allowed(caller, request.endpoint):
        abort(403, "this needs an admin token")
    return caller
