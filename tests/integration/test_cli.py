"""The maintenance commands, run as an admin runs them."""

import contextlib
import io
import os
import subprocess
import sys

import pytest
import requests

from launcher.broker import free_port
from server.db import Database
from server.migrate import head
from server.domain.users import authenticate
from tests.stack import wait_until


def dashdesk(*args, env, input=None):
    return subprocess.run([sys.executable, "-m", "launcher.cli", *args], capture_output=True, text=True,
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

    with running_server(env, data, tmp_path / "server.log") as base:
        r = requests.get(f"{base}/api/v1/categories", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code == 200
        assert {c["slug"] for c in r.json()["items"]} >= {"printer", "till", "sales-app", "network", "other"}


@contextlib.contextmanager
def running_server(env, data, log):
    """`dashdesk server` on ``data`` as a process of its own, on a free port: its base URL once it answers."""
    port = free_port()
    with log.open("wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "launcher.cli", "server", "--http-port", str(port),
                                   "--data-dir", data], env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        def answer():
            assert server.poll() is None, f"the server exited ({server.returncode}):\n{log.read_text()}"
            try:
                return requests.get(f"{base}/healthz", timeout=2).status_code == 200
            except requests.ConnectionError:
                return None

        try:
            wait_until(answer, timeout=60, what="the server")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; its output:\n{log.read_text()}") from None
        yield base
    finally:
        server.terminate()
        server.wait(30)


def test_token_list_and_revoke_and_a_revoked_token_gets_401_from_the_running_server(tmp_path):
    import getpass

    from sqlalchemy import select

    from server.models import AuditLog

    env = clean_env(tmp_path)
    data = str(tmp_path / "data")
    ops = dashdesk("token", "create", "ops", "--data-dir", data, env=env).stdout.strip()
    feed = dashdesk("token", "create", "feed", "--role", "bridge", "--data-dir", data, env=env).stdout.strip()
    assert ops.startswith("dd_") and feed.startswith("dd_")
    with running_server(env, data, tmp_path / "server.log") as base:
        def status(token):
            return requests.get(f"{base}/api/v1/sites", headers={"Authorization": f"Bearer {token}"},
                                timeout=10).status_code

        assert status(ops) == 200
        listed = dashdesk("token", "list", "--data-dir", data, env=env)
        assert listed.returncode == 0, listed.stderr
        lines = [line.split("\t") for line in listed.stdout.splitlines()]
        assert [line[:3] for line in lines] == [["1", "ops", "admin"], ["2", "feed", "bridge"]]
        assert lines[0][3].startswith("created 20") and lines[0][4].startswith("last used 20")
        assert lines[1][4] == "last used never" and lines[0][5] == lines[1][5] == "active"
        assert ops not in listed.stdout and feed not in listed.stdout

        revoked = dashdesk("token", "revoke", "ops", "--data-dir", data, env=env)
        assert (revoked.returncode, revoked.stdout) == (0, "token 1 (ops, admin) revoked\n"), revoked.stderr
        # the running server refuses it (within its 2 s cache), over real HTTP
        wait_until(lambda: status(ops) == 401, timeout=10, what="the revoked token to get 401")
        assert status(feed) == 403  # a bridge token still authenticates; it is not an admin's
        by_id = dashdesk("token", "revoke", "2", "--data-dir", data, env=env)
        assert by_id.stdout == "token 2 (feed, bridge) revoked\n"
        assert "no press reaches the server until the bridge that used it has a new token" in by_id.stderr
        assert "note:" not in revoked.stderr  # an admin token's
        wait_until(lambda: status(feed) == 401, timeout=10, what="the token revoked by its id to get 401")

    again = dashdesk("token", "revoke", "ops", "--data-dir", data, env=env)
    assert (again.returncode, again.stdout) == (0, "token 1 (ops, admin) was revoked already\n")
    for unknown, message in (("nobody", "there is no token named 'nobody'"), ("7", "there is no token 7")):
        out = dashdesk("token", "revoke", unknown, "--data-dir", data, env=env)
        assert out.returncode == 2 and message in out.stderr
    listed = dashdesk("token", "list", "--data-dir", data, env=env).stdout.splitlines()
    assert all(line.split("\t")[5].startswith("revoked 20") for line in listed)
    database = Database(f"sqlite:///{data}/dashdesk.sqlite3")
    try:
        with database.read() as s:
            rows = [(a.actor, a.action, a.target) for a in s.scalars(select(AuditLog).order_by(AuditLog.id))]
    finally:
        database.close()
    me = f"cli:{getpass.getuser()}"
    assert rows == [(me, "token.create", "token:1"), (me, "token.create", "token:2"),
                    (me, "token.revoke", "token:1"), (me, "token.revoke", "token:2")]


def test_press_without_a_broker_says_so_and_exits_non_zero(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHDESK_")}
    env["DASHDESK_CONFIG"] = str(tmp_path / "none.toml")
    out = dashdesk("press", "shop-1", "b1", "--timeout", "2", "--mqtt-url", f"mqtt://127.0.0.1:{free_port()}",
                   env=env)
    assert out.returncode == 3 and "no final ack" in out.stderr


@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    """``run(*args, input="")`` runs a command in this process (the same code as the installed ``dashdesk``),
    for speed, on the data directory ``tmp_path / "data"``, with no DASHDESK_* settings but an absent
    configuration file; it returns the exit code, stdout and stderr."""
    from launcher.cli import main

    for key in [k for k in os.environ if k.startswith("DASHDESK_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("DASHDESK_CONFIG", str(tmp_path / "none.toml"))
    data = str(tmp_path / "data")

    def run(*args, input=""):
        monkeypatch.setattr("sys.stdin", io.StringIO(input))
        code = main([*args, "--data-dir", data])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_user_commands_create_list_reset_and_disable_a_desk_user(tmp_path, run):
    data = str(tmp_path / "data")
    assert run("user", "create", "ann", "--password-stdin", input="first-password\n") == (
        0, "user ann created (agent)\n", "")
    code, _, err = run("user", "create", "ann", "--role", "admin", "--password-stdin", input="other-password\n")
    assert code == 2 and "user ann already exists" in err
    code, _, err = run("user", "create", "bob", "--password-stdin", input="short\n")
    assert code == 2 and "8 to 1024 characters" in err
    code, _, err = run("user", "create", "bob", "--role", "root", input="x\n")
    assert code == 2 and "'root' is not one of" in err

    database = Database(f"sqlite:///{data}/dashdesk.sqlite3")
    try:
        assert authenticate(database, "ann", "first-password") is not None
        assert run("user", "password", "ann", "--password-stdin", input="second-password\n")[0] == 0
        assert authenticate(database, "ann", "first-password") is None
        assert authenticate(database, "ann", "second-password") is not None
        assert run("user", "disable", "ann")[0] == 0
        assert authenticate(database, "ann", "second-password") is None
        code, out, _ = run("user", "list")
        assert out.startswith("ann\tagent\tdisabled\tlast sign-in 20"), out
        assert run("user", "disable", "ann", "--enable")[0] == 0
        assert authenticate(database, "ann", "second-password") is not None
        assert run("user", "disable", "nobody")[0] == 2
    finally:
        database.close()


def test_user_commands_end_the_users_web_sessions_at_once(tmp_path, run):
    """A new password, disabling and a change of role from the command line sign the user out of a running
    server's pages at their next request: the session is gone from the database."""
    from server.app import create_app
    from tests.web.conftest import Desk

    app = create_app({"data_dir": str(tmp_path / "data")})
    try:
        assert run("user", "create", "ann", "--password-stdin", input="first-password\n")[0] == 0
        assert run("user", "create", "root", "--role", "admin", "--password-stdin", input="root-password\n")[0] == 0
        for command, password in ((("user", "password", "ann", "--password-stdin"), "first-password"),
                                  (("user", "role", "ann", "admin"), "second-password"),
                                  (("user", "disable", "ann"), "second-password")):
            desk = Desk(app, "ann", password)
            assert desk.c.get("/").status_code == 200
            code, _, err = run(*command, input="second-password\n")
            assert code == 0, err
            r = desk.c.get("/")
            assert r.status_code == 302 and r.headers["Location"].startswith("/login"), command
    finally:
        app.extensions["dashdesk"].db.close()


def test_user_and_token_commands_are_audited_and_never_disable_the_last_active_admin(tmp_path, run):
    """The commands change users and tokens through the same code as the admin pages and the API."""
    import getpass

    from sqlalchemy import select

    from server.models import AuditLog, User

    data = str(tmp_path / "data")
    assert run("user", "create", "root", "--role", "admin", "--password-stdin", input="root-password\n")[0] == 0
    code, _, err = run("user", "disable", "root")
    assert code == 2 and "root is the last active admin and cannot be disabled" in err
    code, _, err = run("user", "role", "root", "agent")
    assert code == 2 and "cannot be demoted" in err
    database = Database(f"sqlite:///{data}/dashdesk.sqlite3")
    try:
        assert authenticate(database, "root", "root-password") is not None  # still active, still an admin
        assert run("user", "create", "ann", "--password-stdin", input="ann-password\n")[0] == 0
        assert run("user", "role", "ann", "admin") == (0, "user ann is now an admin\n", "")
        assert run("user", "disable", "root") == (0, "user root disabled\n", "")
        assert run("user", "password", "ann", "--password-stdin", input="ann-password-2\n")[0] == 0
        assert run("user", "disable", "root", "--enable")[0] == 0
        code, token, _ = run("token", "create", "ops", "--role", "bridge")
        assert code == 0
        assert run("token", "create", "  ", "--role", "bridge")[0] == 2
        with database.read() as s:
            rows = [(a.actor, a.action, a.target, a.details) for a in s.scalars(select(AuditLog).order_by(AuditLog.id))]
            admins = sorted(u.username for u in s.scalars(select(User).where(User.role == "admin", User.active)))
    finally:
        database.close()
    me = f"cli:{getpass.getuser()}"
    assert [(actor, action, target) for actor, action, target, _ in rows] == [
        (me, "user.create", "user:root"), (me, "user.create", "user:ann"), (me, "user.role", "user:ann"),
        (me, "user.disable", "user:root"), (me, "user.password", "user:ann"), (me, "user.enable", "user:root"),
        (me, "token.create", "token:1")]
    assert rows[0][3] == {"role": "admin", "password_made": False} and rows[-1][3] == {"name": "ops", "role": "bridge"}
    assert not any(secret in str(rows) for secret in ("root-password", "ann-password", token.strip()))
    assert admins == ["ann", "root"]
