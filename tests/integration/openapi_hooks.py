"""What a schemathesis run against dashdesk needs that the OpenAPI document cannot carry.

Loaded by ``test_openapi_conformance`` (``SCHEMATHESIS_HOOKS=tests.integration.openapi_hooks``). Each
rule here is one the document states in words and no JSON Schema can check: the run generates valid
requests by it (positive cases only; negative ones are left as generated).
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import schemathesis
from hypothesis import strategies as st
from schemathesis.generation.meta import TestPhase
from schemathesis.generation.modes import GenerationMode

from server.domain import sites

# The run's own API token (its id): revoking it would make every later request 401.
OWN_TOKEN_ID = os.environ.get("DASHDESK_RUN_TOKEN_ID", "")


@schemathesis.hook
def filter_case(ctx: Any, case: Any) -> bool:
    if case.method.upper() == "DELETE" and case.operation.path == "/api/v1/tokens/{token_id}":
        return str((case.path_parameters or {}).get("token_id")) != OWN_TOKEN_ID
    return True


# Formats the document names for what only the server can list or parse.
# `iana-time-zone`: one of the zones the server knows (server.domain.sites checks against the same list), or "" (UTC).
schemathesis.openapi.format("iana-time-zone", st.sampled_from(sorted(sites.time_zones())) | st.just(""))

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@st.composite
def _service_hours(draw: Any) -> str:
    """`service-hours` as text: days, each closed, 24h, or spans that open before they close, in order."""
    clauses = []
    for day in draw(st.lists(st.integers(0, 6), unique=True, max_size=7)):
        kind = draw(st.sampled_from(["closed", "24h", "spans"]))
        if kind != "spans":
            clauses.append(f"{DAYS[day]} {kind}")
            continue
        times = sorted(draw(st.lists(st.integers(0, 24 * 60), unique=True, min_size=2, max_size=4)))
        times = times[:len(times) // 2 * 2]
        clauses.append(f"{DAYS[day]} " + ", ".join(f"{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}"
                                                   for a, b in zip(times[::2], times[1::2])))
    return "; ".join(clauses)


schemathesis.openapi.format("service-hours", _service_hours())


@st.composite
def _sites_csv(draw: Any) -> str:
    """`sites-csv`: a header line and some sites."""
    codes = draw(st.lists(st.from_regex(r"\A[a-z0-9][a-z0-9_.-]{0,20}\Z"), unique=True, min_size=1, max_size=3))
    return "code,name\n" + "".join(f"{c},Shop {c}\n" for c in [c for c in codes if c != "import"] or ["csv-1"])


schemathesis.openapi.format("sites-csv", _sites_csv())
# `dashdesk-config`: a configuration file as `GET /api/v1/config/export` writes one.
schemathesis.openapi.format("dashdesk-config", st.sampled_from([
    '[[category]]\nslug = "from-file"\nname = "From a file"\n',
    '[[site]]\ncode = "from-file"\nname = "From a file"\ntimezone = "Europe/Warsaw"\nhours = "Mon-Fri 8-17"\n',
]))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# The field that names what a POST creates: in the stateful run each is made new (a suffix), so that a chain's
# first call creates what the next calls read and change. Hypothesis replays chains; a name taken by the first
# run would make the replay a 409 that follows no link, which it takes for a flaky strategy and stops.
CREATES = {"/api/v1/categories": "slug", "/api/v1/devices": "device_id", "/api/v1/devices/register": "device_id",
           "/api/v1/sites": "code", "/api/v1/users": "username", "/api/v1/tokens": "name"}
_made = itertools.count(1)


@schemathesis.hook
def before_call(ctx: Any, case: Any, kwargs: Any) -> None:
    """Valid requests keep the rules between fields that the document says in words."""
    if case.meta is not None and case.meta.generation.mode != GenerationMode.POSITIVE:
        return
    path, body, query = case.operation.path, case.body, case.query
    stateful = case.meta is not None and case.meta.phase.name == TestPhase.STATEFUL
    if stateful and case.method.upper() == "POST" and isinstance(body, dict) \
            and isinstance(body.get(CREATES.get(path)), str):
        body[CREATES[path]] = f"{body[CREATES[path]][:40]}-{next(_made):x}"
    # ... and a button it maps reports a category that exists, so that the chain goes on to remove the mapping.
    if stateful and path == "/api/v1/devices/{device_id}/buttons/{button}" and isinstance(body, dict) \
            and isinstance(body.get("category"), str):
        body["category"] = "printer"
    # POST /api/v1/incidents: `Idempotency-Key` is the press's event_id.
    if path == "/api/v1/incidents" and isinstance(body, dict) and "Idempotency-Key" in (case.headers or {}):
        case.headers["Idempotency-Key"] = body.get("event_id")
    # Categories: an SLA target resolves no sooner than it responds.
    if path.startswith("/api/v1/categories") and isinstance(body, dict) and isinstance(body.get("sla"), dict):
        for targets in body["sla"].values():
            if isinstance(targets, dict) and _number(targets.get("respond_min")) \
                    and _number(targets.get("resolve_min")) and targets["resolve_min"] < targets["respond_min"]:
                targets["respond_min"], targets["resolve_min"] = targets["resolve_min"], targets["respond_min"]
    # Sites: hours given per day open before they close and do not overlap.
    if path.startswith("/api/v1/sites") and isinstance(body, dict) and isinstance(body.get("hours"), dict):
        try:
            sites.check_hours(body["hours"])
        except ValueError:
            body["hours"] = {"mon": [["08:00", "17:00"]]}
    # Left out on purpose: an import that prunes for real removes every category, site and device the file
    # does not have, and the rest of the run would have nothing to press or change. It runs as a dry run.
    if path == "/api/v1/config/import" and isinstance(query, dict) and str(query.get("prune")).lower() in (
            "true", "1", "yes", "on", "t", "y"):
        query["dry_run"] = "true"
