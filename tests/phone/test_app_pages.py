"""The app's own pages and files: public (no sign-in), a manifest and a service worker with the right
types and scope, the vendored MQTT.js as recorded, the phone's token-guarded configuration."""

from __future__ import annotations

import hashlib
import json
import re
import struct
from datetime import timedelta

import pytest
from sqlalchemy import update

from dashdesk import wire
from server.domain import enrolments
from server.phone import views as phone
from server.models import Enrolment

from .conftest import api, enrolment, enrolment_json, phone_get, redeem

VENDOR = phone.STATIC / "vendor"


def test_the_app_is_public_and_never_sends_you_to_sign_in(app):
    made = enrolment(app)
    client = app.test_client()  # no session, no token
    for path in ("/app", f"/app/enroll/{made['code']}", "/app/manifest.webmanifest", "/app/sw.js",
                 f"/app/enroll/{made['code']}/qr.svg", "/app/static/app.js"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert "/login" not in r.headers.get("Location", "")
    slash = client.get("/app/")
    assert slash.status_code == 308 and slash.headers["Location"] == "/app"
    # the desk itself still asks for a sign-in
    assert client.get("/").status_code == 302


def test_the_app_page_is_a_shell_with_no_outside_resources(app):
    r = app.test_client().get("/app")
    assert r.mimetype == "text/html"
    html = r.text
    assert '<link rel="manifest" href="/app/manifest.webmanifest">' in html
    scripts = re.findall(r'<script src="([^"]+)"', html)
    digest = phone.app_version().rpartition("+")[2]
    assert scripts == [f"/app/static/vendor/mqtt-{phone.MQTT_JS_VERSION}.min.js?v={digest}",
                       f"/app/static/app.js?v={digest}"]
    assert "https://" not in html and "http://" not in html  # nothing from a CDN
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "connect-src 'self' ws: wss:" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["Referrer-Policy"] == "no-referrer"  # the enrolment code in a URL goes nowhere
    assert r.headers["Cache-Control"] == "no-store"
    assert 'id="enrolment"' not in html


def test_the_manifest_is_served_as_a_web_manifest_for_the_app_scope(app):
    r = app.test_client().get("/app/manifest.webmanifest")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/manifest+json"
    m = json.loads(r.data)
    assert (m["start_url"], m["scope"], m["display"]) == ("/app", "/app", "standalone")
    assert m["name"] and m["short_name"] and m["theme_color"] and m["background_color"]
    sizes = {}
    for icon in m["icons"]:
        png = app.test_client().get(icon["src"])
        assert png.status_code == 200 and png.mimetype == "image/png"
        assert png.data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", png.data[16:24])
        assert f"{width}x{height}" == icon["sizes"]
        sizes.setdefault(icon["purpose"], []).append(icon["sizes"])
    assert "192x192" in sizes["any"] and "512x512" in sizes["any"] and sizes["maskable"] == ["512x512"]


def test_the_service_worker_is_javascript_allowed_to_control_app(app):
    r = app.test_client().get("/app/sw.js")
    assert r.status_code == 200 and r.mimetype == "text/javascript"
    assert r.headers["Service-Worker-Allowed"] == "/app"
    assert r.headers["Cache-Control"] == "no-cache"
    shell = json.loads(re.search(r"const SHELL = (\[.*?\]);", r.text).group(1))
    assert shell[0] == "/app" and "/app/manifest.webmanifest" in shell
    assert any("vendor/mqtt-5.16.0.min.js" in u for u in shell) and any("app.css" in u for u in shell)
    for url in shell:  # everything the worker keeps for offline use is there to keep
        assert app.test_client().get(url).status_code == 200, url
    assert f'const CACHE = "dashdesk-app-{phone.app_version()}"' in r.text
    # the page registers it for the /app scope
    page = app.test_client().get("/app").text
    assert 'data-sw="/app/sw.js"' in page
    assert 'register(document.body.dataset.sw, { scope: "/app" })' in app.test_client().get("/app/static/app.js").text


def test_the_vendored_mqtt_js_is_the_recorded_file_with_its_licence():
    readme = (VENDOR / "README.md").read_text()
    recorded = re.search(r"sha256\s+([0-9a-f]{64})\s+mqtt-5\.16\.0\.min\.js", readme).group(1)
    bundle = VENDOR / f"mqtt-{phone.MQTT_JS_VERSION}.min.js"
    assert hashlib.sha256(bundle.read_bytes()).hexdigest() == recorded
    assert "MIT License" in (VENDOR / "mqtt-LICENSE.md").read_text()
    assert f"| {phone.MQTT_JS_VERSION} |" in readme


@pytest.mark.parametrize("state", ["active", "used", "expired", "revoked", "unknown"])
def test_the_enrolment_page_says_what_the_link_will_do_or_why_not(app, state):
    made = enrolment(app)
    code = made["code"]
    if state == "used":
        assert redeem(app, code).status_code == 201
    elif state == "expired":
        with app.extensions["dashdesk"].db.write() as s:
            s.execute(update(Enrolment).values(expires_at=wire.utcnow() - timedelta(minutes=1)))
    elif state == "revoked":
        assert api(app, "DELETE", f"/api/v1/enrolments/{code}").status_code == 204
    elif state == "unknown":
        code = "NoSuchCodeAtAll12345"
    r = app.test_client().get(f"/app/enroll/{code}")
    assert r.status_code == {"active": 200, "unknown": 404}.get(state, 410)
    info = enrolment_json(r.text)
    assert info["state"] == state
    if state == "active":
        assert info["code"] == code and info["site"] == {"code": "hs-01", "name": "High Street"}
        assert info["expires_at"] == made["expires_at"] and "error" not in info
    else:
        assert info["code"] is None
        assert info["error"]["code"] == f"enrolment_{state}"
        assert info["error"]["message"] == enrolments.REFUSALS[state][2]


def test_the_enrolment_page_escapes_a_site_name(app):
    api(app, "POST", "/api/v1/sites", json={"code": "x-1", "name": "</script><script>alert(1)</script>"})
    made = enrolment(app, site="x-1")
    html = app.test_client().get(f"/app/enroll/{made['code']}").text
    assert "<script>alert(1)" not in html
    assert enrolment_json(html)["site"]["name"] == "</script><script>alert(1)</script>"


def test_the_qr_code_is_the_links(app):
    made = enrolment(app)
    r = app.test_client().get(f"/app/enroll/{made['code']}/qr.svg")
    assert r.status_code == 200 and r.mimetype == "image/svg+xml"
    assert r.text == enrolments.qr_svg(made["link"]) and r.text.lstrip().startswith("<svg")
    assert app.test_client().get("/app/enroll/bad code/qr.svg").status_code == 404


def test_the_config_needs_the_phones_token(app):
    body = redeem(app, enrolment(app)["code"]).get_json()
    assert app.test_client().get("/app/api/config").status_code == 401
    wrong = phone_get(app, "/app/api/config", "dda_not-the-token")
    assert wrong.status_code == 401 and wrong.get_json()["error"]["code"] == "unauthorized"
    r = phone_get(app, "/app/api/config", body["token"])
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    config = r.get_json()
    assert config["device_id"] == body["device_id"] and config["buttons"] == body["buttons"]
    assert "token" not in config
    # an admin relabels a category: the phone sees it on its next look
    api(app, "POST", "/api/v1/categories", json={"slug": "printer", "name": "Printer", "priority": 3,
                                                  "labels": {"en": "Printer", "pl": "Drukarka"}})
    printer = next(b for b in phone_get(app, "/app/api/config", body["token"]).get_json()["buttons"]
                   if b["category"] == "printer")
    assert printer["labels"] == {"en": "Printer", "pl": "Drukarka"}
    # retired: the phone is told so
    assert api(app, "PATCH", f"/api/v1/devices/{body['device_id']}", json={"status": "retired"}).status_code == 200
    gone = phone_get(app, "/app/api/config", body["token"])
    assert gone.status_code == 410 and gone.get_json()["error"]["code"] == "device_retired"


def test_a_phone_reads_only_the_tickets_it_reported_into(app):
    body = redeem(app, enrolment(app)["code"]).get_json()
    mine = api(app, "POST", "/api/v1/incidents", json={
        "event_id": "e-phone-1", "device_id": body["device_id"], "button": "printer", "press": "single",
        "pressed_at": wire.format_time(wire.utcnow())}).get_json()["ticket"]
    other = api(app, "POST", "/api/v1/incidents", json={
        "event_id": "e-other-1", "device_id": "shop-9", "button": "b1", "press": "single",
        "pressed_at": wire.format_time(wire.utcnow())}).get_json()["ticket"]
    r = phone_get(app, f"/app/api/tickets/{mine['id']}", body["token"])
    assert r.status_code == 200
    assert r.get_json() == {"id": mine["id"], "number": mine["number"], "status": "new", "category": "printer",
                            "priority": 3, "resolved_at": None, "merged_into": None}
    assert phone_get(app, f"/app/api/tickets/{other['id']}", body["token"]).status_code == 404
    assert phone_get(app, "/app/api/tickets/99999999999999999999", body["token"]).status_code == 404
    assert app.test_client().get(f"/app/api/tickets/{mine['id']}").status_code == 401


def test_a_phone_follows_its_ticket_through_merges_to_the_ticket_that_holds_its_report(app):
    body = redeem(app, enrolment(app)["code"]).get_json()
    token = body["token"]

    def report(device: str, button: str) -> dict:
        return api(app, "POST", "/api/v1/incidents", json={
            "event_id": f"e-{device}", "device_id": device, "button": button, "press": "single",
            "pressed_at": wire.format_time(wire.utcnow())}).get_json()["ticket"]

    mine, middle, last = report(body["device_id"], "printer"), report("shop-8", "b1"), report("shop-9", "b1")
    for source, target in ((mine, middle), (middle, last)):
        r = api(app, "PATCH", f"/api/v1/tickets/{source['id']}", json={"merged_into": target["number"]})
        assert r.status_code == 200, r.get_json()
    # its press moved to the last ticket: the merged one still answers, and says where the report is now
    r = phone_get(app, f"/app/api/tickets/{mine['id']}", token)
    assert r.status_code == 200, r.get_json()
    assert (r.get_json()["status"], r.get_json()["resolved_at"]) == ("closed", None)
    assert r.get_json()["merged_into"] == {"id": last["id"], "number": last["number"], "status": "new",
                                           "category": "other", "priority": 3, "resolved_at": None}
    # which the phone may read from then on (it holds the phone's press), and see resolved
    assert api(app, "PATCH", f"/api/v1/tickets/{last['id']}", json={"status": "resolved"}).status_code == 200
    r = phone_get(app, f"/app/api/tickets/{last['id']}", token)
    assert r.status_code == 200 and r.get_json()["status"] == "resolved" and r.get_json()["merged_into"] is None
    # the ticket in between held the report for a while: it leads there too
    assert phone_get(app, f"/app/api/tickets/{middle['id']}", token).get_json()["merged_into"]["id"] == last["id"]


def test_the_api_document_lists_the_enrolment_endpoints_and_not_the_app(app):
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    assert set(spec["paths"]["/api/v1/enrolments"]) == {"get", "post"}
    assert set(spec["paths"]["/api/v1/enrolments/{code}"]) == {"delete"}
    assert not [p for p in spec["paths"] if p.startswith("/app") or p.startswith("/admin")]
