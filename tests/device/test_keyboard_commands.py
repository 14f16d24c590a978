"""Lines typed on the device's stdin: a button name and optionally a press type."""

from __future__ import annotations

import pytest

from device.config import load_device_config
from device.run import parse_command

CONFIG = load_device_config({"device_id": "d1", "buttons": {"b1": {"pin": 17, "led": 27},
                                                            "b2": {"pin": 22, "led": 23}}}, env={})


@pytest.mark.parametrize("line, command", [
    ("b1\n", ("b1", "single")),
    ("  b2 long ", ("b2", "long")),
    ("b2 double", ("b2", "double")),
    ("\n", None),
])
def test_good_lines_name_a_button_and_press(line, command):
    assert parse_command(line, CONFIG) == command


@pytest.mark.parametrize("line, message", [
    ("b9", "no button 'b9'; this device has b1, b2"),
    ("b1 triple", "press must be one of single, double, long"),
    ("b1 long now", "expected 'BUTTON"),
])
def test_bad_lines_say_what_is_wrong(line, message):
    with pytest.raises(ValueError, match=message):
        parse_command(line, CONFIG)
