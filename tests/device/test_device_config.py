"""The device TOML: the shipped examples load, relative queue paths land in the data dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.config import load_device_config

CONFIG = Path(__file__).resolve().parents[2] / "config"


def test_example_config_loads_with_its_documented_values():
    cfg = load_device_config(CONFIG / "device.example.toml", env={})
    assert cfg.device_id == "shop-042-front"
    assert (cfg.long_press_s, cfg.double_window_s, cfg.ack_timeout_s, cfg.telemetry_interval_s) == (
        1.0, 0.4, 5.0, 60.0)
    assert cfg.button("b1").pin == 17 and cfg.button("b1").led == 27 and cfg.button("b1").double
    assert [p["kind"] for p in cfg.probes] == ["cups", "http"]
    assert cfg.queue_path == Path("./dashdesk-data/device-queue.sqlite3")


def test_demo_config_has_the_demo_shops_three_buttons_on_mock_pins(tmp_path):
    cfg = load_device_config(CONFIG / "demo-device.toml", env={"DASHDESK_DATA_DIR": str(tmp_path)})
    assert cfg.device_id == "shop-demo" and cfg.pin_factory == "mock"
    assert [(b.name, b.label, b.pin, b.led) for b in cfg.buttons] == [
        ("b1", "Printer", 17, 27), ("b2", "Till", 22, 23), ("b3", "Sales app", 5, 6)]
    assert cfg.queue_path.parent == tmp_path


def test_data_dir_from_the_file_and_absolute_queue_paths(tmp_path):
    base = {"device_id": "d1", "buttons": {"b1": {"pin": 17, "led": 27}}}
    cfg = load_device_config(base | {"data_dir": str(tmp_path), "queue_path": "q.db"}, env={})
    assert cfg.queue_path == tmp_path / "q.db"
    cfg = load_device_config(base | {"queue_path": str(tmp_path / "abs.db")},
                             env={"DASHDESK_DATA_DIR": "/elsewhere"})
    assert cfg.queue_path == tmp_path / "abs.db"
    assert cfg.button("b1").label == "b1" and cfg.mqtt_url == "mqtt://127.0.0.1:1883"


@pytest.mark.parametrize("change, message", [
    ({"device_id": "Shop 42"}, "device_id"),
    ({"buttons": {}}, "at least one"),
    ({"buttons": {"B 1": {"pin": 17, "led": 27}}}, "button name"),
    ({"buttons": {"b1": {"pin": "17", "led": 27}}}, "integer pin and led"),
    ({"probes": [{"name": "p", "kind": "ping"}]}, "kind must be one of"),
])
def test_mistakes_are_refused_with_a_reason(change, message):
    base = {"device_id": "d1", "buttons": {"b1": {"pin": 17, "led": 27}}}
    with pytest.raises(ValueError, match=message):
        load_device_config(base | change, env={})
