"""The server's commands: ``dashdesk server``, ``db``, ``token``, ``user``, ``config`` and ``broker``.

``launcher.cli`` adds them to the ``dashdesk`` command (:func:`register`). The server's modules are imported
by each command when it runs, so that ``dashdesk press`` on a device loads none of them.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, Iterator

import click

from dashdesk import config as dd_config
from dashdesk import datalock, wire
from dashdesk.commands import Exit, claim, override


def register(group: click.Group) -> None:
    """Add the server's commands to ``group`` (the ``dashdesk`` command)."""
    for command in (server, db, token, user, broker_accounts, config_file):
        group.add_command(command)


def _one_process(workers: int | None) -> int | None:
    if workers is not None and workers != 1:
        raise click.BadParameter(
            f"{workers}: the server runs as one process (its threads answer requests, --threads); "
            "on SQLite that is all there is (one server per database), with PostgreSQL run several "
            "`dashdesk server --http-port PORT` behind a proxy, see docs/operating.md")
    return workers


@click.command()
@click.option("--http-port", type=int, default=None)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--workers", type=int, default=None, callback=lambda _ctx, _param, n: _one_process(n),
              help="Processes: only 1 (one process serves with --threads; SQLite's writes queue on one lock "
                   "anyway; one server per SQLite database). With PostgreSQL, run several servers behind a proxy "
                   "(docs/operating.md).")
@click.option("--threads", type=click.IntRange(min=2, max=256), default=32, show_default=True,
              help="Threads answering requests; each open desk page holds one for its live updates (up to half "
                   "of them). Slow or idle clients hold none.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.pass_obj
def server(cfg: dict[str, Any], http_port: int | None, host: str, workers: int | None, threads: int,
           data_dir: str | None) -> None:
    """Run the ticket server (HTTP API and web pages).

    On SQLite, one server per database: another one running on it makes this one exit at once (1), naming
    its pid.
    """
    from server.app import database_url
    from server.serve import serve

    override(cfg, None, "data_dir", data_dir)
    override(cfg, "server", "http_port", http_port)
    database = datalock.sqlite_file(database_url(cfg))
    # Several servers may share a database server (PostgreSQL); an SQLite file has one.
    lock = claim("server", database, f"the database {database}") if database else None
    try:
        sys.exit(serve(cfg, host=host, port=int(cfg["server"]["http_port"]), workers=workers, threads=threads))
    finally:
        if lock is not None:
            lock.release()



@click.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.pass_obj
def db_upgrade(cfg: dict[str, Any], data_dir: str | None) -> None:
    """Apply the migrations the database has not had yet."""
    from server.app import database_url
    from server.migrate import current, upgrade

    override(cfg, None, "data_dir", data_dir)
    url = database_url(cfg)
    upgrade(url)
    click.echo(f"database at revision {current(url)}")


@click.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "bridge"]), default="admin", show_default=True,
              help="admin: every endpoint; bridge: only what the bridge calls (presses, the feed, telemetry).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.pass_obj
def token_create(cfg: dict[str, Any], name: str, role: str, data_dir: str | None) -> None:
    """Create an API token and print it (it is shown only this once)."""
    from server.domain.audit import cli_actor
    from server.domain.tokens import TokenError, create_token

    with _opened(cfg, data_dir, refused=TokenError) as database:
        click.echo(create_token(database, name, role, actor=cli_actor()))


@token.command("list")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.pass_obj
def token_list(cfg: dict[str, Any], data_dir: str | None) -> None:
    """The API tokens: id, name, role, when made, last used, and whether revoked (never the token itself)."""
    from server.domain.tokens import list_tokens

    def when(t: Any) -> str:
        return t.isoformat(timespec="seconds") if t else "never"

    with _opened(cfg, data_dir) as database:
        with database.read() as s:
            for t in list_tokens(s):
                state = f"revoked {when(t.revoked_at)}" if t.revoked_at else "active"
                click.echo(f"{t.id}\t{t.name}\t{t.role}\tcreated {when(t.created_at)}\t"
                           f"last used {when(t.last_used_at)}\t{state}")


@token.command("revoke")
@click.argument("name_or_id")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.pass_obj
def token_revoke(cfg: dict[str, Any], name_or_id: str, data_dir: str | None) -> None:
    """Revoke an API token, named by its id (as `token list` shows it) or its name: it is refused (401) from
    then on (by a running server within 2 s). Audited, as on the admin page."""
    from server.domain.audit import cli_actor
    from server.domain.tokens import TokenError, find_token, revoke

    with _opened(cfg, data_dir, refused=TokenError) as database:
        with database.write() as s:
            row = find_token(s, name_or_id)
            changed = revoke(s, row, cli_actor())
            said = f"token {row.id} ({row.name}, {row.role}) " + ("revoked" if changed else "was revoked already")
    click.echo(said)
    if changed and row.role == "bridge":
        click.echo("note: no press reaches the server until the bridge that used it has a new token (its presses "
                   "wait in its outbox, answered `queued`); `dashdesk up` makes one when started again", err=True)


def _database(cfg: dict[str, Any], data_dir: str | None) -> Any:
    """The server's database, migrated to the newest revision."""
    from server.app import database_url
    from server.db import Database
    from server.migrate import upgrade

    override(cfg, None, "data_dir", data_dir)
    url = database_url(cfg)
    upgrade(url)
    return Database(url)


@contextlib.contextmanager
def _opened(cfg: dict[str, Any], data_dir: str | None,
            refused: type[Exception] | tuple[type[Exception], ...] = ()) -> Iterator[Any]:
    """The server's database for one command, closed after it; ``refused`` (a rule's refusal) ends the command
    with its message and exit code 1."""
    database = _database(cfg, data_dir)
    try:
        yield database
    except refused as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        database.close()


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@click.group()
def user() -> None:
    """Web users of the service desk (roles agent and admin)."""


@user.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(["agent", "admin"]), default="agent", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin "
                                                     "instead of asking for it.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.pass_obj
def user_create(cfg: dict[str, Any], username: str, role: str, password_stdin: bool, data_dir: str | None) -> None:
    """Create a user who can sign in to the service desk."""
    from server.domain.audit import cli_actor
    from server.domain.users import UserError, create_user

    with _opened(cfg, data_dir, refused=UserError) as database:
        create_user(database, username, _password(password_stdin), role, cli_actor())
    click.echo(f"user {username} created ({role})")


@user.command("password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the new password from the first line of stdin.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.pass_obj
def user_password(cfg: dict[str, Any], username: str, password_stdin: bool, data_dir: str | None) -> None:
    """Set a new password for a user."""
    from server.domain.audit import cli_actor
    from server.domain.users import UserError, set_password

    with _opened(cfg, data_dir, refused=UserError) as database:
        set_password(database, username, _password(password_stdin), cli_actor())
    click.echo(f"password of {username} changed")


@user.command("disable")
@click.argument("username")
@click.option("--enable", is_flag=True, help="Enable the user again instead.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.pass_obj
def user_disable(cfg: dict[str, Any], username: str, enable: bool, data_dir: str | None) -> None:
    """Disable a user: signed out at once, cannot sign in; their tickets and history stay.

    The last active admin is never disabled (make another user an admin first).
    """
    from server.domain.audit import cli_actor
    from server.domain.users import UserError, set_active

    with _opened(cfg, data_dir, refused=UserError) as database:
        changed = set_active(database, username, enable, cli_actor())
    click.echo(f"user {username} {'enabled' if enable else 'disabled'}" + ("" if changed else " already"))


@user.command("role")
@click.argument("username")
@click.argument("role", type=click.Choice(["agent", "admin"]))
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.pass_obj
def user_role(cfg: dict[str, Any], username: str, role: str, data_dir: str | None) -> None:
    """Make a user an agent or an admin (the last active admin is never demoted)."""
    from server.domain.audit import cli_actor
    from server.domain.users import UserError, set_role

    with _opened(cfg, data_dir, refused=UserError) as database:
        changed = set_role(database, username, role, cli_actor())
    click.echo(f"user {username} is {'now' if changed else 'already'} {'an admin' if role == 'admin' else 'an agent'}")


@user.command("list")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.pass_obj
def user_list(cfg: dict[str, Any], data_dir: str | None) -> None:
    """The users, their role, whether active, and their last sign-in."""
    from server.domain.users import list_users

    with _opened(cfg, data_dir) as database:
        for u in list_users(database):
            last = u.last_login_at.isoformat(timespec="seconds") if u.last_login_at else "never"
            click.echo(f"{u.username}\t{u.role}\t{'active' if u.active else 'disabled'}\tlast sign-in {last}")


def _broker_accounts(cfg: dict[str, Any], mqtt_url: str | None, data_dir: str | None,
                     device_url: str | None = None) -> Any:
    """The accounts of the broker ``cfg`` names, as the server hands them out (``server.domain.broker_accounts``);
    refused when the broker has none."""
    from server.domain.broker_accounts import BrokerAccounts
    from server.domain.mosquitto import COMMAND_TIMEOUT_S

    override(cfg, None, "data_dir", data_dir)
    if not dd_config.broker_accounts_enabled(cfg):
        raise click.ClickException('the broker runs without accounts ([broker] auth = "none"): devices need '
                                   'no credentials; set [broker] auth = "dynsec" (DASHDESK_BROKER__AUTH) for them')
    return BrokerAccounts.from_config(cfg, mqtt_url=mqtt_url, device_url=device_url, timeout=COMMAND_TIMEOUT_S)


def _credentials(cfg: dict[str, Any], data_dir: str | None, accounts: Any, run: Any) -> Any:
    """``run(context, actor)`` with the server's database (which audits each call) and ``accounts``."""
    from server.domain.audit import cli_actor
    from server.domain.broker_accounts import Context

    with _opened(cfg, data_dir) as database:
        return run(Context(database, accounts), cli_actor())


@click.group("broker")
def broker_accounts() -> None:
    """Devices' accounts on the broker (with [broker] auth = "dynsec")."""


@broker_accounts.command("device-credentials")
@click.argument("device_id")
@click.option("--mqtt-url", default=None, help="The broker to change ([mqtt] url by default).")
@click.option("--device-url", default=None,
              help="The broker's URL as the device reaches it, for the printed mqtt_url "
                   "([broker] device_url, else the broker's URL).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.pass_obj
def broker_device_credentials(cfg: dict[str, Any], device_id: str, mqtt_url: str | None, device_url: str | None,
                              data_dir: str | None) -> None:
    """Give DEVICE_ID its own broker account and print its credentials, this once.

    The account may publish and subscribe under the device's own topics only. A
    device that had one gets a new password: the old one stops working at once.
    A device the ticket server knows as retired gets none. Audited, as the admin
    pages' "New broker credentials" is.
    """
    from sqlalchemy import select

    from server.domain import broker_accounts
    from server.models import Device

    if not wire.valid_id(device_id):
        raise click.BadParameter(f"DEVICE_ID must match {wire.ID_PATTERN.pattern}")
    accounts = _broker_accounts(cfg, mqtt_url, data_dir, device_url)

    def issue(context: Any, actor: str) -> Any:
        with context.db.read() as s:
            status = s.scalar(select(Device.status).where(Device.device_id == device_id))
        if status == "retired":
            raise click.ClickException(f"device {device_id} is retired; make it active again first "
                                       f"(PATCH /api/v1/devices/{device_id}) to give it credentials")
        return broker_accounts.issue(context, device_id, actor)

    outcome = _credentials(cfg, data_dir, accounts, issue)
    if outcome.failed:
        raise click.ClickException(f"the broker account of {device_id} could not be made: {outcome.error}")
    click.echo(f"username: {device_id}")
    click.echo(f"password: {outcome.password}")
    click.echo(f"mqtt_url: {outcome.mqtt_url}")
    click.echo("Put mqtt_url in the device's TOML file (readable by its owner only); the password is not "
               "shown again.", err=True)


@broker_accounts.command("retire")
@click.argument("device_id")
@click.option("--reason", default="", help="Why, for the audit log (as on the admin page).")
@click.option("--mqtt-url", default=None, help="The broker to change ([mqtt] url by default).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.pass_obj
def broker_retire(cfg: dict[str, Any], device_id: str, reason: str, mqtt_url: str | None,
                  data_dir: str | None) -> None:
    """Retire DEVICE_ID: the ticket server refuses its presses, and the broker disconnects it and deletes its
    account.

    As the admin page's "Retire" does it, audited as yours (`device.retire`, `broker.remove`). A device the
    ticket server does not know (or has retired already) only loses its broker account; a broker that does
    not answer leaves the retirement standing (run the command again to delete the account).
    """
    from server.domain import broker_accounts, devices

    if not wire.valid_id(device_id):
        raise click.BadParameter(f"DEVICE_ID must match {wire.ID_PATTERN.pattern}")
    accounts = _broker_accounts(cfg, mqtt_url, data_dir)

    def retire(context: Any, actor: str) -> tuple[str, Any]:
        try:
            with context.db.write() as s:
                devices.retire(s, device_id, actor, reason)
            done = "retired"
        except devices.AdminError as exc:  # 404: unknown to the server; 409: retired already
            done = "unknown" if exc.status == 404 else "already retired"
        return done, broker_accounts.remove(context, device_id, actor)

    done, outcome = _credentials(cfg, data_dir, accounts, retire)
    said = {"retired": f"device {device_id} retired: the ticket server refuses its presses",
            "already retired": f"device {device_id} was retired already",
            "unknown": f"device {device_id} is not known to the ticket server"}[done]
    if outcome.failed:
        raise click.ClickException(f"{said}; the broker account of {device_id} could not be deleted: "
                                   f"{outcome.error} (run the command again to delete it)")
    click.echo(f"{said}; disconnected, and its broker account deleted")


@click.group("config")
def config_file() -> None:
    """The whole configuration (categories, sites, devices, button mappings) as one TOML file."""


@config_file.command("export")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.pass_obj
def config_export(cfg: dict[str, Any], file: str, data_dir: str | None) -> None:
    """Write the configuration to FILE ("-": standard output)."""
    from server.domain.config_io import export_text

    with _opened(cfg, data_dir) as database:
        text = export_text(database)
    if file == "-":
        click.echo(text, nl=False)
    else:
        Path(file).write_text(text, encoding="utf-8")
        click.echo(f"configuration written to {file}", err=True)


@config_file.command("import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
@click.option("--prune", is_flag=True, help="Also remove what FILE does not have (mappings; devices are retired; "
                                            "sites and categories nothing refers to are deleted).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.pass_obj
def config_import(cfg: dict[str, Any], file: str, dry_run: bool, prune: bool, data_dir: str | None) -> None:
    """Import FILE in one transaction: checked first, all or nothing; adds and changes, removes only with --prune.

    With broker accounts on, the devices it retires lose theirs (disconnected); exit 1 if the
    broker did not delete them all (the import stands; `dashdesk broker retire` tries again).
    """
    from server.app import load_categories
    from server.domain import broker_accounts
    from server.domain.audit import cli_actor
    from server.domain.config_io import ConfigRejected, decode, run
    from server.domain.mosquitto import COMMAND_TIMEOUT_S

    body = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    database = _database(cfg, data_dir)
    actor = cli_actor()
    try:
        try:
            report = run(database, decode(body), actor, dry_run=dry_run, prune=prune,
                         default_sla=load_categories()[1])
        except ConfigRejected as exc:
            for problem in exc.errors:
                click.echo(f"{file}: {problem}", err=True)
            raise click.ClickException(str(exc)) from None
        for kind, c in report.counts.items():
            click.echo(f"{kind}: {c.added} added, {c.changed} changed, {c.unchanged} unchanged, {c.removed} removed")
        for line in report.changes:
            click.echo(f"  {line}")
        if report.more_changes:
            click.echo(f"  … and {report.more_changes} more")
        for line in report.kept:
            click.echo(f"kept: {line}")
        if dry_run:
            click.echo("dry run: nothing was changed")
            return
        if not report.retired:
            return
        # Retired here as on the admin page and by the API: their broker accounts go (each audited).
        accounts = broker_accounts.BrokerAccounts.from_config(cfg, timeout=COMMAND_TIMEOUT_S)
        outcomes = broker_accounts.remove_many(broker_accounts.Context(database, accounts), report.retired, actor)
    finally:
        database.close()
    failed = [o for o in outcomes if o.failed]
    gone = [o.device_id for o in outcomes if o.result == "removed"]
    click.echo(f"retired: {', '.join(report.retired)}" + (f"; broker accounts deleted: {', '.join(gone)}"
                                                           if gone else ""))
    for o in failed:
        click.echo(f"the broker account of {o.device_id} could not be deleted: {o.error}", err=True)
    if failed:
        click.echo("the import stands; delete those accounts with `dashdesk broker retire DEVICE_ID`", err=True)
        sys.exit(Exit.FAILED)


