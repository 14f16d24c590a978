"""Export and import of the whole configuration as TOML: the command line, /admin and the API.

Round trip: export → import into an empty database → export gives the same file. An import is one transaction,
checked first, reports what it would change (added/changed/unchanged per kind) with a dry run, removes nothing
without prune, and is audited."""

from __future__ import annotations

import io
import tomllib

import pytest
from sqlalchemy import select

from launcher.cli import main
from server.app import create_app
from server.models import AuditLog

from .conftest import ADMIN_PASSWORD, TOKEN, api, audit_rows, press


def configure(app) -> None:
    """A shop chain's worth of everything a configuration holds, through the API as admins set it."""
    ok = (200, 201)
    assert api(app, "POST", "/api/v1/sites", json={
        "code": "hs-01", "name": "High Street", "address": "1 High St, Leeds", "timezone": "Europe/London",
        "hours": "Mon-Sat 05:00-18:00; Sun closed", "contact": "+44 113 000 0001"}).status_code in ok
    assert api(app, "POST", "/api/v1/sites", json={
        "code": "wa-07", "name": "Warszawa \"Centrum\"", "timezone": "Europe/Warsaw",
        "hours": "Mon 08:00-12:00, 13:00-17:00; Tue-Sun 24h"}).status_code in ok
    assert api(app, "POST", "/api/v1/categories", json={
        "slug": "card-reader", "name": "Card reader", "icon": "💳", "priority": 1,
        "sla": {"1": {"respond_min": 5, "resolve_min": 60}}, "labels": {"en": "Card reader", "pl": "Czytnik kart",
                                                                       "pt-BR": "Leitor"},
        "dedup_scope": "device", "reopen_window_min": 30, "notify": ["ann", "ops@example.com"]}).status_code in ok
    assert api(app, "PATCH", "/api/v1/categories/printer", json={"reopen_window_min": 0}).status_code == 200
    for device, site, extra in (("till-1", "hs-01", {}), ("till-2", "hs-01", {"status": "retired"}),
                                ("phone-1", "wa-07", {"kind": "phone"})):
        assert api(app, "POST", "/api/v1/devices", json={"device_id": device, "site": site, **extra}
                   ).status_code in ok
    press(app, device_id="stray-1")  # pending, no site
    assert api(app, "PATCH", "/api/v1/devices/phone-1", json={"test_mode": True}).status_code == 200
    for device, button, body in (("till-1", "b1", {"category": "till", "label": "Till \\ 1"}),
                                 ("till-1", "b1", {"press": "double", "action": "cancel"}),
                                 ("till-1", "b2", {"category": "card-reader", "press": "long", "label": "Reader"}),
                                 ("phone-1", "printer", {"category": "printer"})):
        assert api(app, "PUT", f"/api/v1/devices/{device}/buttons/{button}", json=body).status_code == 200


def fresh_app(tmp_path, monkeypatch, name: str):
    monkeypatch.setenv("DASHDESK_ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("DASHDESK_ADMIN_PASSWORD", ADMIN_PASSWORD)
    return create_app({"data_dir": str(tmp_path / name)})


def export(app) -> str:
    r = api(app, "GET", "/api/v1/config/export")
    assert r.status_code == 200 and r.mimetype == "application/toml"
    return r.get_data(as_text=True)


def import_(app, text: str, **params):
    return api(app, "POST", "/api/v1/config/import", data=text.encode(), content_type="application/toml",
               query_string=params)


def test_export_then_import_into_an_empty_database_then_export_gives_the_same_file(app, tmp_path, monkeypatch):
    configure(app)
    first = export(app)
    data = tomllib.loads(first)
    assert {c["slug"] for c in data["category"]} >= {"card-reader", "till", "printer", "other"}
    reader = next(c for c in data["category"] if c["slug"] == "card-reader")
    assert reader == {"slug": "card-reader", "name": "Card reader", "icon": "💳", "priority": 1,
                      "dedup_scope": "device", "reopen_window_min": 30, "notify": ["ann", "ops@example.com"],
                      "labels": {"en": "Card reader", "pl": "Czytnik kart", "pt-BR": "Leitor"},
                      "sla": reader["sla"]}
    assert reader["sla"]["1"] == {"respond_min": 5, "resolve_min": 60}
    assert next(c for c in data["category"] if c["slug"] == "till")["reopen_window_min"] == "default"
    assert data["site"][0]["hours"] == "Mon–Sat 05:00–18:00; Sun closed"
    till = next(d for d in data["device"] if d["device_id"] == "till-1")
    assert till["button"] == [{"button": "b1", "category": "till", "label": "Till \\ 1"},
                              {"button": "b1", "press": "double", "action": "cancel"},
                              {"button": "b2", "press": "long", "category": "card-reader", "label": "Reader"}]
    assert next(d for d in data["device"] if d["device_id"] == "phone-1")["test_mode"] is True

    empty = fresh_app(tmp_path, monkeypatch, "empty")
    try:
        r = import_(empty, first)
        assert r.status_code == 200, r.text
        counts = r.get_json()["counts"]
        assert counts["sites"] == {"added": 2, "changed": 0, "unchanged": 0, "removed": 0}
        assert counts["devices"]["added"] == 4 and counts["mappings"]["added"] == 4
        assert counts["categories"]["added"] == 1 and counts["categories"]["changed"] == 1  # printer's window
        assert export(empty) == first
        # and again: nothing to change
        again = import_(empty, first, dry_run="true").get_json()["counts"]
        assert all(c["added"] == c["changed"] == c["removed"] == 0 for c in again.values())
    finally:
        empty.extensions["dashdesk"].db.close()


def test_the_command_line_exports_and_imports_with_a_dry_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DASHDESK_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("DASHDESK_ADMIN_TOKEN", TOKEN)
    for name in ("DASHDESK_DATABASE_URL", "DASHDESK_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    source = create_app({"data_dir": str(tmp_path / "a")})
    configure(source)
    source.extensions["dashdesk"].db.close()
    out = tmp_path / "chain.toml"
    assert main(["config", "export", str(out), "--data-dir", str(tmp_path / "a")]) == 0
    assert main(["config", "export", str(tmp_path / "b.toml"), "--data-dir", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    assert main(["config", "import", str(out), "--dry-run", "--data-dir", str(tmp_path / "b")]) == 0
    said = capsys.readouterr().out
    assert "sites: 2 added, 0 changed, 0 unchanged, 0 removed" in said and "dry run: nothing was changed" in said
    assert main(["config", "export", str(tmp_path / "b2.toml"), "--data-dir", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b2.toml").read_text() == (tmp_path / "b.toml").read_text()  # the dry run changed nothing
    assert main(["config", "import", str(out), "--data-dir", str(tmp_path / "b")]) == 0
    assert "devices: 4 added" in capsys.readouterr().out
    assert main(["config", "export", str(tmp_path / "b3.toml"), "--data-dir", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b3.toml").read_text() == out.read_text()
    # a bad file: every problem, exit 2, nothing changed
    (tmp_path / "bad.toml").write_text('[[site]]\ncode = "x-1"\n\n[[device]]\ndevice_id = "Bad"\n')
    assert main(["config", "import", str(tmp_path / "bad.toml"), "--data-dir", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "site[1] (x-1): name is required for a new site" not in err  # checked only once the file itself is fine
    assert "device[1]: device_id must match" in err and "1 problem in the file; nothing was imported" in err
    app = create_app({"data_dir": str(tmp_path / "b")})
    try:
        actions = [(a.actor.split(":")[0], a.action) for a in audit_rows(app, "config.import")]
        assert actions == [("cli", "config.import")]  # the real import, not the dry run nor the bad file
    finally:
        app.extensions["dashdesk"].db.close()


def test_an_import_is_checked_whole_first_and_changes_nothing_when_wrong(app):
    configure(app)
    before = export(app)
    bad = before.replace('timezone = "Europe/Warsaw"', 'timezone = "Mars/Olympus"') + """
[[device]]
device_id = "new-1"
site = "nowhere"
status = "lost"

[[device.button]]
button = "b1"
category = "no-such-category"

[[device.button]]
button = "b1"
category = "till"

[[category]]
slug = "Bad Slug"
"""
    r = import_(app, bad)
    assert r.status_code == 422
    problems = r.get_json()["error"]["detail"]["problems"]
    assert any("site[2] (wa-07): timezone: 'Mars/Olympus' is not an IANA time zone" in p for p in problems)
    assert any("(new-1): status must be one of" in p for p in problems)
    assert any("(new-1).button[2]: button b1 (every press type) is mapped twice" in p for p in problems)
    assert any("slug must match" in p for p in problems)
    assert export(app) == before
    # with the file itself right, what it refers to must exist
    r = import_(app, before + '\n[[device]]\ndevice_id = "new-1"\nsite = "nowhere"\n\n[[device.button]]\n'
                              'button = "b1"\ncategory = "no-such-category"\n\n[[site]]\ncode = "zz-1"\n')
    problems = r.get_json()["error"]["detail"]["problems"]
    assert r.status_code == 422 and sorted(problems) == sorted([
        "device[5] (new-1): there is no site nowhere (in the file or in dashdesk)",
        "device[5] (new-1): button b1: there is no category no-such-category",
        "site[3] (zz-1): name is required for a new site"])
    assert import_(app, "this is = not toml [").status_code == 422
    assert import_(app, "[[gadget]]\nname = 'x'\n").status_code == 422
    assert export(app) == before and audit_rows(app, "config.import") == []


def test_an_import_adds_and_changes_but_removes_only_with_prune(app):
    configure(app)
    text = """
[[site]]
code = "hs-01"
name = "High Street (new name)"

[[site]]
code = "mm-02"
name = "Market Mall"

[[device]]
device_id = "till-1"

[[device.button]]
button = "b2"
press = "long"
category = "till"
"""
    dry = import_(app, text, dry_run="true").get_json()
    assert dry["dry_run"] is True
    assert dry["counts"]["sites"] == {"added": 1, "changed": 1, "unchanged": 0, "removed": 0}
    assert dry["counts"]["mappings"] == {"added": 0, "changed": 1, "unchanged": 0, "removed": 0}
    assert "site hs-01: name 'High Street' → 'High Street (new name)'" in dry["changes"]
    assert api(app, "GET", "/api/v1/sites/hs-01").get_json()["name"] == "High Street"  # a dry run changes nothing
    done = import_(app, text).get_json()
    assert done["counts"] == {**dry["counts"]} and done["dry_run"] is False
    site = api(app, "GET", "/api/v1/sites/hs-01").get_json()
    assert site["name"] == "High Street (new name)" and site["timezone"] == "Europe/London"  # left out: kept
    device = api(app, "GET", "/api/v1/devices/till-1").get_json()
    assert len(device["buttons"]) == 3 and device["site"] == "hs-01"  # nothing removed
    # prune: what the file does not have goes; what tickets refer to stays
    press(app, device_id="till-1", button="b1")
    pruned = import_(app, text, prune="true").get_json()
    assert pruned["counts"]["mappings"]["removed"] == 3  # till-1's b1 and b1 double, phone-1's printer
    assert pruned["counts"]["devices"]["removed"] == 2 and sorted(pruned["retired"]) == ["phone-1", "stray-1"]
    assert pruned["counts"]["sites"]["removed"] == 0  # wa-07 has a device
    assert "site wa-07: in use (tickets or devices refer to it)" in pruned["kept"]
    assert "category till: in use (tickets or devices refer to it)" in pruned["kept"]
    assert "category other: in use (tickets or devices refer to it)" in pruned["kept"]  # stray-1's ticket
    assert pruned["counts"]["categories"]["removed"] == 4  # card-reader, network, printer, sales-app: unused
    assert sorted(c["slug"] for c in api(app, "GET", "/api/v1/categories").get_json()["items"]) == ["other", "till"]
    assert [b["button"] for b in api(app, "GET", "/api/v1/devices/till-1").get_json()["buttons"]] == ["b2"]
    assert api(app, "GET", "/api/v1/devices/phone-1").get_json()["status"] == "retired"
    rows = audit_rows(app, "config.import")
    assert [(r.actor, r.details["prune"]) for r in rows] == [("token:admin (bootstrap)", False),
                                                             ("token:admin (bootstrap)", True)]
    assert rows[1].details["counts"]["devices"]["removed"] == 2
    # each retired device's own history says so, as if retired on its page
    retired = [(r.target, r.details) for r in audit_rows(app, "device.retire")]
    assert retired == [("device:phone-1", {"was": "active", "reason": "not in an imported configuration"}),
                       ("device:stray-1", {"was": "pending", "reason": "not in an imported configuration"})]


def test_a_pruned_category_stays_gone_after_the_server_starts_again_on_the_same_database(tmp_path, monkeypatch):
    app = fresh_app(tmp_path, monkeypatch, "shop")
    slugs = lambda a: sorted(c["slug"] for c in api(a, "GET", "/api/v1/categories").get_json()["items"])  # noqa: E731
    shipped = slugs(app)
    assert "network" in shipped  # a new database starts with config/categories.toml
    kept = export(app).split("\n[[category]]\n")
    text = "\n[[category]]\n".join(part for part in kept if 'slug = "network"' not in part)
    assert import_(app, text, prune="true").get_json()["counts"]["categories"]["removed"] == 1
    assert api(app, "PATCH", "/api/v1/categories/till", json={"name": "Kasa"}).status_code == 200
    app.extensions["dashdesk"].db.close()
    again = fresh_app(tmp_path, monkeypatch, "shop")
    try:
        assert slugs(again) == [s for s in shipped if s != "network"]
        assert api(again, "GET", "/api/v1/categories").get_json()["items"][
            slugs(again).index("till")]["name"] == "Kasa"
    finally:
        again.extensions["dashdesk"].db.close()


def test_the_admin_page_downloads_checks_then_imports(app, admin, ann):
    configure(app)
    index = admin.c.get("/admin").text
    assert 'href="/admin/config/export"' in index and 'action="/admin/config/import"' in index
    r = admin.c.get("/admin/config/export")
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    text = r.get_data(as_text=True).replace('name = "High Street"', 'name = "High Street 2"')
    token = admin.token("/admin/config/import")
    r = admin.c.post("/admin/config/import", data={"csrf_token": token, "toml": text})
    assert r.status_code == 200 and "nothing is changed yet" in r.text
    assert '<tr data-kind="sites"><th scope="row">Sites</th><td class="num">0</td><td class="num">1</td>' in r.text
    assert api(app, "GET", "/api/v1/sites/hs-01").get_json()["name"] == "High Street"
    assert "Import these changes" in r.text
    r = admin.c.post("/admin/config/import", data={"csrf_token": token, "toml": text, "apply": "1"})
    assert r.status_code == 200 and "Imported: categories: 0 added" in r.text
    assert api(app, "GET", "/api/v1/sites/hs-01").get_json()["name"] == "High Street 2"
    # the upload form of the overview sends a file
    r = admin.c.post("/admin/config/import", data={"csrf_token": token, "file": (io.BytesIO(text.encode()), "c.toml")},
                     content_type="multipart/form-data")
    assert r.status_code == 200 and "The file matches dashdesk's configuration" in r.text
    r = admin.c.post("/admin/config/import", data={"csrf_token": token, "toml": "[[site]]\ncode = 1\n"})
    assert r.status_code == 422 and "Nothing was imported" in r.text
    # agents and forged forms are refused
    assert ann.c.get("/admin/config/export").status_code == 403
    assert ann.c.post("/admin/config/import", data={"csrf_token": ann.token("/"), "toml": text}).status_code == 403
    assert admin.c.post("/admin/config/import", data={"toml": text, "apply": "1"}).status_code == 400
    assert len(audit_rows(app, "config.import")) == 1


@pytest.mark.parametrize("method,path", [("GET", "/api/v1/config/export"), ("POST", "/api/v1/config/import")])
def test_the_config_api_needs_an_admin_token(app, method, path):
    bridge = api(app, "POST", "/api/v1/tokens", json={"name": "b", "role": "bridge"}).get_json()["token"]
    c = app.test_client()
    body = '[[site]]\ncode = "x-1"\nname = "X"\n'
    assert c.open(path, method=method, data=body, headers={"Authorization": f"Bearer {bridge}"}).status_code == 403
    assert c.open(path, method=method, data=body).status_code == 401
    with app.extensions["dashdesk"].db.read() as s:
        assert s.scalars(select(AuditLog).where(AuditLog.action == "config.import")).all() == []
    assert api(app, "GET", "/api/v1/sites/x-1").status_code == 404


DEEP = "version = 1\nx = " + "[" * 2000 + "]" * 2000 + "\n"
DEEP_TABLES = "version = 1\nx = " + "{a = " * 40 + "1" + "}" * 40 + "\n"


@pytest.mark.parametrize("text", [DEEP, DEEP_TABLES], ids=["arrays-2000", "inline-tables-40"])
def test_a_deeply_nested_file_is_refused_with_its_reason_by_the_api_the_page_and_the_command_line(
        app, admin, tmp_path, monkeypatch, capsys, text):
    r = import_(app, text)
    assert r.status_code == 422, r.get_data(as_text=True)[:300]
    [problem] = r.get_json()["error"]["detail"]["problems"]
    assert "nested" in problem
    page = admin.c.post("/admin/config/import", data={"csrf_token": admin.token("/admin/config/import"),
                                                      "toml": text})
    assert page.status_code == 422 and "nested" in page.text and "Nothing was imported" in page.text
    monkeypatch.setenv("DASHDESK_CONFIG", str(tmp_path / "none.toml"))
    for name in ("DASHDESK_DATABASE_URL", "DASHDESK_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "deep.toml").write_text(text)
    capsys.readouterr()
    assert main(["config", "import", str(tmp_path / "deep.toml"), "--data-dir", str(tmp_path / "cli")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'deep.toml'}: arrays or tables are nested" in err and "Traceback" not in err
    assert audit_rows(app, "config.import") == []


def test_site_codes_in_a_configuration_file_are_case_insensitive(app):
    assert api(app, "POST", "/api/v1/sites", json={"code": "shop-001", "name": "Shop 1"}).status_code == 201
    text = """
[[site]]
code = "SHOP-001"
name = "Shop One"

[[site]]
code = "SHOP-002"
name = "Shop Two"

[[device]]
device_id = "till-1"
site = "Shop-002"
"""
    r = import_(app, text)
    assert r.status_code == 200, r.text
    assert r.get_json()["counts"]["sites"] == {"added": 1, "changed": 1, "unchanged": 0, "removed": 0}
    assert [s["code"] for s in api(app, "GET", "/api/v1/sites").get_json()["items"]] == ["shop-001", "shop-002"]
    assert api(app, "GET", "/api/v1/devices/till-1").get_json()["site"] == "shop-002"
    twice = import_(app, '[[site]]\ncode = "a-1"\nname = "A"\n\n[[site]]\ncode = "A-1"\nname = "A again"\n')
    assert twice.status_code == 422 and "site a-1 is also site[1]" in str(twice.get_json()["error"]["detail"])
