"""Enrolments: admins make one-time links (page and API); a phone redeems one once, before it expires,
and becomes an active phone device of the site with its buttons; every refusal is a 4xx JSON error."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, update

from dashdesk import wire
from server.domain import enrolments
from server.domain.tokens import create_token
from server.models import ButtonMapping, Device, Enrolment

from .conftest import api, audit_rows, csrf_of, enrolment, redeem


def db(app):
    return app.extensions["dashdesk"].db


def expire(app, enrolment_id: int) -> None:
    with db(app).write() as s:
        s.execute(update(Enrolment).where(Enrolment.id == enrolment_id)
                  .values(expires_at=wire.utcnow() - timedelta(seconds=1)))


# ------------------------------------------------------------------ the admin page


def test_admin_makes_an_enrolment_on_the_page_and_sees_its_link_and_qr_once(app, admin):
    page = admin.c.get("/admin/enrolments?site=hs-01")
    assert page.status_code == 200 and "New enrolment" in page.text
    r = admin.c.post("/admin/enrolments", data={"csrf_token": csrf_of(page.text), "site": "hs-01",
                                                "source_device": "", "expires_in_h": "2"})
    assert r.status_code == 201
    link = re.search(r'id="enrol-link"[^>]*value="([^"]+)"', r.text) or re.search(
        r'value="([^"]+)"[^>]*id="enrol-link"', r.text)
    assert link, r.text
    code = urlsplit(link.group(1)).path.rsplit("/", 1)[1]
    assert urlsplit(link.group(1)).path == f"/app/enroll/{code}" and enrolments.valid_code(code)
    assert "<svg" in r.text and 'class="enrolment-qr"' in r.text  # the QR code, inline
    with db(app).read() as s:
        row = s.scalar(select(Enrolment))
        assert row.code_hash == enrolments.hash_secret(code) and row.code_hint == code[:4]
        assert code not in {row.code_hash, row.code_hint}  # the code itself is kept nowhere
        assert timedelta(hours=1, minutes=59) < row.expires_at - row.created_at <= timedelta(hours=2)
    [audit] = audit_rows(app, "enrolment.create")
    assert (audit.actor, audit.target, audit.details["enrolment"]) == ("admin", "site:hs-01", row.id)
    # listed afterwards without its code, and the code works
    listed = admin.c.get("/admin/enrolments")
    assert f'data-enrolment="{row.id}" data-state="active"' in listed.text and code not in listed.text
    assert redeem(app, code).status_code == 201
    assert f'data-enrolment="{row.id}" data-state="used"' in admin.c.get("/admin/enrolments").text


def test_admin_withdraws_an_enrolment_and_its_link_stops_working(app, admin):
    made = enrolment(app)
    page = admin.c.get("/admin/enrolments")
    r = admin.c.post(f"/admin/enrolments/{made['id']}/revoke", data={"csrf_token": csrf_of(page.text)})
    assert r.status_code == 303
    assert "withdrawn" in admin.c.get(r.headers["Location"]).text
    [audit] = audit_rows(app, "enrolment.revoke")
    assert audit.actor == "admin" and audit.details == {"enrolment": made["id"]}
    refused = redeem(app, made["code"])
    assert refused.status_code == 410 and refused.get_json()["error"]["code"] == "enrolment_revoked"


def test_the_page_refuses_an_unknown_site_or_source_and_says_why(app, admin):
    token = csrf_of(admin.c.get("/admin/enrolments").text)
    r = admin.c.post("/admin/enrolments", data={"csrf_token": token, "site": "nope", "expires_in_h": "24"})
    assert r.status_code == 404 and "No site nope" in r.text
    r = admin.c.post("/admin/enrolments", data={"csrf_token": token, "site": "hs-01", "source_device": "ghost-1"})
    assert r.status_code == 404 and "No device ghost-1" in r.text
    r = admin.c.post("/admin/enrolments", data={"csrf_token": token, "site": "hs-01", "expires_in_h": "0"})
    assert r.status_code == 422 and "expires_in_h" in r.text
    with db(app).read() as s:
        assert s.scalar(select(Enrolment)) is None


def test_enrolment_pages_are_for_admins_only(app, admin, ann):
    made = enrolment(app)
    assert ann.c.get("/admin/enrolments").status_code == 403
    token = csrf_of(ann.c.get("/").text)
    assert ann.c.post("/admin/enrolments", data={"csrf_token": token, "site": "hs-01"}).status_code == 403
    assert ann.c.post(f"/admin/enrolments/{made['id']}/revoke", data={"csrf_token": token}).status_code == 403
    signed_out = app.test_client().get("/admin/enrolments")
    assert signed_out.status_code == 302 and urlsplit(signed_out.headers["Location"]).path == "/login"
    assert len(audit_rows(app, "enrolment.create")) == 1 and not audit_rows(app, "enrolment.revoke")


def test_enrolment_forms_refuse_a_post_without_its_csrf_token(app, admin):
    made = enrolment(app)
    assert admin.c.post("/admin/enrolments", data={"site": "hs-01"}).status_code == 400
    r = admin.c.post(f"/admin/enrolments/{made['id']}/revoke", data={})
    assert r.status_code == 400 and "expired" in r.text
    assert len(audit_rows(app, "enrolment.create")) == 1 and not audit_rows(app, "enrolment.revoke")


def test_the_site_page_links_to_its_enrolments(app, admin):
    page = admin.c.get("/admin/sites/hs-01")
    assert 'href="/admin/enrolments?site=hs-01"' in page.text


# ------------------------------------------------------------------ the API


def test_api_creates_lists_and_revokes_enrolments(app):
    made = enrolment(app, expires_in_h=1.5)
    assert made["state"] == "active" and made["site"] == "hs-01" and made["source_device"] is None
    assert made["link"] == f"http://localhost/app/enroll/{made['code']}"
    assert made["qr_svg_url"] == f"http://localhost/app/enroll/{made['code']}/qr.svg"
    listed = api(app, "GET", "/api/v1/enrolments").get_json()["items"]
    assert [e["id"] for e in listed] == [made["id"]]
    assert "code" not in listed[0] and "link" not in listed[0] and listed[0]["code_hint"] == made["code"][:4]
    assert api(app, "GET", "/api/v1/enrolments?state=active").get_json()["items"][0]["id"] == made["id"]
    assert api(app, "GET", "/api/v1/enrolments?state=used").get_json()["items"] == []
    assert api(app, "GET", "/api/v1/enrolments?site=nope").get_json()["items"] == []
    # revoked by its code; a second one by its id
    assert api(app, "DELETE", f"/api/v1/enrolments/{made['code']}").status_code == 204
    other = enrolment(app)
    assert api(app, "DELETE", f"/api/v1/enrolments/{other['id']}").status_code == 204
    states = {e["id"]: e["state"] for e in api(app, "GET", "/api/v1/enrolments").get_json()["items"]}
    assert states == {made["id"]: "revoked", other["id"]: "revoked"}
    again = api(app, "DELETE", f"/api/v1/enrolments/{made['code']}")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "conflict"
    unknown = api(app, "DELETE", "/api/v1/enrolments/NoSuchCode1234567890")
    assert unknown.status_code == 404 and unknown.get_json()["error"]["message"] == "no such enrolment"
    actions = [(a.action, a.actor) for a in audit_rows(app) if a.action.startswith("enrolment.")]
    actor = "token:admin (bootstrap)"
    assert actions == [("enrolment.create", actor), ("enrolment.revoke", actor), ("enrolment.create", actor),
                       ("enrolment.revoke", actor)]


def test_api_enrolments_need_an_admin_token(app):
    bridge = create_token(db(app), "a bridge", "bridge")
    made = enrolment(app)
    for method, path, body in (("POST", "/api/v1/enrolments", {"site": "hs-01"}), ("GET", "/api/v1/enrolments", None),
                               ("DELETE", f"/api/v1/enrolments/{made['id']}", None)):
        kwargs = {"json": body} if body else {}
        none = app.test_client().open(path, method=method, **kwargs)
        assert none.status_code == 401 and "error" in none.get_json()
        other = app.test_client().open(path, method=method, headers={"Authorization": f"Bearer {bridge}"}, **kwargs)
        assert other.status_code == 403 and other.get_json()["error"]["message"] == "this needs an admin token"


@pytest.mark.parametrize("body, status", [
    ({}, 400), ({"site": ""}, 400), ({"site": "nope"}, 404), ({"site": "hs-01", "expires_in_h": 0}, 400),
    ({"site": "hs-01", "expires_in_h": 100000}, 400), ({"site": "hs-01", "expires_in_h": "soon"}, 400),
    ({"site": "hs-01", "source_device": "ghost-1"}, 404), ({"site": "hs-01", "source_device": "Not An Id"}, 400),
    ({"site": "hs-01", "colour": "red"}, 400), ({"site": ["hs-01"]}, 400)])
def test_api_refuses_bad_enrolments_with_4xx_json(app, body, status):
    r = api(app, "POST", "/api/v1/enrolments", json=body)
    assert r.status_code == status, r.text
    assert set(r.get_json()["error"]) >= {"code", "message"}
    with db(app).read() as s:
        assert s.scalar(select(Enrolment)) is None


def test_a_source_device_without_buttons_is_refused(app):
    api(app, "POST", "/api/v1/devices", json={"device_id": "bare-1", "site": "hs-01"})
    r = api(app, "POST", "/api/v1/enrolments", json={"site": "hs-01", "source_device": "bare-1"})
    assert r.status_code == 409 and "no button mapping" in r.get_json()["error"]["message"]


# ------------------------------------------------------------------ redeeming


def test_redeeming_makes_an_active_phone_with_one_button_per_category(app):
    made = enrolment(app)
    r = redeem(app, made["code"])
    assert r.status_code == 201, r.text
    body = r.get_json()
    device_id = body["device_id"]
    assert re.fullmatch(r"phone-hs-01-[a-z2-9]{6}", device_id)
    assert body["site"] == {"code": "hs-01", "name": "High Street"} and body["status"] == "active"
    assert body["token"].startswith("dda_") and body["credentials"] is None  # the broker asks for no account
    assert body["mqtt"] == {"url": "ws://localhost:9001/mqtt", "topic_root": "dashdesk/v1", "protocol": 5,
                            "auth": "none"}
    assert body["cancel_window_s"] == 120 and body["long_press_ms"] == 800
    # one button per category, the most urgent first; a double press of each withdraws its own last report,
    # and there is no cancel button (which would withdraw the phone's last report, whichever button made it)
    assert [b["button"] for b in body["buttons"]] == ["network", "sales-app", "till", "printer", "other"]
    assert all(b["button"] == b["category"] and b["double_cancels"] for b in body["buttons"])
    assert body["cancel"] is None
    with db(app).read() as s:
        device = s.scalar(select(Device).where(Device.device_id == device_id))
        assert (device.status, device.kind, device.site.code) == ("active", "phone", "hs-01")
        mapped = {m.button: m.category.slug for m in s.scalars(select(ButtonMapping)
                                                              .where(ButtonMapping.device_id == device_id))}
        row = s.scalar(select(Enrolment))
        assert (row.device_id, row.used_user_agent) == (device_id, "Mozilla/5.0 (Linux; Android 14) test")
        assert row.app_token_hash == enrolments.hash_secret(body["token"])
    assert mapped == {c: c for c in ("network", "sales-app", "till", "printer", "other")}
    [audit] = audit_rows(app, "device.enrol")
    assert (audit.actor, audit.target) == (f"enrolment:{made['id']}", f"device:{device_id}")
    assert audit.details["mapping_from"] == "categories" and audit.details["buttons"] == 5
    assert api(app, "GET", f"/api/v1/devices/{device_id}").get_json()["kind"] == "phone"


def test_redeeming_copies_the_source_devices_mapping_with_labels_per_language(app):
    for button, category, label in (("b1", "printer", "Front printer"), ("b2", "till", "")):
        assert api(app, "PUT", f"/api/v1/devices/till-7/buttons/{button}",
                   json={"category": category, "label": label}).status_code == 200
    assert api(app, "PUT", "/api/v1/devices/till-7/buttons/b2", json={"press": "double", "category": "network"}
               ).status_code == 200
    assert api(app, "POST", "/api/v1/categories", json={"slug": "till", "name": "Till", "priority": 2,
                                                         "labels": {"en": "Till", "pl": "Kasa"}}).status_code == 200
    made = enrolment(app, source_device="till-7")
    body = redeem(app, made["code"]).get_json()
    buttons = {b["button"]: b for b in body["buttons"]}
    assert list(buttons) == ["b2", "b1"]  # till (priority 2) before printer (3)
    assert buttons["b1"]["labels"] == {"en": "Front printer"}  # the button's own label
    assert buttons["b2"]["labels"] == {"en": "Till", "pl": "Kasa"}  # the category's, per language
    assert buttons["b1"]["double_cancels"] and not buttons["b2"]["double_cancels"]  # b2's double reports network
    with db(app).read() as s:
        copied = sorted((m.button, m.press, m.category.slug, m.label) for m in s.scalars(
            select(ButtonMapping).where(ButtonMapping.device_id == body["device_id"])))
    assert copied == [("b1", "", "printer", "Front printer"), ("b2", "", "till", ""), ("b2", "double", "network", "")]
    [audit] = audit_rows(app, "device.enrol")
    assert audit.details["mapping_from"] == "device:till-7"


def test_a_code_sets_up_one_phone_only(app):
    made = enrolment(app)
    first = redeem(app, made["code"])
    second = redeem(app, made["code"])
    assert first.status_code == 201
    assert second.status_code == 410
    assert second.get_json() == {"error": {"code": "enrolment_used", "message": enrolments.REFUSALS["used"][2]}}
    with db(app).read() as s:
        assert [d.device_id for d in s.scalars(select(Device).where(Device.kind == "phone"))] == \
            [first.get_json()["device_id"]]


def test_an_expired_code_is_refused_and_makes_nothing(app):
    made = enrolment(app)
    expire(app, made["id"])
    r = redeem(app, made["code"])
    assert r.status_code == 410 and r.get_json()["error"]["code"] == "enrolment_expired"
    assert "expired" in r.get_json()["error"]["message"]
    with db(app).read() as s:
        assert s.scalar(select(Device).where(Device.kind == "phone")) is None
        assert s.scalar(select(Enrolment)).used_at is None


@pytest.mark.parametrize("code", ["NoSuchCodeAtAll12345", "short", "x" * 65, "with space in it 1234", "%00" * 8,
                                  "../../../etc/passwd", "ÄÖÜäöüßÄÖÜäöüßÄÖÜ"])
def test_unknown_or_malformed_codes_are_404_json(app, code):
    r = app.test_client().post(f"/app/enroll/{code}", json={})
    assert r.status_code == 404
    assert r.get_json()["error"]["code"] in ("enrolment_unknown", "not_found")


@pytest.mark.parametrize("kwargs", [{"data": b"not json", "content_type": "application/json"},
                                    {"data": b"\xff\xfe", "content_type": "text/plain"},
                                    {"data": b"[" * 5000 + b"]" * 5000, "content_type": "application/json"},
                                    {"json": {"language": ["x"] * 1000}}, {}])
def test_redeeming_ignores_whatever_body_comes_with_it(app, kwargs):
    made = enrolment(app)
    r = app.test_client().post(f"/app/enroll/{made['code']}", **kwargs)
    assert r.status_code == 201, r.text


def test_no_broker_websockets_address_refuses_before_the_code_is_used(app):
    app.config["DASHDESK_CONFIG"]["app"] = {"ws_port": 0, "broker_ws_url": ""}
    made = enrolment(app)
    r = redeem(app, made["code"])
    assert r.status_code == 503 and r.get_json()["error"]["code"] == "broker_ws_missing"
    app.config["DASHDESK_CONFIG"]["app"] = {"broker_ws_url": "wss://broker.shop.example:8884/mqtt"}
    r = redeem(app, made["code"])
    assert r.status_code == 201 and r.get_json()["mqtt"]["url"] == "wss://broker.shop.example:8884/mqtt"


def test_failed_redemptions_are_rate_limited_per_address(app):
    app.config["DASHDESK_CONFIG"]["app"]["enrol_limit"] = "3 per minute"
    client = app.test_client()
    made = enrolment(app)
    for _ in range(3):
        assert client.post("/app/enroll/NoSuchCodeAtAll12345", json={}).status_code == 404
    limited = client.post(f"/app/enroll/{made['code']}", json={})
    assert limited.status_code == 429 and limited.get_json()["error"]["code"] == "too_many_requests"
    assert "Retry-After" in limited.headers
    page = client.get(f"/app/enroll/{made['code']}")
    assert page.status_code == 429 and "too_many" in page.text
    # another address is not held back
    other = app.test_client().post(f"/app/enroll/{made['code']}", json={}, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 201


def test_the_default_validity_is_the_configured_one(app):
    made = enrolment(app)
    assert wire.parse_time(made["expires_at"]) - wire.parse_time(made["created_at"]) == timedelta(hours=24)
    app.config["DASHDESK_CONFIG"]["app"]["enrolment_expiry_h"] = 0.5
    made = enrolment(app)
    assert wire.parse_time(made["expires_at"]) - wire.parse_time(made["created_at"]) == timedelta(minutes=30)
    made = enrolment(app, expires_in_h=3)
    assert wire.parse_time(made["expires_at"]) - wire.parse_time(made["created_at"]) == timedelta(hours=3)
