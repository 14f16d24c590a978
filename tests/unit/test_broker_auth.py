"""Broker accounts without a broker: files, URLs, roles, the Mosquitto config and the settings."""

from __future__ import annotations

import json
import stat

import pytest

from broker_bridge.bridge import BridgeSettings
from dashdesk import config, wire
from dashdesk import mqtt as dd_mqtt
from dashdesk.mqtt import BrokerURL
from launcher import broker, broker_setup
from launcher import supervisor as sup
from server.domain import mosquitto


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_url_with_credentials_keeps_scheme_host_port_and_path_and_quotes_what_it_must():
    assert dd_mqtt.url_with_credentials("mqtt://127.0.0.1:1883", "shop-1", "pw") == \
        "mqtt://shop-1:pw@127.0.0.1:1883"
    url = dd_mqtt.url_with_credentials("ws://old:creds@broker.lan:9001/mqtt", "shop-1", "p@ss:w/rd")
    assert url == "ws://shop-1:p%40ss%3Aw%2Frd@broker.lan:9001/mqtt"
    parsed = BrokerURL.parse(url)
    assert (parsed.username, parsed.password, parsed.host, parsed.port, parsed.transport) == \
        ("shop-1", "p@ss:w/rd", "broker.lan", 9001, "websockets")
    assert dd_mqtt.url_with_credentials("mqtt://[::1]:1883", "a", "b") == "mqtt://a:b@[::1]:1883"
    assert dd_mqtt.url_without_credentials(url) == "ws://broker.lan:9001/mqtt"


def test_passwords_are_long_random_and_hashed_as_the_plugin_does():
    passwords = {mosquitto.new_password() for _ in range(50)}
    assert len(passwords) == 50 and all(len(p) == 32 for p in passwords)
    # The hash of `mosquitto_ctrl dynsec init` for password "secretpw" (Mosquitto 2.0.11).
    made = {"salt": "iTVXXQpO+yJK+Q4W", "iterations": 101,
            "password": "LHQbcnYxur48MTNSF5CDgYs9BsNbOlhNBfVvqjuZJwFFqpwGgJvxbhcomLXcDam4LV2mTrRoMVb0YvdS7BeMXA=="}
    assert broker_setup.password_matches(made, "secretpw")
    assert not broker_setup.password_matches(made, "secretpx")


def test_prepare_makes_private_files_once_with_an_admin_account(tmp_path):
    first = broker_setup.prepare(tmp_path)
    directory = tmp_path / "broker-auth"
    assert first.directory == directory and mode(directory) == 0o700
    assert set(first.passwords) == {mosquitto.ADMIN_USERNAME, mosquitto.BRIDGE_USERNAME}
    for name in (mosquitto.DYNSEC_FILE, mosquitto.SERVICE_PASSWORDS_FILE):
        assert mode(directory / name) == 0o600
    plugin = json.loads(first.dynsec_config.read_text())
    [admin] = plugin["clients"]
    assert admin["username"] == mosquitto.ADMIN_USERNAME
    assert broker_setup.password_matches(admin, first.passwords[mosquitto.ADMIN_USERNAME])
    assert plugin["defaultACLAccess"] == {"publishClientSend": False, "publishClientReceive": False,
                                          "subscribe": False, "unsubscribe": True}
    # The admin may send commands and read answers, and say that a device it disconnected is offline
    # (publish on the devices' status topics); nothing else.
    [role] = plugin["roles"]
    assert {(a["acltype"], a["topic"]) for a in role["acls"]} == {
        ("publishClientSend", mosquitto.CONTROL_TOPIC), ("subscribePattern", mosquitto.RESPONSE_TOPIC),
        ("publishClientReceive", mosquitto.RESPONSE_TOPIC), ("publishClientSend", "dashdesk/v1/devices/+/status")}

    before = first.dynsec_config.read_bytes()
    again = broker_setup.prepare(tmp_path)
    assert again.passwords == first.passwords and first.dynsec_config.read_bytes() == before


def test_prepare_gives_an_existing_admin_role_the_status_topics_under_the_topic_root(tmp_path):
    """A plugin file made by an older dashdesk (the admin could not publish a device's offline) is brought up to
    date at the next start, under the configured topic root; the rest of the file stays."""
    secrets = broker_setup.prepare(tmp_path)
    plugin = json.loads(secrets.dynsec_config.read_text())
    [role] = plugin["roles"]
    role["acls"] = role["acls"][:3]
    device = {"username": "shop-1", "roles": [{"rolename": "dashdesk-device:shop-1"}]}
    plugin["clients"].append(device)
    secrets.dynsec_config.write_text(json.dumps(plugin))
    again = broker_setup.prepare(tmp_path, "chain/v2")
    plugin = json.loads(again.dynsec_config.read_text())
    [role] = [r for r in plugin["roles"] if r["rolename"] == mosquitto.ADMIN_ROLE]
    assert role["acls"] == mosquitto.admin_acls("chain/v2")
    assert ("publishClientSend", "chain/v2/devices/+/status") in {(a["acltype"], a["topic"]) for a in role["acls"]}
    assert device in plugin["clients"] and again.passwords == secrets.passwords


def test_a_lost_passwords_file_gives_a_new_admin_password_and_keeps_the_devices(tmp_path):
    secrets = broker_setup.prepare(tmp_path)
    plugin = json.loads(secrets.dynsec_config.read_text())
    device = {"username": "shop-1", "roles": [{"rolename": "dashdesk-device:shop-1"}]}
    plugin["clients"].append(device)
    secrets.dynsec_config.write_text(json.dumps(plugin))
    (secrets.directory / mosquitto.SERVICE_PASSWORDS_FILE).unlink()

    renewed = broker_setup.prepare(tmp_path)
    new_admin = renewed.passwords[mosquitto.ADMIN_USERNAME]
    assert new_admin != secrets.passwords[mosquitto.ADMIN_USERNAME]
    plugin = json.loads(renewed.dynsec_config.read_text())
    admins = [c for c in plugin["clients"] if c["username"] == mosquitto.ADMIN_USERNAME]
    assert len(admins) == 1 and broker_setup.password_matches(admins[0], new_admin)
    assert device in plugin["clients"]
    assert mode(renewed.dynsec_config) == 0o600


def test_each_device_role_covers_its_own_topics_only():
    acls = mosquitto.device_acls("shop-1")
    assert {(a["acltype"], a["topic"], a["allow"]) for a in acls} == {
        ("publishClientSend", "dashdesk/v1/devices/shop-1/#", True),
        ("subscribePattern", "dashdesk/v1/devices/shop-1/#", True),
        ("publishClientReceive", "dashdesk/v1/devices/shop-1/#", True)}
    assert mosquitto.device_role("shop-1") == "dashdesk-device:shop-1"
    bridge = {(a["acltype"], a["topic"]) for a in mosquitto.bridge_acls("x/v1")}
    assert ("subscribePattern", "x/v1/devices/+/press") in bridge
    assert ("publishClientSend", "x/v1/devices/+/ack") in bridge
    assert ("publishClientSend", "x/v1/devices/+/press") not in bridge
    assert not any(a.startswith("publishClientSend") and t.endswith("/#") for a, t in bridge)


def test_service_usernames_can_never_be_device_ids():
    for username in (mosquitto.ADMIN_USERNAME, mosquitto.BRIDGE_USERNAME):
        assert not wire.valid_id(username)
        with pytest.raises(ValueError):
            mosquitto.check_device_id(username)


def test_mosquitto_config_with_accounts_refuses_anonymous_clients_on_every_listener(tmp_path):
    plugin = tmp_path / "dynsec.so"
    plugin.write_bytes(b"")
    conf = broker.write_config(tmp_path, 1883, ws_port=9001, dynsec_config=tmp_path / "d.json",
                               dynsec_plugin=str(plugin)).read_text().splitlines()
    assert f"plugin {plugin}" in conf and f"plugin_opt_config_file {tmp_path / 'd.json'}" in conf
    assert "allow_anonymous true" not in conf
    assert conf.count("allow_anonymous false") == 2 and conf.count("use_username_as_clientid true") == 2
    assert conf.index(f"plugin {plugin}") < conf.index("listener 1883 127.0.0.1")


def test_mosquitto_config_without_accounts_is_as_before(tmp_path):
    conf = broker.write_config(tmp_path, 1883, ws_port=9001).read_text().splitlines()
    assert conf[-6:] == ["log_type notice", "listener 1883 127.0.0.1", "allow_anonymous true",
                         "listener 9001 127.0.0.1", "protocol websockets", "allow_anonymous true"]
    assert not any(line.startswith(("plugin", "use_username_as_clientid")) for line in conf)


def test_a_missing_plugin_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="dynamic security plugin"):
        broker.write_config(tmp_path, 1883, dynsec_config=tmp_path / "d.json",
                            dynsec_plugin=str(tmp_path / "nowhere.so"))


def test_loopback_addresses():
    assert broker.is_loopback("127.0.0.1") and broker.is_loopback("::1") and broker.is_loopback("localhost")
    assert not broker.is_loopback("0.0.0.0") and not broker.is_loopback("192.168.1.2")
    assert broker.local_address("0.0.0.0") == "127.0.0.1" and broker.local_address("10.0.0.5") == "10.0.0.5"


def make(tmp_path, env=None, **kwargs) -> sup.Supervisor:
    cfg = config.load(tmp_path / "none.toml", env=env or {})
    cfg["data_dir"] = str(tmp_path / "data")
    return sup.Supervisor(cfg, mqtt_port=broker.free_port(), **kwargs)


def test_up_refuses_a_broker_open_to_the_network_without_accounts(tmp_path):
    s = make(tmp_path, env={"DASHDESK_BROKER__HOST": "0.0.0.0"})
    with pytest.raises(sup.BrokerChoiceError, match='auth = "dynsec"'):
        s.choose_broker()


def test_up_with_accounts_needs_mosquitto_not_the_embedded_broker(tmp_path):
    s = make(tmp_path, env={"DASHDESK_BROKER__AUTH": "dynsec"}, broker_kind="embedded")
    with pytest.raises(sup.BrokerChoiceError, match="embedded broker has no accounts"):
        s.choose_broker()
    s = make(tmp_path, env={"DASHDESK_BROKER__AUTH": "passwords"})
    with pytest.raises(sup.BrokerChoiceError, match="auth must be one of none, dynsec"):
        s.choose_broker()


def test_up_with_accounts_on_the_network(tmp_path, monkeypatch):
    monkeypatch.setattr(broker, "find_mosquitto", lambda: "/usr/sbin/mosquitto")
    monkeypatch.setattr(broker, "find_dynsec_plugin", lambda configured=None: "/usr/lib/dynsec.so")
    monkeypatch.setattr(broker, "mosquitto_version", lambda exe=None: (2, 0, 11))
    s = make(tmp_path, env={"DASHDESK_BROKER__AUTH": "dynsec", "DASHDESK_BROKER__HOST": "0.0.0.0"})
    s.choose_broker()
    assert s.broker_kind == "mosquitto"
    env = s._env({})
    assert env["DASHDESK_MQTT_URL"] == f"mqtt://127.0.0.1:{s.mqtt_port}"
    assert env["DASHDESK_BROKER__AUTH"] == "dynsec"
    assert any(line.startswith("broker accounts: each device needs its own") for line in s._broker_lines())


def test_the_bridge_takes_its_url_from_the_configuration_only(tmp_path):
    cfg = config.load(tmp_path / "none.toml", env={"DASHDESK_BRIDGE_MQTT_URL": "mqtt://b:pw@broker.lan:1883",
                                                    "DASHDESK_DATA_DIR": str(tmp_path / "data")})
    assert BridgeSettings.from_config(cfg).mqtt_url == "mqtt://b:pw@broker.lan:1883"

    # the passwords `dashdesk up` keeps in the data dir are not the bridge's to read
    broker_setup.prepare(tmp_path / "data")
    cfg = config.load(tmp_path / "none.toml", env={"DASHDESK_MQTT_URL": "mqtt://127.0.0.1:2883",
                                                    "DASHDESK_BROKER__AUTH": "dynsec",
                                                    "DASHDESK_DATA_DIR": str(tmp_path / "data")})
    assert BridgeSettings.from_config(cfg).mqtt_url == "mqtt://127.0.0.1:2883"


def test_up_hands_the_bridge_alone_its_url_with_its_password(tmp_path):
    s = make(tmp_path, env={"DASHDESK_BRIDGE_MQTT_URL": "mqtt://someone:else@broker.lan:1883"})
    s.bridge_mqtt_url = f"mqtt://{mosquitto.BRIDGE_USERNAME}:pw@127.0.0.1:{s.mqtt_port}"
    env = s._env({})
    assert "DASHDESK_BRIDGE_MQTT_URL" not in env  # not the server's nor the device's
    bridge_env = s._bridge_env(env)
    assert config.load(tmp_path / "none.toml", env=bridge_env)["bridge"]["mqtt_url"] == s.bridge_mqtt_url
    bridge_env["DASHDESK_DATA_DIR"] = str(tmp_path / "data")
    assert BridgeSettings.from_config(config.load(tmp_path / "none.toml", env=bridge_env)).mqtt_url == \
        s.bridge_mqtt_url
    s.bridge_mqtt_url = None  # auth off: the bridge connects as [mqtt] url says
    bridge_env = {**s._bridge_env(env), "DASHDESK_DATA_DIR": str(tmp_path / "data")}
    assert BridgeSettings.from_config(config.load(tmp_path / "none.toml", env=bridge_env)).mqtt_url == \
        f"mqtt://127.0.0.1:{s.mqtt_port}"


@pytest.mark.parametrize("auth", ["dynsec", "DynSec", " DYNSEC "])
def test_broker_accounts_are_on_for_the_command_line_up_and_the_server_alike(tmp_path, monkeypatch, capsys, auth):
    from launcher.cli import main
    from server.domain.broker_accounts import BrokerAccounts

    broker_setup.prepare(tmp_path / "data")
    env = {"DASHDESK_MQTT_URL": "mqtt://127.0.0.1:2883", "DASHDESK_BROKER__AUTH": auth,
           "DASHDESK_DATA_DIR": str(tmp_path / "data")}
    cfg = config.load(tmp_path / "none.toml", env=env)
    assert config.broker_auth(cfg) == "dynsec" and config.broker_accounts_enabled(cfg)
    assert BrokerAccounts.from_config(cfg).auth == "dynsec"
    assert make(tmp_path, env=env).auth == "dynsec"
    # the command line asks the broker (nothing listens here) instead of saying it has no accounts
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DASHDESK_CONFIG", str(tmp_path / "none.toml"))
    assert main(["broker", "retire", "shop-x", "--mqtt-url", f"mqtt://127.0.0.1:{broker.free_port()}"]) != 0
    err = capsys.readouterr().err
    assert "could not reach the broker" in err and "without accounts" not in err


@pytest.mark.parametrize("broker_cfg,on", [({}, False), ({"auth": "none"}, False), ({"auth": "NONE"}, False),
                                           ({"auth": ""}, False), ({"auth": "none", "admin_url": "mqtt://a:b@h"}, True)])
def test_broker_accounts_are_off_unless_configured(broker_cfg, on):
    assert config.broker_accounts_enabled({"broker": broker_cfg}) is on
    assert config.broker_accounts_enabled({}) is False


def test_account_manager_from_config_needs_an_admin_account(tmp_path):
    cfg = config.load(tmp_path / "none.toml", env={"DASHDESK_DATA_DIR": str(tmp_path / "data")})
    with pytest.raises(mosquitto.BrokerAuthError, match="no admin account"):
        mosquitto.DynsecAccounts.from_config(cfg)
    secrets = broker_setup.prepare(tmp_path / "data")
    accounts = mosquitto.DynsecAccounts.from_config(cfg, mqtt_url="mqtt://127.0.0.1:2883")
    assert accounts.admin_url == secrets.url(mosquitto.ADMIN_USERNAME, "mqtt://127.0.0.1:2883")
    cfg["broker"]["admin_url"] = "mqtt://ops:pw@broker.lan:1883"
    assert mosquitto.DynsecAccounts.from_config(cfg).admin_url == "mqtt://ops:pw@broker.lan:1883"


def test_the_servers_accounts_read_the_admin_password_once_written_and_again_only_when_it_changes(tmp_path):
    """`dashdesk up` may write the passwords file after the server started; until it changes, it is read once."""
    from server.domain.broker_accounts import BrokerAccounts

    data = tmp_path / "data"
    cfg = config.load(tmp_path / "none.toml", env={"DASHDESK_DATA_DIR": str(data), "DASHDESK_BROKER__AUTH": "dynsec",
                                                   "DASHDESK_MQTT_URL": "mqtt://127.0.0.1:2883"})
    accounts = BrokerAccounts.from_config(cfg)
    outcome = accounts.issue("shop-1")
    assert outcome.failed and "no admin account" in outcome.error
    secrets = broker_setup.prepare(data)
    first = accounts._manager()
    assert first.admin_url == secrets.url(mosquitto.ADMIN_USERNAME, "mqtt://127.0.0.1:2883")
    assert accounts._manager() is first
    # a new admin password (the file replaced): the next call uses it
    path = mosquitto.auth_dir(data) / mosquitto.SERVICE_PASSWORDS_FILE
    broker_setup.write_private_file(path, json.dumps({**secrets.passwords, mosquitto.ADMIN_USERNAME: "new-pw"}))
    assert accounts._manager().admin_url == "mqtt://dashdesk.admin:new-pw@127.0.0.1:2883"


def test_account_manager_says_when_the_broker_cannot_be_reached():
    accounts = mosquitto.DynsecAccounts(f"mqtt://a:b@127.0.0.1:{broker.free_port()}", timeout=5)
    with pytest.raises(mosquitto.BrokerAuthError, match="could not reach the broker at mqtt://127.0.0.1"):
        accounts.add_device("shop-1")
