"""Presses from the bridge: ``POST /api/v1/incidents`` and its batch.

The schema ``IncidentIn`` validates a press's JSON and loads it with the names of ``wire.IncidentBody``'s
fields, which the domain takes as it is.
"""

from __future__ import annotations

from typing import Any

from apiflask import abort
from flask import request

from dashdesk import wire

from server.api import schemas
from server.api.auth import auth
from server.api.blueprint import api
from server.context import ext
from server.domain import incidents


@api.post("/incidents")
@api.auth_required(auth)
@api.input(schemas.IncidentIn, arg_name="body")
@api.output(schemas.Answer, status_code=201, description="a ticket was created")
@api.doc(summary="Hand over one press",
         responses={200: "merged, reopened, cancelled, rejected or a replay",
                    400: "the body is not a press, or `Idempotency-Key` is not its `event_id`"},
         description="Idempotent per device: a press is its `device_id` with its `event_id`; a replay returns the "
                     "first answer, the same `event_id` from another device is another press. The "
                     "`Idempotency-Key` header, if given, must equal `event_id`.")
def post_incident(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    key = request.headers.get("Idempotency-Key")
    if key is not None and key != body["event_id"]:
        abort(400, "Idempotency-Key does not match event_id")
    services = ext()
    answer, first_time = incidents.handle_press(services.db, wire.IncidentBody(**body), services.settings)
    return answer, 201 if first_time and answer["result"] == "created" else 200


@api.post("/incidents/batch")
@api.auth_required(auth)
@api.input(schemas.IncidentBatchIn, arg_name="body")
@api.output(schemas.AnswerList)
@api.doc(summary="Hand over up to 500 presses in one transaction",
         description="Each press is idempotent on its `device_id` and `event_id`, as with `POST /api/v1/incidents`; "
                     "the answers come in the order of the presses. The bridge uses it when presses queue up.")
def post_incident_batch(body: dict[str, Any]) -> dict[str, Any]:
    answers = incidents.handle_presses(ext().db, [wire.IncidentBody(**item) for item in body["items"]],
                                       ext().settings)
    return {"items": [answer for answer, _ in answers]}

