"""Categories: labels in several languages, SLA targets in minutes, dedup scope, reopen window, who is
notified, on the page and through the API (the press rules they drive: test_press_rules)."""

from __future__ import annotations

from sqlalchemy import select

from server.models import Category

from .conftest import api, audit_rows, post


def category(app, slug):
    with app.extensions["dashdesk"].db.read() as s:
        return s.scalar(select(Category).where(Category.slug == slug))


def form_of(admin, slug):
    """The fields the page's form holds, as a browser would send them back."""
    import re

    html = admin.c.get(f"/admin/categories/{slug}").text
    form = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html))
    form.update(re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>([^<]*)</textarea>', html))
    for name, body in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        form[name] = re.search(r'<option value="([^"]*)" selected', body).group(1)
    form.pop("csrf_token", None)
    return form


def test_edit_a_category_on_its_page(app, admin):
    form = form_of(admin, "printer")
    assert form["label_en"] == "" and form["sla_3_respond_min"] == "120" and form["dedup_scope"] == "site"
    form.update(name="Printer", icon="🖨", label_en="Printer", label_pl="Drukarka", labels_more="de: Drucker",
                priority="2", sla_2_respond_min="20", sla_2_resolve_min="300", dedup_scope="device",
                reopen_window_min="45", notify="ann\nit-desk@example.com")
    r = post(admin, "/admin/categories/printer", "/admin/categories/printer", **form)
    assert r.status_code == 303
    c = category(app, "printer")
    assert c.labels == {"en": "Printer", "pl": "Drukarka", "de": "Drucker"} and c.priority == 2
    assert c.sla["2"] == {"respond_min": 20, "resolve_min": 300} and c.sla["4"] == {"respond_min": 480,
                                                                                  "resolve_min": 4320}
    assert (c.dedup_scope, c.reopen_window_min, c.notify) == ("device", 45, ["ann", "it-desk@example.com"])
    page = admin.c.get("/admin/categories").text
    assert "pl: Drukarka" in page and "45 min" in page and "ann, it-desk@example.com" in page
    (row,) = audit_rows(app, "category.update")
    assert row.actor == "admin" and row.target == "category:printer"
    assert set(row.details["changes"]) == {"labels", "priority", "sla", "dedup_scope", "reopen_window_min",
                                           "notify"}
    # saved again unchanged: nothing to record
    post(admin, "/admin/categories/printer", "/admin/categories/printer", **form_of(admin, "printer"))
    assert len(audit_rows(app, "category.update")) == 1


def test_a_wrong_category_form_names_each_field_and_saves_nothing(app, admin):
    form = form_of(admin, "till")
    form.update(name="", sla_1_respond_min="soon", sla_2_respond_min="600", sla_2_resolve_min="60",
                reopen_window_min="-5", notify="not an address!", labels_more="Deutsch")
    r = post(admin, "/admin/categories/till", "/admin/categories/till", **form)
    assert r.status_code == 422
    for says in ("name: required", "is not a whole number of minutes", "not a whole number of minutes",
                 "neither a user name nor an e-mail address", "write one language per line"):
        assert says in r.text, says
    assert category(app, "till").name == "Till" and audit_rows(app) == []


def test_create_a_category_on_the_page(app, admin):
    r = post(admin, "/admin/categories", "/admin/categories", slug="card-reader", name="Card reader")
    assert r.status_code == 303 and r.headers["Location"] == "/admin/categories/card-reader"
    c = category(app, "card-reader")
    assert c.name == "Card reader" and c.sla["1"] == {"respond_min": 15, "resolve_min": 240}
    assert post(admin, "/admin/categories", "/admin/categories", slug="card-reader", name="X").status_code == 409
    assert post(admin, "/admin/categories", "/admin/categories", slug="Card Reader", name="X").status_code == 422
    assert [a.action for a in audit_rows(app)] == ["category.create"]


def test_categories_api_patch_and_the_new_fields(app):
    r = api(app, "PATCH", "/api/v1/categories/till", json={
        "labels": {"en": "Till", "pl": "Kasa"}, "dedup_scope": "device", "reopen_window_min": 30,
        "notify": ["ann"], "sla": {"1": {"respond_min": 5, "resolve_min": 60}}})
    assert r.status_code == 200
    body = r.get_json()
    assert body["labels"] == {"en": "Till", "pl": "Kasa"} and body["dedup_scope"] == "device"
    assert body["sla"]["1"] == {"respond_min": 5, "resolve_min": 60} and body["sla"]["2"]["respond_min"] == 30
    listed = {c["slug"]: c for c in api(app, "GET", "/api/v1/categories").get_json()["items"]}
    assert listed["till"]["reopen_window_min"] == 30 and listed["printer"]["labels"] == {}
    assert listed["printer"]["notify"] == [] and listed["printer"]["dedup_scope"] == "site"
    # POST keeps working as before, and takes the new fields too
    r = api(app, "POST", "/api/v1/categories", json={"slug": "scale", "name": "Scale", "labels": {"pl": "Waga"}})
    assert r.status_code == 201 and r.get_json()["labels"] == {"pl": "Waga"}
    assert [a.action for a in audit_rows(app)] == ["category.update", "category.create"]


def test_categories_api_refuses_bad_values_with_a_reason(app):
    # What the API's document says a field is, the schema checks (400); a rule between fields is 422.
    for body, status, says in [
        ({"dedup_scope": "shop"}, 400, "Must be one of"),
        ({"labels": {"English": "Till"}}, 400, "a language code"),
        ({"notify": ["two words"]}, 400, "a user name or an e-mail address"),
        ({"sla": {"2": {"respond_min": 90, "resolve_min": 30}}}, 422, "must not be shorter"),
        ({"sla": {"5": {"respond_min": 90}}}, 400, "Unknown field"),
        ({"reopen_window_min": -1}, 400, "Must be greater than or equal to 0"),
        ({"reopen_window_min": 2.6e-42}, 400, "Not a valid integer"),
        ({"priority": "2"}, 400, "Not a valid integer"),
        ({"priority": True}, 400, "Not a valid integer"),
        ({"name": " \u3000"}, 400, "must not be blank"),
    ]:
        r = api(app, "PATCH", "/api/v1/categories/till", json=body)
        assert r.status_code == status and says in str(r.get_json()["error"]), (body, r.get_json())
    assert api(app, "PATCH", "/api/v1/categories/nope", json={"priority": 1}).status_code == 404
    assert audit_rows(app) == []
    # A whole number written with a fraction of zero is that number; {} changes nothing.
    assert api(app, "PATCH", "/api/v1/categories/till", json={"reopen_window_min": 30.0}).get_json()[
        "reopen_window_min"] == 30
    same = api(app, "PATCH", "/api/v1/categories/till", json={})
    assert same.status_code == 200 and same.get_json()["reopen_window_min"] == 30
    assert [a.action for a in audit_rows(app)] == ["category.update"]
