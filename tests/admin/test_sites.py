"""Sites: the form and the API, service hours in a human form, time zones, search and pages, and the
CSV import of a whole chain (all or nothing, with a report per line)."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from server.domain import sites
from server.models import Site

from .conftest import api, audit_rows, post, press

SITE = {"code": "hs-01", "name": "High Street", "address": "1 High St, Leeds", "timezone": "Europe/London",
        "hours": "Mon-Sat 05:00-18:00", "contact": "Ann, +44 113 000 0001"}


def site_row(app, code):
    with app.extensions["dashdesk"].db.read() as s:
        return s.scalar(select(Site).where(Site.code == code))


def site_count(app):
    with app.extensions["dashdesk"].db.read() as s:
        return s.scalar(select(func.count()).select_from(Site))


# ------------------------------------------------------------------ service hours


def test_hours_are_read_as_people_write_them_and_shown_back_the_same_way():
    hours = sites.parse_hours("Mon–Sat 05:00–18:00")
    assert hours["mon"] == hours["sat"] == [["05:00", "18:00"]] and hours["sun"] == []
    assert sites.format_hours(hours) == "Mon–Sat 05:00–18:00; Sun closed"
    split = sites.parse_hours("mon-fri 8-12, 13:00-17:30; saturday 9:00 to 13:00\nSun closed")
    assert split["wed"] == [["08:00", "12:00"], ["13:00", "17:30"]] and split["sat"] == [["09:00", "13:00"]]
    assert sites.format_hours(split) == "Mon–Fri 08:00–12:00, 13:00–17:30; Sat 09:00–13:00; Sun closed"
    assert sites.parse_hours(sites.format_hours(split)) == split
    assert sites.format_hours(sites.parse_hours("daily 24h")) == "Mon–Sun 00:00–24:00"
    assert sites.parse_hours("Fri-Mon 10:00-14:00")["sun"] == [["10:00", "14:00"]]  # wraps over the weekend
    assert sites.parse_hours("") == {} and sites.format_hours({}) == ""
    # a comma after hours and before a day starts a new clause, as people write it
    assert sites.parse_hours("Mon-Sat 05:00-18:00, Sun closed") == sites.parse_hours("Mon–Sat 05:00–18:00; Sun closed")
    assert sites.parse_hours("Mon, Wed 08:00-12:00")["wed"] == [["08:00", "12:00"]]


@pytest.mark.parametrize("text,says", [
    ("Mon-Sat", "write days, then hours"),
    ("Funday 05:00-18:00", "'Funday' is not a day"),
    ("Mon 18:00-05:00", "closes before it opens"),
    ("Mon 25:00-26:00", "not a time of day"),
    ("Mon 08:00-12:00, 11:00-14:00", "overlap"),
    ("Mon-Fri 08:00-12:00; Fri 13:00-15:00", "Fri is given twice"),
    ("Mon 8am-5pm", "not a span of hours"),
])
def test_wrong_hours_say_what_is_wrong(text, says):
    with pytest.raises(ValueError, match=says):
        sites.parse_hours(text)


def test_time_zones_are_iana_names():
    assert sites.valid_timezone("Europe/Warsaw") and sites.valid_timezone("UTC")
    for bad in ("Europe/Warsw", "CET+1", "../etc/passwd", "", "Mars/Olympus"):
        assert not sites.valid_timezone(bad), bad


# ------------------------------------------------------------------ the pages


def test_create_a_site_on_the_page_with_its_audit_row(app, admin):
    r = post(admin, "/admin/sites", "/admin/sites", **SITE)
    assert r.status_code == 303 and r.headers["Location"] == "/admin/sites/hs-01"
    site = site_row(app, "hs-01")
    assert (site.name, site.timezone, site.contact) == ("High Street", "Europe/London", SITE["contact"])
    assert site.hours["fri"] == [["05:00", "18:00"]] and site.hours["sun"] == []
    page = admin.c.get("/admin/sites/hs-01").text
    assert "Site hs-01 created." in page
    assert 'value="Mon–Sat 05:00–18:00; Sun closed"' in page
    (row,) = audit_rows(app, "site.create")
    assert (row.actor, row.target) == ("admin", "site:hs-01") and row.details["timezone"] == "Europe/London"


def test_a_wrong_site_form_is_shown_again_with_each_problem_and_saves_nothing(app, admin):
    bad = {**SITE, "timezone": "Europe/Lodnon", "hours": "Mon-Sat 18:00-05:00", "code": "bad code!"}
    r = post(admin, "/admin/sites", "/admin/sites", **bad)
    assert r.status_code == 422
    assert "is not an IANA time zone name" in r.text and "closes before it opens" in r.text
    assert "is not a site code" in r.text
    assert 'value="Europe/Lodnon"' in r.text  # what the admin typed stays in the form
    assert site_count(app) == 0 and audit_rows(app) == []


def test_edit_a_site_records_what_changed(app, admin):
    post(admin, "/admin/sites", "/admin/sites", **SITE)
    r = post(admin, "/admin/sites/hs-01", "/admin/sites/hs-01",
             **{**SITE, "timezone": "Europe/Warsaw", "hours": "Mon-Sun 06:00-22:00"})
    assert r.status_code == 303
    site = site_row(app, "hs-01")
    assert site.timezone == "Europe/Warsaw" and site.hours["sun"] == [["06:00", "22:00"]]
    (row,) = audit_rows(app, "site.update")
    assert row.details["changes"]["timezone"] == ["Europe/London", "Europe/Warsaw"]
    assert set(row.details["changes"]) == {"timezone", "hours"}
    # a code already taken is refused
    post(admin, "/admin/sites", "/admin/sites", **{**SITE, "code": "hs-02", "name": "Other"})
    r = post(admin, "/admin/sites/hs-02", "/admin/sites/hs-02", **{**SITE, "name": "Other"})
    assert r.status_code == 422 and "already a site hs-01" in r.text
    assert site_row(app, "hs-02").name == "Other"


def test_the_site_list_searches_and_pages(app, admin):
    rows = "\n".join(f"shop-{i:03d},Shop {i},{'Leeds' if i % 2 else 'York'} Road {i},UTC" for i in range(120))
    r = api(app, "POST", "/api/v1/sites/import", data=f"code,name,address,timezone\n{rows}\n",
            content_type="text/csv")
    assert r.status_code == 200, r.text
    first = admin.c.get("/admin/sites").text
    assert "120 sites" in first and "shop-000" in first and "shop-049" in first and "shop-050" not in first
    assert "Page 1 of 3" in first
    third = admin.c.get("/admin/sites?page=2").text
    assert "shop-100" in third and "shop-119" in third and "shop-099" not in third
    found = admin.c.get("/admin/sites?q=York").text
    assert "60 sites found" in found and "shop-001" not in found and "shop-002" in found


# ------------------------------------------------------------------ the API


def test_sites_api_create_read_change_and_list(app):
    r = api(app, "POST", "/api/v1/sites", json={**SITE, "hours": {"mon": [["05:00", "18:00"]]}})
    assert r.status_code == 201
    body = r.get_json()
    assert body["hours_text"] == "Mon 05:00–18:00; Tue–Sun closed" and body["devices"] == 0
    assert api(app, "POST", "/api/v1/sites", json=SITE).status_code == 409
    r = api(app, "PATCH", "/api/v1/sites/hs-01", json={"contact": "Bob", "hours": "Mon-Fri 09:00-17:00"})
    assert r.status_code == 200 and r.get_json()["contact"] == "Bob"
    assert r.get_json()["hours_text"] == "Mon–Fri 09:00–17:00; Sat–Sun closed"
    assert api(app, "GET", "/api/v1/sites/hs-01").get_json()["contact"] == "Bob"
    assert api(app, "GET", "/api/v1/sites/nope").status_code == 404
    assert [s["code"] for s in api(app, "GET", "/api/v1/sites?q=High").get_json()["items"]] == ["hs-01"]
    actions = [(a.actor, a.action) for a in audit_rows(app)]
    assert actions == [("token:admin (bootstrap)", "site.create"), ("token:admin (bootstrap)", "site.update")]


def test_sites_api_answers_409_for_a_code_that_is_another_sites_when_created_or_renamed(app):
    assert api(app, "POST", "/api/v1/sites", json=SITE).status_code == 201
    assert api(app, "POST", "/api/v1/sites", json={"code": "hs-02", "name": "Other"}).status_code == 201
    r = api(app, "POST", "/api/v1/sites", json={**SITE, "name": "Again"})
    assert r.status_code == 409 and "already a site hs-01" in r.get_json()["error"]["detail"]["fields"]["code"]
    r = api(app, "PATCH", "/api/v1/sites/hs-02", json={"code": "hs-01"})
    assert r.status_code == 409 and "already a site hs-01" in r.get_json()["error"]["detail"]["fields"]["code"]
    assert site_row(app, "hs-02").name == "Other" and site_row(app, "hs-01").name == "High Street"
    assert [a.action for a in audit_rows(app)] == ["site.create", "site.create"]


@pytest.mark.parametrize("body,field,status", [
    # what only the server knows (its time zones) or can read (hours as text, spans in order): 422
    ({"code": "x-1", "name": "X", "timezone": "Nowhere/City"}, "timezone", 422),
    ({"code": "x-1", "name": "X", "hours": "every day, all day"}, "hours", 422),
    ({"code": "x-1", "name": "X", "hours": {"mon": [["18:00", "08:00"]]}}, "hours", 422),
    # what the API's document says a field is: 400
    ({"code": "x-1", "name": "X", "hours": {"mon": "08-12"}}, "hours", 400),
    ({"code": "x y", "name": "X"}, "code", 400),
    ({"code": "import", "name": "X"}, "code", 400),
    ({"code": "IMPORT", "name": "X"}, "code", 400),
    ({"code": " x-1", "name": "X"}, "code", 400),
    ({"code": "x-1", "name": "  "}, "name", 400),
])
def test_sites_api_refuses_bad_fields_with_4xx_json(app, body, field, status):
    r = api(app, "POST", "/api/v1/sites", json=body)
    assert r.status_code == status
    error = r.get_json()["error"]
    assert field in (error["detail"]["fields"] if status == 422 else error["detail"]["json"])
    assert site_count(app) == 0


def test_sites_api_pages_with_a_cursor(app):
    for i in range(5):
        api(app, "POST", "/api/v1/sites", json={"code": f"s-{i}", "name": f"S {i}"})
    page = api(app, "GET", "/api/v1/sites?limit=2").get_json()
    seen = [s["code"] for s in page["items"]]
    while page["next"]:
        page = api(app, "GET", f"/api/v1/sites?limit=2&cursor={page['next']}").get_json()
        seen += [s["code"] for s in page["items"]]
    assert seen == [f"s-{i}" for i in range(5)]


# ------------------------------------------------------------------ CSV import


def chain_csv(n: int = 500, tz: str = "Europe/Warsaw") -> str:
    lines = ["code,name,address,timezone,hours,contact"]
    for i in range(n):
        lines.append(f'pl-{i:03d},Sklep {i},"ul. Długa {i}, Gdańsk",{tz},"Mon–Sat 05:00–18:00; Sun 08:00-14:00",'
                     f"kierownik{i}@example.pl")
    return "\n".join(lines) + "\n"


def test_import_500_sites_in_one_go_from_the_page(app, admin):
    r = admin.c.post("/admin/sites/import", data={"csrf_token": admin.token("/admin/sites/import"),
                                                  "file": (io.BytesIO(chain_csv().encode("utf-8-sig")), "chain.csv")},
                     content_type="multipart/form-data")
    assert r.status_code == 303, r.text[:2000]
    assert site_count(app) == 500
    last = site_row(app, "pl-499")
    assert last.name == "Sklep 499" and last.address == "ul. Długa 499, Gdańsk" and last.timezone == "Europe/Warsaw"
    assert last.hours["sun"] == [["08:00", "14:00"]] and last.contact == "kierownik499@example.pl"
    assert "Imported 500 sites: 500 new, 0 changed, 0 unchanged." in admin.c.get("/admin/sites").text
    (row,) = audit_rows(app, "site.import")
    assert row.actor == "admin" and row.details["rows"] == 500 and len(row.details["created"]) == 500


def test_import_again_updates_by_code_and_leaves_missing_columns_alone(app):
    assert api(app, "POST", "/api/v1/sites/import", data=chain_csv(), content_type="text/csv").get_json() == {
        "rows": 500, "created": 500, "updated": 0, "unchanged": 0}
    again = "code;name;timezone\npl-000;Sklep Zero;Europe/Warsaw\npl-001;Sklep 1;Europe/Warsaw\nnew-1;Nowy;UTC\n"
    r = api(app, "POST", "/api/v1/sites/import", data=again, content_type="text/csv")
    assert r.status_code == 200 and r.get_json() == {"rows": 3, "created": 1, "updated": 1, "unchanged": 1}
    zero = site_row(app, "pl-000")
    assert zero.name == "Sklep Zero" and zero.contact == "kierownik0@example.pl"  # not in the file: kept
    assert site_count(app) == 501


BAD_FILE = """code,name,address,timezone,hours,contact
pl-000,Changed name,,UTC,,
pl-001,Sklep 1,,Europe/Warszawa,,
,No code,,UTC,,
pl-003,Sklep 3,,UTC,Mon-Sat 18:00-05:00,
pl-004,Sklep 4,,UTC
pl-000,Twice,,UTC,,
"""


def test_a_bad_file_is_rejected_whole_with_every_line_named_and_changes_nothing(app, admin):
    api(app, "POST", "/api/v1/sites/import", data=chain_csv(10), content_type="text/csv")
    before = [(s.code, s.name, s.timezone) for s in [site_row(app, f"pl-{i:03d}") for i in range(10)]]
    r = api(app, "POST", "/api/v1/sites/import", data=BAD_FILE, content_type="text/csv")
    assert r.status_code == 422
    error = r.get_json()["error"]
    assert error["message"] == "5 problems in the file; nothing was imported"
    lines = {(e["line"], e["message"].split(":")[0]) for e in error["detail"]["lines"]}
    assert lines == {(3, "timezone"), (4, "code"), (5, "hours"), (6, "4 fields, but the header has 6"),
                     (7, "code")}
    assert "also on line 2" in error["detail"]["lines"][-1]["message"]
    assert [(s.code, s.name, s.timezone) for s in [site_row(app, f"pl-{i:03d}") for i in range(10)]] == before
    assert site_count(app) == 10 and len(audit_rows(app, "site.import")) == 1
    # the page shows the same report, line by line
    page = admin.c.post("/admin/sites/import", data={"csrf_token": admin.token("/admin/sites/import"),
                                                     "csv": BAD_FILE})
    assert page.status_code == 422
    assert "Nothing was imported: 5 problems" in page.text
    assert "<td class=\"num\">3</td><td>timezone: &#39;Europe/Warszawa&#39; is not an IANA time zone name" in page.text
    assert site_row(app, "pl-000").name == "Sklep 0"


@pytest.mark.parametrize("body,says", [
    (b"", "the file is empty"),
    (b"name,address\nX,Y\n", "column 'code' is missing"),
    (b"code,name,colour\nx,X,red\n", "unknown column 'colour'"),
    (b"code,name\nx,\xff\xfe\n", "not UTF-8 text"),
    (b'code,name\nx,"unclosed\n', "not CSV"),
])
def test_files_that_are_not_a_sites_csv_say_why(app, body, says):
    r = api(app, "POST", "/api/v1/sites/import", data=body, content_type="text/csv")
    assert r.status_code == 422 and says in str(r.get_json()["error"]["detail"]["lines"])
    assert site_count(app) == 0


def test_a_file_larger_than_the_apps_body_limit_is_accepted_by_the_page_and_the_api(app, admin):
    from server.app import MAX_BODY_BYTES

    rows = "\n".join(f"big-{i:03d},Shop {i},{'Long Road ' * 60}{i},UTC" for i in range(500))
    body = f"code,name,address,timezone\n{rows}\n".encode()
    assert len(body) > MAX_BODY_BYTES
    r = admin.c.post("/admin/sites/import", data={"csrf_token": admin.token("/admin/sites/import"),
                                                  "file": (io.BytesIO(body), "big.csv")},
                     content_type="multipart/form-data")
    assert r.status_code == 303 and site_count(app) == 500
    r = api(app, "POST", "/api/v1/sites/import", data=body.replace(b"Shop", b"Store"), content_type="text/csv")
    assert r.status_code == 200 and r.get_json()["updated"] == 500
    # elsewhere the limit stands
    assert api(app, "POST", "/api/v1/sites", data=b"x" * (MAX_BODY_BYTES + 1),
               content_type="application/json").status_code == 413


# ------------------------------------------------------------------ codes are case-insensitive


def test_site_codes_are_case_insensitive_in_the_csv_the_api_the_pages_and_approvals(app, admin):
    assert api(app, "POST", "/api/v1/sites", json={"code": "shop-001", "name": "Shop 1"}).status_code == 201
    # a CSV row in capitals is the same shop: updated, not a second site
    r = api(app, "POST", "/api/v1/sites/import", content_type="text/csv",
            data="code,name\nSHOP-001,Shop One\nShop-003,Shop 3\n")
    assert r.status_code == 200 and r.get_json() == {"rows": 2, "created": 1, "updated": 1, "unchanged": 0}
    assert site_count(app) == 2 and site_row(app, "shop-001").name == "Shop One"
    assert site_row(app, "shop-003") is not None  # kept in lower case
    r = api(app, "POST", "/api/v1/sites/import", content_type="text/csv",
            data="code,name\nshop-009,Nine\nSHOP-009,Nine again\n")
    assert r.status_code == 422 and "site shop-009 is also on line 2" in str(r.get_json()["error"]["detail"])
    # the API: created in lower case, found in any case, and a code in other capitals is taken
    r = api(app, "POST", "/api/v1/sites", json={"code": "HS-01", "name": "High Street"})
    assert r.status_code == 201 and r.get_json()["code"] == "hs-01"
    assert api(app, "POST", "/api/v1/sites", json={"code": "hs-01", "name": "Again"}).status_code == 409
    assert api(app, "GET", "/api/v1/sites/HS-01").get_json()["code"] == "hs-01"
    r = api(app, "PATCH", "/api/v1/sites/Hs-01", json={"code": "SHOP-001"})
    assert r.status_code == 409 and "already a site shop-001" in r.get_json()["error"]["detail"]["fields"]["code"]
    # approving into a site, in any case, on the page and by the API
    press(app, device_id="new-a")
    press(app, device_id="new-b")
    r = post(admin, "/admin/devices/new-a/approve", "/admin", site="SHOP-003", next="/admin")
    assert r.status_code == 303 and "new-a is approved into shop-003." in admin.c.get("/admin").text
    assert api(app, "GET", "/api/v1/devices/new-a").get_json()["site"] == "shop-003"
    r = api(app, "POST", "/api/v1/devices/new-b/approve", json={"site": "Shop-003"})
    assert r.status_code == 200 and r.get_json()["site"] == "shop-003"
    r = api(app, "POST", "/api/v1/devices", json={"device_id": "new-c", "site": "SHOP-001"})
    assert r.status_code == 201 and r.get_json()["site"] == "shop-001"
    assert site_count(app) == 3
    # the filters and a site's page
    assert [d["device_id"] for d in api(app, "GET", "/api/v1/devices?site=SHOP-003").get_json()["items"]] == [
        "new-a", "new-b"]
    assert len(api(app, "GET", "/api/v1/tickets?site=SHOP-003").get_json()["items"]) == 2
    assert "Site shop-003" in admin.c.get("/admin/sites/SHOP-003").text
    assert 'data-device="new-a"' in admin.c.get("/admin/devices?site=Shop-003").text
    # a new site on the page, in capitals
    r = post(admin, "/admin/sites", "/admin/sites", **{**SITE, "code": "MM-02"})
    assert r.status_code == 303 and r.headers["Location"] == "/admin/sites/mm-02"


def test_a_device_given_an_unknown_site_by_the_api_makes_it_checked_and_audited(app):
    r = api(app, "POST", "/api/v1/devices", json={"device_id": "dev-1", "site": "bad code!"})
    assert r.status_code == 400 and "site" in r.get_json()["error"]["detail"]["json"]
    assert site_count(app) == 0
    r = api(app, "POST", "/api/v1/devices", json={"device_id": "dev-1", "site": "HS-01", "site_name": "High St"})
    assert r.status_code == 201 and r.get_json()["site"] == "hs-01"
    api(app, "PATCH", "/api/v1/devices/dev-1", json={"site": "hs-01", "site_name": "High Street"})
    assert [(a.action, a.target) for a in audit_rows(app) if a.target.startswith("site:")] == [
        ("site.create", "site:hs-01"), ("site.update", "site:hs-01")]
    assert site_row(app, "hs-01").name == "High Street"


def test_a_code_from_before_that_another_site_has_in_lower_case_is_still_found_as_written(app):
    with app.extensions["dashdesk"].db.write() as s:  # two sites made of one shop while codes had a case
        s.add_all([Site(code="SHOP-001", name="Shop 1 (CSV)"), Site(code="shop-001", name="Shop 1")])
    assert api(app, "GET", "/api/v1/sites/SHOP-001").get_json()["name"] == "Shop 1 (CSV)"
    assert api(app, "GET", "/api/v1/sites/Shop-001").get_json()["name"] == "Shop 1"
    # an admin renames the stray one: its code is then kept in lower case
    r = api(app, "PATCH", "/api/v1/sites/SHOP-001", json={"code": "shop-001-csv"})
    assert r.status_code == 200 and r.get_json()["code"] == "shop-001-csv"
