"""Broker credentials in the admin flow (Flask client; the real broker: tests/integration/test_admin_broker.py).

With ``[broker] auth = "dynsec"``, approving a device makes its MQTT account and shows the password once, with
the MQTT URL for its file; "New broker credentials" makes new ones; retiring deletes the account. A broker that
does not answer (here: nothing listens on its port) leaves the approval committed, and the page says so and
offers to try again: never a 5xx. With auth off, approving says that no credentials are needed."""

from __future__ import annotations

import contextlib
import re
from typing import Any

import pytest

from launcher import broker
from server.app import create_app
from server.domain.users import create_user

from .conftest import ADMIN_PASSWORD, AGENT_PASSWORD, TOKEN, Desk, api, audit_rows, post, press

DEVICE_URL = "mqtt://buttons.shop.lan:1883"


class FakeAccounts:
    """The account manager's interface (``server.domain.broker_store.BrokerAccountStore``), in memory."""

    def __init__(self) -> None:
        self.passwords: dict[str, str] = {}
        self.made = 0

    def add_device(self, device_id: str) -> str:
        self.made += 1
        self.passwords[device_id] = f"secret-{self.made}-{device_id}-0123456789abcdef"
        return self.passwords[device_id]

    def keep_or_add_device(self, device_id: str) -> str | None:
        return None if device_id in self.passwords else self.add_device(device_id)

    def remove_device(self, device_id: str) -> None:
        self.passwords.pop(device_id, None)

    def usernames(self) -> set[str]:
        return set(self.passwords)

    def connection(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


@pytest.fixture
def auth_app(tmp_path, monkeypatch):
    """A server with broker accounts on, whose broker does not answer (nothing listens on its port)."""
    monkeypatch.setenv("DASHDESK_ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("DASHDESK_ADMIN_PASSWORD", ADMIN_PASSWORD)
    dead = f"mqtt://dashdesk.admin:not-used@127.0.0.1:{broker.free_port()}"
    app = create_app({"data_dir": str(tmp_path), "server": {"sse_lifetime_s": 1},
                      "broker": {"auth": "dynsec", "admin_url": dead, "device_url": DEVICE_URL}})
    create_user(app.extensions["dashdesk"].db, "ann", AGENT_PASSWORD, "agent")
    api(app, "POST", "/api/v1/sites", json={"code": "hs-01", "name": "High Street"})
    yield app
    app.extensions["dashdesk"].db.close()


@pytest.fixture
def fake(auth_app, monkeypatch):
    """The broker answers: an account manager in memory."""
    accounts = FakeAccounts()
    monkeypatch.setattr(auth_app.extensions["dashdesk"].broker, "_manager", lambda: accounts)
    return accounts


def submit(desk: Desk, path: str, page: str | None = None, **form: Any):
    """Post a form whose answer is shown on the device's page after a redirect (POST-redirect-GET: a reload
    sends nothing again), and open that page as the browser does."""
    r = post(desk, path, page, **form)
    assert r.status_code == 303 and r.headers["Location"].startswith("/admin/devices/"), (r.status_code, r.text[:300])
    return desk.c.get(r.headers["Location"])


def credentials_on(html: str) -> dict[str, str]:
    return {k: re.search(rf'id="cred-{k}">([^<]+)<', html).group(1) for k in ("username", "password", "url")}


def test_approving_shows_the_new_credentials_once_with_the_mqtt_url(auth_app, fake):
    ticket = press(auth_app, device_id="new-1")["ticket"]
    admin = Desk(auth_app, "admin")
    r = submit(admin, "/admin/devices/new-1/approve", "/admin/devices/new-1", site="hs-01")
    assert r.status_code == 200 and "new-1 is approved into hs-01." in r.text and "shown this once" in r.text
    shown = credentials_on(r.text)
    password = fake.passwords["new-1"]
    assert shown == {"username": "new-1", "password": password,
                     "url": f"mqtt://new-1:{password}@buttons.shop.lan:1883"}
    page = admin.c.get("/admin/devices/new-1").text
    assert password not in page and "New broker credentials" in page  # shown once; a button for new ones
    assert api(auth_app, "GET", "/api/v1/devices/new-1").get_json()["status"] == "active"
    assert [(a.action, a.details) for a in audit_rows(auth_app)[1:]] == [  # after the fixture's site.create
        ("device.approve", {"site": "hs-01", "was": "pending", "placed": [ticket["number"]]}),
        ("broker.issue", {"result": "issued"})]
    assert password not in str([a.details for a in audit_rows(auth_app)])


def test_new_credentials_replace_the_password_and_retiring_deletes_the_account(auth_app, fake):
    press(auth_app, device_id="new-1")
    api(auth_app, "POST", "/api/v1/devices/new-1/approve", json={"site": "hs-01"})
    first = fake.passwords["new-1"]
    admin = Desk(auth_app, "admin")
    r = submit(admin, "/admin/devices/new-1/credentials", "/admin/devices/new-1")
    assert r.status_code == 200 and "the old password no longer works" in r.text
    assert credentials_on(r.text)["password"] == fake.passwords["new-1"] != first
    second = fake.passwords["new-1"]
    again = admin.c.get("/admin/devices/new-1").text  # the page reloaded: shown once, and no new password made
    assert second not in again and fake.passwords["new-1"] == second
    r = post(admin, "/admin/devices/new-1/retire", "/admin/devices/new-1")
    assert r.status_code == 303
    assert "Its broker account is deleted: it is disconnected." in admin.c.get(r.headers["Location"]).text
    assert "new-1" not in fake.passwords
    # a retired device gets no new credentials
    r = post(admin, "/admin/devices/new-1/credentials", "/admin/devices/new-1")
    assert r.status_code == 303 and "only an active device gets broker credentials" in admin.c.get("/admin").text
    assert "new-1" not in fake.passwords
    assert [a.action for a in audit_rows(auth_app) if a.action.startswith("broker.")] == [
        "broker.issue", "broker.issue", "broker.remove"]


def test_the_api_answers_the_credentials_with_the_approval(auth_app, fake):
    press(auth_app, device_id="new-2")
    r = api(auth_app, "POST", "/api/v1/devices/new-2/approve", json={"site": "hs-01"})
    assert r.status_code == 200
    body = r.get_json()
    password = fake.passwords["new-2"]
    assert body["status"] == "active" and body["broker"] == {
        "auth": "dynsec", "credentials": "issued", "username": "new-2", "password": password,
        "mqtt_url": f"mqtt://new-2:{password}@buttons.shop.lan:1883", "broker_url": DEVICE_URL, "error": None}
    again = api(auth_app, "POST", "/api/v1/devices/new-2/credentials").get_json()["broker"]
    assert again["credentials"] == "issued" and again["password"] == fake.passwords["new-2"] != password
    gone = api(auth_app, "POST", "/api/v1/devices/new-2/retire", json={}).get_json()
    assert gone["status"] == "retired" and gone["broker"]["credentials"] == "removed"
    assert gone["broker"]["password"] is None and "new-2" not in fake.passwords
    assert api(auth_app, "POST", "/api/v1/devices/new-2/credentials").status_code == 409
    # a device added with its credentials, for brokers where it cannot press before it has them
    r = api(auth_app, "POST", "/api/v1/devices/register", json={"device_id": "new-3", "site": "hs-01"})
    assert r.status_code == 201 and r.get_json()["status"] == "active"
    assert r.get_json()["broker"]["password"] == fake.passwords["new-3"]
    assert api(auth_app, "POST", "/api/v1/devices/register", json={"device_id": "new-3", "site": "hs-01"}
               ).status_code == 409


def test_a_broker_that_does_not_answer_leaves_the_approval_committed_and_offers_a_retry(auth_app):
    press(auth_app, device_id="new-1")
    admin = Desk(auth_app, "admin")
    r = submit(admin, "/admin/devices/new-1/approve", "/admin/devices/new-1", site="hs-01")
    assert r.status_code == 200  # not a 5xx
    assert "new-1 is approved into hs-01." in r.text
    assert "The broker credentials of new-1 could not be made" in r.text and "could not reach the broker" in r.text
    assert 'action="/admin/devices/new-1/credentials"' in r.text and "Try again: make the credentials" in r.text
    assert "not-used" not in r.text  # the admin URL's password is never shown
    assert api(auth_app, "GET", "/api/v1/devices/new-1").get_json()["status"] == "active"  # committed
    # the retry button fails the same way while the broker is away, still without a 5xx
    r = submit(admin, "/admin/devices/new-1/credentials", "/admin/devices/new-1")
    assert r.status_code == 200 and "could not be made" in r.text
    # through the API: the approval stands, the answer says why there are no credentials
    press(auth_app, device_id="new-2")
    r = api(auth_app, "POST", "/api/v1/devices/new-2/approve", json={"site": "hs-01"})
    assert r.status_code == 200 and r.get_json()["status"] == "active"
    assert r.get_json()["broker"]["credentials"] == "failed" and r.get_json()["broker"]["password"] is None
    assert "could not reach the broker" in r.get_json()["broker"]["error"]
    r = api(auth_app, "POST", "/api/v1/devices/new-2/credentials")
    assert r.status_code == 503 and "could not be made" in r.get_json()["error"]["message"]
    # retiring: retired all the same; the page offers to delete the account later
    r = post(admin, "/admin/devices/new-1/retire", "/admin/devices/new-1")
    assert r.status_code == 200 and "new-1 is retired" in r.text
    assert "The broker account of new-1 could not be deleted" in r.text
    assert 'action="/admin/devices/new-1/credentials/remove"' in r.text
    assert press(auth_app, device_id="new-1")["reason"] == "device retired"
    failed = [a.details["result"] for a in audit_rows(auth_app) if a.action.startswith("broker.")]
    assert failed == ["failed"] * 5


def test_the_broker_comes_back_and_the_retry_makes_the_credentials(auth_app, monkeypatch):
    press(auth_app, device_id="new-1")
    admin = Desk(auth_app, "admin")
    assert "could not be made" in submit(admin, "/admin/devices/new-1/approve", "/admin/devices/new-1",
                                       site="hs-01").text
    accounts = FakeAccounts()
    monkeypatch.setattr(auth_app.extensions["dashdesk"].broker, "_manager", lambda: accounts)
    r = submit(admin, "/admin/devices/new-1/credentials", "/admin/devices/new-1")
    assert r.status_code == 200 and credentials_on(r.text)["password"] == accounts.passwords["new-1"]


def test_without_broker_accounts_approving_says_no_credentials_are_needed(app, admin):
    press(app, device_id="new-1")
    api(app, "POST", "/api/v1/sites", json={"code": "hs-01", "name": "High Street"})
    r = post(admin, "/admin/devices/new-1/approve", "/admin/devices/new-1", site="hs-01")
    assert r.status_code == 303
    page = admin.c.get(r.headers["Location"]).text
    assert "new-1 is approved into hs-01. The broker runs without accounts: the device needs no credentials." in page
    assert "New broker credentials" not in page and "none needed" in page
    press(app, device_id="new-2")
    body = api(app, "POST", "/api/v1/devices/new-2/approve", json={"site": "hs-01"}).get_json()
    assert body["broker"]["credentials"] == "not_needed" and body["broker"]["auth"] == "none"
    assert api(app, "POST", "/api/v1/devices/new-2/credentials").get_json()["broker"]["credentials"] == "not_needed"
    assert not [a for a in audit_rows(app) if a.action.startswith("broker.")]


@pytest.mark.parametrize("path", ["/admin/devices/new-1/credentials", "/admin/devices/new-1/credentials/remove",
                                  "/admin/devices"])
def test_the_credentials_forms_are_for_admins_with_their_csrf_token(auth_app, fake, path):
    press(auth_app, device_id="new-1")
    api(auth_app, "POST", "/api/v1/devices/new-1/approve", json={"site": "hs-01"})
    before = dict(fake.passwords)
    admin, ann = Desk(auth_app, "admin"), Desk(auth_app, "ann")
    r = admin.c.post(path, data={"device_id": "new-9", "site": "hs-01"})
    assert r.status_code == 400 and "security token" in r.text
    assert ann.c.post(path, data={"csrf_token": ann.token("/"), "device_id": "new-9", "site": "hs-01"}
                      ).status_code == 403
    assert fake.passwords == before


@pytest.mark.parametrize("method,path", [("POST", "/api/v1/devices/new-1/credentials"),
                                         ("DELETE", "/api/v1/devices/new-1/credentials")])
def test_the_credentials_api_needs_an_admin_token(auth_app, fake, method, path):
    press(auth_app, device_id="new-1")
    api(auth_app, "POST", "/api/v1/devices/new-1/approve", json={"site": "hs-01"})
    before = dict(fake.passwords)
    bridge = api(auth_app, "POST", "/api/v1/tokens", json={"name": "b", "role": "bridge"}).get_json()["token"]
    c = auth_app.test_client()
    assert c.open(path, method=method, headers={"Authorization": f"Bearer {bridge}"}).status_code == 403
    assert c.open(path, method=method).status_code == 401
    assert fake.passwords == before


def test_adding_a_device_on_the_page_makes_it_active_with_credentials(auth_app, fake):
    admin = Desk(auth_app, "admin")
    r = submit(admin, "/admin/devices", "/admin/devices", device_id="shop-7-front", site="hs-01", kind="physical")
    assert r.status_code == 200 and "shop-7-front is added to hs-01, active." in r.text
    assert credentials_on(r.text)["password"] == fake.passwords["shop-7-front"]
    device = api(auth_app, "GET", "/api/v1/devices/shop-7-front").get_json()
    assert (device["status"], device["site"]) == ("active", "hs-01")
    r = post(admin, "/admin/devices", "/admin/devices", device_id="shop-7-front", site="hs-01")
    assert r.status_code == 303 and "There is already a device shop-7-front" in admin.c.get("/admin/devices").text
    assert [a.action for a in audit_rows(auth_app)] == ["site.create", "device.create", "broker.issue"]


def device_rows(app, device_id):
    """The device's audit rows after its approval: (action, details)."""
    rows = [(a.action, a.details) for a in audit_rows(app) if a.target == f"device:{device_id}"]
    return rows[[a for a, _ in rows].index("broker.issue") + 1:]


def test_status_changes_by_patch_are_audited_as_the_buttons_and_a_second_retire_touches_no_account(auth_app, fake):
    """What a device and its connection go through: tests/integration/test_admin_broker.py, against the broker."""
    press(auth_app, device_id="new-1")
    api(auth_app, "POST", "/api/v1/devices/new-1/approve", json={"site": "hs-01"})
    for status in ("rejected", "retired"):
        assert api(auth_app, "PATCH", "/api/v1/devices/new-1", json={"status": status}).status_code == 200
    # retired again: nothing left to remove, and the answer says nothing of the broker
    assert api(auth_app, "PATCH", "/api/v1/devices/new-1", json={"status": "retired"}).get_json().get("broker") is None
    assert api(auth_app, "PATCH", "/api/v1/devices/new-1", json={"status": "active"}).status_code == 200
    assert api(auth_app, "POST", "/api/v1/devices/new-1/credentials").status_code == 200
    assert device_rows(auth_app, "new-1") == [
        ("device.reject", {"was": "active", "reason": ""}), ("device.retire", {"was": "rejected", "reason": ""}),
        ("broker.remove", {"result": "removed"}), ("device.approve", {"site": "hs-01", "was": "retired"}),
        ("broker.issue", {"result": "issued"})]


def test_a_device_created_or_updated_as_retired_loses_its_account(auth_app, fake):
    fake.add_device("old-1")  # an account made before the server knew the device (`dashdesk broker ...`)
    r = api(auth_app, "POST", "/api/v1/devices", json={"device_id": "old-1", "status": "retired"})
    assert r.status_code == 201 and r.get_json()["broker"]["credentials"] == "removed"
    assert "old-1" not in fake.passwords
    api(auth_app, "POST", "/api/v1/devices/register", json={"device_id": "old-2", "site": "hs-01"})
    r = api(auth_app, "POST", "/api/v1/devices", json={"device_id": "old-2", "site": "hs-01", "status": "retired"})
    assert r.status_code == 200 and r.get_json()["broker"]["credentials"] == "removed"
    assert "old-2" not in fake.passwords
    assert [(a.action, a.target) for a in audit_rows(auth_app)][-6:] == [
        ("device.create", "device:old-1"), ("broker.remove", "device:old-1"), ("device.create", "device:old-2"),
        ("broker.issue", "device:old-2"), ("device.retire", "device:old-2"), ("broker.remove", "device:old-2")]


def test_a_replacement_shows_the_new_password_once_after_a_redirect_and_a_resent_form_makes_none(auth_app, fake):
    api(auth_app, "POST", "/api/v1/devices/register", json={"device_id": "till-1", "site": "hs-01"})
    admin = Desk(auth_app, "admin")
    r = post(admin, "/admin/devices/till-1/replace", "/admin/devices/till-1", by="till-9")
    # POST-redirect-GET: reloading the page that shows the password sends nothing again
    assert r.status_code == 303 and r.headers["Location"] == "/admin/devices/till-9"
    password = fake.passwords["till-9"]
    assert password not in r.headers["Location"] and "till-1" not in fake.passwords
    page = admin.c.get(r.headers["Location"]).text
    assert "till-9 replaced till-1" in page and credentials_on(page)["password"] == password
    assert password not in admin.c.get("/admin/devices/till-9").text  # shown once
    made = fake.made
    r = post(admin, "/admin/devices/till-1/replace", "/admin/devices/till-9", by="till-9")
    assert r.status_code == 303
    page = admin.c.get(r.headers["Location"]).text
    assert "till-1 was already replaced by till-9: nothing changed (its broker password stays as it is)." in page
    assert fake.made == made and fake.passwords["till-9"] == password  # its connection stays up
    assert [a.action for a in audit_rows(auth_app) if a.action.startswith("broker.")] == [
        "broker.issue", "broker.issue", "broker.remove"]


def test_a_device_added_on_the_page_that_has_an_account_keeps_it_and_its_password(auth_app, fake):
    """Approving one that has an account, on the page and through the API: tests/integration/test_admin_broker.py."""
    password = fake.add_device("new-3")  # `dashdesk broker device-credentials new-3`, installed on the device
    admin = Desk(auth_app, "admin")
    r = submit(admin, "/admin/devices", "/admin/devices", device_id="new-3", site="hs-01", kind="physical")
    assert r.status_code == 200 and "new-3 keeps its broker account" in r.text
    assert 'id="cred-password"' not in r.text and fake.passwords["new-3"] == password
    assert [(a.target, a.details) for a in audit_rows(auth_app, "broker.issue")] == [
        ("device:new-3", {"result": "kept"})]


def test_the_active_devices_without_an_account_are_counted_and_new_passwords_and_refusals_for_many(auth_app, fake):
    """Which devices have an account, on the pages, and handing many theirs: tests/integration/test_admin_broker.py."""
    for d in ("imp-1", "imp-2", "imp-3"):  # as an import adds them: no account
        api(auth_app, "POST", "/api/v1/devices", json={"device_id": d, "site": "hs-01", "status": "active"})
    fake.add_device("imp-3")  # made from the command line
    admin = Desk(auth_app, "admin")
    listed = admin.c.get("/admin/devices?account=none&status=active").text
    assert "2 devices without a broker account" in listed
    assert re.findall(r'<tr data-device="([^"]+)"', listed) == ["imp-1", "imp-2"]
    assert re.search(r'<strong>2</strong> active devices without a broker account', admin.c.get("/admin").text)
    r = api(auth_app, "POST", "/api/v1/devices/credentials", json={"device_ids": ["imp-1", "imp-2", "imp-3"]})
    assert r.status_code == 200
    assert "0 devices without a broker account" in admin.c.get("/admin/devices?account=none&status=active").text
    # `new`: a new password for each, the old ones stop working
    before = fake.passwords["imp-3"]
    r = api(auth_app, "POST", "/api/v1/devices/credentials", json={"device_ids": ["imp-3"], "new": True})
    assert r.get_json()["items"][0]["password"] == fake.passwords["imp-3"] != before
    # retired: its account goes, and the page says it has none
    api(auth_app, "POST", "/api/v1/devices/imp-2/retire", json={})
    assert 'data-account="none"' in admin.c.get("/admin/devices/imp-2").text
    assert api(auth_app, "GET", "/api/v1/devices", query_string={"broker_account": "false"}
               ).get_json()["items"][0]["device_id"] == "imp-2"
    r = api(auth_app, "POST", "/api/v1/devices/credentials", json={"device_ids": ["imp-1", "imp-2"]})
    assert r.status_code == 409 and r.get_json()["error"]["detail"] == {"not_active": ["imp-2"]}
    assert api(auth_app, "POST", "/api/v1/devices/credentials", json={"device_ids": ["nope-1"]}).status_code == 404


def test_a_broker_that_does_not_answer_leaves_the_accounts_not_known_and_is_not_asked_on_every_page(auth_app,
                                                                                                   caplog):
    api(auth_app, "POST", "/api/v1/devices", json={"device_id": "imp-1", "site": "hs-01", "status": "active"})
    admin = Desk(auth_app, "admin")
    listed = admin.c.get("/admin/devices").text
    assert "The broker did not answer" in listed and 'data-account="unknown"' in listed
    assert 'data-account="unknown"' in admin.c.get("/admin/devices/imp-1").text
    # still unknown: counted among those that may need one
    assert "1 device without a broker account" in admin.c.get("/admin/devices?account=none").text
    assert caplog.text.count("could not list the broker's accounts") == 1  # asked once, then left alone a while
    r = api(auth_app, "POST", "/api/v1/devices/credentials", json={"device_ids": ["imp-1"]})
    assert r.status_code == 200 and r.get_json()["items"][0]["credentials"] == "failed"
