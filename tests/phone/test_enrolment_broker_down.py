"""Setting up a phone while the broker is down, against the real parts: Mosquitto with per-device
accounts (dynsec) and its WebSockets listener, the ticket server and the bridge, over real HTTP.

The phone's broker account is made when its enrolment link is used. With the broker down, using
the link answers 503 with a JSON error and takes nothing: no device, the code still unused. Once
the broker is back, the same link sets the phone up, and its account presses over WebSockets.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import requests

from dashdesk import mqtt as dd_mqtt
from launcher import broker
from tests.stack import PYTHON, Stack

from .conftest import enrolment_json

pytestmark = pytest.mark.integration

SITE = "eb-01"
PHONE = {"User-Agent": "Mozilla/5.0 (Linux; Android 14) test"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("enrol-broker-down"), auth=True, ws=True).start()
    try:
        assert s.api("POST", "/api/v1/sites", json={"code": SITE, "name": "Broker Shop"}).status_code == 201
        yield s
    finally:
        s.stop()


def use_link(stack: Stack, code: str) -> requests.Response:
    """Tap "Set up this phone": what the app posts when the enrolment link is opened."""
    return requests.post(f"{stack.base}/app/enroll/{code}", json={"language": "en"}, headers=PHONE, timeout=30)


def enrolment_of(stack: Stack, enrolment_id: int) -> dict:
    r = stack.api("GET", "/api/v1/enrolments", params={"site": SITE})
    assert r.status_code == 200, r.text
    [row] = [e for e in r.json()["items"] if e["id"] == enrolment_id]
    return row


def phones(stack: Stack) -> list[str]:
    r = stack.api("GET", "/api/v1/devices", params={"site": SITE})
    assert r.status_code == 200, r.text
    return [d["device_id"] for d in r.json()["items"] if d["device_id"].startswith(f"phone-{SITE}-")]


def test_a_phone_set_up_while_the_broker_is_down_gets_a_503_and_the_link_works_once_it_is_back(stack):
    stack.broker.stop()
    try:
        # Making the link needs no broker: an admin can hand it out now.
        made = stack.api("POST", "/api/v1/enrolments", json={"site": SITE})
        assert made.status_code == 201, made.text
        code, enrolment_id = made.json()["code"], made.json()["id"]

        refused = use_link(stack, code)
        assert refused.status_code == 503, refused.text
        assert refused.headers["Content-Type"].startswith("application/json")
        error = refused.json()["error"]
        assert error["code"] == "broker_unavailable" and "Try the same link again" in error["message"]
        assert "token" not in refused.json() and "credentials" not in refused.json()

        # Nothing was taken: the code is unused, no phone device stands, and the page still offers the set-up.
        row = enrolment_of(stack, enrolment_id)
        assert (row["state"], row["used_at"], row["device_id"]) == ("active", None, None)
        assert phones(stack) == []
        page = requests.get(f"{stack.base}/app/enroll/{code}", timeout=10)
        assert page.status_code == 200 and enrolment_json(page.text)["state"] == "active"
        # And refused again, the same way, while the broker stays down.
        assert use_link(stack, code).status_code == 503
    finally:
        stack.broker.start()
    broker.wait_for_port("127.0.0.1", stack.broker.port, timeout=10)

    done = use_link(stack, code)
    assert done.status_code == 201, done.text
    body = done.json()
    device_id = body["device_id"]
    assert body["credentials"]["username"] == device_id and len(body["credentials"]["password"]) >= 32
    assert body["mqtt"]["auth"] == "dynsec"
    assert body["mqtt"]["url"] == f"ws://127.0.0.1:{stack.broker.ws_port}/mqtt"
    row = enrolment_of(stack, enrolment_id)
    assert (row["state"], row["device_id"]) == ("used", device_id)
    assert phones(stack) == [device_id]
    assert use_link(stack, code).status_code == 410  # once only
    # The password is shown to the phone this once and kept nowhere: not in its configuration, nor audited.
    config = requests.get(f"{stack.base}/app/api/config", headers={"Authorization": f"Bearer {body['token']}"},
                          timeout=10)
    assert config.status_code == 200 and "credentials" not in config.json()
    assert body["credentials"]["password"] not in config.text
    assert body["credentials"]["password"] not in stack.api("GET", "/api/v1/audit", params={"limit": 500}).text
    # The audit log tells the story: two attempts taken back, then the phone and its account.
    r = stack.api("GET", "/api/v1/audit", params={"actor": f"enrolment:{enrolment_id}"})
    assert r.status_code == 200, r.text
    undone = [("device.enrol", None), ("broker.issue", "failed"), ("device.enrol_undo", None)]
    assert [(a["action"], a["details"].get("result")) for a in reversed(r.json()["items"])] == \
        undone * 2 + [("device.enrol", None), ("broker.issue", "issued")]

    # The phone's account works: a press over WebSockets, as the app sends it, is answered.
    button = body["buttons"][0]["button"]
    url = dd_mqtt.url_with_credentials(body["mqtt"]["url"], device_id, body["credentials"]["password"])
    out = subprocess.run(PYTHON + ["press", device_id, button, "--mqtt-url", url],
                         capture_output=True, env=stack.env, timeout=60)
    assert out.returncode == 0, (out.stdout, out.stderr)
    ack = json.loads(out.stdout.decode().strip().splitlines()[-1])
    assert ack["result"] == "created" and ack["ticket"]["category"] == button
    [ticket] = stack.tickets(device_id=device_id)
    assert (ticket["site"], ticket["category"]) == (SITE, button)
