"""The admin flow against real parts: Mosquitto with its dynamic security plugin, the server and the bridge as
processes, devices as MQTT clients with the credentials the admin pages and the API hand out.

Approve → connect with the shown credentials → press → ticket; retire → that connection is closed and refused;
replace → the new device's credentials work and its press merges into the old one's ticket; a broker that does
not answer → the approval stands and the retry makes the credentials; `dashdesk up` passes its configuration
file to the server; a revoked API token gets 401 over real HTTP."""

from __future__ import annotations

import getpass
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from dashdesk import wire
from launcher import broker
from server.domain import mosquitto
from tests.stack import ADMIN_PASSWORD, ADMIN_TOKEN, PYTHON, Stack, wait_until
from tests.web.conftest import csrf_of

from .test_broker_auth import (DELIVERY_S, NOT_AUTHORIZED, Device, connack_refused, dashdesk, device_id, press_body,
                               retained_status)

pytestmark = pytest.mark.integration
TOPICS = wire.Topics()


@pytest.fixture(scope="module")
def auth_stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("admin-broker"), auth=True).start()
    yield s
    s.stop()


def pending(stack: Stack, name: str) -> str:
    """A device the server knows as pending (with accounts on it cannot press before it has its own), and a
    site of its own, ``ab-<device id>``, to be approved into (so tests do not merge into each other's tickets)."""
    d = device_id(name)
    r = stack.api("POST", "/api/v1/devices", json={"device_id": d, "status": "pending"})
    assert r.status_code == 201, r.text
    assert stack.api("POST", "/api/v1/sites", json={"code": f"ab-{d}", "name": f"Shop {d}"}).status_code == 201
    return d


def pressed(dev: Device, d: str) -> dict:
    """Press b1 as ``d`` over MQTT and return the final ack."""
    assert dev.subscribe(TOPICS.ack(d)) == 1
    body = press_body(d)
    assert dev.publish(TOPICS.press(d), body) == 0
    return dev.ack_for(body["event_id"])


def test_approve_connect_press_ticket_then_retire_and_the_connection_is_refused(auth_stack):
    stack = auth_stack
    d = pending(stack, "ab-api")
    r = stack.api("POST", f"/api/v1/devices/{d}/approve", json={"site": f"ab-{d}"})
    assert r.status_code == 200, r.text
    creds = r.json()["broker"]
    assert creds["credentials"] == "issued" and creds["username"] == d and len(creds["password"]) >= 32
    assert creds["mqtt_url"] == stack.broker.url_for(d, creds["password"])
    dev = Device(creds["mqtt_url"])
    assert dev.connected
    ack = pressed(dev, d)
    assert ack["result"] == "created"
    ticket = stack.api("GET", f"/api/v1/tickets/{ack['ticket']['id']}").json()
    assert (ticket["device_id"], ticket["site"]) == (d, f"ab-{d}")
    r = stack.api("POST", f"/api/v1/devices/{d}/retire", json={"reason": "broken"})
    assert r.status_code == 200 and r.json()["broker"]["credentials"] == "removed"
    wait_until(lambda: dev.disconnects, timeout=10, what="the retired device's connection to close")
    dev.close()
    assert connack_refused(creds["mqtt_url"]).value == NOT_AUTHORIZED
    assert "password" not in str(stack.api("GET", "/api/v1/audit").json()["items"]).lower().replace(
        "password_made", "")


def sign_in(stack: Stack) -> requests.Session:
    web = requests.Session()
    page = web.get(stack.base + "/login", timeout=10)
    r = web.post(stack.base + "/login", data={"csrf_token": csrf(page.text), "username": "admin",
                                              "password": ADMIN_PASSWORD}, timeout=10, allow_redirects=False)
    assert r.status_code == 302, r.text[:300]
    return web


def csrf(html: str) -> str:
    return csrf_of(html)


def shown(html: str, key: str) -> str:
    return re.search(rf'id="cred-{key}">([^<]+)<', html).group(1).replace("&amp;", "&")


def test_the_admin_page_shows_the_credentials_once_and_new_ones_replace_them(auth_stack):
    stack = auth_stack
    d = pending(stack, "ab-page")
    web = sign_in(stack)
    page = web.get(f"{stack.base}/admin/devices/{d}", timeout=10).text
    r = web.post(f"{stack.base}/admin/devices/{d}/approve", data={"csrf_token": csrf(page), "site": f"ab-{d}"},
                 timeout=30)
    assert r.status_code == 200 and f"{d} is approved into ab-{d}." in r.text and "shown this once" in r.text
    url = shown(r.text, "url")
    assert shown(r.text, "password") not in web.get(f"{stack.base}/admin/devices/{d}", timeout=10).text
    first = Device(url)
    assert first.connected and pressed(first, d)["result"] == "created"
    # "New broker credentials": the old password stops working at once, the new one works
    r = web.post(f"{stack.base}/admin/devices/{d}/credentials", data={"csrf_token": csrf(page)}, timeout=30)
    assert r.status_code == 200 and "the old password no longer works" in r.text
    new_url = shown(r.text, "url")
    wait_until(lambda: first.disconnects, timeout=10, what="the old password's connection to close")
    first.close()
    assert connack_refused(url).value == NOT_AUTHORIZED
    second = Device(new_url)
    try:
        assert second.connected and pressed(second, d)["result"] == "merged"
    finally:
        second.close()


def test_a_replacement_gets_credentials_takes_the_ticket_and_the_old_device_is_cut_off(auth_stack):
    stack = auth_stack
    old = pending(stack, "ab-old")
    approved = stack.api("POST", f"/api/v1/devices/{old}/approve", json={"site": f"ab-{old}"})
    old_url = approved.json()["broker"]["mqtt_url"]
    old_dev = Device(old_url)
    ticket = pressed(old_dev, old)["ticket"]
    new = device_id("ab-new")
    r = stack.api("POST", f"/api/v1/devices/{old}/replace", json={"by": new})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tickets"] == [ticket["number"]] and body["replaced"]["broker"]["credentials"] == "removed"
    wait_until(lambda: old_dev.disconnects, timeout=10, what="the replaced device's connection to close")
    old_dev.close()
    assert connack_refused(old_url).value == NOT_AUTHORIZED
    new_dev = Device(body["device"]["broker"]["mqtt_url"])
    try:
        # the new device's retained tickets topic lists the ticket it took over
        assert new_dev.subscribe(TOPICS.tickets(new)) == 1
        wait_until(lambda: any(t.endswith(f"/{new}/tickets") and [x["id"] for x in m["tickets"]] == [ticket["id"]]
                               for t, m in list(new_dev.messages)), timeout=10, what="the new device's tickets")
        ack = pressed(new_dev, new)
        assert (ack["result"], ack["ticket"]["id"]) == ("merged", ticket["id"])
    finally:
        new_dev.close()


def test_a_revoked_token_gets_401_over_http(auth_stack):
    stack = auth_stack
    made = stack.api("POST", "/api/v1/tokens", json={"name": "to revoke", "role": "admin"}).json()
    headers = {"Authorization": f"Bearer {made['token']}"}
    assert requests.get(stack.base + "/api/v1/sites", headers=headers, timeout=10).status_code == 200
    assert stack.api("DELETE", f"/api/v1/tokens/{made['id']}").status_code == 200
    r = requests.get(stack.base + "/api/v1/sites", headers=headers, timeout=10)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert requests.post(stack.base + "/api/v1/tokens", json={"name": "x"}, headers=headers,
                         timeout=10).status_code == 401


def test_a_broker_that_does_not_answer_leaves_the_approval_and_the_retry_makes_the_credentials(auth_stack):
    stack = auth_stack
    d = pending(stack, "ab-down")
    stack.broker.stop()
    try:
        r = stack.api("POST", f"/api/v1/devices/{d}/approve", json={"site": f"ab-{d}"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "active" and r.json()["broker"]["credentials"] == "failed"
        web = sign_in(stack)
        page = web.get(f"{stack.base}/admin/devices/{d}", timeout=10).text
        r = web.post(f"{stack.base}/admin/devices/{d}/credentials", data={"csrf_token": csrf(page)}, timeout=30)
        assert r.status_code == 200 and f"The broker credentials of {d} could not be made" in r.text
    finally:
        stack.broker.start()
    r = wait_until(lambda: (x := stack.api("POST", f"/api/v1/devices/{d}/credentials")).status_code == 200 and x,
                   timeout=30, interval=0.5, what="the broker to take the account")
    dev = Device(r.json()["broker"]["mqtt_url"])
    try:
        assert dev.connected
        assert pressed(dev, d)["result"] == "created"
    finally:
        dev.close()


def test_up_passes_its_configuration_file_to_the_server_which_hands_out_credentials(tmp_path):
    http_port, mqtt_port = broker.free_port(), broker.free_port()
    config = tmp_path / "shop.toml"
    config.write_text(f'[broker]\nauth = "dynsec"\ndevice_url = "mqtt://localhost:{mqtt_port}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHDESK_")}
    env.update(DASHDESK_CONFIG=str(tmp_path / "none.toml"), DASHDESK_ADMIN_TOKEN=ADMIN_TOKEN)
    proc = subprocess.Popen(PYTHON + ["--config", str(config), "up", "--http-port", str(http_port), "--mqtt-port",
                                      str(mqtt_port), "--ws-port", "0", "--data-dir", str(tmp_path / "data")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    lines: list[str] = []
    threading.Thread(target=lambda: [lines.append(x.decode().rstrip()) for x in iter(proc.stdout.readline, b"")],
                     daemon=True).start()
    base = f"http://127.0.0.1:{http_port}"
    try:
        wait_until(lambda: f"dashdesk ready: {base}" in lines or proc.poll() is not None, timeout=60,
                   what="the ready line")
        assert proc.poll() is None, lines
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        assert api.post(base + "/api/v1/sites", json={"code": "up-01", "name": "Up"}, timeout=10).status_code == 201
        r = api.post(base + "/api/v1/devices/register", json={"device_id": "up-dev", "site": "up-01"}, timeout=30)
        assert r.status_code == 201, r.text
        creds = r.json()["broker"]
        assert creds["credentials"] == "issued", creds
        assert creds["mqtt_url"] == f"mqtt://up-dev:{creds['password']}@localhost:{mqtt_port}"  # [broker] device_url
        dev = Device(creds["mqtt_url"])
        try:
            assert dev.connected and pressed(dev, "up-dev")["result"] == "created"
        finally:
            dev.close()
        assert connack_refused(f"mqtt://127.0.0.1:{mqtt_port}").value == NOT_AUTHORIZED  # accounts on
        service = mosquitto.load_service_passwords(Path(tmp_path / "data"))
        assert creds["password"] not in service.values()
    finally:
        proc.terminate()
        assert proc.wait(60) == 0


def audited(stack: Stack, d: str) -> list[tuple[str, str, str | None]]:
    """The device's audit rows, oldest first: (actor, action, the broker's result)."""
    items = stack.api("GET", "/api/v1/audit", params={"target": f"device:{d}"}).json()["items"]
    return [(a["actor"], a["action"], a["details"].get("result")) for a in reversed(items)]


def test_the_broker_commands_hand_out_and_delete_accounts_as_the_server_does_and_are_audited(auth_stack):
    stack = auth_stack
    me = f"cli:{getpass.getuser()}"
    d = device_id("ab-cli")
    made = dashdesk("broker", "device-credentials", d, "--device-url", "mqtt://buttons.shop.lan:1883",
                    env=stack.env)
    assert made.returncode == 0, made.stderr
    printed = dict(line.split(": ", 1) for line in made.stdout.strip().splitlines())
    assert printed["username"] == d and len(printed["password"]) >= 32
    assert printed["mqtt_url"] == f"mqtt://{d}:{printed['password']}@buttons.shop.lan:1883"
    dev = Device(stack.broker.url_for(d, printed["password"]))
    assert dev.connected and pressed(dev, d)["result"] == "created"  # the server knows it now (pending)
    retired = dashdesk("broker", "retire", d, "--reason", "stolen", env=stack.env)
    assert retired.returncode == 0, retired.stderr
    assert retired.stdout.strip() == (f"device {d} retired: the ticket server refuses its presses; disconnected, "
                                      "and its broker account deleted")
    wait_until(lambda: dev.disconnects, timeout=10, what="the retired device's connection to close")
    dev.close()
    assert connack_refused(stack.broker.url_for(d, printed["password"])).value == NOT_AUTHORIZED
    # retired in the ticket server too, by the same step as the admin page's, audited as the user who ran it
    assert stack.api("GET", f"/api/v1/devices/{d}").json()["status"] == "retired"
    assert audited(stack, d) == [(me, "broker.issue", "issued"), (me, "device.retire", None),
                                 (me, "broker.remove", "removed")]
    [row] = [a for a in stack.api("GET", "/api/v1/audit", params={"target": f"device:{d}"}).json()["items"]
             if a["action"] == "device.retire"]
    assert row["details"] == {"was": "pending", "reason": "stolen"}
    assert printed["password"] not in str(stack.api("GET", "/api/v1/audit").json())
    # a device the server knows as retired gets no credentials
    again = dashdesk("broker", "device-credentials", d, env=stack.env)
    assert again.returncode == 2 and f"device {d} is retired" in again.stderr and "password" not in again.stdout
    # a broker that does not answer: exit 2 with the reason, and the failure is audited
    down = dashdesk("broker", "retire", d, "--mqtt-url", f"mqtt://127.0.0.1:{broker.free_port()}",
                    env={**stack.env, "DASHDESK_BROKER_ADMIN_URL": ""})
    assert down.returncode == 2 and f"the broker account of {d} could not be deleted" in down.stderr
    assert f"device {d} was retired already" in down.stderr
    assert audited(stack, d)[-1] == (me, "broker.remove", "failed")


def test_broker_retire_of_a_device_the_server_does_not_know_deletes_its_account(auth_stack):
    stack = auth_stack
    me = f"cli:{getpass.getuser()}"
    d = device_id("ab-cli-unknown")
    made = dashdesk("broker", "device-credentials", d, env=stack.env)
    assert made.returncode == 0, made.stderr
    password = dict(line.split(": ", 1) for line in made.stdout.strip().splitlines())["password"]
    dev = Device(stack.broker.url_for(d, password))
    assert dev.connected  # connected, never pressed: the ticket server has not heard of it
    retired = dashdesk("broker", "retire", d, env=stack.env)
    assert retired.returncode == 0, retired.stderr
    assert retired.stdout.strip() == (f"device {d} is not known to the ticket server; disconnected, and its "
                                      "broker account deleted")
    wait_until(lambda: dev.disconnects, timeout=10, what="the device's connection to close")
    dev.close()
    assert connack_refused(stack.broker.url_for(d, password)).value == NOT_AUTHORIZED
    assert stack.api("GET", f"/api/v1/devices/{d}").status_code == 404
    assert audited(stack, d) == [(me, "broker.issue", "issued"), (me, "broker.remove", "removed")]


def registered(stack: Stack, name: str) -> tuple[str, str, Device]:
    """A device added active in a site of its own: its id, its MQTT URL with the credentials the API handed
    out, and a connection made with them."""
    d = device_id(name)
    assert stack.api("POST", "/api/v1/sites", json={"code": f"ab-{d}", "name": f"Shop {d}"}).status_code == 201
    r = stack.api("POST", "/api/v1/devices/register", json={"device_id": d, "site": f"ab-{d}"})
    assert r.status_code == 201, r.text
    url = r.json()["broker"]["mqtt_url"]
    dev = Device(url)
    assert dev.connected
    return d, url, dev


def without(config: str, d: str) -> str:
    """The exported configuration without device ``d`` (nor its site): what a pruning import retires."""
    parts = config.split("\n[[")
    return "\n[[".join(p for p in parts if f'device_id = "{d}"' not in p and f'code = "ab-{d}"' not in p)


def test_config_import_with_prune_deletes_the_broker_accounts_of_the_devices_it_retires(auth_stack, tmp_path):
    stack = auth_stack
    me = f"cli:{getpass.getuser()}"
    (a, url_a, dev_a), (b, url_b, dev_b) = registered(stack, "ab-prune-a"), registered(stack, "ab-prune-b")
    try:
        exported = dashdesk("config", "export", "-", env=stack.env)
        assert exported.returncode == 0, exported.stderr
        # the broker does not answer: the import stands, the account is named, exit 1
        (tmp_path / "no-a.toml").write_text(without(exported.stdout, a))
        dead = f"mqtt://dashdesk.admin:not-used@127.0.0.1:{broker.free_port()}"
        out = dashdesk("config", "import", str(tmp_path / "no-a.toml"), "--prune",
                       env={**stack.env, "DASHDESK_BROKER_ADMIN_URL": dead})
        assert out.returncode == 1, out.stdout + out.stderr
        assert f"the broker account of {a} could not be deleted: could not reach the broker" in out.stderr
        assert "not-used" not in out.stdout + out.stderr
        assert stack.api("GET", f"/api/v1/devices/{a}").json()["status"] == "retired"
        assert dev_a.connected  # its account is still there
        # the broker answers: the retired device is disconnected and refused
        (tmp_path / "no-b.toml").write_text(without(without(exported.stdout, a), b))
        out = dashdesk("config", "import", str(tmp_path / "no-b.toml"), "--prune", env=stack.env)
        assert out.returncode == 0, out.stderr
        assert f"retired: {b}; broker accounts deleted: {b}" in out.stdout
        wait_until(lambda: dev_b.disconnects, timeout=10, what="the pruned device's connection to close")
        assert connack_refused(url_b).value == NOT_AUTHORIZED
        assert audited(stack, b)[-1] == (me, "broker.remove", "removed")
        assert audited(stack, a)[-1] == (me, "broker.remove", "failed")
        # and the account left behind goes with `dashdesk broker retire`
        assert dashdesk("broker", "retire", a, env=stack.env).returncode == 0
        wait_until(lambda: dev_a.disconnects, timeout=10, what="the other device's connection to close")
        assert connack_refused(url_a).value == NOT_AUTHORIZED
    finally:
        dev_a.close()
        dev_b.close()


def test_patch_retired_closes_the_connection_and_patch_rejected_keeps_it_to_say_why(auth_stack):
    stack = auth_stack
    (kept, kept_url, kept_dev), (gone, gone_url, gone_dev) = (registered(stack, "ab-patch-rejected"),
                                                              registered(stack, "ab-patch-retired"))
    try:
        r = stack.api("PATCH", f"/api/v1/devices/{kept}", json={"status": "rejected"})
        assert r.status_code == 200 and r.json()["status"] == "rejected" and "broker" not in r.json()
        ack = pressed(kept_dev, kept)
        assert (ack["result"], ack["reason"]) == ("rejected", "device rejected by an admin")
        assert kept_dev.connected and kept_dev.disconnects == []
        r = stack.api("PATCH", f"/api/v1/devices/{gone}", json={"status": "retired"})
        assert r.status_code == 200 and r.json()["broker"]["credentials"] == "removed"
        wait_until(lambda: gone_dev.disconnects, timeout=10, what="the retired device's connection to close")
        assert connack_refused(gone_url).value == NOT_AUTHORIZED
        assert [a for _, a, _ in audited(stack, gone)][-2:] == ["device.retire", "broker.remove"]
        assert [a for _, a, _ in audited(stack, kept)][-1] == "device.reject"
        # made active again, it connects with the new credentials of POST .../credentials
        assert stack.api("PATCH", f"/api/v1/devices/{gone}", json={"status": "active"}).json()["status"] == "active"
        assert connack_refused(gone_url).value == NOT_AUTHORIZED
        fresh = stack.api("POST", f"/api/v1/devices/{gone}/credentials").json()["broker"]["mqtt_url"]
        again = Device(fresh)
        try:
            assert again.connected and pressed(again, gone)["result"] == "created"
        finally:
            again.close()
    finally:
        kept_dev.close()
        gone_dev.close()


# ---------------------------------------------------------------- what dashdesk shows of each device's connection


def online(stack: Stack, d: str) -> bool | None:
    return stack.api("GET", f"/api/v1/devices/{d}").json()["online"]


def connection_on_page(web: requests.Session, stack: Stack, d: str) -> str:
    page = web.get(f"{stack.base}/admin/devices/{d}", timeout=10).text
    return re.search(r"<dt>Connection</dt><dd><span class=\"[a-z]+\">([a-z]+)</span>", page).group(1)


def online_devices(web: requests.Session, stack: Stack) -> int:
    page = web.get(f"{stack.base}/admin", timeout=10).text
    return int(re.search(r"<strong>(\d+)</strong> active devices online", page).group(1))


def test_new_credentials_and_retiring_show_the_device_offline_also_after_the_bridge_restarts(auth_stack):
    """The broker publishes no will for a connection it closes on dashdesk's behalf: dashdesk marks the device
    offline itself, in its database and with a retained offline on the device's status topic."""
    stack = auth_stack
    web = sign_in(stack)
    d, url, plain = registered(stack, "ab-offline")
    plain.close()
    dev = Device(url, status=True)  # as the device agent: will offline, retained online once connected
    assert dev.connected
    wait_until(lambda: online(stack, d) is True, timeout=10, what="the device to show online")
    assert connection_on_page(web, stack, d) == "online"
    before = online_devices(web, stack)
    # new credentials on the page: the connection is closed, and the device is offline at once, everywhere
    page = web.get(f"{stack.base}/admin/devices/{d}", timeout=10).text
    r = web.post(f"{stack.base}/admin/devices/{d}/credentials", data={"csrf_token": csrf(page)}, timeout=30)
    assert r.status_code == 200 and "the old password no longer works" in r.text
    assert re.search(r"<dt>Connection</dt><dd><span class=\"offline\">offline</span>", r.text)
    wait_until(lambda: dev.disconnects, timeout=10, what="the old password's connection to close")
    dev.close()
    assert online(stack, d) is False and connection_on_page(web, stack, d) == "offline"
    assert online_devices(web, stack) == before - 1
    assert retained_status(stack, d) == "offline"
    # with the new password it is online again
    again = Device(shown(r.text, "url"), status=True)
    assert again.connected
    wait_until(lambda: online(stack, d) is True, timeout=10, what="the device to show online again")
    # retired through the API: offline, in the answer too; and it stays so when the bridge (re)reads the topic
    r = stack.api("POST", f"/api/v1/devices/{d}/retire", json={"reason": "stolen"})
    assert r.status_code == 200 and r.json()["broker"]["credentials"] == "removed" and r.json()["online"] is False
    wait_until(lambda: again.disconnects, timeout=10, what="the retired device's connection to close")
    again.close()
    assert retained_status(stack, d) == "offline"
    stack.bridge.stop()
    stack.start_bridge()  # subscribes anew: gets each device's retained status
    time.sleep(3 * DELIVERY_S)  # the bridge passes statuses on every second
    assert online(stack, d) is False and connection_on_page(web, stack, d) == "offline"


def test_a_replaced_device_is_offline_and_its_replacement_keeps_an_account_it_had(auth_stack):
    stack = auth_stack
    old, url, plain = registered(stack, "ab-off-old")
    plain.close()
    dev = Device(url, status=True)
    wait_until(lambda: online(stack, old) is True, timeout=10, what="the old device to show online")
    new = device_id("ab-off-new")
    made = dashdesk("broker", "device-credentials", new, env=stack.env)
    assert made.returncode == 0, made.stderr
    password = dict(line.split(": ", 1) for line in made.stdout.strip().splitlines())["password"]
    r = stack.api("POST", f"/api/v1/devices/{old}/replace", json={"by": new})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["replaced"]["broker"]["credentials"] == "removed" and body["replaced"]["online"] is False
    assert body["device"]["broker"] == {**body["device"]["broker"], "credentials": "kept", "username": new,
                                        "password": None, "mqtt_url": None}
    wait_until(lambda: dev.disconnects, timeout=10, what="the replaced device's connection to close")
    dev.close()
    assert retained_status(stack, old) == "offline"
    replacement = Device(stack.broker.url_for(new, password))
    try:
        assert replacement.connected and pressed(replacement, new)["result"] in ("created", "merged")
    finally:
        replacement.close()


def credentials_from_the_command_line(stack: Stack, name: str) -> tuple[str, str]:
    """As the README sets a device up: `dashdesk broker device-credentials`, its password into the device's file."""
    d = device_id(name)
    made = dashdesk("broker", "device-credentials", d, env=stack.env)
    assert made.returncode == 0, made.stderr
    return d, dict(line.split(": ", 1) for line in made.stdout.strip().splitlines())["password"]


def test_approving_a_device_set_up_with_command_line_credentials_keeps_its_password_working(auth_stack):
    stack = auth_stack
    web = sign_in(stack)
    for how in ("api", "page"):
        d, password = credentials_from_the_command_line(stack, f"ab-keep-{how}")
        url = stack.broker.url_for(d, password)
        dev = Device(url, status=True)
        try:
            assert dev.connected and pressed(dev, d)["result"] == "created"  # pending now: it reports all the same
            assert stack.api("GET", f"/api/v1/devices/{d}").json()["status"] == "pending"
            assert stack.api("POST", "/api/v1/sites", json={"code": f"ab-{d}", "name": d}).status_code == 201
            if how == "page":
                page = web.get(f"{stack.base}/admin/devices/{d}", timeout=10).text
                assert 'data-account="own"' in page  # the server asked the broker: it has its own
                r = web.post(f"{stack.base}/admin/devices/{d}/approve",
                             data={"csrf_token": csrf(page), "site": f"ab-{d}"}, timeout=30)
                assert r.status_code == 200 and f"{d} is approved into ab-{d}." in r.text
                assert f"{d} keeps its broker account: the password it was set up with goes on working" in r.text
                assert "shown this once" not in r.text and 'id="cred-password"' not in r.text
            else:
                r = stack.api("POST", f"/api/v1/devices/{d}/approve", json={"site": f"ab-{d}"})
                assert r.status_code == 200, r.text
                assert r.json()["broker"] == {"auth": "dynsec", "credentials": "kept", "username": d,
                                              "password": None, "mqtt_url": None,
                                              "broker_url": stack.broker.url, "error": None}
                assert r.json()["status"] == "active" and r.json()["broker_account"] is True
            time.sleep(DELIVERY_S)
            assert dev.connected and dev.disconnects == []  # still connected
            # Its pending ticket was placed in its site at the approval: the press merges into it there.
            ack = pressed(dev, d)
            assert ack["result"] == "merged", ack
            assert stack.api("GET", f"/api/v1/tickets/{ack['ticket']['id']}").json()["site"] == f"ab-{d}"
            assert online(stack, d) is True
        finally:
            dev.close()
        again = Device(url)  # and the password it was set up with still works
        try:
            assert again.connected
        finally:
            again.close()
        assert audited(stack, d)[-1][1:] == ("broker.issue", "kept")


def account_on_page(web: requests.Session, stack: Stack, d: str) -> str:
    page = web.get(f"{stack.base}/admin/devices/{d}", timeout=10).text
    return re.search(r'id="broker-account" data-account="([a-z_]+)"', page).group(1)


def listed(web: requests.Session, stack: Stack, **params: str) -> tuple[int, list[str]]:
    page = web.get(f"{stack.base}/admin/devices", params=params, timeout=10).text
    count = int(re.search(r'<p class="count">(\d+) device', page).group(1))
    return count, re.findall(r'<tr data-device="([^"]+)"', page)


def test_the_pages_show_which_devices_have_a_broker_account_and_list_those_without(auth_stack, tmp_path):
    stack = auth_stack
    web = sign_in(stack)
    tag = device_id("ab-acct")  # a prefix of the test's own, for the list's search
    site = f"ab-{tag}"
    assert stack.api("POST", "/api/v1/sites", json={"code": site, "name": site}).status_code == 201
    # imported by a configuration file: active, no account yet
    imported = [f"{tag}-imp-{i}" for i in range(3)]
    (tmp_path / "devices.toml").write_text("".join(
        f'[[device]]\ndevice_id = "{d}"\nsite = "{site}"\nstatus = "active"\n\n' for d in imported))
    out = dashdesk("config", "import", str(tmp_path / "devices.toml"), env=stack.env)
    assert out.returncode == 0, out.stdout + out.stderr
    # one with an account the command line made before the server knew it; one added with its credentials
    cli = f"{tag}-cli"
    assert dashdesk("broker", "device-credentials", cli, env=stack.env).returncode == 0
    assert stack.api("POST", "/api/v1/devices", json={"device_id": cli, "site": site, "status": "active"}
                     ).status_code == 201
    added = f"{tag}-reg"
    assert stack.api("POST", "/api/v1/devices/register", json={"device_id": added, "site": site}).status_code == 201
    assert {d: account_on_page(web, stack, d) for d in (imported[0], cli, added)} == {
        imported[0]: "none", cli: "own", added: "own"}
    page = web.get(f"{stack.base}/admin/devices/{imported[0]}", timeout=10).text
    assert "none yet: it cannot connect until it has one" in page and "New broker credentials" in page
    assert "its own (broker accounts are on)" not in page
    # the list: who still needs one, counted; the overview's count links there
    assert listed(web, stack, q=tag, account="none") == (3, imported)
    assert listed(web, stack, q=tag, account="own") == (2, sorted([cli, added]))
    overview = web.get(f"{stack.base}/admin", timeout=10).text
    assert re.search(r'id="without-account"><strong>(\d+)</strong> active devices without a broker account',
                     overview)
    assert [d["device_id"] for d in stack.api("GET", "/api/v1/devices", params={"broker_account": "false",
                                                                               "site": site}).json()["items"]
            ] == imported
    # all at once through the API: those without get theirs, the others keep theirs
    r = stack.api("POST", "/api/v1/devices/credentials", json={"device_ids": [*imported, cli]})
    assert r.status_code == 200, r.text
    items = {i["device_id"]: i for i in r.json()["items"]}
    assert [items[d]["credentials"] for d in (*imported, cli)] == ["issued"] * 3 + ["kept"]
    assert items[cli]["password"] is None
    dev = Device(items[imported[0]]["mqtt_url"])
    try:
        assert dev.connected and pressed(dev, imported[0])["result"] == "created"
    finally:
        dev.close()
    assert listed(web, stack, q=tag, account="none") == (0, [])
    assert account_on_page(web, stack, imported[1]) == "own"
    assert stack.api("POST", "/api/v1/devices/credentials", json={"device_ids": [imported[0], "ab-nobody-x"]}
                     ).status_code == 404
    # retired: its account is deleted, and the page says it has none
    assert stack.api("POST", f"/api/v1/devices/{imported[2]}/retire", json={}).json()["broker_account"] is False
    assert account_on_page(web, stack, imported[2]) == "none"
    assert stack.api("POST", "/api/v1/devices/credentials", json={"device_ids": [imported[2]]}).status_code == 409
    assert listed(web, stack, q=tag, account="none", status="active") == (0, [])
