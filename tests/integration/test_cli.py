"""The maintenance commands, run as an admin runs them."""

import os
import subprocess
import sys

import requests

from dashdesk.broker import free_port
from server.migrate import head
from tests.stack import wait_until


def dashdesk(*args, env):
    return subprocess.run([sys.executable, "-m", "dashdesk.cli", *args], capture_output=True, text=True,
                          env=env, timeout=60)


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
