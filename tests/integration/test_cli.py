"""The maintenance commands, run as an admin runs them."""

import os
import subprocess
import sys

import requests

from dashdesk.broker import free_port
from server.db import Database
from server.migrate import head
from server.users import authenticate
from tests.stack import wait_until


def dashdesk(*args, env, input=None):
    return subprocess.run([sys.executable, "-m", "dashdesk.cli", *args], capture_output=True, text=True,
                          env=env, timeout=60, input=input)


def clean_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHDESK_")}
    env["DASHDESK_CONFIG"] = str(tmp_path / "none.toml")
    return env


def test_db_upgrade_and_token_create_give_a_working_api_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHDESK_")}
    env["DASHDESK_CONFIG"] = str(tmp_path / "none.toml")
    data = str(tmp_path / "data")
    upgraded = dashdesk("db", "upgrade", "--data-dir", data, env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip() == f"database at revision {head()}"
    made = dashdesk("token", "create", "ops", "--data-dir", data, env=env)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("dd_") and token not in (tmp_path / "data" / "dashdesk.sqlite3").read_bytes().decode(
        "latin-1")  # stored hashed

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "dashdesk.cli", "server", "--http-port", str(port),
                               "--data-dir", data], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/api/v1/categories"

        def answer():
            try:
                return requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=2)
            except requests.ConnectionError:
                return None

        r = wait_until(answer, timeout=30, what="the server")
        assert r.status_code == 200
        assert {c["slug"] for c in r.json()["items"]} >= {"printer", "till", "sales-app", "network", "other"}
    finally:
        server.terminate()
        server.wait(30)


def test_press_without_a_broker_says_so_and_exits_non_zero(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHDESK_")}
    env["DASHDESK_CONFIG"] = str(tmp_path / "none.toml")
    out = dashdesk("press", "shop-1", "b1", "--timeout", "2", "--mqtt-url", f"mqtt://127.0.0.1:{free_port()}",
                   env=env)
    assert out.returncode == 3 and "no final ack" in out.stderr


def test_user_commands_create_list_reset_and_disable_a_desk_user(tmp_path):
    env, data = clean_env(tmp_path), str(tmp_path / "data")
    made = dashdesk("user", "create", "ann", "--password-stdin", "--data-dir", data, env=env,
                    input="first-password\n")
    assert made.returncode == 0 and made.stdout.strip() == "user ann created (agent)", made.stderr
    again = dashdesk("user", "create", "ann", "--role", "admin", "--password-stdin", "--data-dir", data, env=env,
                     input="other-password\n")
    assert again.returncode == 2 and "user ann already exists" in again.stderr
    short = dashdesk("user", "create", "bob", "--password-stdin", "--data-dir", data, env=env, input="short\n")
    assert short.returncode == 2 and "8 to 1024 characters" in short.stderr
    bad_role = dashdesk("user", "create", "bob", "--role", "root", "--data-dir", data, env=env, input="x\n")
    assert bad_role.returncode == 2 and "'root' is not one of" in bad_role.stderr

    database = Database(f"sqlite:///{data}/dashdesk.sqlite3")
    try:
        assert authenticate(database, "ann", "first-password") is not None
        reset = dashdesk("user", "password", "ann", "--password-stdin", "--data-dir", data, env=env,
                         input="second-password\n")
        assert reset.returncode == 0, reset.stderr
        assert authenticate(database, "ann", "first-password") is None
        assert authenticate(database, "ann", "second-password") is not None
        off = dashdesk("user", "disable", "ann", "--data-dir", data, env=env)
        assert off.returncode == 0 and authenticate(database, "ann", "second-password") is None
        listed = dashdesk("user", "list", "--data-dir", data, env=env)
        assert listed.stdout.startswith("ann\tagent\tdisabled\tlast sign-in 20"), listed.stdout
        assert dashdesk("user", "disable", "ann", "--enable", "--data-dir", data, env=env).returncode == 0
        assert authenticate(database, "ann", "second-password") is not None
        assert dashdesk("user", "disable", "nobody", "--data-dir", data, env=env).returncode == 2
    finally:
        database.close()
