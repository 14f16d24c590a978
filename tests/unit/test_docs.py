"""Every configuration key the code knows is documented in docs/operating.md, with the variable that overrides it.

The keys come from where the code takes them: the shipped defaults (``config/dashdesk.toml``, which
``dashdesk.config.load`` reads first), ``dashdesk.config.ENV_KEYS`` for the variables with names of their
own, and the fields of ``device.config.DeviceConfig`` and ``ButtonConfig`` for a device's file.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from dashdesk import config
from device.config import ButtonConfig, DeviceConfig

OPERATING = Path(__file__).resolve().parents[2] / "docs" / "operating.md"


def _section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of any level."""
    start = text.index(heading + "\n") + len(heading)
    following = re.search(r"^#{1,6} ", text[start:], re.M)
    return text[start:start + following.start()] if following else text[start:]


def _rows(section: str) -> list[list[str]]:
    """The body rows of the section's first table, as cells (the header and its rule left out)."""
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines[2:]]


def _ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def _documented_keys() -> dict[str, str]:
    """``{"[section] key" or "key": its environment variable}`` from operating.md's table."""
    rows = _rows(_section(OPERATING.read_text(), "## Configuration keys"))
    return {_ticked(row[0])[0]: _ticked(row[1])[0] for row in rows}


def _shipped_keys() -> dict[str, tuple[str, ...]]:
    """Every key of the shipped defaults, named as the docs name it, with its path in the configuration."""
    defaults = tomllib.loads(config.default_file("dashdesk.toml").read_text())
    keys: dict[str, tuple[str, ...]] = {}
    for name, value in defaults.items():
        if isinstance(value, dict):
            keys.update({f"[{name}] {key}": (name, key) for key in value})
        else:
            keys[name] = (name,)
    return keys


def _variable(path: tuple[str, ...]) -> str:
    """The variable ``dashdesk.config.load`` takes for the key at ``path``."""
    named = [name for name, where in config.ENV_KEYS.items() if where == path]
    return named[0] if named else "DASHDESK_" + "__".join(path).upper()


SHIPPED = _shipped_keys()


@pytest.mark.parametrize("key", sorted(SHIPPED))
def test_every_configuration_key_is_documented_with_its_variable(key: str) -> None:
    documented = _documented_keys()
    assert key in documented, f"{key} is in config/dashdesk.toml but not in docs/operating.md's table"
    assert documented[key] == _variable(SHIPPED[key])


def test_the_table_documents_no_key_the_configuration_does_not_have() -> None:
    assert set(_documented_keys()) - set(SHIPPED) == set()


@pytest.mark.parametrize("variable", sorted(config.ENV_KEYS))
def test_every_named_variable_is_documented(variable: str) -> None:
    assert variable in _documented_keys().values()


def _device_keys() -> tuple[set[str], set[str]]:
    """The names and the table prefixes (``[timings]``, ``[buttons.NAME]``) in the device file's table."""
    ticked = [t for row in _rows(_section(OPERATING.read_text(), "### The device's file")) for t in _ticked(row[0])]
    return {t.split()[-1] for t in ticked}, {t.split()[0] for t in ticked if " " in t}


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(DeviceConfig)])
def test_every_key_of_a_device_file_is_documented(field: str) -> None:
    names, prefixes = _device_keys()
    if field == "buttons":
        assert "[buttons.NAME]" in prefixes
    elif field == "probes":
        assert "[[probes]]" in prefixes
    else:
        assert field in names, f"{field} (device.config.DeviceConfig) is not in docs/operating.md"


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(ButtonConfig) if f.name != "name"])
def test_every_key_of_a_button_is_documented(field: str) -> None:
    names, _ = _device_keys()
    assert field in names
