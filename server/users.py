"""Web users: argon2id password hashes, creation, sign-in checks, the session secret.

``create_user`` is what a ``dashdesk user create`` command calls; the web
pages sign users in with Flask-Login (see ``server.web``).
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select

from dashdesk import wire

from .db import Database
from .models import USER_ROLES, User

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # argon2 takes any length; this bounds the work a sign-in attempt costs

_hasher = PasswordHasher()
# Verified against when the username is unknown, so both answers take as long.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class UserError(ValueError):
    """A user that cannot be created as asked (the message says why)."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def create_user(db: Database, username: str, password: str, role: str = "agent") -> User:
    """Create an active user; ``UserError`` if the name is taken or an argument is not acceptable."""
    if not USERNAME.match(username or ""):
        raise UserError("a username is 1-100 letters, digits and . _ @ -, starting with a letter or digit")
    if role not in USER_ROLES:
        raise UserError(f"role must be one of {', '.join(USER_ROLES)}")
    if not (MIN_PASSWORD <= len(password or "") <= MAX_PASSWORD):
        raise UserError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    password_hash = hash_password(password)
    with db.write() as s:
        if s.scalar(select(User.id).where(User.username == username)) is not None:
            raise UserError(f"user {username} already exists")
        user = User(username=username, password_hash=password_hash, role=role, active=True,
                    created_at=wire.utcnow())
        s.add(user)
        s.flush()
        return user


def set_password(db: Database, username: str, password: str) -> None:
    if not (MIN_PASSWORD <= len(password or "") <= MAX_PASSWORD):
        raise UserError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    with db.write() as s:
        user = s.scalar(select(User).where(User.username == username))
        if user is None:
            raise UserError(f"no user {username}")
        user.password_hash = hash_password(password)


def authenticate(db: Database, username: str, password: str) -> User | None:
    """The active user with this name and password, else None (in about the same time either way)."""
    if len(password) > MAX_PASSWORD or len(username) > 100:
        return None
    with db.read() as s:
        user = s.scalar(select(User).where(User.username == username))
    if user is None:
        check_password(_DUMMY_HASH, password)
        return None
    if not check_password(user.password_hash, password) or not user.active:
        return None
    with db.write() as s:
        row = s.get(User, user.id)
        row.last_login_at = wire.utcnow()
        if _hasher.check_needs_rehash(row.password_hash):
            row.password_hash = hash_password(password)
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
    except UserError as exc:
        if "already exists" in str(exc):  # another worker was first
            return False
        raise
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
