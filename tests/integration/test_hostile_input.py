"""Hostile text and numbers through every door of a real stack: no 5xx, a clear refusal or the documented rule,
and the pages that show what was taken still render.

Each row of the table sends one hostile string (lone surrogates, a surrogate pair escaped correctly as a valid
control, superscript, Arabic-Indic and fullwidth digits, NUL, other control characters, line breaks, an RTL
override, 30 and 10,000 combining marks, 100,000 characters) through one door: a field of the API's JSON
bodies, a query parameter or a path of the API and of the pages, a field of the pages' forms (signed in as an
admin, with the form's CSRF token), the sites' CSV and the configuration's TOML, and MQTT presses and retained
telemetry over the real Mosquitto and bridge. The rules (``docs/protocol.md``, "Text and numbers"):

- a lone surrogate is refused everywhere (400, naming the field) but in telemetry, where it becomes U+FFFD; a
  form or a query cannot carry one (what arrives are the bytes' percent escapes, as text);
- one-line fields refuse control characters, line breaks and tabs; text of several lines takes tab and line
  breaks; NUL nowhere; at most 30 combining marks in a row; lengths as each field says;
- a number is ASCII digits only: ``¹``, ``١`` or ``１`` is refused (the API), ignored (a page's ``page=``) or no
  ticket (a path), never a 500;
- an RTL override, an emoji, digits of other scripts as text are taken as given and shown escaped.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import quote

import pytest
import requests

from dashdesk import mqtt as dd_mqtt
from dashdesk import wire
from tests.stack import ADMIN_PASSWORD, Presser, wait_until

HOSTILE = {
    "lone-high-surrogate": "a\ud800b",
    "lone-low-surrogate": "a\udc00b",
    "swapped-pair": "\ude00\ud83d",
    "valid-pair": "ok \U0001f600",
    "superscript-digits": "\u00b9\u00b2\u00b3",
    "arabic-indic-digits": "\u0661\u0662\u0663",
    "fullwidth-digits": "\uff11\uff12\uff13",
    "nul": "a\x00b",
    "c0-control": "a\x01b",
    "ansi-escape": "\x1b[31mred",
    "newline": "one\ntwo",
    "tab": "a\tb",
    "del": "a\x7fb",
    "c1-control": "a\x85b",
    "line-separator": "a\u2028b",
    "rtl-override": "\u202eexe.txt",
    "combining-30": "e" + "\u0301" * 30,
    "combining-10000": "e" + "\u0301" * 10_000,
    "long-100000": "x" * 100_000,
}
SURROGATES = {"lone-high-surrogate", "lone-low-surrogate", "swapped-pair"}
CONTROLS = {"nul", "c0-control", "ansi-escape", "del", "c1-control", "line-separator"}
LINE_BREAKS = {"newline", "tab"}
TOO_MUCH = {"combining-10000", "long-100000"}
# Refused by one-line fields, and by text of several lines.
NOT_ONE_LINE = SURROGATES | CONTROLS | LINE_BREAKS | TOO_MUCH
NOT_TEXT = SURROGATES | CONTROLS | TOO_MUCH
# A query parameter is one line: control characters are refused at the door, whatever the parameter.
NOT_IN_A_QUERY = CONTROLS | LINE_BREAKS | {"combining-10000"}

# Every door takes one string of each kind; the doors the issue names (and one of each sort) take them all.
CORE = ("lone-high-surrogate", "superscript-digits", "nul", "newline", "combining-10000")
FULL = tuple(HOSTILE)

NOW = "2026-11-23T08:15:02.120Z"
ACK_TIMEOUT = 10.0  # generous: a loaded 2-core CI machine; only a failure waits it out


def replaced(value: Any) -> Any:
    """The documented rule for telemetry: each lone surrogate (in keys and strings) becomes U+FFFD."""
    if isinstance(value, str):
        return re.sub("[\ud800-\udfff]", "\ufffd", value)
    if isinstance(value, dict):
        return {replaced(k): replaced(v) for k, v in value.items()}
    return [replaced(v) for v in value] if isinstance(value, list) else value


def unique(prefix: str = "hx") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wtf8(value: str) -> bytes:
    """The bytes a careless client sends for ``value`` (a lone surrogate as its three UTF-8-like bytes)."""
    return value.encode("utf-8", "surrogatepass")


def quoted(value: str) -> str:
    return quote(wtf8(value), safe="")


# ------------------------------------------------------------------ the stack, signed in


@dataclass
class World:
    base: str
    api: requests.Session
    web: requests.Session
    csrf: str
    ticket: int
    presser: Presser

    def url(self, path: str) -> str:
        return self.base + path

    def form(self, path: str, fields: dict[str, str], session: requests.Session | None = None) -> requests.Response:
        """Post a page's form as a browser does (urlencoded, with the CSRF token), following its redirect."""
        body = "&".join(f"{quoted(k)}={quoted(v)}" for k, v in {"csrf_token": self.csrf, **fields}.items())
        return (session or self.web).post(self.url(path), data=body.encode(), timeout=30,
                                          headers={"Content-Type": "application/x-www-form-urlencoded"})

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.web.get(self.url(path), timeout=30, **kwargs)

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.api.request(method, self.url(path), timeout=30, **kwargs)


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def sign_in(base: str) -> requests.Session:
    web = requests.Session()
    page = web.get(base + "/login", timeout=10)
    r = web.post(base + "/login", data={"csrf_token": csrf_of(page.text), "username": "admin",
                                         "password": ADMIN_PASSWORD}, timeout=30)
    assert r.status_code == 200 and "/login" not in r.url, r.text[:300]
    return web


@pytest.fixture(scope="module")
def world(stack) -> World:
    api = stack.http

    def ok(r: requests.Response) -> Any:
        assert r.status_code < 300, r.text[:300]
        return r.json() if r.content else None

    ok(api.post(stack.base + "/api/v1/sites", json={"code": "hx-site", "name": "Hostile shop"}, timeout=10))
    for slug in ("hx-cat", "hx-form-cat"):
        ok(api.post(stack.base + "/api/v1/categories", json={"slug": slug, "name": f"Hostile {slug}"}, timeout=10))
    for device in ("hx-dev", "hx-mqtt"):
        ok(api.post(stack.base + "/api/v1/devices", json={"device_id": device, "site": "hx-site"}, timeout=10))
        ok(api.put(stack.base + f"/api/v1/devices/{device}/buttons/b1", json={"category": "hx-cat"}, timeout=10))
    ok(api.post(stack.base + "/api/v1/users", json={"username": "hx-user", "password": "hostile-password-1"},
                timeout=10))
    answer = ok(api.post(stack.base + "/api/v1/incidents", json={
        "event_id": unique("ev"), "device_id": "hx-dev", "button": "b1", "pressed_at": NOW}, timeout=10))
    web = sign_in(stack.base)
    presser = Presser(stack.broker.url)
    w = World(stack.base, api, web, csrf_of(web.get(stack.base + "/admin", timeout=10).text),
              answer["ticket"]["id"], presser)
    yield w
    presser.close()


# ------------------------------------------------------------------ what an answer must be


def is_api_refusal(r: requests.Response) -> bool:
    if not 400 <= r.status_code < 500:
        return False
    if not r.headers.get("Content-Type", "").startswith("application/json"):
        return r.status_code in (400, 413, 414, 431)  # the HTTP server's own, before dashdesk reads it
    error = r.json().get("error") or {}
    return bool(error.get("code")) and bool(error.get("message"))


def is_page_refusal(r: requests.Response) -> bool:
    """A page's form refused: its page again with a 4xx and what is wrong, or (after a redirect) an error flash."""
    if 400 <= r.status_code < 500:
        return r.headers.get("Content-Type", "").startswith("text/html") and 'role="alert"' in r.text \
            or r.status_code in (400, 404, 413, 414, 431)
    return r.status_code == 200 and "flash flash-error" in r.text


def is_page_success(r: requests.Response) -> bool:
    return r.status_code in (200, 201) and "flash flash-error" not in r.text and 'class="field-error"' not in r.text


def intact(r: requests.Response) -> bool:
    """A whole page: 200, HTML to its end, no error page."""
    return r.status_code == 200 and r.text.rstrip().endswith("</html>") and "Something went wrong" not in r.text


def shown(value: str) -> str:
    """How a page shows text it took: HTML-escaped (the table's strings have no quotes)."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ------------------------------------------------------------------ the doors


@dataclass(frozen=True)
class Door:
    """One place a request carries text: ``send`` puts the string there and answers (the response, the page
    that shows what it took or None). ``kind`` says what the door must do with each string (see ``expected``);
    ``via``: api, page (a form), query or path (the API's or a page's)."""

    kind: str
    via: str
    send: Callable[[World, str], tuple[requests.Response, str | None]]
    strings: tuple[str, ...] = ()  # (): CORE, one string of each kind (WHOLE_TABLE's doors: all of them)
    visible: bool = False  # the page shows an accepted value as it was given


def expected(door: Door, name: str) -> str:
    """``refused``, ``accepted`` or ``either`` (a look-up that finds nothing, or a form that cannot carry a lone
    surrogate: the percent escapes arrive as text)."""
    if door.via == "page" and name in SURROGATES and door.kind not in ("pattern", "number"):
        return "either"
    if door.kind in ("query-text", "query-number") and name in SURROGATES | {"long-100000"}:
        return "either"  # the escapes as text; 100,000 characters past some server's line limit
    return {
        "line": "refused" if name in NOT_ONE_LINE else "accepted",
        "text": "refused" if name in NOT_TEXT else "accepted",
        "pattern": "refused",
        "number": "refused",
        "lookup": "either",
        "telemetry": "accepted",
        "free": "refused" if name in SURROGATES | TOO_MUCH else "accepted",
        "query-text": "refused" if name in NOT_IN_A_QUERY else "either",
        "query-number": "refused" if name in NOT_IN_A_QUERY else ("refused" if door.via == "query" else "ignored"),
    }[door.kind]


def site_body(w: World, name: str) -> dict[str, str]:
    return {"code": "hx-site", "name": "Hostile shop", "address": "", "timezone": "UTC", "hours": "", "contact": name}


def pending_device(w: World) -> str:
    device = unique("hx-pending")
    r = w.call("POST", "/api/v1/devices", json={"device_id": device, "status": "pending"})
    assert r.status_code == 201, r.text
    return device


def csv_text(code: str, name: str) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows([["code", "name"], [code, name]])
    return wtf8(out.getvalue())


def toml_text(code: str, name: str) -> str:
    # As written, but for JSON's escapes of control characters (TOML's too): TOML takes no raw ones.
    return f'version = 1\n\n[[site]]\ncode = "{code}"\nname = {json.dumps(name, ensure_ascii=False)}\n'


def incident(device: str, **change: Any) -> dict[str, Any]:
    return {"event_id": unique("ev"), "device_id": device, "button": "b1", "pressed_at": NOW, **change}


def _new_site(w: World, v: str) -> tuple[requests.Response, str | None]:
    code = unique()
    r = w.call("POST", "/api/v1/sites", json={"code": code, "name": v})
    return r, f"/admin/sites/{code}" if r.status_code < 300 else "/admin/sites"


def _new_category(w: World, v: str) -> tuple[requests.Response, str | None]:
    slug = unique()
    r = w.call("POST", "/api/v1/categories", json={"slug": slug, "name": v})
    return r, f"/admin/categories/{slug}" if r.status_code < 300 else "/admin/categories"


def _reject(w: World, v: str) -> tuple[requests.Response, str | None]:
    device = pending_device(w)
    return w.call("POST", f"/api/v1/devices/{device}/reject", json={"reason": v}), f"/admin/devices/{device}"


def _approve(w: World, v: str) -> tuple[requests.Response, str | None]:
    device = pending_device(w)
    return w.call("POST", f"/api/v1/devices/{device}/approve", json={"site": v}), f"/admin/devices/{device}"


def _dead_letter(w: World, v: str) -> tuple[requests.Response, str | None]:
    body = {"key": unique("dl"), "topic": "dashdesk/v1/devices/x/press", "payload_prefix": "{}", "payload_size": 2,
            "reason": v, "received_at": NOW}
    return w.call("POST", "/api/v1/dead-letters", json=body), None


def _page_form_site(w: World, v: str) -> tuple[requests.Response, str | None]:
    code = unique()
    return w.form("/admin/sites", {"code": code, "name": v, "timezone": "UTC"}), "/admin/sites"


def _page_form_reject(w: World, v: str) -> tuple[requests.Response, str | None]:
    device = pending_device(w)
    return w.form(f"/admin/devices/{device}/reject", {"reason": v, "next": f"/admin/devices/{device}"}), \
        f"/admin/devices/{device}"


def _page_login(w: World, v: str) -> tuple[requests.Response, str | None]:
    anonymous = requests.Session()
    page = anonymous.get(w.url("/login"), timeout=10)
    body = f"csrf_token={quoted(csrf_of(page.text))}&username={quoted(v)}&password=wrong-password-1"
    r = anonymous.post(w.url("/login"), data=body.encode(), timeout=30,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    return r, None


def _stream(w: World, v: str, header: bool = False) -> tuple[requests.Response, str | None]:
    if header:
        r = w.web.get(w.url("/events/stream"), headers={"Last-Event-ID": wtf8(v)}, stream=True, timeout=30)
    else:
        r = w.web.get(w.url(f"/events/stream?after={quoted(v)}"), stream=True, timeout=30)
    if r.status_code != 200:
        r.content  # noqa: B018 - an error page: read it whole
    r.close()  # the stream would last a minute: its status is what counts
    return r, None


def T(w: World) -> str:
    return f"/tickets/{w.ticket}"


DOORS: dict[str, Door] = {
    # --- the API's JSON bodies
    "api-site-name": Door("line", "api", _new_site, visible=True),
    "api-site-contact": Door("line", "api", lambda w, v: (
        w.call("PATCH", "/api/v1/sites/hx-site", json={"contact": v}), "/admin/sites/hx-site"), visible=True),
    "api-site-address": Door("text", "api", lambda w, v: (
        w.call("PATCH", "/api/v1/sites/hx-site", json={"address": v}), "/admin/sites/hx-site"), visible=True),
    "api-site-hours": Door("pattern", "api", lambda w, v: (
        w.call("PATCH", "/api/v1/sites/hx-site", json={"hours": v}), "/admin/sites/hx-site")),
    "api-site-code": Door("pattern", "api", lambda w, v: (
        w.call("POST", "/api/v1/sites", json={"code": v, "name": "x"}), "/admin/sites")),
    "api-category-name": Door("line", "api", _new_category, visible=True),
    "api-category-label": Door("line", "api", lambda w, v: (
        w.call("PATCH", "/api/v1/categories/hx-cat", json={"labels": {"en": v}}), "/admin/categories/hx-cat"),
        visible=True),
    "api-category-icon": Door("line", "api", lambda w, v: (
        w.call("PATCH", "/api/v1/categories/hx-cat", json={"icon": v[:40]}), "/admin/categories")),
    "api-category-notify": Door("pattern", "api", lambda w, v: (
        w.call("PATCH", "/api/v1/categories/hx-cat", json={"notify": [v]}), "/admin/categories/hx-cat")),
    "api-ticket-note": Door("text", "api", lambda w, v: (
        w.call("PATCH", f"/api/v1/tickets/{w.ticket}", json={"note": v}), T(w)), visible=True),
    # A merge by the API: the ticket to merge into, a number (non-ASCII digits, "INC-..." and the rest refused).
    "api-ticket-merged-into": Door("number", "api", lambda w, v: (
        w.call("PATCH", f"/api/v1/tickets/{w.ticket}", json={"merged_into": v}), T(w))),
    "api-ticket-assignee": Door("line", "api", lambda w, v: (
        w.call("PATCH", f"/api/v1/tickets/{w.ticket}", json={"assignee": v}), "/")),
    "api-button-label": Door("line", "api", lambda w, v: (
        w.call("PUT", "/api/v1/devices/hx-dev/buttons/b2", json={"category": "hx-cat", "label": v}),
        "/admin/devices/hx-dev"), visible=True),
    "api-reject-reason": Door("text", "api", _reject),
    "api-token-name": Door("line", "api", lambda w, v: (
        w.call("POST", "/api/v1/tokens", json={"name": v, "role": "admin"}), "/admin/tokens"), visible=True),
    "api-username": Door("pattern", "api", lambda w, v: (
        w.call("POST", "/api/v1/users", json={"username": v}), "/admin/users")),
    "api-incident-telemetry-value": Door("telemetry", "api", lambda w, v: (
        w.call("POST", "/api/v1/incidents", json=incident("hx-dev", telemetry={"note": v})), T(w))),
    "api-incident-telemetry-key": Door("telemetry", "api", lambda w, v: (
        w.call("POST", "/api/v1/incidents", json=incident("hx-dev", telemetry={v: 1})), T(w))),
    "api-device-telemetry": Door("telemetry", "api", lambda w, v: (
        w.call("POST", "/api/v1/devices/hx-dev/telemetry", json={"telemetry": {"firmware": v, v[:50]: 1}}),
        "/admin/devices")),
    "api-batch-telemetry": Door("telemetry", "api", lambda w, v: (
        w.call("POST", "/api/v1/incidents/batch", json={"items": [incident("hx-dev", telemetry={"a": [v]})]}),
        T(w))),
    "api-event-id": Door("pattern", "api", lambda w, v: (
        w.call("POST", "/api/v1/incidents", json=incident("hx-dev", event_id=v)), None)),
    "api-device-id": Door("pattern", "api", lambda w, v: (
        w.call("POST", "/api/v1/devices", json={"device_id": v}), "/admin/devices")),
    "api-approve-site": Door("lookup", "api", _approve),
    "api-enrolment-site": Door("lookup", "api", lambda w, v: (
        w.call("POST", "/api/v1/enrolments", json={"site": v}), "/admin/enrolments")),
    "api-enrolment-expiry": Door("number", "api", lambda w, v: (
        w.call("POST", "/api/v1/enrolments", json={"site": "hx-site", "expires_in_h": v}), None)),
    "api-category-priority": Door("number", "api", lambda w, v: (
        w.call("PATCH", "/api/v1/categories/hx-cat", json={"priority": v}), None)),
    "api-dead-letter-reason": Door("free", "api", _dead_letter),
    "api-site-timezone": Door("pattern", "api", lambda w, v: (
        w.call("PATCH", "/api/v1/sites/hx-site", json={"timezone": v}), "/admin/sites/hx-site")),
    "api-device-kind": Door("pattern", "api", lambda w, v: (
        w.call("POST", "/api/v1/devices", json={"device_id": unique(), "kind": v}), "/admin/devices")),
    "api-device-site-name": Door("line", "api", lambda w, v: (
        w.call("POST", "/api/v1/devices", json={"device_id": unique(), "site": unique(), "site_name": v}),
        "/admin/sites")),
    "api-user-password": Door("lookup", "api", lambda w, v: (
        w.call("POST", "/api/v1/users/hx-user/password", json={"password": v}), "/admin/users/hx-user")),
    "api-copy-mapping-to": Door("pattern", "api", lambda w, v: (
        w.call("POST", "/api/v1/devices/copy-mapping", json={"from": "hx-dev", "to": [v]}), None)),
    "api-credentials-device-ids": Door("pattern", "api", lambda w, v: (
        w.call("POST", "/api/v1/devices/credentials", json={"device_ids": [v]}), None)),
    "api-replace-by": Door("pattern", "api", lambda w, v: (
        w.call("POST", "/api/v1/devices/hx-dev/replace", json={"by": v}), "/admin/devices/hx-dev")),
    "api-register-site": Door("lookup", "api", lambda w, v: (
        w.call("POST", "/api/v1/devices/register", json={"device_id": unique(), "site": v}), "/admin/devices")),
    "api-sites-csv": Door("line", "api", lambda w, v: (
        w.call("POST", "/api/v1/sites/import", data=csv_text(unique(), v), headers={"Content-Type": "text/csv"}),
        "/admin/sites")),
    "api-config-toml": Door("line", "api", lambda w, v: (
        w.call("POST", "/api/v1/config/import", data=wtf8(toml_text(unique(), v)),
               headers={"Content-Type": "application/toml"}), "/admin/sites")),
    # --- the API's query parameters and paths
    "api-query-tickets-site": Door("query-text", "query", lambda w, v: (
        w.call("GET", f"/api/v1/tickets?site={quoted(v)}"), None)),
    "api-query-tickets-category": Door("pattern", "query", lambda w, v: (
        w.call("GET", f"/api/v1/tickets?category={quoted(v)}"), None)),
    "api-query-tickets-limit": Door("query-number", "query", lambda w, v: (
        w.call("GET", f"/api/v1/tickets?limit={quoted(v)}"), None)),
    "api-query-tickets-cursor": Door("query-number", "query", lambda w, v: (
        w.call("GET", f"/api/v1/tickets?cursor={quoted(v)}"), None)),
    "api-query-events-after": Door("query-number", "query", lambda w, v: (
        w.call("GET", f"/api/v1/events?after={quoted(v)}"), None)),
    "api-query-audit-target": Door("query-text", "query", lambda w, v: (
        w.call("GET", f"/api/v1/audit?target={quoted(v)}"), None)),
    "api-query-sites-q": Door("query-text", "query", lambda w, v: (
        w.call("GET", f"/api/v1/sites?q={quoted(v)}"), None)),
    "api-query-tickets-device": Door("pattern", "query", lambda w, v: (
        w.call("GET", f"/api/v1/tickets?device_id={quoted(v)}"), None)),
    "api-query-tickets-status": Door("pattern", "query", lambda w, v: (
        w.call("GET", f"/api/v1/tickets?status={quoted(v)}"), None)),
    "api-query-devices-site": Door("query-text", "query", lambda w, v: (
        w.call("GET", f"/api/v1/devices?site={quoted(v)}"), None)),
    "api-path-ticket": Door("number", "path", lambda w, v: (w.call("GET", f"/api/v1/tickets/{quoted(v)}"), None)),
    "api-path-device": Door("lookup", "path", lambda w, v: (w.call("GET", f"/api/v1/devices/{quoted(v)}"), None)),
    "api-path-enrolment": Door("lookup", "path", lambda w, v: (
        w.call("DELETE", f"/api/v1/enrolments/{quoted(v)}"), None)),
    "api-path-site": Door("lookup", "path", lambda w, v: (w.call("GET", f"/api/v1/sites/{quoted(v)}"), None)),
    # --- the pages' query parameters, paths and headers
    "page-queue-q": Door("query-text", "page-query", lambda w, v: (w.get(f"/?q={quoted(v)}"), None)),
    "page-queue-q-ticket-number": Door("query-text", "page-query", lambda w, v: (
        w.get(f"/?q={quoted('INC-' + v)}"), None)),
    "page-queue-page": Door("query-number", "page-query", lambda w, v: (w.get(f"/?page={quoted(v)}"), None)),
    "page-queue-priority": Door("query-number", "page-query", lambda w, v: (
        w.get(f"/?priority={quoted(v)}"), None)),
    "page-queue-site": Door("query-text", "page-query", lambda w, v: (w.get(f"/?site={quoted(v)}"), None)),
    "page-sites-page": Door("query-number", "page-query", lambda w, v: (
        w.get(f"/admin/sites?page={quoted(v)}"), None)),
    "page-sites-q": Door("query-text", "page-query", lambda w, v: (w.get(f"/admin/sites?q={quoted(v)}"), None)),
    "page-devices-page": Door("query-number", "page-query", lambda w, v: (
        w.get(f"/admin/devices?page={quoted(v)}"), None)),
    "page-devices-q": Door("query-text", "page-query", lambda w, v: (w.get(f"/admin/devices?q={quoted(v)}"), None)),
    "page-audit-page": Door("query-number", "page-query", lambda w, v: (
        w.get(f"/admin/audit?page={quoted(v)}"), None)),
    "page-audit-target": Door("query-text", "page-query", lambda w, v: (
        w.get(f"/admin/audit?target={quoted(v)}"), None)),
    "page-devices-site": Door("query-text", "page-query", lambda w, v: (
        w.get(f"/admin/devices?site={quoted(v)}"), None)),
    "page-enrolments-site": Door("query-text", "page-query", lambda w, v: (
        w.get(f"/admin/enrolments?site={quoted(v)}"), None)),
    "page-audit-actor": Door("query-text", "page-query", lambda w, v: (
        w.get(f"/admin/audit?actor={quoted(v)}"), None)),
    "page-enrolments-page": Door("query-number", "page-query", lambda w, v: (
        w.get(f"/admin/enrolments?page={quoted(v)}"), None)),
    "page-stream-after": Door("query-number", "page-query", _stream),
    "page-stream-last-event-id": Door("query-number", "page-query", lambda w, v: _stream(w, v, header=True),
                                      strings=tuple(k for k in HOSTILE if k not in CONTROLS | LINE_BREAKS
                                                    | {"long-100000", "combining-10000"})),
    "page-login-next": Door("query-text", "page-query", lambda w, v: (w.get(f"/login?next={quoted(v)}"), None)),
    "page-path-ticket": Door("number", "page-path", lambda w, v: (w.get(f"/tickets/{quoted(v)}"), None)),
    "page-path-site": Door("lookup", "page-path", lambda w, v: (w.get(f"/admin/sites/{quoted(v)}"), None)),
    "page-path-device": Door("lookup", "page-path", lambda w, v: (w.get(f"/admin/devices/{quoted(v)}"), None)),
    "page-path-category": Door("lookup", "page-path", lambda w, v: (
        w.get(f"/admin/categories/{quoted(v)}"), None)),
    "page-path-enrol": Door("lookup", "page-path", lambda w, v: (w.get(f"/app/enroll/{quoted(v)}"), None)),
    # --- the pages' forms
    "form-site-name": Door("line", "page", _page_form_site),
    "form-site-contact": Door("line", "page", lambda w, v: (
        w.form("/admin/sites/hx-site", site_body(w, v)), "/admin/sites/hx-site"), visible=True),
    "form-site-address": Door("text", "page", lambda w, v: (
        w.form("/admin/sites/hx-site", {**site_body(w, ""), "address": v}), "/admin/sites/hx-site")),
    "form-category-name": Door("line", "page", lambda w, v: (
        w.form("/admin/categories", {"slug": unique(), "name": v}), "/admin/categories")),
    "form-category-label": Door("line", "page", lambda w, v: (
        w.form("/admin/categories/hx-form-cat", {"name": "Hostile form", "priority": "3", "dedup_scope": "site",
                                                 "label_en": v}), "/admin/categories/hx-form-cat")),
    "form-category-minutes": Door("number", "page", lambda w, v: (
        w.form("/admin/categories/hx-form-cat", {"name": "Hostile form", "priority": "3", "dedup_scope": "site",
                                                 "sla_1_respond_min": v}), "/admin/categories/hx-form-cat")),
    "form-category-priority": Door("number", "page", lambda w, v: (
        w.form("/admin/categories/hx-form-cat", {"name": "Hostile form", "priority": v, "dedup_scope": "site"}),
        "/admin/categories/hx-form-cat")),
    "form-ticket-note": Door("text", "page", lambda w, v: (w.form(f"{T(w)}/note", {"note": v}), T(w))),
    "form-ticket-merge": Door("number", "page", lambda w, v: (w.form(f"{T(w)}/merge", {"target": v}), T(w))),
    "form-ticket-merge-number": Door("number", "page", lambda w, v: (
        w.form(f"{T(w)}/merge", {"target": "INC-" + v}), T(w))),
    "form-ticket-priority": Door("number", "page", lambda w, v: (
        w.form(f"{T(w)}/priority", {"priority": v}), T(w))),
    "form-ticket-assign": Door("lookup", "page", lambda w, v: (w.form(f"{T(w)}/assign", {"assignee": v}), T(w))),
    "form-button-label": Door("line", "page", lambda w, v: (
        w.form("/admin/devices/hx-dev/buttons", {"button": "b3", "press": "", "target": "hx-cat", "label": v}),
        "/admin/devices/hx-dev")),
    "form-reject-reason": Door("text", "page", _page_form_reject),
    "form-token-name": Door("line", "page", lambda w, v: (
        w.form("/admin/tokens", {"name": v, "role": "admin"}), "/admin/tokens")),
    "form-username": Door("pattern", "page", lambda w, v: (
        w.form("/admin/users", {"username": v, "role": "agent", "password": "hostile-password-1"}),
        "/admin/users")),
    "form-enrolment-expiry": Door("number", "page", lambda w, v: (
        w.form("/admin/enrolments", {"site": "hx-site", "source_device": "", "expires_in_h": v}),
        "/admin/enrolments")),
    "form-device-id": Door("pattern", "page", lambda w, v: (
        w.form("/admin/devices", {"device_id": v, "site": "hx-site", "kind": "physical"}), "/admin/devices")),
    "form-sites-csv": Door("line", "page", lambda w, v: (
        w.form("/admin/sites/import", {"csv": csv_text(unique(), v).decode("utf-8", "surrogatepass")}),
        "/admin/sites")),
    "form-config-toml": Door("line", "page", lambda w, v: (
        w.form("/admin/config/import", {"toml": toml_text(unique(), v)}), "/admin/config/import")),
    "form-login-username": Door("lookup", "page", _page_login),
    "form-copy-mapping-to": Door("pattern", "page", lambda w, v: (
        w.form("/admin/devices/copy-mapping", {"from": "hx-dev", "to": v, "site": ""}), None)),
    "form-approve-site": Door("lookup", "page", lambda w, v: (
        w.form(f"/admin/devices/{pending_device(w)}/approve", {"site": v}), None)),
    "form-user-password": Door("lookup", "page", lambda w, v: (
        w.form("/admin/users/hx-user/password", {"password": v}), "/admin/users/hx-user")),
}

# The doors the issue names, and one of each sort: the whole table goes through them.
WHOLE_TABLE = {"api-site-name", "api-site-contact", "api-category-label", "api-ticket-note",
               "api-incident-telemetry-value", "api-device-telemetry", "api-path-enrolment", "page-queue-q",
               "page-queue-page", "page-stream-after", "form-category-minutes", "form-ticket-merge", "form-ticket-note",
               "api-ticket-merged-into"}
CASES = [pytest.param(door, name, id=f"{door}:{name}") for door, d in DOORS.items()
         for name in (FULL if door in WHOLE_TABLE else d.strings or CORE)]


@pytest.mark.parametrize("door, name", [c.values for c in CASES], ids=[c.id for c in CASES])
def test_hostile_string_through_an_http_door(world, door, name):
    d = DOORS[door]
    value = HOSTILE[name]
    r, page = d.send(world, value)
    assert r.status_code < 500, f"5xx: {r.status_code} from {door} with {name}: {r.text[:300]}"
    want = expected(d, name)
    page_door = d.via.startswith("page")
    if want == "refused":
        assert (is_page_refusal(r) if page_door else is_api_refusal(r)), \
            f"{door} took {name}: {r.status_code} {r.text[:300]}"
    elif want == "accepted":
        assert (is_page_success(r) if page_door else r.status_code < 300), \
            f"{door} refused {name}: {r.status_code} {r.text[:500]}"
    elif want == "ignored":
        assert r.headers.get("Content-Type", "").startswith("text/event-stream") or intact(r), (r.status_code, r.url)
    if page is not None and r.status_code < 400:
        # Taken (or, for a form, answered with its page): whatever was stored, the page that shows it renders.
        after = world.get(page)
        assert intact(after), f"5xx: {page} after {door} with {name}: {after.status_code} {after.text[:300]}"
        if want == "accepted" and d.visible and name not in ("long-100000",):
            assert shown(value) in after.text, f"{page} does not show what {door} took"


def test_telemetry_keeps_what_it_was_given_and_replaces_lone_surrogates(world):
    """The documented rule, read back through the API: U+FFFD where a lone surrogate was, the rest as sent."""
    for name, value in HOSTILE.items():
        r = world.call("POST", "/api/v1/incidents", json=incident("hx-dev", telemetry={"note": value, value[:20]: 1}))
        assert r.status_code < 300, (name, r.text[:200])
        event_id = r.json()["event_id"]
        detail = world.call("GET", f"/api/v1/tickets/{r.json()['ticket']['id']}").json()
        kept = next(p for p in detail["presses"] if p["event_id"] == event_id)["telemetry"]
        assert kept["note"] == replaced(value), name
        assert replaced(value[:20]) in kept, name


# ------------------------------------------------------------------ nested and huge values where a field takes JSON


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"n": value}
    return value


BIG = [
    ("telemetry-nested-20", "POST", "/api/v1/incidents", lambda: incident("hx-big", telemetry=nested(20)), True),
    ("telemetry-nested-40", "POST", "/api/v1/incidents", lambda: incident("hx-big", telemetry=nested(40)), False),
    ("telemetry-5000-keys", "POST", "/api/v1/incidents",
     lambda: incident("hx-big", telemetry={f"k{i}": "\ud800" * 3 for i in range(5000)}), True),
    ("telemetry-list-of-20000", "POST", "/api/v1/devices/hx-dev/telemetry",
     lambda: {"telemetry": {"list": list(range(20000))}}, True),
    ("batch-500-with-surrogates", "POST", "/api/v1/incidents/batch",
     lambda: {"items": [incident("hx-big", telemetry={"x\udfff": "\ud800"}) for _ in range(500)]}, True),
    ("hours-nested-30", "PATCH", "/api/v1/sites/hx-site", lambda: {"hours": {"mon": nested(30)}}, False),
    ("labels-5000-languages", "PATCH", "/api/v1/categories/hx-cat",
     lambda: {"labels": {f"x{i}": "y" for i in range(5000)}}, False),
    ("notify-10000-people", "PATCH", "/api/v1/categories/hx-cat",
     lambda: {"notify": [f"user{i}" for i in range(10000)]}, False),
    ("sla-minutes-10-pow-30", "PATCH", "/api/v1/categories/hx-cat",
     lambda: {"sla": {"1": {"respond_min": 10**30}}}, False),
    ("priority-5000-digits", "PATCH", "/api/v1/categories/hx-cat", lambda: {"priority": "9" * 5000}, False),
    ("note-1-mib", "PATCH", "/api/v1/tickets/{ticket}", lambda: {"note": "x" * 1024 * 1024}, False),
    ("note-key-surrogate", "PATCH", "/api/v1/tickets/{ticket}", lambda: {"note\ud800": "x"}, False),
]


@pytest.mark.parametrize("method, path, body, accepted", [b[1:] for b in BIG], ids=[b[0] for b in BIG])
def test_nested_and_huge_json(world, method, path, body, accepted):
    r = world.call(method, path.format(ticket=world.ticket), json=body())
    assert r.status_code < 500, f"5xx: {r.status_code} {r.text[:300]}"
    assert (r.status_code < 300) if accepted else is_api_refusal(r), r.text[:300]
    for page in ("/admin/devices", "/admin/devices/hx-dev", "/admin/sites/hx-site", "/admin/categories/hx-cat"):
        assert intact(world.get(page)), page


# ------------------------------------------------------------------ MQTT: presses and retained telemetry


def acks_of(presser: Presser, device_id: str) -> list[dict[str, Any]]:
    return presser.acks_on(device_id)


def publish_press(w: World, device: str, **fields: Any) -> str:
    """A press of ``device`` with ``fields`` changed, as raw JSON (a lone surrogate as its escape); its event id."""
    event_id = unique("ev")
    body = {"event_id": event_id, "device_id": device, "button": "b1", "press": "single",
            "pressed_at": wire.format_time(wire.utcnow()), **fields}
    w.presser.publish(w.presser.topics.press(device), json.dumps(body).encode())
    return body["event_id"]


TOO_BIG_FOR_MQTT = {"combining-10000", "long-100000"}  # past 16 KiB: refused by size, as any payload that large


@pytest.mark.parametrize("where", ["value", "key"])
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_press_telemetry_over_mqtt(world, name, where):
    value = HOSTILE[name]
    telemetry = {"note": value} if where == "value" else {value: 1}
    device = unique("hx-press")  # a ticket of its own: its page shows this press's telemetry
    event_id = publish_press(world, device, telemetry=telemetry)
    ack = wait_until(lambda: acks_of(world.presser, device), timeout=ACK_TIMEOUT, what=f"an ack for {device}")[0]
    if name in TOO_BIG_FOR_MQTT:
        assert ack["result"] == "rejected" and "bytes" in ack["reason"], ack
        return
    assert ack["result"] == "created" and ack["event_id"] == event_id, ack
    ticket = ack["ticket"]["id"]
    page = world.get(f"/tickets/{ticket}")
    assert intact(page), f"5xx: the ticket page after a press with {name}: {page.status_code}"
    detail = world.call("GET", f"/api/v1/tickets/{ticket}").json()
    kept = next(p for p in detail["presses"] if p["event_id"] == event_id)["telemetry"]
    clean = replaced(value)
    assert (kept["note"] == clean) if where == "value" else (clean in kept), kept


PRESS_FIELDS = {"event_id": "event_id", "button": "button", "press": "press must be", "pressed_at": "pressed_at"}


# The whole table in the ids, one string of each kind in the press type and the time.
PRESS_CASES = [(field, name) for field in PRESS_FIELDS for name in (FULL if field in ("event_id", "button") else CORE)]


@pytest.mark.parametrize("field, name", PRESS_CASES, ids=[f"{f}:{n}" for f, n in PRESS_CASES])
def test_hostile_press_field_over_mqtt_is_rejected_with_a_reason(world, name, field):
    device = unique("hx-press")
    event_id = unique("ev")
    fields: dict[str, Any] = {"event_id": event_id, field: HOSTILE[name]}
    publish_press(world, device, **fields)
    acks = wait_until(lambda: acks_of(world.presser, device), timeout=ACK_TIMEOUT, what=f"an ack for {device}")
    assert acks[0]["result"] == "rejected" and acks[0]["ticket"] is None, acks
    reason = acks[0]["reason"]
    assert PRESS_FIELDS[field] in reason or (name in TOO_BIG_FOR_MQTT and "bytes" in reason), reason


@pytest.fixture(scope="module")
def retained_telemetry(world):
    """Every hostile string as a retained telemetry message of a device of its own, published at once (the
    bridge hands telemetry on once a second); {name: device id}."""
    devices = {}
    for name, value in HOSTILE.items():
        device = unique("hx-tel")
        r = world.call("POST", "/api/v1/devices", json={"device_id": device, "site": "hx-site"})
        assert r.status_code == 201, r.text
        payload = json.dumps({"reported_at": NOW, "firmware": value, "battery_pct": 50,
                              "probes": {value[:30] or "p": {"ok": False, "detail": value}}}).encode()
        world.presser.client.publish(world.presser.topics.telemetry(device), payload, qos=1,
                                     retain=True).wait_for_publish(10)
        devices[name] = device
    return devices


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_retained_telemetry_over_mqtt(world, retained_telemetry, name):
    device = retained_telemetry[name]
    if name in TOO_BIG_FOR_MQTT:
        topic = world.presser.topics.telemetry(device)
        letters = wait_until(lambda: [x for x in world.call("GET", "/api/v1/dead-letters").json()["items"]
                                      if x["topic"] == topic], timeout=ACK_TIMEOUT, what="a dead letter")
        assert "bytes" in letters[0]["reason"]
    else:
        telemetry = wait_until(lambda: world.call("GET", f"/api/v1/devices/{device}").json()["telemetry"],
                               timeout=ACK_TIMEOUT, what=f"{device}'s telemetry")
    for page in ("/admin/devices", f"/admin/devices/{device}", "/admin"):
        assert intact(world.get(page)), f"5xx: {page} with retained telemetry {name}"
    if name not in TOO_BIG_FOR_MQTT:
        assert telemetry["firmware"] == replaced(HOSTILE[name])


@pytest.mark.parametrize("name", [n for n in HOSTILE if n not in SURROGATES | {"nul", "long-100000"}])
def test_hostile_device_id_in_the_topic(world, stack, name):
    """A topic no device may have: the broker or the bridge refuses it; nothing breaks, the next press works."""
    topic = world.presser.topics.press("d" + HOSTILE[name][:200])
    client, url = dd_mqtt.make_client(stack.broker.url, unique("hx-topic"), protocol=5, persistent=False)
    try:
        dd_mqtt.connect(client, url, protocol=5, persistent=False)
        client.loop_start()
        try:
            client.publish(topic, b'{"event_id": "e1"}', qos=1).wait_for_publish(1)
        except (ValueError, RuntimeError):
            pass  # refused by the client library or the broker: either way it never reaches dashdesk
    finally:
        client.disconnect()
        client.loop_stop()
    assert stack.bridge.proc.poll() is None, stack.logs("bridge")
    event_id = publish_press(world, "hx-mqtt")
    assert world.presser.final_ack(event_id, timeout=ACK_TIMEOUT)["result"] in ("created", "merged")


# ------------------------------------------------------------------ afterwards


ALL_PAGES = ["/", "/admin", "/admin/devices", "/admin/categories", "/admin/audit", "/admin/sites",
             "/admin/users", "/admin/tokens", "/admin/enrolments", "/admin/config/import", "/admin/sites/hx-site",
             "/admin/devices/hx-dev", "/admin/devices/hx-mqtt", "/admin/categories/hx-cat",
             "/admin/categories/hx-form-cat"]


def test_table_is_big_enough():
    mqtt_cases = 2 * len(HOSTILE) + len(PRESS_CASES) + len(HOSTILE)
    assert len(CASES) + len(BIG) + mqtt_cases >= 200


def test_every_page_renders_after_the_table(world, stack):
    """Last: whatever the table left in the database, every page that shows it renders, the configuration
    export too, and no part of the stack logged a traceback."""
    for path in ALL_PAGES + [f"/tickets/{world.ticket}"]:
        r = world.get(path)
        assert intact(r), f"{path}: {r.status_code} {r.text[:200]}"
    for path in sorted({p for p in ALL_PAGES if p.startswith("/admin/sites/")}):
        assert intact(world.get(path))
    export = world.get("/admin/config/export")
    assert export.status_code == 200 and export.text.startswith("#")
    assert world.call("GET", "/api/v1/config/export").status_code == 200
    assert world.call("GET", "/api/v1/dead-letters").status_code == 200
    assert world.call("GET", "/api/v1/tickets?limit=500").status_code == 200
    assert world.call("GET", "/api/v1/audit?limit=500").status_code == 200
    assert stack.server.proc.poll() is None and stack.bridge.proc.poll() is None
    assert "Traceback" not in stack.logs("server"), stack.logs("server")
    assert "Traceback" not in stack.logs("bridge"), stack.logs("bridge")
