"""Web users: argon2id password hashes, creation, changes, sign-in checks, the session secret.

Every change to a user happens here, with its audit row in the same transaction, for the
admin pages (``server.admin.accounts``), the API (``server.api``) and the command
line (``dashdesk user ...``) alike: the same checks (the last active admin is neither
disabled nor demoted), the same audit actions (``user.create``, ``user.role``,
``user.disable``, ``user.enable``, ``user.password``, ``user.sign_out``), never a password in them. ``actor``
is who asked, as the audit log names them; only dashdesk's own set-up at first start
(:func:`bootstrap_admin`), which nobody asked for, passes none and is not audited. The web
pages sign users in with Flask-Login (see ``server.desk``), each sign-in a row of ``web_sessions``
(``server.domain.web_sessions``): a new password, disabling a user and a change of their role end every
session of theirs at once, in the transaction of the change.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dashdesk import wire

from server.domain import audit, web_sessions
from server.domain.errors import NotFound
from server.db import Database
from server.models import USER_ROLES, User

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # argon2 takes any length; this bounds the work a sign-in attempt costs

_hasher = PasswordHasher()


@functools.cache
def unknown_user_hash() -> str:
    """Verified against when the username is unknown, so both answers take as long.

    Made once per process, not at import (an argon2 hash costs every process that imports the server, the CLI
    and each test worker among them, a noticeable fraction of a second): the server makes it at start
    (``server.serve``), so no sign-in pays for it.
    """
    return _hasher.hash(secrets.token_urlsafe(16))


class UserError(ValueError):
    """A change to a user refused (the message says why)."""


class UserExists(UserError):
    """The username is taken."""


class NoSuchUser(UserError, NotFound):
    """There is no user of that name: a change refused (:class:`UserError`), and a look-up's :class:`NotFound`."""

    def __init__(self, username: str):
        NotFound.__init__(self, "user", username[:100])


def use_hasher(hasher: PasswordHasher) -> PasswordHasher:
    """Hash and check passwords with ``hasher`` from now on (tests make it cheap; a sign-in that finds a hash made
    with other parameters rehashes it); returns the one it replaces."""
    global _hasher
    previous, _hasher = _hasher, hasher
    return previous


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def check_new_user(username: str, password: str, role: str) -> None:
    """Raise ``UserError`` unless a user could be made with these (the name may still be taken)."""
    if not USERNAME.fullmatch(username or ""):
        raise UserError("a username is 1-100 letters, digits and . _ @ -, starting with a letter or digit")
    if role not in USER_ROLES:
        raise UserError(f"role must be one of {', '.join(USER_ROLES)}")
    check_password_rules(password)


def check_password_rules(password: str) -> None:
    if not (MIN_PASSWORD <= len(password or "") <= MAX_PASSWORD):
        raise UserError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")


def generate_password() -> str:
    """A password for someone to sign in with once and change: 16 URL-safe characters (96 bits)."""
    return secrets.token_urlsafe(12)


def _audit(s: Session, actor: str | None, action: str, user: User, **details: object) -> None:
    if actor is not None:
        audit.record(s, actor, action, f"user:{user.username}", **details)


def get(s: Session, username: str) -> User:
    """The user of that name; :class:`NoSuchUser` if there is none."""
    user = s.scalar(select(User).where(User.username == username))
    if user is None:
        raise NoSuchUser(username)
    return user


def add_user(s: Session, username: str, password_hash: str, role: str, actor: str | None = None, *,
             password_made: bool = False) -> User:
    """Add an active user in ``s``'s transaction (hash the password before: it takes a while), audited
    as ``actor``'s ``user.create``; ``password_made``: dashdesk made the password (shown once)."""
    if s.scalar(select(User.id).where(User.username == username)) is not None:
        raise UserExists(f"user {username} already exists")
    user = User(username=username, password_hash=password_hash, role=role, active=True, created_at=wire.utcnow())
    s.add(user)
    s.flush()
    _audit(s, actor, "user.create", user, role=role, password_made=password_made)
    return user


def create_user(db: Database, username: str, password: str, role: str = "agent", actor: str | None = None, *,
                password_made: bool = False) -> User:
    """Create an active user; ``UserError`` if an argument is not acceptable, ``UserExists`` if the name is
    taken. The password is checked and hashed before the write transaction (hashing takes a while)."""
    check_new_user(username, password, role)
    password_hash = hash_password(password)
    with db.write() as s:
        return add_user(s, username, password_hash, role, actor, password_made=password_made)


def active_admins(s: Session) -> int:
    return s.scalar(select(func.count()).select_from(User).where(User.role == "admin", User.active.is_(True))) or 0


def _keep_an_admin(s: Session, user: User, doing: str) -> None:
    """Refuse to leave the desk without an active admin (nobody could then run it from the web)."""
    if user.role == "admin" and user.active and active_admins(s) <= 1:
        raise UserError(f"{user.username} is the last active admin and cannot be {doing}; make another user "
                        "an admin first")


def change_role(s: Session, user: User, role: str, actor: str | None = None) -> bool:
    """Make ``user`` an agent or an admin (audited ``user.role``), ending their sessions; False if it already
    was. Never demotes the last active admin."""
    if role not in USER_ROLES:
        raise UserError(f"role must be one of {', '.join(USER_ROLES)}")
    if user.role == role:
        return False
    if role != "admin":
        _keep_an_admin(s, user, "demoted")
    was, user.role = user.role, role
    web_sessions.end_user(s, user.id)
    _audit(s, actor, "user.role", user, was=was, now=role)
    return True


def change_active(s: Session, user: User, active: bool, actor: str | None = None) -> bool:
    """Enable or disable ``user`` (disabled: every session of theirs ends at once), audited ``user.enable`` or
    ``user.disable``; False if nothing changed. Never disables the last active admin."""
    if bool(user.active) == active:
        return False
    if not active:
        _keep_an_admin(s, user, "disabled")
        web_sessions.end_user(s, user.id)
    user.active = active
    _audit(s, actor, "user.enable" if active else "user.disable", user)
    return True


def change_password(s: Session, user: User, password_hash: str, actor: str | None = None, *,
                    password_made: bool = False) -> None:
    """Give ``user`` a new password (hashed before), audited ``user.password`` (without it); every session of
    theirs ends at once."""
    user.password_hash = password_hash
    web_sessions.end_user(s, user.id)
    _audit(s, actor, "user.password", user, password_made=password_made)


def sign_out(s: Session, user: User, actor: str | None = None) -> int:
    """End every web session of ``user`` (audited ``user.sign_out`` with how many); how many there were."""
    ended = web_sessions.end_user(s, user.id)
    _audit(s, actor, "user.sign_out", user, sessions=ended)
    return ended


def set_role(db: Database, username: str, role: str, actor: str | None = None) -> bool:
    """:func:`change_role` in a transaction of its own."""
    with db.write() as s:
        return change_role(s, get(s, username), role, actor)


def set_active(db: Database, username: str, active: bool, actor: str | None = None) -> bool:
    """Disable (signed out at once, cannot sign in) or enable a user: :func:`change_active`
    in a transaction of its own. Never disables the last active admin."""
    with db.write() as s:
        return change_active(s, get(s, username), active, actor)


def set_password(db: Database, username: str, password: str, actor: str | None = None, *,
                 password_made: bool = False) -> User:
    """Check and hash ``password``, then :func:`change_password` in a transaction of its own."""
    check_password_rules(password)
    with db.read() as s:
        get(s, username)  # an unknown user is refused before the hash's work
    password_hash = hash_password(password)
    with db.write() as s:
        user = get(s, username)
        change_password(s, user, password_hash, actor, password_made=password_made)
        return user


def list_users(db: Database) -> list[User]:
    with db.read() as s:
        return list(s.scalars(select(User).order_by(User.username)))


def authenticate(db: Database, username: str, password: str) -> User | None:
    """The active user with this name and password, else None (in about the same time either way)."""
    if len(password) > MAX_PASSWORD or len(username) > 100:
        return None
    with db.read() as s:
        user = s.scalar(select(User).where(User.username == username))
    if user is None:
        check_password(unknown_user_hash(), password)
        return None
    if not check_password(user.password_hash, password) or not user.active:
        return None
    with db.write() as s:
        row = s.get(User, user.id)
        row.last_login_at = wire.utcnow()
        if _hasher.check_needs_rehash(row.password_hash):
            row.password_hash = hash_password(password)  # the same password: sessions hold
    return user


def bootstrap_admin(db: Database, password: str | None) -> bool:
    """Create web user ``admin`` with ``password`` if set and no such user exists; True if created."""
    if not password:
        return False
    with db.read() as s:
        if s.scalar(select(User.id).where(User.username == "admin")) is not None:
            return False
    try:
        create_user(db, "admin", password, "admin")
    except UserExists:  # another worker was first
        return False
    return True


def secret_key(configured: str | None, data_dir: Path) -> str:
    """The key that signs session cookies: configured, else made once and kept in ``data_dir`` (mode 0600)."""
    if configured:
        return configured
    path = data_dir / "secret_key"
    try:
        return path.read_text().strip() or _write_key(path)
    except FileNotFoundError:
        return _write_key(path)


def _write_key(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    try:
        # link, not rename: if another process made one meanwhile, everyone uses that one.
        os.link(tmp, path)
    except FileExistsError:
        key = path.read_text().strip()
    finally:
        os.unlink(tmp)
    return key
