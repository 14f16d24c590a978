"""Broker accounts on Mosquitto's dynamic security plugin: the adapter behind ``BrokerAccountStore``.

Each device its own MQTT username and password, each of dashdesk's services its own.

With ``[broker] auth = "dynsec"`` the Mosquitto that ``dashdesk up`` starts loads
its dynamic security plugin (shipped with Mosquitto 2). The accounts live in
the plugin's JSON file under the data dir (``launcher.broker_setup`` makes it
before the broker starts); :class:`DynsecAccounts` changes them while the
broker runs, as the admin account, by publishing JSON commands to
``$CONTROL/dynamic-security/v1`` and reading the answers on ``.../response``.

How the plugin behaves (checked against Mosquitto 2.0.11, and relied on here):

- Its ACL topics know no ``%u``/``%c`` substitution (that comes with 2.1), so
  every device has a role of its own, ``dashdesk-device:<device_id>``, that
  allows ``<root>/devices/<device_id>/#`` and nothing else.
- A publish the ACLs deny is dropped: an MQTT 5 QoS 1 publish gets PUBACK
  0x87 (Not authorized), a denied subscription SUBACK 0x87; the connection
  stays up. A wrong password or no username gets CONNACK "not authorised".
- Setting a client's password, disabling or deleting it closes its
  connection at once, without publishing its will: the device's retained
  ``online`` would stay on its ``status`` topic, so whatever here closes a
  device's connection publishes a retained ``offline`` there itself, as the
  admin account (whose role allows exactly that: :func:`admin_acls`).
- Client ids: a plugin client may pin one (``clientid``), but the device agent
  and ``dashdesk press`` choose their own. The broker's listeners run with
  ``use_username_as_clientid`` instead, so every client id *is* its username
  (the device id) and no device can take over another's session. The price:
  one connection per account at a time; a second one takes the first's place.
- Nothing is allowed unless a role says so, receiving included: a session
  that subscribed before authentication was switched on gets nothing now.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from dashdesk import mqtt as dd_mqtt
from dashdesk import wire

from server.domain.broker_store import BrokerAuthError, DeviceAccount, NoSuchDevice

# The log name operators filter on, kept from before the module moved.
log = logging.getLogger("dashdesk.broker_auth")

ADMIN_USERNAME = "dashdesk.admin"
# The dot keeps dashdesk's own accounts apart from devices: no device id may hold one.
BRIDGE_USERNAME = "dashdesk.bridge"
ADMIN_ROLE = "dashdesk-admin"
BRIDGE_ROLE = "dashdesk-bridge"
DEVICE_ROLE_PREFIX = "dashdesk-device:"
CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"

# Where `dashdesk up` keeps the plugin's file and the services' passwords (a 0700 directory).
AUTH_DIR = "broker-auth"
DYNSEC_FILE = "dynamic-security.json"
SERVICE_PASSWORDS_FILE = "service-accounts.json"

# 24 random bytes, 32 URL-safe characters: no brute force reaches them, so the
# plugin's own PBKDF2 cost (101 rounds of SHA-512) is no weakness.
PASSWORD_BYTES = 24
# How long one round of commands may take (connect, subscribe, answer).
COMMAND_TIMEOUT_S = 10.0


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


# ---------------------------------------------------------------- roles


def _acl(acltype: str, topic: str) -> dict[str, Any]:
    return {"acltype": acltype, "topic": topic, "priority": 0, "allow": True}


def admin_acls(topic_root: str = wire.DEFAULT_TOPIC_ROOT) -> list[dict[str, Any]]:
    """The account manager sends commands and reads their answers, and says a device it disconnected is
    ``offline`` on the device's ``status`` topic (the broker publishes no will then); nothing else."""
    return [_acl("publishClientSend", CONTROL_TOPIC), _acl("subscribePattern", RESPONSE_TOPIC),
            _acl("publishClientReceive", RESPONSE_TOPIC),
            _acl("publishClientSend", wire.Topics(topic_root).status("+"))]


def bridge_acls(topic_root: str = wire.DEFAULT_TOPIC_ROOT) -> list[dict[str, Any]]:
    """Read every device's presses, telemetry and status; write every device's acks and tickets."""
    acls = []
    for leaf in ("press", "telemetry", "status"):
        topic = f"{topic_root}/devices/+/{leaf}"
        # $share/...: several bridges sharing one subscription (the plugin checks the filter as given).
        acls += [_acl("subscribePattern", topic), _acl("subscribePattern", f"$share/+/{topic}"),
                 _acl("publishClientReceive", topic)]
    for leaf in ("ack", "tickets"):
        acls.append(_acl("publishClientSend", f"{topic_root}/devices/+/{leaf}"))
    return acls


def device_role(device_id: str) -> str:
    return DEVICE_ROLE_PREFIX + device_id


def device_acls(device_id: str, topic_root: str = wire.DEFAULT_TOPIC_ROOT) -> list[dict[str, Any]]:
    """Publish, subscribe and receive under ``<root>/devices/<device_id>/`` only."""
    subtree = f"{topic_root}/devices/{device_id}/#"
    return [_acl(kind, subtree) for kind in ("publishClientSend", "subscribePattern", "publishClientReceive")]


# Everything not allowed by a role is refused, receiving included.
DEFAULT_ACL_ACCESS = {"publishClientSend": False, "publishClientReceive": False, "subscribe": False,
                      "unsubscribe": True}
# dashdesk's own accounts other than the admin: username → (role, its ACLs for a topic root).
SERVICES = {BRIDGE_USERNAME: (BRIDGE_ROLE, bridge_acls)}


def check_device_id(device_id: Any) -> str:
    if not wire.valid_id(device_id):
        raise ValueError(f"device id {str(device_id)[:70]!r} does not match {wire.ID_PATTERN.pattern}")
    return device_id


# ---------------------------------------------------------------- the passwords `dashdesk up` keeps


def auth_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / AUTH_DIR


def load_service_passwords(data_dir: str | Path) -> dict[str, str]:
    """The services' passwords kept in ``data_dir`` ({} if none were made there)."""
    path = auth_dir(data_dir) / SERVICE_PASSWORDS_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise BrokerAuthError(f"{path} is not JSON: {exc}") from None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def service_passwords_stamp(data_dir: str | Path) -> tuple[int, int, int] | None:
    """What changes whenever the services' passwords file in ``data_dir`` is written (it is replaced
    whole: ``launcher.broker_setup.write_private_file``), None while there is none: read it again only if this changed."""
    try:
        st = (auth_dir(data_dir) / SERVICE_PASSWORDS_FILE).stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


# ---------------------------------------------------------------- the account manager


class DynsecAccounts:
    """Give devices their own broker accounts, disable and retire them, on Mosquitto's dynsec plugin.

    Each call makes one connection as the admin account, sends its commands (a
    round to read the account, then one to change it), waits for the answers
    and disconnects. Calls are safe to repeat: a call cut short (the broker
    restarting, say) can simply be made again.

    >>> accounts = DynsecAccounts("mqtt://dashdesk.admin:secret@127.0.0.1:1883")
    >>> password = accounts.add_device("shop-042-front")  # show it once, to the installer
    >>> accounts.set_device_enabled("shop-042-front", False)  # disconnected, refused until enabled
    >>> accounts.remove_device("shop-042-front")  # retired: disconnected, its account gone
    """

    # One admin connection at a time per process: with use_username_as_clientid
    # two would share a client id and take each other's place.
    _lock = threading.Lock()

    def __init__(self, admin_url: str, *, topic_root: str = wire.DEFAULT_TOPIC_ROOT, protocol: int = 5,
                 service_passwords: Mapping[str, str] | None = None,
                 timeout: float = COMMAND_TIMEOUT_S):
        self.admin_url = admin_url
        self.topic_root = topic_root
        self.protocol = int(protocol)
        self.service_passwords = dict(service_passwords or {})
        self.timeout = timeout
        # The connection open on this thread (``connection``), if any.
        self._open = threading.local()

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], *, mqtt_url: str | None = None) -> "DynsecAccounts":
        """The manager for the broker ``cfg`` names: ``[broker] admin_url`` if set (the
        ``DASHDESK_BROKER_ADMIN_URL`` variable), else ``mqtt_url`` or ``[mqtt] url`` with the admin
        password ``dashdesk up`` made in the data dir."""
        data_dir = Path(cfg.get("data_dir") or "./dashdesk-data")
        mqtt_cfg = cfg.get("mqtt", {})
        passwords = load_service_passwords(data_dir)
        admin_url = str(cfg.get("broker", {}).get("admin_url") or "")
        if not admin_url:
            if ADMIN_USERNAME not in passwords:
                raise BrokerAuthError(
                    f"no admin account for the broker: {auth_dir(data_dir) / SERVICE_PASSWORDS_FILE} does not "
                    "exist (`dashdesk up` with [broker] auth = \"dynsec\" makes it), and [broker] admin_url "
                    "(DASHDESK_BROKER_ADMIN_URL) is not set")
            admin_url = dd_mqtt.url_with_credentials(mqtt_url or mqtt_cfg.get("url", "mqtt://127.0.0.1:1883"),
                                                     ADMIN_USERNAME, passwords[ADMIN_USERNAME])
        return cls(admin_url, topic_root=mqtt_cfg.get("topic_root", wire.DEFAULT_TOPIC_ROOT),
                   protocol=int(mqtt_cfg.get("protocol", 5)), service_passwords=passwords)

    # ------------------------------------------------------------ devices

    def add_device(self, device_id: str) -> str:
        """Create or replace ``device_id``'s account and return its new password (show it once).

        A device that had an account is disconnected and its old password stops working; its ``status``
        topic says ``offline`` (:meth:`say_offline`).
        """
        check_device_id(device_id)
        password = new_password()
        role, acls = device_role(device_id), device_acls(device_id, self.topic_root)
        with self.connection():
            # Refuses to replace an account that is not a device's.
            had = self._device_client(device_id) is not None
            self._run([
                {"command": "createRole", "rolename": role, "textname": f"device {device_id}", "acls": acls},
                # A role made by an older dashdesk (or a topic root since changed) gets today's ACLs.
                {"command": "modifyRole", "rolename": role, "acls": acls},
                # Delete, then create: the old password and connection go, in one round.
                {"command": "deleteClient", "username": device_id},
                {"command": "createClient", "username": device_id, "password": password,
                 "textname": f"device {device_id}", "roles": [{"rolename": role}]},
            ], allowed={"createRole": "Role already exists", "deleteClient": "Client not found"})
            if had:
                self.say_offline(device_id)
        return password

    def keep_or_add_device(self, device_id: str) -> str | None:
        """Give ``device_id`` an account if it has none, and return its password (show it once); None if it
        has one already: it is kept as it is (enabled, if it was not), its password goes on working and its
        connection stays up. For an approval: the device may have been set up with credentials from
        ``dashdesk broker device-credentials`` before anyone approved it."""
        check_device_id(device_id)
        with self.connection():
            client = self._device_client(device_id)
            if client is None:
                return self.add_device(device_id)
            if client.get("disabled", False):
                self._run([{"command": "enableClient", "username": device_id}])
        return None

    def remove_device(self, device_id: str) -> None:
        """Retire ``device_id``: close its connection and delete its account (no error if it has none); its
        ``status`` topic says ``offline``."""
        check_device_id(device_id)
        with self.connection():
            had = self._device_client(device_id) is not None
            self._run([{"command": "deleteClient", "username": device_id},
                       {"command": "deleteRole", "rolename": device_role(device_id)}],
                      allowed={"deleteClient": "Client not found", "deleteRole": "Role not found"})
            if had:
                self.say_offline(device_id)

    def set_device_enabled(self, device_id: str, enabled: bool) -> None:
        """Let ``device_id`` connect again, or close its connection (its ``status`` topic then says
        ``offline``) and refuse it until enabled.

        Raises :class:`NoSuchDevice` if it has no account.
        """
        check_device_id(device_id)
        with self.connection():
            if self._device_client(device_id) is None:
                raise NoSuchDevice(device_id)
            self._run([{"command": "enableClient" if enabled else "disableClient", "username": device_id}])
            if not enabled:
                self.say_offline(device_id)

    def say_offline(self, device_id: str) -> bool:
        """Publish a retained ``offline`` on ``device_id``'s ``status`` topic, as its will would have been:
        the plugin publishes no will for a connection it closes, and the retained ``online`` would stay for
        every later subscriber (the bridge after a restart, and so the admin pages). False, with a warning
        in the log, if the broker did not take it (the admin account's role lacks :func:`admin_acls`)."""
        topic = wire.Topics(self.topic_root).status(check_device_id(device_id))
        try:
            with self.connection():
                self._open.connection.publish(topic, "offline")
        except BrokerAuthError as exc:
            log.warning("%s was disconnected, but %s could not be set to offline: %s", device_id, topic, exc)
            return False
        return True

    def usernames(self) -> set[str]:
        """Every account's username on the broker (devices' and others'), in one round."""
        [answer] = self._run([{"command": "listClients", "verbose": False, "count": -1}])
        clients = (answer.get("data") or {}).get("clients") or []
        return {c if isinstance(c, str) else str(c.get("username")) for c in clients}

    def device(self, device_id: str) -> DeviceAccount | None:
        """``device_id``'s account (whether it is enabled), or None if it has none."""
        client = self._device_client(device_id)
        return None if client is None else DeviceAccount(device_id, enabled=not client.get("disabled", False))

    def _device_client(self, device_id: str) -> dict[str, Any] | None:
        """The plugin's client ``device_id``, None if there is none; an error if it is not a device's.

        On a broker shared with other programs, a device id ("admin", say) may name
        someone else's account: that one is never changed here.
        """
        check_device_id(device_id)
        [answer] = self._run([{"command": "getClient", "username": device_id}],
                             allowed={"getClient": "Client not found"})
        if answer.get("error"):
            return None
        client = answer.get("data", {}).get("client", {})
        roles = [r.get("rolename") for r in client.get("roles", [])]
        if roles != [device_role(device_id)] or client.get("groups"):
            raise BrokerAuthError(f"the broker's account {device_id!r} is not a dashdesk device's (roles "
                                  f"{roles}): it is left alone")
        return client

    # ------------------------------------------------------------ services

    def ensure_service_accounts(self) -> dict[str, str]:
        """Make dashdesk's own accounts (the bridge's) as this dashdesk needs them; return their passwords.

        Roles get today's ACLs; each account gets the password kept for it
        (``service_passwords``; a new one if none was, which the caller keeps: `dashdesk up`
        in its data dir), which closes a connection it had: call it before the bridge
        starts. Nothing else is allowed by default.
        """
        commands: list[dict[str, Any]] = [{"command": "setDefaultACLAccess", "acls": [
            {"acltype": kind, "allow": allow} for kind, allow in DEFAULT_ACL_ACCESS.items()]}]
        made = {}
        for username, (role, acls_for) in SERVICES.items():
            password = self.service_passwords.get(username) or new_password()
            made[username] = password
            acls = acls_for(self.topic_root)
            commands += [
                {"command": "createRole", "rolename": role, "acls": acls},
                {"command": "modifyRole", "rolename": role, "acls": acls},
                {"command": "createClient", "username": username, "password": password,
                 "roles": [{"rolename": role}]},
                {"command": "setClientPassword", "username": username, "password": password},
                {"command": "modifyClient", "username": username, "roles": [{"rolename": role}]},
                {"command": "enableClient", "username": username},
            ]
        self._run(commands, allowed={"createRole": "Role already exists", "createClient": "Client already exists"})
        self.service_passwords.update(made)
        return made

    # ------------------------------------------------------------ the wire

    def _run(self, commands: list[dict[str, Any]], allowed: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Send ``commands`` in one message; return their answers, in order.

        An error answer raises :class:`BrokerAuthError` unless ``allowed`` names it
        for that command (``Client not found`` when deleting, say).
        """
        answers = self._exchange(commands)
        allowed = allowed or {}
        for command, answer in zip(commands, answers):
            error = answer.get("error")
            if error and allowed.get(command["command"]) != error:
                what = command.get("username") or command.get("rolename") or ""
                raise BrokerAuthError(f"{command['command']} {what}: {error}".replace("  ", " "))
        return answers

    @contextlib.contextmanager
    def connection(self) -> Iterator[None]:
        """Send every round of commands made inside over one admin connection, made here and closed at
        the end (a call reads the device's account, then changes it: one connection, not two). Inside
        another, on the same thread, it is that one."""
        if getattr(self._open, "connection", None) is not None:
            yield
            return
        with self._lock:
            opened = _AdminConnection(self.admin_url, self.protocol, self.timeout)
            self._open.connection = opened
            try:
                yield
            finally:
                self._open.connection = None
                opened.close()

    def _exchange(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self.connection():
            return self._open.connection.exchange(commands)


@dataclass
class _Round:
    """One message of commands waiting for its answers (matched by their correlation data)."""

    tag: str
    payload: str
    count: int
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)


class _AdminConnection:
    """A connection as the admin account, subscribed to the plugin's answers; rounds of commands go over
    it one after another (:meth:`exchange`).

    A connection taken over by another admin (same client id: the username) comes back by itself; it
    subscribes anew and the round waiting for answers is sent again (commands are safe to repeat).
    A refusal of the admin account, or a broker never reached, fails this round and every later one.
    """

    def __init__(self, admin_url: str, protocol: int, timeout: float):
        self.where = dd_mqtt.url_without_credentials(admin_url)
        self.timeout = timeout
        self._state = threading.Lock()
        self._connected = threading.Event()
        self._subscribed = False
        self._failure: str | None = None
        self._round: _Round | None = None
        # PUBACKs of this connection's own publishes: mid → reason code.
        self._pubacks: dict[int, Any] = {}
        self._published = threading.Condition(self._state)
        self.client, broker = dd_mqtt.make_client(admin_url, f"dashdesk-admin-{uuid.uuid4().hex[:12]}",
                                                  protocol=protocol, persistent=False)
        self.client.on_connect, self.client.on_subscribe = self._on_connect, self._on_subscribe
        self.client.on_message, self.client.on_connect_fail = self._on_message, self._on_connect_fail
        self.client.on_disconnect, self.client.on_publish = self._on_disconnect, self._on_publish
        dd_mqtt.connect(self.client, broker, protocol=protocol, persistent=False)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def exchange(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send ``commands`` in one message and wait (``timeout``) for their answers, in order."""
        tag = uuid.uuid4().hex
        commands = [{**c, "correlationData": f"{tag}-{i}"} for i, c in enumerate(commands)]
        waiting = _Round(tag, json.dumps({"commands": commands}), len(commands))
        with self._state:
            if self._failure is not None:
                raise BrokerAuthError(self._failure)
            self._round = waiting
            send_now = self._subscribed
        if send_now:  # else on_subscribe sends it
            self.client.publish(CONTROL_TOPIC, waiting.payload, qos=1)
        answered = waiting.done.wait(self.timeout)
        with self._state:
            self._round = None
            failure = self._failure
        if failure is not None:
            raise BrokerAuthError(failure)
        if not answered:
            raise BrokerAuthError(f"no answer from the broker's dynamic security plugin at {self.where} within "
                                  f"{self.timeout:g} s" + ("" if self._connected.is_set() else " (not connected)"))
        return [waiting.answers[f"{tag}-{i}"] for i in range(len(commands))]

    def publish(self, topic: str, payload: str) -> None:
        """Publish ``payload`` on ``topic``, retained, at QoS 1, and wait (``timeout``) for the broker's PUBACK;
        one that refuses it (MQTT 5: the ACLs do not allow it) raises :class:`BrokerAuthError`."""
        if not self._connected.wait(self.timeout) or self._failure is not None:
            raise BrokerAuthError(self._failure or f"not connected to the broker at {self.where}")
        info = self.client.publish(topic, payload, qos=1, retain=True)
        with self._state:
            if not self._published.wait_for(lambda: info.mid in self._pubacks, self.timeout):
                raise BrokerAuthError(f"no answer from the broker at {self.where} within {self.timeout:g} s")
            code = self._pubacks.pop(info.mid)
        if getattr(code, "is_failure", False):
            raise BrokerAuthError(f"the broker refused the admin account's publish on {topic}: {code}")

    def _on_publish(self, _c: Any, _u: Any, mid: int, code: Any, _p: Any = None) -> None:
        with self._state:
            self._pubacks[mid] = code
            self._published.notify_all()

    def _fail(self, reason: str) -> None:
        with self._state:
            if self._failure is None:
                self._failure = reason
            waiting = self._round
        if waiting is not None:
            waiting.done.set()

    def _on_connect(self, c: Any, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if rc.is_failure:
            self._fail(f"the broker refused the admin account: {rc}")
            return
        self._connected.set()
        with self._state:
            self._subscribed = False
        c.subscribe(RESPONSE_TOPIC, qos=1)

    def _on_disconnect(self, *_: Any) -> None:
        with self._state:
            self._subscribed = False  # a round made now waits for the connection to come back

    def _on_subscribe(self, c: Any, _u: Any, _mid: Any, codes: list[Any], _p: Any = None) -> None:
        if any(code.is_failure for code in codes):
            self._fail(f"the admin account may not read {RESPONSE_TOPIC}")
            return
        with self._state:
            self._subscribed = True
            waiting = self._round
        if waiting is not None:
            c.publish(CONTROL_TOPIC, waiting.payload, qos=1)

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        try:
            responses = json.loads(msg.payload).get("responses", [])
        except (ValueError, AttributeError):
            return
        with self._state:
            waiting = self._round
        if waiting is None:
            return
        for r in responses:
            key = r.get("correlationData") if isinstance(r, dict) else None
            if isinstance(key, str) and key.startswith(waiting.tag):
                waiting.answers[key] = r
        if len(waiting.answers) == waiting.count:
            waiting.done.set()

    def _on_connect_fail(self, _c: Any, _u: Any) -> None:
        if not self._connected.is_set():
            self._fail(f"could not reach the broker at {self.where}")

