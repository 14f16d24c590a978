"""The bridge's calls to the ticket server's HTTP API."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

import requests

# A press answer takes milliseconds; past this the server is treated as down
# and the press goes to the outbox (the replay later is harmless).
TIMEOUT_S = (2.0, 10.0)


class ServerDown(Exception):
    """The server could not be reached, failed (5xx) or did not take the request now (408, 425, 429): try
    again later."""


class TokenRefused(ServerDown):
    """The server refused the bridge's API token (401: unknown or revoked) or its role (403).

    Like a server that is down, it takes nothing now: presses wait in the outbox until a valid
    token works (the bridge started again with one), never answered ``rejected`` for it.
    """


@dataclass(frozen=True)
class Refused:
    """The server refused the request (4xx): retrying will not help."""

    status: int
    reason: str


# 4xx answers about the request's passage, not its content: the same request a little later is taken. 408:
# the HTTP layer gave up waiting for the body (a bridge stalled mid-send, a slow link); 425: sent too early
# (TLS early data); 429: too many requests just now (a proxy's or the server's rate limit).
TRANSIENT_4XX = frozenset({408, 425, 429})


def refusal(status: int, reason: str) -> Refused:
    """What a 4xx answer means for the press: a ``Refused`` (the press's own answer: it is rejected);
    TokenRefused for 401 and 403, ServerDown for TRANSIENT_4XX (the press waits, ``queued``, and goes again)."""
    if status in (401, 403):
        raise TokenRefused(f"HTTP {status}: {reason}"[:300])
    if status in TRANSIENT_4XX:
        raise ServerDown(f"HTTP {status}: {reason}"[:300])
    return Refused(status, f"server refused the press ({status}): {reason}"[:500])


class ServerClient:
    """One keep-alive HTTP session per thread against ``base_url``."""

    def __init__(self, base_url: str, token: str):
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers.update(self._headers)
            # Read the environment (proxies, CA bundle) once here, not on every request:
            # with trust_env, requests looks them (and ~/.netrc) up again for each call.
            session.trust_env = False
            session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            if bundle:
                session.verify = bundle
        return session

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Return the decoded JSON body (None for 204), a ``Refused`` for a 4xx (see ``refusal``); raise
        TokenRefused for a 401 or 403, ServerDown for a transient 4xx, a 5xx or no answer."""
        try:
            r = self._session().request(method, self.base_url + path, timeout=TIMEOUT_S, **kwargs)
        except requests.exceptions.InvalidJSONError as exc:
            return Refused(400, f"press cannot be sent as JSON: {exc}"[:500])
        except requests.RequestException as exc:
            self._local.session = None
            raise ServerDown(f"{type(exc).__name__}: {exc}") from None
        if r.status_code >= 500:
            raise ServerDown(f"HTTP {r.status_code}")
        if r.status_code >= 400:
            try:
                err = r.json()["error"]
                reason = err.get("message", "")
                if err.get("detail"):
                    reason = f"{reason}: {err['detail']}"
            except (ValueError, KeyError, TypeError):
                reason = r.text[:200]
            return refusal(r.status_code, reason)
        if r.status_code == 204 or not r.content:
            return None
        try:
            return r.json()
        except ValueError:
            # Not the server's answer (a proxy's page, a body cut short): nothing was said about the press.
            raise ServerDown(f"HTTP {r.status_code} with a body that is not JSON") from None

    def post_incident(self, body: dict[str, Any]) -> dict[str, Any] | Refused:
        """Hand over one press: ``body`` is a ``wire.IncidentBody``'s JSON (``to_dict()``)."""
        return self.request("POST", "/api/v1/incidents", json=body, headers={"Idempotency-Key": body["event_id"]})

    def post_incidents(self, bodies: list[dict[str, Any]]) -> list[dict[str, Any] | Refused]:
        """Hand over presses in order: one by one for one, else in one batch (and one by one if refused)."""
        if len(bodies) == 1:
            return [self.post_incident(bodies[0])]
        answer = self.request("POST", "/api/v1/incidents/batch", json={"items": bodies})
        if isinstance(answer, Refused):
            return [self.post_incident(body) for body in bodies]
        items = answer.get("items") if isinstance(answer, dict) else None
        if not isinstance(items, list) or len(items) != len(bodies):
            raise ServerDown("the batch's answer does not answer each press")
        return items
