"""The OpenAPI document and the server agree: schemathesis against a real server process.

Each test starts the server (``dashdesk server``, as a shop runs it) on its own database, gives it a shop
to work on, and runs schemathesis with ``schemathesis.toml`` (a fixed seed, a fixed number of examples)
and every check: no 5xx, no valid request refused, no invalid one taken, every status and header as
documented, 405 with ``Allow``. ``openapi_hooks`` holds what the run needs beyond the document.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.stack import ADMIN_TOKEN, Stack

# A minute or two each on an idle 2-core machine; the margin is for a loaded one.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
CONFIG = HERE / "schemathesis.toml"
# What the stateful run must do with each kind of thing: create it, then read, change or remove it along one of
# the document's links (server/api/openapi.py), as schemathesis names a step: "<from> -> [<status>] <link> -> <to>".
SEQUENCES = {
    "categories": ["POST /api/v1/categories -> [201] ChangeCategory -> PATCH /api/v1/categories/{slug}"],
    "devices": [f"POST /api/v1/devices -> [201] {link}" for link in (
        "GetDevice -> GET /api/v1/devices/{device_id}", "ChangeDevice -> PATCH /api/v1/devices/{device_id}",
        "MapButton -> PUT /api/v1/devices/{device_id}/buttons/{button}",
        "DeviceTickets -> GET /api/v1/devices/{device_id}/tickets",
        "RetireDevice -> POST /api/v1/devices/{device_id}/retire",
        "ReplaceDevice -> POST /api/v1/devices/{device_id}/replace")],
    "sites": ["POST /api/v1/sites -> [201] GetSite -> GET /api/v1/sites/{code}",
              "POST /api/v1/sites -> [201] ChangeSite -> PATCH /api/v1/sites/{code}"],
    "users": ["POST /api/v1/users -> [201] GetUser -> GET /api/v1/users/{username}",
              "POST /api/v1/users -> [201] ChangeUser -> PATCH /api/v1/users/{username}",
              "POST /api/v1/users -> [201] SetPassword -> POST /api/v1/users/{username}/password"],
    "tokens": ["POST /api/v1/tokens -> [201] RevokeToken -> DELETE /api/v1/tokens/{token_id}"],
    "tickets": ["POST /api/v1/incidents -> [201] GetTicket -> GET /api/v1/tickets/{ticket_id}",
                "POST /api/v1/incidents -> [201] ChangeTicket -> PATCH /api/v1/tickets/{ticket_id}",
                "GET /api/v1/tickets -> [200] ChangeTicket -> PATCH /api/v1/tickets/{ticket_id}"],
    "changed, then read": ["PATCH /api/v1/tickets/{ticket_id} -> [200] GetTicket -> GET /api/v1/tickets/{ticket_id}",
                           "PATCH /api/v1/devices/{device_id} -> [200] GetDevice -> GET /api/v1/devices/{device_id}",
                           "PATCH /api/v1/sites/{code} -> [200] GetSite -> GET /api/v1/sites/{code}",
                           "PATCH /api/v1/users/{username} -> [200] GetUser -> GET /api/v1/users/{username}",
                           "PUT /api/v1/devices/{device_id}/buttons/{button} -> [200] GetDevice -> "
                           "GET /api/v1/devices/{device_id}"],
}

STATEFUL_SEEDS = (20261123, 7)


@pytest.fixture
def server(tmp_path):
    """The ticket server alone (no broker or bridge: the API needs neither), with a shop: a site, a device whose
    button reports printers, a ticket."""
    stack = Stack(tmp_path / "stack")
    stack.start_server()
    try:
        assert stack.api("POST", "/api/v1/sites", json={"code": "shop-1", "name": "Shop 1"}).status_code == 201
        stack.place("seed-1", "shop-1")
        stack.map_button("seed-1", "b1", "printer")
        press = {"event_id": "seed-press-1", "device_id": "seed-1", "button": "b1",
                 "pressed_at": "2026-11-23T08:15:02.120Z"}
        assert stack.api("POST", "/api/v1/incidents", json=press).status_code == 201
        yield stack
    finally:
        stack.server.stop()


def schemathesis(stack: Stack, tmp_path: Path, phases: str, *options: str) -> list[dict]:
    """Run schemathesis' ``phases`` against ``stack``'s server; fail with its report unless it found nothing.
    The cases it ran, from its NDJSON report."""
    tokens = stack.api("GET", "/api/v1/tokens").json()["items"]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.integration.openapi_hooks",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "DASHDESK_RUN_TOKEN_ID": str(next(t["id"] for t in tokens if t["name"] == "admin (bootstrap)"))}
    reports = tmp_path / "schemathesis"
    tmp_path.mkdir(exist_ok=True)
    run = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run",
         f"{stack.base}/api/v1/openapi.json", "--phases", phases, "--checks", "all",
         "--header", f"Authorization: Bearer {ADMIN_TOKEN}", "--no-color",
         "--report", "ndjson", "--report-dir", str(reports), *options],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540)
    assert run.returncode == 0, f"schemathesis found problems:\n{run.stdout[-30000:]}\n{run.stderr[-3000:]}"
    cases = []
    for report in reports.glob("*.ndjson"):
        for line in report.read_text().splitlines():
            event = json.loads(line)
            if "ScenarioFinished" in event:
                cases.extend((event["ScenarioFinished"].get("recorder") or {}).get("cases", {}).values())
    assert cases, run.stdout[-3000:]
    # Every answer counted: the run's own token still works (a 401 would pass most checks unnoticed).
    assert stack.api("GET", "/api/v1/tokens").status_code == 200
    return cases


def test_every_operation_answers_as_documented(server, tmp_path):
    """Stateless: examples, boundary values and both valid and invalid requests for every operation."""
    cases = schemathesis(server, tmp_path, "examples,coverage,fuzzing")
    tested = {(c["value"]["method"], c["value"]["path"]) for c in cases}
    documented = {(m.upper(), p) for p, ops in server.api("GET", "/api/v1/openapi.json").json()["paths"].items()
                  for m in ops}
    assert documented <= tested, f"not tested: {sorted(documented - tested)}"


def test_sequences_of_operations_answer_as_documented(server, tmp_path):
    """Stateful: chains of calls along the document's links, each answer's values fed into the next call.

    A run of schemathesis ends its chains early once Hypothesis sees that a replayed chain answers otherwise
    than the first time (the server has changed since): a few seeds, each bounded, take every sequence."""
    cases = [c for seed in STATEFUL_SEEDS
             for c in schemathesis(server, tmp_path / str(seed), "stateful", "--seed", str(seed))]
    taken = {(c.get("transition") or {}).get("id") for c in cases} - {None}
    missing = [kind for kind, steps in SEQUENCES.items() if not taken.intersection(steps)]
    assert not missing, f"the stateful run did nothing with {missing}; it took {sorted(taken)}"
