"""Setting Mosquitto's accounts up before ``dashdesk up`` starts it (``[broker] auth = "dynsec"``).

Under the data dir, in ``broker-auth/`` (mode 0700): the passwords of dashdesk's own
accounts (the account manager's and the bridge's, ``service-accounts.json``) and the
dynamic security plugin's file with the admin account (``dynamic-security.json``),
each readable by its owner only. Once the broker runs, the server changes devices'
accounts as the admin (``server.domain.mosquitto.DynsecAccounts``), and `up` gives the
bridge its account (:func:`set_up_service_accounts`) and passes the bridge its URL,
with that password, in the bridge's environment.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from dashdesk import wire
from dashdesk.mqtt import url_with_credentials
from server.domain.broker_store import BrokerAuthError
from server.domain.mosquitto import (ADMIN_ROLE, ADMIN_USERNAME, DEFAULT_ACL_ACCESS, DYNSEC_FILE,
                                     SERVICE_PASSWORDS_FILE, SERVICES, DynsecAccounts, admin_acls, auth_dir,
                                     load_service_passwords, new_password)

# The plugin's own PBKDF2 cost (Mosquitto 2.0.11's `mosquitto_ctrl dynsec init`).
HASH_ITERATIONS = 101
SALT_BYTES = 12


@dataclass(frozen=True)
class ServiceSecrets:
    """The passwords of dashdesk's own broker accounts and the plugin's file, under ``data_dir``."""

    directory: Path
    passwords: Mapping[str, str]

    @property
    def dynsec_config(self) -> Path:
        return self.directory / DYNSEC_FILE

    def url(self, username: str, broker_url: str) -> str:
        """``broker_url`` with the credentials of service account ``username``."""
        return url_with_credentials(broker_url, username, self.passwords[username])


def write_private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only, replacing it in one step."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _save_service_passwords(directory: Path, passwords: Mapping[str, str]) -> None:
    write_private_file(directory / SERVICE_PASSWORDS_FILE, json.dumps(dict(passwords), indent=2) + "\n")


def password_hash(password: str, salt: bytes | None = None, iterations: int = HASH_ITERATIONS) -> dict[str, Any]:
    """The password as the plugin stores it: PBKDF2-HMAC-SHA512, salt and hash in base64."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return {"password": base64.b64encode(digest).decode(), "salt": base64.b64encode(salt).decode(),
            "iterations": iterations}


def password_matches(client: Mapping[str, Any], password: str) -> bool:
    """Whether ``client`` (an account in the plugin's file) has ``password``."""
    try:
        salt = base64.b64decode(client["salt"])
        return password_hash(password, salt, int(client["iterations"]))["password"] == client["password"]
    except (KeyError, TypeError, ValueError):
        return False


def _admin_client(password: str) -> dict[str, Any]:
    return {"username": ADMIN_USERNAME, "textname": "dashdesk account manager", **password_hash(password),
            "roles": [{"rolename": ADMIN_ROLE}]}


def initial_dynsec_config(admin_password: str, topic_root: str = wire.DEFAULT_TOPIC_ROOT) -> dict[str, Any]:
    """The plugin's file before the first start: the admin account and the default access, nothing more."""
    return {"clients": [_admin_client(admin_password)],
            "roles": [{"rolename": ADMIN_ROLE, "textname": "dashdesk account manager",
                       "acls": admin_acls(topic_root)}],
            "groups": [], "defaultACLAccess": dict(DEFAULT_ACL_ACCESS)}


def prepare(data_dir: str | Path, topic_root: str = wire.DEFAULT_TOPIC_ROOT) -> ServiceSecrets:
    """Make what a broker with accounts needs under ``data_dir``, while that broker is not running.

    The first time: the services' passwords (``broker-auth/service-accounts.json``,
    mode 0600) and the plugin's file with the admin account. Later: the admin
    account in the plugin's file is made to match the password kept, and its role
    today's ACLs (under ``topic_root``), so a lost or replaced passwords file does
    not lock dashdesk out of its own broker.
    """
    directory = auth_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    passwords = load_service_passwords(data_dir)
    changed = False
    for username in (ADMIN_USERNAME, *SERVICES):
        if not passwords.get(username):
            passwords[username] = new_password()
            changed = True
    if changed:
        _save_service_passwords(directory, passwords)
    config_path = directory / DYNSEC_FILE
    admin_password = passwords[ADMIN_USERNAME]
    if not config_path.exists():
        write_private_file(config_path, json.dumps(initial_dynsec_config(admin_password, topic_root), indent=2)
                           + "\n")
    else:
        _sync_admin(config_path, admin_password, admin_acls(topic_root))
    return ServiceSecrets(directory, passwords)


def _sync_admin(config_path: Path, admin_password: str, acls: list[dict[str, Any]]) -> None:
    try:
        config = json.loads(config_path.read_text())
    except ValueError as exc:
        raise BrokerAuthError(f"{config_path} is not JSON: {exc}") from None
    clients = config.setdefault("clients", [])
    roles = config.setdefault("roles", [])
    admin = next((c for c in clients if c.get("username") == ADMIN_USERNAME), None)
    role = next((r for r in roles if r.get("rolename") == ADMIN_ROLE), None)
    if (admin is not None and password_matches(admin, admin_password) and not admin.get("disabled")
            and {"rolename": ADMIN_ROLE} in admin.get("roles", []) and role is not None
            and role.get("acls") == acls):
        return
    clients[:] = [c for c in clients if c.get("username") != ADMIN_USERNAME] + [_admin_client(admin_password)]
    roles[:] = [r for r in roles if r.get("rolename") != ADMIN_ROLE] + [
        {"rolename": ADMIN_ROLE, "textname": "dashdesk account manager", "acls": acls}]
    write_private_file(config_path, json.dumps(config, indent=2) + "\n")


def set_up_service_accounts(service: ServiceSecrets, broker_url: str, *, protocol: int = 5,
                            topic_root: str = wire.DEFAULT_TOPIC_ROOT) -> DynsecAccounts:
    """Give dashdesk's own accounts (the bridge's) their roles and passwords on the broker just started at
    ``broker_url``, keeping any password made meanwhile in the data dir; the account manager, as the admin."""
    accounts = DynsecAccounts(service.url(ADMIN_USERNAME, broker_url), protocol=protocol, topic_root=topic_root,
                              service_passwords=service.passwords)
    made = accounts.ensure_service_accounts()
    if any(service.passwords.get(u) != p for u, p in made.items()):
        _save_service_passwords(service.directory, {**service.passwords, **made})
    return accounts
