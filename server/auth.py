"""API tokens: random strings handed out once, stored as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from apiflask import HTTPTokenAuth
from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dashdesk import wire

from .db import Database
from .models import ApiToken

auth = HTTPTokenAuth(scheme="Bearer", description="an API token made by an admin or at bootstrap")

# A token's answer is reused this long, so a press does not cost a token look-up;
# a revocation takes effect within it.
CACHE_S = 2.0
# last_used_at is written at most this often per token: one write per request would
# double the writes of a press.
LAST_USED_EVERY_S = 60.0


# admin: everything; bridge: hand over presses and read the feed (what `dashdesk bridge` needs).
TOKEN_ROLES = ("admin", "bridge")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "dd_" + secrets.token_urlsafe(32)


def create_token(db: Database, name: str, role: str = "admin", token: str | None = None) -> str:
    """Store a token (a new random one unless given) and return it; shown this once."""
    token = token or new_token()
    with db.write() as s:
        existing = s.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
        if existing is None:
            s.add(ApiToken(name=name, role=role, token_hash=hash_token(token), created_at=wire.utcnow()))
    return token


def add_token(s: Session, name: str, role: str) -> tuple[ApiToken, str]:
    """A new random token in ``s``'s transaction: its row, and the token itself (shown this once)."""
    token = new_token()
    row = ApiToken(name=name, role=role, token_hash=hash_token(token), created_at=wire.utcnow())
    s.add(row)
    s.flush()
    return row, token


def revoke(s: Session, row: ApiToken) -> bool:
    """Revoke a token (it is refused from then on: 401); False if it already was."""
    if row.revoked_at is not None:
        return False
    row.revoked_at = wire.utcnow()
    return True


@dataclass(frozen=True)
class Caller:
    token_id: int
    name: str
    role: str


class TokenCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[str, tuple[float, Caller | None]] = {}
        self._written: dict[int, float] = {}

    def forget(self, token_id: int) -> None:
        """Drop what this process remembers of a token (just revoked here): its next use is looked up.

        Other processes (gunicorn workers) follow within ``CACHE_S``.
        """
        with self._lock:
            for digest, (_, caller) in list(self._answers.items()):
                if caller is not None and caller.token_id == token_id:
                    del self._answers[digest]

    def verify(self, db: Database, token: str) -> Caller | None:
        digest = hash_token(token)
        now = time.monotonic()
        with self._lock:
            hit = self._answers.get(digest)
        if hit and now - hit[0] < CACHE_S:
            return hit[1]
        with db.read() as s:
            row = s.scalar(select(ApiToken).where(ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None)))
            caller = Caller(row.id, row.name, row.role) if row else None
        if caller and now - self._written.get(caller.token_id, -LAST_USED_EVERY_S) >= LAST_USED_EVERY_S:
            self._written[caller.token_id] = now
            with db.write() as s:
                s.execute(update(ApiToken).where(ApiToken.id == caller.token_id)
                          .values(last_used_at=wire.utcnow()))
        with self._lock:
            if len(self._answers) > 10000:
                self._answers.clear()
            self._answers[digest] = (now, caller)
        return caller


@auth.verify_token
def _verify(token: str) -> Caller | None:
    if not token:
        return None
    ext = current_app.extensions["dashdesk"]
    return ext.tokens.verify(ext.db, token)
