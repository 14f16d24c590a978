"""Configuration: one TOML file, every key overridable by a ``DASHDESK_*`` variable.

A key ``[section] name`` is overridden by ``DASHDESK_NAME`` for the top-level
keys listed in ``ENV_KEYS`` (the contract's names), and by
``DASHDESK_SECTION__NAME`` for any other key.
"""

from __future__ import annotations

import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

DEFAULT_CONFIG = Path("config/dashdesk.toml")

# The contract's variable names, and where each lands in the configuration.
ENV_KEYS = {
    "DASHDESK_MQTT_URL": ("mqtt", "url"),
    "DASHDESK_DATABASE_URL": ("server", "database_url"),
    "DASHDESK_HTTP_PORT": ("server", "http_port"),
    "DASHDESK_SERVER_URL": ("bridge", "server_url"),
    "DASHDESK_API_TOKEN": ("bridge", "api_token"),
    "DASHDESK_TOPIC_ROOT": ("mqtt", "topic_root"),
    "DASHDESK_DATA_DIR": ("data_dir",),
    "DASHDESK_SECRET_KEY": ("server", "secret_key"),
    # Broker credentials of the bridge and of the account manager, when not made by `dashdesk up`.
    "DASHDESK_BRIDGE_MQTT_URL": ("bridge", "mqtt_url"),
    "DASHDESK_BROKER_ADMIN_URL": ("broker", "admin_url"),
}


# ``[broker] auth``: "none", or "dynsec" (Mosquitto's dynamic security plugin: every client its own account).
BROKER_AUTH_MODES = ("none", "dynsec")


def broker_auth(cfg: Mapping[str, Any]) -> str:
    """``[broker] auth`` as configured, in lower case: "none" (also when unset) or "dynsec"; `dashdesk up`
    refuses anything else (:data:`BROKER_AUTH_MODES`)."""
    return str((cfg.get("broker") or {}).get("auth") or "none").strip().lower()


def broker_accounts_enabled(cfg: Mapping[str, Any]) -> bool:
    """Whether the broker ``cfg`` names asks every client for its own account: ``[broker] auth = "dynsec"``
    (in any case), or ``[broker] admin_url`` set (a broker with accounts that `dashdesk up` does not run).

    The one answer to "are broker accounts on?" for the command line, `up` and the server.
    """
    return broker_auth(cfg) == "dynsec" or bool((cfg.get("broker") or {}).get("admin_url"))


def default_file(name: str) -> Path:
    """Path of a file shipped in ``config/`` (installed as ``dashdesk.defaults``)."""
    return Path(str(resources.files("dashdesk.defaults").joinpath(name)))


def _coerce(text: str, like: Any) -> Any:
    if isinstance(like, bool):
        return text.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(like, int):
        return int(text)
    if isinstance(like, float):
        return float(text)
    return text


def _set(cfg: dict[str, Any], path: tuple[str, ...], text: str) -> None:
    node = cfg
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = _coerce(text, node.get(path[-1]))


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load(path: str | Path | None = None, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Read the shipped defaults, then ``path`` (if it exists), then the environment."""
    env = os.environ if env is None else env
    cfg = tomllib.loads(default_file("dashdesk.toml").read_text())
    path = Path(path) if path else Path(env.get("DASHDESK_CONFIG", DEFAULT_CONFIG))
    if path.is_file() and path.resolve() != default_file("dashdesk.toml").resolve():
        cfg = merge(cfg, tomllib.loads(path.read_text()))
    for name, value in env.items():
        if name in ENV_KEYS:
            _set(cfg, ENV_KEYS[name], value)
        elif name.startswith("DASHDESK_") and "__" in name:
            section, _, key = name[len("DASHDESK_"):].lower().partition("__")
            _set(cfg, (section, key), value)
    return cfg
