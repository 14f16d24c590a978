"""Each device its own broker account: a real Mosquitto with its dynamic security plugin,
the real bridge and server, devices as MQTT clients with their own credentials."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
import time
import uuid
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from dashdesk import mqtt as dd_mqtt
from dashdesk import wire
from server.domain import mosquitto
from tests.stack import PYTHON, Stack, Up, wait_until

TOPICS = wire.Topics()
NOT_AUTHORIZED = 0x87  # MQTT 5 reason code, in CONNACK, PUBACK and SUBACK
REFUSED_311 = 0x80  # MQTT 3.1.1 SUBACK failure
# The time a message published at QoS 1 needs to reach a subscriber on loopback, many times over.
DELIVERY_S = 1.0


@pytest.fixture(scope="module")
def auth_stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("auth-stack"), auth=True).start()
    yield s
    s.stop()


def device_id(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


class Device:
    """An MQTT client as a device: records what the broker answers to each packet. ``status``: as the device
    agent does, its will is a retained ``offline`` on its ``status`` topic, and it publishes a retained
    ``online`` there once connected."""

    def __init__(self, url: str, protocol: int = 5, wait: bool = True, client_id: str | None = None,
                 status: bool = False):
        self.protocol = protocol
        self.connack: list[Any] = []
        self.disconnects: list[Any] = []
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self._subacks: dict[int, list[Any]] = {}
        self._pubacks: dict[int, Any] = {}
        self._changed = threading.Condition()
        parsed = urlsplit(url)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"test-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5 if protocol == 5 else mqtt.MQTTv311,
                                  reconnect_on_failure=False)
        if parsed.username:
            self.client.username_pw_set(unquote(parsed.username),
                                        unquote(parsed.password or ""))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        if status:
            topic = TOPICS.status(unquote(parsed.username or ""))
            self.client.will_set(topic, "offline", qos=1, retain=True)
            self.client.on_connect = lambda c, *a: (self._on_connect(c, *a), c.publish(topic, "online", qos=1,
                                                                                        retain=True))
        self.client.connect(parsed.hostname, parsed.port)
        self.client.loop_start()
        if wait:
            wait_until(lambda: self.connack, timeout=10, what="a CONNACK")

    def _note(self, fn: Any) -> None:
        with self._changed:
            fn()
            self._changed.notify_all()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        self._note(lambda: self.connack.append(rc))

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        self._note(lambda: self.disconnects.append(rc))

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(msg.payload)
        except ValueError:
            body = msg.payload.decode(errors="replace")  # a status topic's online or offline
        self._note(lambda: self.messages.append((msg.topic, body)))

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: list[Any], _p: Any = None) -> None:
        self._note(lambda: self._subacks.__setitem__(mid, codes))

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: Any, _p: Any = None) -> None:
        self._note(lambda: self._pubacks.__setitem__(mid, rc))

    @property
    def connected(self) -> bool:
        return bool(self.connack) and not self.connack[-1].is_failure and not self.disconnects

    def subscribe(self, topic: str) -> int:
        """Subscribe at QoS 1; the SUBACK's code (1: granted QoS 1)."""
        _, mid = self.client.subscribe(topic, qos=1)
        with self._changed:
            assert self._changed.wait_for(lambda: mid in self._subacks, timeout=10), f"no SUBACK for {topic}"
            return self._subacks[mid][0].value

    def publish(self, topic: str, payload: dict[str, Any]) -> int:
        """Publish at QoS 1; the PUBACK's reason code (0: success)."""
        info = self.client.publish(topic, wire.dumps(payload), qos=1)
        with self._changed:
            assert self._changed.wait_for(lambda: info.mid in self._pubacks, timeout=10), f"no PUBACK on {topic}"
            return self._pubacks[info.mid].value

    def ack_for(self, event_id: str, timeout: float = 10.0) -> dict[str, Any]:
        def final() -> dict[str, Any] | None:
            return next((body for topic, body in list(self.messages) if topic.endswith("/ack")
                         and body.get("event_id") == event_id and body["result"] != "queued"), None)

        return wait_until(final, timeout=timeout, what=f"a final ack for {event_id}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def press_body(device: str, button: str = "b1", **extra: Any) -> dict[str, Any]:
    return {**wire.new_press(device, button).to_dict(), **extra}


def connack_refused(url: str, protocol: int = 5) -> Any:
    """Connect with ``url``'s credentials (or none) and return the CONNACK's refusal."""
    d = Device(url, protocol=protocol)
    try:
        [rc] = d.connack
        assert rc.is_failure, f"connected with {dd_mqtt.url_without_credentials(url)}"
        return rc
    finally:
        d.close()


WATCHER = "test.watcher"


def retained_status(stack: Stack, d: str) -> str | None:
    """What a subscriber arriving now gets on ``d``'s status topic: the retained message (None: there is none).
    It reads as an account of the test's own that may read every device's status (a dot: no device's id)."""
    password = "watcher-password-0123456789"
    topic = TOPICS.subscription("status")
    stack.accounts._run([
        {"command": "createRole", "rolename": WATCHER, "acls": [
            {"acltype": kind, "topic": topic, "priority": 0, "allow": True}
            for kind in ("subscribePattern", "publishClientReceive")]},
        {"command": "createClient", "username": WATCHER, "password": password, "roles": [{"rolename": WATCHER}]},
    ], allowed={"createRole": "Role already exists", "createClient": "Client already exists"})
    watcher = Device(stack.broker.url_for(WATCHER, password))
    try:
        assert watcher.connected and watcher.subscribe(TOPICS.status(d)) == 1
        time.sleep(DELIVERY_S)
        [*_, last] = [None] + [body for topic, body in list(watcher.messages) if topic == TOPICS.status(d)]
        return last
    finally:
        watcher.close()


# ---------------------------------------------------------------- one device cannot act as another


@pytest.mark.parametrize("protocol", [5, 4])
def test_device_cannot_publish_or_subscribe_as_another_device(auth_stack, protocol):
    stack = auth_stack
    a, b = device_id("auth-a"), device_id("auth-b")
    url_a = stack.broker.url_for(a, stack.accounts.add_device(a))
    url_b = stack.broker.url_for(b, stack.accounts.add_device(b))
    dev_a, dev_b = Device(url_a, protocol), Device(url_b, protocol)
    try:
        assert dev_a.connected and dev_b.connected
        # B listens to everything under its own topics, its press topic included.
        assert dev_b.subscribe(f"{TOPICS.root}/devices/{b}/#") == 1

        forged = press_body(b)
        code = dev_a.publish(TOPICS.press(b), forged)
        refused = NOT_AUTHORIZED if protocol == 5 else 0  # MQTT 3.1.1's PUBACK has no reason code
        assert code == refused
        refused_sub = NOT_AUTHORIZED if protocol == 5 else REFUSED_311
        assert dev_a.subscribe(TOPICS.ack(b)) == refused_sub
        assert dev_a.subscribe(TOPICS.subscription("ack")) == refused_sub  # every device's acks
        assert dev_a.subscribe("#") == refused_sub

        # A's own press goes through the real bridge and server and is answered.
        assert dev_a.subscribe(TOPICS.ack(a)) == 1
        own = press_body(a)
        assert dev_a.publish(TOPICS.press(a), own) == 0
        ack = dev_a.ack_for(own["event_id"])
        assert ack["result"] == "created" and ack["ticket"]["number"].startswith("INC-")

        # The forged press reached no one: not B, not the bridge (no ack, no ticket for B).
        time.sleep(DELIVERY_S)
        assert dev_b.messages == []
        assert all(body.get("event_id") != forged["event_id"] for _, body in dev_a.messages)
        assert stack.tickets(device_id=b) == []
        assert [t["device_id"] for t in stack.tickets(device_id=a)] == [a]
        # Both are still connected: a refused publish does not cost the connection.
        assert dev_a.connected and dev_b.connected
    finally:
        dev_a.close()
        dev_b.close()


def test_payload_whose_device_id_differs_from_its_topic_is_rejected_by_the_bridge(auth_stack):
    stack = auth_stack
    a, b = device_id("auth-mis-a"), device_id("auth-mis-b")
    dev_a = Device(stack.broker.url_for(a, stack.accounts.add_device(a)))
    try:
        assert dev_a.subscribe(TOPICS.ack(a)) == 1
        # On its own topic (the broker lets it through), but naming another device.
        body = press_body(a, device_id=b)
        assert dev_a.publish(TOPICS.press(a), body) == 0
        ack = dev_a.ack_for(body["event_id"])
        assert ack == {"event_id": body["event_id"], "result": "rejected", "ticket": None,
                       "reason": "device_id in payload does not match the topic"}
        assert stack.tickets(device_id=a) == [] and stack.tickets(device_id=b) == []
    finally:
        dev_a.close()


# ---------------------------------------------------------------- who may connect


def test_wrong_password_unknown_user_and_anonymous_connections_are_refused(auth_stack):
    stack = auth_stack
    a, b = device_id("auth-pw-a"), device_id("auth-pw-b")
    password_a = stack.accounts.add_device(a)
    password_b = stack.accounts.add_device(b)
    refusals = [
        connack_refused(stack.broker.url_for(a, "not-the-password")),
        connack_refused(stack.broker.url_for(a, password_b)),  # another device's password
        connack_refused(stack.broker.url_for("nobody", password_a)),
        connack_refused(stack.broker.url),  # anonymous
        connack_refused(stack.broker.url_for(mosquitto.BRIDGE_USERNAME, password_a)),
    ]
    assert [rc.value for rc in refusals] == [NOT_AUTHORIZED] * 5
    # MQTT 3.1.1: return code 5, "not authorised" (paho reports it as the MQTT 5 code).
    assert connack_refused(stack.broker.url_for(a, "not-the-password"), protocol=4).value == NOT_AUTHORIZED
    assert connack_refused(stack.broker.url, protocol=4).value == NOT_AUTHORIZED
    # The right password, with either protocol.
    for protocol in (5, 4):
        d = Device(stack.broker.url_for(a, password_a), protocol)
        assert d.connected
        d.close()


@pytest.mark.parametrize("protocol", [5, 4])
def test_dashdesk_press_says_the_broker_refused_a_wrong_or_revoked_password(auth_stack, protocol):
    """Not "no final ack": the broker's own reason, at once, and exit 4 (3 means no ack came)."""
    stack = auth_stack
    d, gone = device_id("auth-press"), device_id("auth-press-gone")
    password = stack.accounts.add_device(d)
    gone_password = stack.accounts.add_device(gone)
    stack.accounts.remove_device(gone)  # retired: its password stops working
    env = {**os.environ, "DASHDESK_CONFIG": str(stack.root / "none.toml"), "DASHDESK_MQTT__PROTOCOL": str(protocol)}

    def press(device: str, secret: str) -> subprocess.CompletedProcess:
        return subprocess.run([*PYTHON, "press", device, "b1", "--timeout", "10", "--mqtt-url",
                               stack.broker.url_for(device, secret)], capture_output=True, text=True, env=env,
                              timeout=30)

    for device, secret in ((d, "not-the-password"), (gone, gone_password), ("nobody", password)):
        started = time.monotonic()
        out = press(device, secret)
        assert out.returncode == 4, (out.returncode, out.stderr)
        assert out.stderr.strip().splitlines()[-1] == "the broker refused the connection: Not authorized", out.stderr
        assert "no final ack" not in out.stderr and "trying MQTT 3.1.1" not in out.stderr
        assert out.stdout == "" and time.monotonic() - started < 8
    ok = press(d, password)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout.splitlines()[-1])["result"] == "created"


def test_device_client_id_is_its_username_so_it_cannot_take_over_another_session(auth_stack):
    stack = auth_stack
    a, b = device_id("auth-cid-a"), device_id("auth-cid-b")
    url_a = stack.broker.url_for(a, stack.accounts.add_device(a))
    url_b = stack.broker.url_for(b, stack.accounts.add_device(b))
    dev_b = Device(url_b, client_id=f"dashdesk-device-{b}")  # as the device agent connects
    intruders: list[Device] = []
    try:
        assert dev_b.connected
        # A connects with the client id B's device agent uses: the broker accepts it, as "a".
        intruders.append(Device(url_a, client_id=f"dashdesk-device-{b}"))
        assert intruders[0].connected, intruders[0].connack
        # And with B's own username as its client id: accepted too, and also as "a", so it
        # takes over the first intruder's session, not B's.
        intruders.append(Device(url_a, client_id=b))
        assert intruders[1].connected, intruders[1].connack
        wait_until(lambda: intruders[0].disconnects, timeout=10, what="the first intruder's session to be taken over")
        time.sleep(DELIVERY_S)
        assert dev_b.connected and dev_b.disconnects == []
        assert intruders[1].connected
    finally:
        for c in intruders:
            c.close()
        dev_b.close()


# ---------------------------------------------------------------- life cycle of an account


def test_retired_device_is_disconnected_and_cannot_connect_again(auth_stack):
    stack = auth_stack
    d = device_id("auth-retire")
    url = stack.broker.url_for(d, stack.accounts.add_device(d))
    dev = Device(url)
    assert dev.connected
    assert stack.accounts.device(d) == mosquitto.DeviceAccount(d, enabled=True)
    stack.accounts.remove_device(d)
    wait_until(lambda: dev.disconnects, timeout=10, what="the retired device's connection to close")
    dev.close()
    assert connack_refused(url).value == NOT_AUTHORIZED
    assert stack.accounts.device(d) is None
    stack.accounts.remove_device(d)  # retiring twice is no error


def test_adding_a_device_again_gives_a_new_password_and_the_old_one_stops_working(auth_stack):
    stack = auth_stack
    d = device_id("auth-replace")
    old_password = stack.accounts.add_device(d)
    old = Device(stack.broker.url_for(d, old_password))
    assert old.connected
    new_password = stack.accounts.add_device(d)
    assert new_password != old_password and len(new_password) >= 32
    wait_until(lambda: old.disconnects, timeout=10, what="the connection with the old password to close")
    old.close()
    assert connack_refused(stack.broker.url_for(d, old_password)).value == NOT_AUTHORIZED
    new = Device(stack.broker.url_for(d, new_password))
    try:
        assert new.connected and new.subscribe(TOPICS.ack(d)) == 1
        body = press_body(d)
        assert new.publish(TOPICS.press(d), body) == 0
        assert new.ack_for(body["event_id"])["result"] == "created"
    finally:
        new.close()


def test_a_device_the_account_manager_disconnects_is_offline_for_later_subscribers(auth_stack):
    """The plugin closes the connection without publishing the device's will: the manager says offline itself."""
    stack = auth_stack
    d = device_id("auth-offline")
    first = Device(stack.broker.url_for(d, stack.accounts.add_device(d)), status=True)
    assert first.connected
    wait_until(lambda: retained_status(stack, d) == "online", timeout=10, what="the device's retained online")
    # a new password: the connection with the old one is closed
    again = Device(stack.broker.url_for(d, stack.accounts.add_device(d)), status=True)
    wait_until(lambda: first.disconnects, timeout=10, what="the old password's connection to close")
    first.close()
    assert again.connected
    wait_until(lambda: retained_status(stack, d) == "online", timeout=10, what="the reconnected device's online")
    # disabled, then deleted: offline each time
    stack.accounts.set_device_enabled(d, False)
    wait_until(lambda: again.disconnects, timeout=10, what="the disabled device's connection to close")
    again.close()
    assert retained_status(stack, d) == "offline"
    stack.accounts.set_device_enabled(d, True)
    url = stack.broker.url_for(d, stack.accounts.add_device(d))
    last = Device(url, status=True)
    wait_until(lambda: retained_status(stack, d) == "online", timeout=10, what="the device's online")
    stack.accounts.remove_device(d)
    wait_until(lambda: last.disconnects, timeout=10, what="the retired device's connection to close")
    last.close()
    assert retained_status(stack, d) == "offline"
    # a device that never had an account is not said to be anything
    never = device_id("auth-never")
    stack.accounts.remove_device(never)
    assert retained_status(stack, never) is None


def test_the_account_manager_keeps_an_account_a_device_has_and_makes_one_for_a_device_without(auth_stack):
    stack = auth_stack
    d = device_id("auth-keep")
    password = stack.accounts.add_device(d)
    dev = Device(stack.broker.url_for(d, password), status=True)
    try:
        assert dev.connected
        assert stack.accounts.keep_or_add_device(d) is None  # kept: no new password
        time.sleep(DELIVERY_S)
        assert dev.connected and dev.disconnects == [] and retained_status(stack, d) == "online"
        assert pressed_ok(dev, d)
    finally:
        dev.close()
    stack.accounts.set_device_enabled(d, False)
    assert stack.accounts.keep_or_add_device(d) is None  # enabled again, with the same password
    assert stack.accounts.device(d) == mosquitto.DeviceAccount(d, enabled=True)
    back = Device(stack.broker.url_for(d, password))
    assert back.connected
    back.close()
    fresh = device_id("auth-keep-none")
    made = stack.accounts.keep_or_add_device(fresh)
    assert made is not None and len(made) >= 32
    assert {d, fresh, mosquitto.BRIDGE_USERNAME} <= stack.accounts.usernames()
    stack.accounts.remove_device(fresh)
    assert fresh not in stack.accounts.usernames()


def pressed_ok(dev: Device, d: str) -> bool:
    assert dev.subscribe(TOPICS.ack(d)) == 1
    body = press_body(d)
    assert dev.publish(TOPICS.press(d), body) == 0
    return dev.ack_for(body["event_id"])["result"] in ("created", "merged")


def test_disabled_device_is_disconnected_until_enabled_again(auth_stack):
    stack = auth_stack
    d = device_id("auth-disable")
    url = stack.broker.url_for(d, stack.accounts.add_device(d))
    dev = Device(url)
    assert dev.connected
    stack.accounts.set_device_enabled(d, False)
    wait_until(lambda: dev.disconnects, timeout=10, what="the disabled device's connection to close")
    dev.close()
    assert stack.accounts.device(d) == mosquitto.DeviceAccount(d, enabled=False)
    assert connack_refused(url).value == NOT_AUTHORIZED
    stack.accounts.set_device_enabled(d, True)
    again = Device(url)
    assert again.connected
    again.close()
    with pytest.raises(mosquitto.NoSuchDevice):
        stack.accounts.set_device_enabled(device_id("auth-never-added"), True)


def admin_connections(stack: Stack) -> int:
    """The admin account's connections so far, as Mosquitto logs them."""
    log = (stack.broker.data_dir / "mosquitto.log").read_text(errors="replace")
    return sum(1 for line in log.splitlines()
               if "New client connected" in line and f"u'{mosquitto.ADMIN_USERNAME}'" in line)


def test_each_account_change_takes_one_admin_connection(auth_stack):
    """Reading the account before changing it (is it a device's?) goes over the same connection."""
    stack = auth_stack
    d = device_id("auth-one-connection")
    before = admin_connections(stack)
    url = stack.broker.url_for(d, stack.accounts.add_device(d))
    assert admin_connections(stack) == before + 1
    stack.accounts.set_device_enabled(d, False)
    stack.accounts.set_device_enabled(d, True)
    dev = Device(url)
    assert dev.connected
    stack.accounts.remove_device(d)
    assert admin_connections(stack) == before + 4
    wait_until(lambda: dev.disconnects, timeout=10, what="the retired device's connection to close")
    dev.close()
    with pytest.raises(ValueError):
        stack.accounts.add_device("Not A Device")
    assert admin_connections(stack) == before + 4  # refused before connecting


def test_device_ids_that_break_the_rules_get_no_account(auth_stack):
    for bad in (mosquitto.BRIDGE_USERNAME, mosquitto.ADMIN_USERNAME, "a/b", "#", "+", "Shop-1", ""):
        with pytest.raises(ValueError):
            auth_stack.accounts.add_device(bad)
    # An account that is not a device's (on a broker shared with others, say) is left alone.
    other = device_id("ops")
    auth_stack.accounts._run([{"command": "createClient", "username": other, "password": "ops-password"}])
    for change in (auth_stack.accounts.add_device, auth_stack.accounts.remove_device,
                   lambda d: auth_stack.accounts.set_device_enabled(d, False), auth_stack.accounts.device):
        with pytest.raises(mosquitto.BrokerAuthError, match="is not a dashdesk device's"):
            change(other)
    ops = Device(auth_stack.broker.url_for(other, "ops-password"))
    assert ops.connected
    ops.close()
    # The bridge still has its account: a press still gets its ack.
    d = device_id("auth-after-bad")
    dev = Device(auth_stack.broker.url_for(d, auth_stack.accounts.add_device(d)))
    try:
        assert dev.subscribe(TOPICS.ack(d)) == 1
        body = press_body(d)
        dev.publish(TOPICS.press(d), body)
        assert dev.ack_for(body["event_id"])["result"] == "created"
    finally:
        dev.close()


# ---------------------------------------------------------------- restarts


def test_accounts_survive_a_broker_restart(tmp_path):
    stack = Stack(tmp_path / "stack", auth=True).start()
    try:
        d = device_id("auth-restart")
        url = stack.broker.url_for(d, stack.accounts.add_device(d))
        stack.broker.stop()
        stack.broker.start()  # no account is made again: they are read from the plugin's file
        # The bridge reconnects with its own credentials, the device with its own.
        dev = Device(url)
        try:
            assert dev.connected and dev.subscribe(TOPICS.ack(d)) == 1
            body = press_body(d)
            assert dev.publish(TOPICS.press(d), body) == 0
            assert dev.ack_for(body["event_id"], timeout=30)["result"] == "created"
        finally:
            dev.close()
        # The secrets stay the owner's.
        directory = stack.broker.secrets.directory
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        for name in (mosquitto.DYNSEC_FILE, mosquitto.SERVICE_PASSWORDS_FILE):
            assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600
        assert "broker refused the connection" not in stack.logs("bridge")
    finally:
        stack.stop()


# ---------------------------------------------------------------- `dashdesk up` with accounts


def dashdesk(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(PYTHON + list(args), capture_output=True, text=True, env=env, timeout=timeout)


def test_up_with_broker_auth_end_to_end(tmp_path):
    up = Up(tmp_path / "data", "--demo", env={"DASHDESK_BROKER__AUTH": "dynsec"})
    try:
        up.wait_ready()
        assert any(line.startswith("broker accounts: each device needs its own") for line in up.lines), up.lines
        broker_url = f"mqtt://127.0.0.1:{up.mqtt_port}"
        # Anonymous clients are turned away.
        assert connack_refused(broker_url).value == NOT_AUTHORIZED

        made = dashdesk("broker", "device-credentials", "shop-auth", "--mqtt-url", broker_url,
                        "--data-dir", str(up.data_dir), env=up.env)
        assert made.returncode == 0, made.stderr
        printed = dict(line.split(": ", 1) for line in made.stdout.strip().splitlines())
        assert printed["username"] == "shop-auth" and len(printed["password"]) >= 32
        assert printed["mqtt_url"] == f"mqtt://shop-auth:{printed['password']}@127.0.0.1:{up.mqtt_port}"

        out = up.press("shop-auth", "b1", url=printed["mqtt_url"])
        assert out.returncode == 0, out.stderr
        ack = json.loads(out.stdout.decode().strip().splitlines()[-1])
        assert ack["result"] == "created"
        assert [t["number"] for t in up.tickets(device_id="shop-auth")] == [ack["ticket"]["number"]]

        # The demo device has an account of its own: a key typed at `up` still presses its button.
        up.type("b2")
        tills = wait_until(lambda: up.tickets(category="till"), timeout=20, what="the demo device's press")
        assert tills[0]["device_id"] == "shop-demo"

        retired = dashdesk("broker", "retire", "shop-auth", "--mqtt-url", broker_url, "--data-dir",
                           str(up.data_dir), env=up.env)
        assert retired.returncode == 0, retired.stderr
        assert connack_refused(printed["mqtt_url"]).value == NOT_AUTHORIZED

        # No password on a command line, in a log or on stdout of `up`.
        secrets = mosquitto.load_service_passwords(up.data_dir)
        assert set(secrets) == {mosquitto.ADMIN_USERNAME, mosquitto.BRIDGE_USERNAME}
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        for password in secrets.values():
            assert password not in ps and password not in "\n".join(up.lines)
            assert password not in (up.data_dir / "mosquitto.log").read_text(errors="replace")
    finally:
        assert up.stop() == 0


def test_broker_commands_say_so_when_the_broker_has_no_accounts(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHDESK_")}
    env["DASHDESK_CONFIG"] = str(tmp_path / "none.toml")
    out = dashdesk("broker", "device-credentials", "shop-x", "--data-dir", str(tmp_path / "data"), env=env)
    assert out.returncode == 2
    assert 'the broker runs without accounts ([broker] auth = "none")' in out.stderr
    env["DASHDESK_BROKER__AUTH"] = "dynsec"
    out = dashdesk("broker", "retire", "shop-x", "--data-dir", str(tmp_path / "data"), env=env)
    assert out.returncode == 2 and "no admin account for the broker" in out.stderr
