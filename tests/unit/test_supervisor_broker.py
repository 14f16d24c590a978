"""Which broker `dashdesk up` runs, with which protocol and WebSockets port (no processes started)."""

from __future__ import annotations

import pytest

from dashdesk import config
from launcher import broker, embedded_broker
from launcher import supervisor as sup


def make(tmp_path, **kwargs) -> sup.Supervisor:
    cfg = config.load(tmp_path / "none.toml", env={})
    cfg["data_dir"] = str(tmp_path / "data")
    return sup.Supervisor(cfg, mqtt_port=broker.free_port(), **kwargs)


@pytest.fixture
def no_mosquitto(monkeypatch):
    monkeypatch.setattr(broker, "find_mosquitto", lambda: None)


@pytest.fixture
def mosquitto_2_0_11(monkeypatch):
    monkeypatch.setattr(broker, "find_mosquitto", lambda: "/usr/sbin/mosquitto")
    monkeypatch.setattr(broker, "mosquitto_version", lambda exe=None: (2, 0, 11))


def test_without_mosquitto_auto_falls_back_to_the_embedded_broker_on_mqtt_311(tmp_path, no_mosquitto):
    s = make(tmp_path)
    s.choose_broker()
    assert (s.broker_kind, s.protocol) == ("embedded", 4)
    assert s._env({})["DASHDESK_MQTT__PROTOCOL"] == "4"  # the bridge's (and server's) environment
    # 9001 unless something else has it (a parallel test run, say): then a free port.
    assert s.ws_port == sup.DEFAULT_WS_PORT or (s.ws_port and not sup.port_free(sup.DEFAULT_WS_PORT))
    [warning, line] = s._broker_lines()
    assert warning.startswith("WARNING: using the embedded MQTT broker") and "MQTT 3.1.1 only" in warning
    assert line == f"broker: embedded (amqtt, MQTT 3.1.1) on mqtt://127.0.0.1:{s.mqtt_port}, " \
                   f"WebSockets ws://127.0.0.1:{s.ws_port}/mqtt"


def test_mosquitto_is_preferred_and_keeps_mqtt_5(tmp_path, mosquitto_2_0_11):
    s = make(tmp_path)
    s.choose_broker()
    assert (s.broker_kind, s.protocol) == ("mosquitto", 5)
    assert s._env({})["DASHDESK_MQTT__PROTOCOL"] == "5"
    # 2.0.11 would open a websockets listener to the network: none unless asked for.
    assert s.ws_port is None
    assert any(line.startswith("note: no WebSockets listener") for line in s._broker_lines())


def test_a_fixed_mosquitto_gets_the_websockets_listener_by_default(tmp_path, monkeypatch):
    monkeypatch.setattr(broker, "find_mosquitto", lambda: "/usr/sbin/mosquitto")
    monkeypatch.setattr(broker, "mosquitto_version", lambda exe=None: (2, 0, 18))
    s = make(tmp_path)
    s.choose_broker()
    assert s.broker_kind == "mosquitto" and s.ws_port


def test_ws_port_given_or_turned_off(tmp_path, mosquitto_2_0_11):
    s = make(tmp_path, ws_port=12345)
    s.choose_broker()
    assert s.ws_port == 12345
    s = make(tmp_path, broker_kind="embedded", ws_port=0)
    s.choose_broker()
    assert (s.broker_kind, s.ws_port, s.protocol) == ("embedded", None, 4)


def test_embedded_forced_where_mosquitto_is_installed(tmp_path, mosquitto_2_0_11):
    s = make(tmp_path, broker_kind="embedded")
    s.choose_broker()
    assert (s.broker_kind, s.protocol) == ("embedded", 4)


def test_mqtt_url_means_no_broker_of_our_own(tmp_path, no_mosquitto):
    s = make(tmp_path, mqtt_url="mqtt://broker.example:1883")
    s.choose_broker()
    assert s.broker_kind == "external" and s.ws_port is None and s.protocol == 5
    assert s._broker_lines() == ["broker: external, mqtt://broker.example:1883"]


def test_impossible_choices_are_refused(tmp_path, no_mosquitto, monkeypatch):
    with pytest.raises(sup.BrokerChoiceError, match="Mosquitto is not installed"):
        make(tmp_path, broker_kind="mosquitto").choose_broker()
    monkeypatch.setattr(embedded_broker, "available", lambda: False)
    with pytest.raises(sup.BrokerChoiceError, match="amqtt"):
        make(tmp_path).choose_broker()
    with pytest.raises(ValueError):
        make(tmp_path, broker_kind="rabbitmq")


def _ticket_server_probe(path) -> dict:
    import tomllib

    return next(p for p in tomllib.loads(path.read_text())["probes"] if p["name"] == "ticket-server")


def test_the_demo_device_probes_the_server_on_its_real_port(tmp_path):
    cfg = config.load(tmp_path / "none.toml", env={})
    cfg["data_dir"] = str(tmp_path / "data")
    cfg["server"]["http_port"] = 18123
    s = sup.Supervisor(cfg, mqtt_port=broker.free_port(), demo=True)
    argv = s._demo_device_argv({"DASHDESK_MQTT_URL": "mqtt://127.0.0.1:1884"})
    path = tmp_path / "data" / "demo-device.toml"
    assert argv == ["--device-config", str(path), "--mqtt-url", "mqtt://127.0.0.1:1884"]
    assert _ticket_server_probe(path) == {"name": "ticket-server", "kind": "tcp", "host": "127.0.0.1",
                                          "port": 18123}


def test_the_demo_device_file_with_credentials_probes_the_real_port_too():
    import tomllib

    source = config.default_file("demo-device.toml").read_text()
    text = sup.demo_device_toml(source, 18124, "mqtt://shop-demo:pw@127.0.0.1:1883")
    loaded = tomllib.loads(text)
    assert loaded["mqtt_url"] == "mqtt://shop-demo:pw@127.0.0.1:1883"
    assert [p["port"] for p in loaded["probes"] if p["name"] == "ticket-server"] == [18124]
    # the rest of the file as it was
    assert {k: v for k, v in loaded.items() if k not in ("mqtt_url", "probes")} == \
        {k: v for k, v in tomllib.loads(source).items() if k not in ("mqtt_url", "probes")}
