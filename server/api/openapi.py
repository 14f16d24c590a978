"""The OpenAPI document of ``/api/v1``: what APIFlask makes of the views and ``server.api.schemas``, finished.

APIFlask writes each operation from its decorators (the statuses a view answers itself are in its
``@api.doc``). This adds what holds for many operations at once, from the code that makes it so: the error
body every refusal has (``{"error": {"code", "message"}}``); 401 and 403 (``server.api.auth``: a bridge token may
call only the bridge's endpoints); 400 and 413 for a body, 414 for a URL, 405 where a path is one of the
API's own words (``server.api.schemas.RESERVED_IN_PATH``); a JSON body that is required where its schema
requires a field; ``allowEmptyValue`` on every query parameter (``server.api.schemas.Query`` reads an empty one
as not given); the bodies that are files; links from what a POST makes to what reads and changes it; and the
JSON Schema keywords marshmallow fields cannot carry (``propertyNames`` of a dict's keys, a schema's own
``json_schema``).
"""

from __future__ import annotations

import re
from typing import Any

from apispec import BasePlugin
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.field_converter import FieldConverterMixin
from marshmallow import fields

from server.api import schemas
from server.api.auth import BRIDGE_ENDPOINTS


# Flask's `<int:...>` and plain `<...>` path arguments as the document writes them.
_ARGUMENT = re.compile(r"<(?:[^<:>]+:)?([^<>]+)>")
METHODS = ("get", "post", "put", "patch", "delete")
# The path parameters that the view refuses with 400 unless they match (the rest are looked up: 404).
_WIRE_ID = {"type": "string", "pattern": schemas.ID.regex.pattern}
PATH_PATTERNS = {("put", "/api/v1/devices/{device_id}/buttons/{button}"): {"device_id": _WIRE_ID, "button": _WIRE_ID}}
# Bodies that are files, not JSON: the media types the view takes, and what the file is (its `format`; the view
# answers 422 with the lines or problems of a file that is not one).
FILES = {
    ("post", "/api/v1/sites/import"): (
        ("text/csv", "text/plain", "application/csv"), "sites-csv",
        "CSV, UTF-8: a first line naming the columns (`code` and `name`, and any of `address`, `timezone`, "
        "`hours`, `contact`), then a site per line"),
    ("post", "/api/v1/config/import"): (
        ("application/toml", "text/plain", "text/x-toml"), "dashdesk-config",
        "a configuration file (TOML) as `GET /api/v1/config/export` writes it"),
}
# Path parameters that are never those words (`server.api.schemas.RESERVED_IN_PATH`): by name, the paths they are in.
RESERVED = {"device_id": ("/api/v1/devices/", schemas.RESERVED_IN_PATH["device"][1]),
            "code": ("/api/v1/sites/", schemas.RESERVED_IN_PATH["site"][1])}
# What one answer lets a client do next (OpenAPI links): create, then read, change, remove what was made.
# (method, path, status) → {link name: (method, path, {parameter: runtime expression})}.
_TICKET = {"ticket_id": "$response.body#/ticket/id"}
_DEVICE = {"device_id": "$response.body#/device_id"}
_DEVICE_NEXT = {
    "GetDevice": ("get", "/api/v1/devices/{device_id}", _DEVICE),
    "ChangeDevice": ("patch", "/api/v1/devices/{device_id}", _DEVICE),
    "DeviceTickets": ("get", "/api/v1/devices/{device_id}/tickets", _DEVICE),
    "MapButton": ("put", "/api/v1/devices/{device_id}/buttons/{button}", _DEVICE),
    "RetireDevice": ("post", "/api/v1/devices/{device_id}/retire", _DEVICE),
    "ReplaceDevice": ("post", "/api/v1/devices/{device_id}/replace", _DEVICE),
}
LINKS: dict[tuple[str, str, str], dict[str, tuple[str, str, dict[str, str]]]] = {
    ("post", "/api/v1/incidents", "201"): {
        "GetTicket": ("get", "/api/v1/tickets/{ticket_id}", _TICKET),
        "ChangeTicket": ("patch", "/api/v1/tickets/{ticket_id}", _TICKET)},
    ("get", "/api/v1/tickets", "200"): {
        "GetTicket": ("get", "/api/v1/tickets/{ticket_id}", {"ticket_id": "$response.body#/items/0/id"}),
        "ChangeTicket": ("patch", "/api/v1/tickets/{ticket_id}", {"ticket_id": "$response.body#/items/0/id"})},
    ("patch", "/api/v1/tickets/{ticket_id}", "200"): {
        "GetTicket": ("get", "/api/v1/tickets/{ticket_id}", {"ticket_id": "$response.body#/id"})},
    ("post", "/api/v1/categories", "201"): {
        "ChangeCategory": ("patch", "/api/v1/categories/{slug}", {"slug": "$response.body#/slug"})},
    ("post", "/api/v1/devices", "201"): _DEVICE_NEXT,
    ("post", "/api/v1/devices/register", "201"): _DEVICE_NEXT,
    ("patch", "/api/v1/devices/{device_id}", "200"): {"GetDevice": _DEVICE_NEXT["GetDevice"]},
    ("put", "/api/v1/devices/{device_id}/buttons/{button}", "200"): {
        "GetDevice": _DEVICE_NEXT["GetDevice"],
        "UnmapButton": ("delete", "/api/v1/devices/{device_id}/buttons/{button}",
                        {**_DEVICE, "button": "$request.path.button"})},
    ("post", "/api/v1/sites", "201"): {
        "GetSite": ("get", "/api/v1/sites/{code}", {"code": "$response.body#/code"}),
        "ChangeSite": ("patch", "/api/v1/sites/{code}", {"code": "$response.body#/code"})},
    ("patch", "/api/v1/sites/{code}", "200"): {
        "GetSite": ("get", "/api/v1/sites/{code}", {"code": "$response.body#/code"})},
    ("patch", "/api/v1/users/{username}", "200"): {
        "GetUser": ("get", "/api/v1/users/{username}", {"username": "$response.body#/username"})},
    ("post", "/api/v1/users", "201"): {
        "GetUser": ("get", "/api/v1/users/{username}", {"username": "$response.body#/username"}),
        "ChangeUser": ("patch", "/api/v1/users/{username}", {"username": "$response.body#/username"}),
        "SetPassword": ("post", "/api/v1/users/{username}/password", {"username": "$response.body#/username"})},
    ("post", "/api/v1/tokens", "201"): {
        "RevokeToken": ("delete", "/api/v1/tokens/{token_id}", {"token_id": "$response.body#/id"})},
    ("post", "/api/v1/enrolments", "201"): {
        "WithdrawEnrolment": ("delete", "/api/v1/enrolments/{code}", {"code": "$response.body#/code"})},
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "the press's `event_id` (another value is 400); a replay answers what the first one did",
    "schema": {"type": "string", "pattern": schemas.EVENT_ID.regex.pattern}}


def _dict_keys(self: FieldConverterMixin, field: fields.Field, **kwargs: Any) -> dict[str, Any]:
    """A dict field's key schema as JSON Schema's ``propertyNames`` (apispec leaves it out)."""
    if isinstance(field, fields.Dict) and field.key_field is not None:
        keys = {k: v for k, v in self.field2property(field.key_field).items() if k != "type"}
        if keys:
            return {"propertyNames": keys}
    return {}


class JsonSchemaExtras(BasePlugin):
    """Adds what apispec's marshmallow converter cannot say: dict keys, and a schema class's ``json_schema``
    (keywords about several fields, e.g. ``if``/``then``)."""

    def init_spec(self, spec: Any) -> None:
        for plugin in spec.plugins:
            if isinstance(plugin, MarshmallowPlugin):
                plugin.converter.add_attribute_function(_dict_keys)

    def schema_helper(self, name: str, definition: dict[str, Any], **kwargs: Any) -> dict[str, Any] | None:
        schema = kwargs.get("schema")
        extras = getattr(schema, "json_schema", None)
        return dict(extras) if extras else None


ERROR_DESCRIPTIONS = {
    400: "the request is not what this document says (a body, a parameter, or JSON that is not strict JSON)",
    401: "no API token, or one that is not valid (revoked)",
    403: "a bridge token: this needs an admin token",
    404: "no such thing",
    405: "the path is one of the API's own (`/api/v1/devices/register`, `/api/v1/sites/import`), which takes "
         "another method (`Allow` says which)",
    413: "the body is larger than the server takes",
    414: "the URL is longer than the server reads",
    415: "the body is not of a media type this takes",
}


HEALTH = {"type": "object", "required": ["status"], "properties": {
    "status": {"type": "string", "enum": ["ok", "error"]},
    "detail": {"type": "string", "description": "with `error`: what the database answered"}}}


def _error(code: int) -> dict[str, Any]:
    return {"description": ERROR_DESCRIPTIONS[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _endpoints(app: Any) -> dict[tuple[str, str], str]:
    """(method, document path) → the Flask endpoint that answers it."""
    out: dict[tuple[str, str], str] = {}
    for rule in app.url_map.iter_rules():
        path = _ARGUMENT.sub(r"{\1}", rule.rule)
        for method in rule.methods or ():
            out[(method.lower(), path)] = rule.endpoint
    return out


def _body_schema(spec: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    content = operation.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        return spec["components"]["schemas"].get(ref.rsplit("/", 1)[1], {})
    return schema


def finish(app: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """The document as APIFlask wrote it, finished (APIFlask's spec processor)."""
    endpoints = _endpoints(app)
    spec.setdefault("components", {}).setdefault("schemas", {})["Health"] = HEALTH
    for path, operations in spec.get("paths", {}).items():
        for method in METHODS:
            operation = operations.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            params = operation.get("parameters", [])
            for param in params:
                if param.get("in") == "query":
                    param["allowEmptyValue"] = True
                patterns = PATH_PATTERNS.get((method, path), {})
                if param.get("in") == "path" and param["name"] in patterns:
                    param["schema"] = dict(patterns[param["name"]])
                    responses.setdefault("400", _error(400))
                reserved = RESERVED.get(param["name"]) if param.get("in") == "path" else None
                if reserved and path.startswith(reserved[0]):
                    param["schema"] = {**param["schema"], "not": {"enum": list(reserved[1])}}
                    responses.setdefault("405", _error(405))
            if operation.get("security"):
                responses.setdefault("401", _error(401))
                if endpoints.get((method, path)) not in BRIDGE_ENDPOINTS:
                    responses.setdefault("403", _error(403))
            if (method, path) in FILES:
                types, file_format, description = FILES[(method, path)]
                operation["requestBody"] = {"required": True, "description": description, "content": {
                    t: {"schema": {"type": "string", "format": file_format}} for t in types}}
                responses.setdefault("415", _error(415))
            if (method, path) == ("post", "/api/v1/incidents"):
                operation["parameters"] = [*params, IDEMPOTENCY_KEY]
            if "requestBody" in operation:
                body = _body_schema(spec, operation)
                if body.get("required") or body.get("then", {}).get("required"):
                    operation["requestBody"]["required"] = True
                responses.setdefault("400", _error(400))
                responses.setdefault("413", _error(413))
            if params:
                responses.setdefault("414", _error(414))
            if path == "/healthz":
                health = {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}
                responses["200"] = {"description": "the database answers", "content": health}
                responses["503"] = {"description": "the database does not answer", "content": health}
            for status, links in {s: links for (m, p, s), links in LINKS.items() if (m, p) == (method, path)}.items():
                responses[status]["links"] = {name: {
                    "operationRef": "#/paths/" + to_path.replace("~", "~0").replace("/", "~1") + "/" + to_method,
                    "parameters": dict(parameters)} for name, (to_method, to_path, parameters) in links.items()}
            operation["responses"] = dict(sorted(responses.items()))
    return spec


def init(app: Any) -> None:
    """Make ``app``'s document this module's (before its first request)."""
    app.config["HTTP_ERROR_SCHEMA"] = schemas.Error
    app.config["VALIDATION_ERROR_SCHEMA"] = schemas.Error
    app.spec_plugins.append(JsonSchemaExtras())
    app.spec_processor(lambda spec: finish(app, spec))
