"""API tokens: random strings handed out once, stored as SHA-256 hashes.

Tokens are made, listed and revoked here, with their audit rows (``token.create``, ``token.revoke``,
never the token itself) in the same transaction, for the admin pages, the API and
``dashdesk token create|list|revoke`` alike. ``actor`` is who asked; only dashdesk's own set-up (the
bootstrap token, the tokens `dashdesk up` makes for its parts) passes none and is not audited.
:class:`TokenCache` answers "whose token is this?" for every API request (``server.api.auth``).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dashdesk import wire

from server.domain import audit, inputs
from server.domain.errors import NotFound
from server.db import Database
from server.models import ApiToken

# A token's answer is reused this long, so a press does not cost a token look-up;
# a revocation takes effect within it.
CACHE_S = 2.0
# last_used_at is written at most this often per token: one write per request would
# double the writes of a press.
LAST_USED_EVERY_S = 60.0


# admin: everything; bridge: hand over presses and read the feed (what `dashdesk bridge` needs).
TOKEN_ROLES = ("admin", "bridge")
MAX_NAME = 100


class TokenError(ValueError):
    """A token that cannot be made as asked (the message says why)."""


def check_new_token(name: str, role: str) -> str:
    """The token's name, stripped; :class:`TokenError` unless it has one (of at most 100 characters) and a
    known role."""
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME:
        raise TokenError(f"give the token a name of at most {MAX_NAME} characters (who or what uses it)")
    problem = inputs.text_problem(name)
    if problem:
        raise TokenError(f"the token's name {problem}")
    if role not in TOKEN_ROLES:
        raise TokenError(f"the role is one of {', '.join(TOKEN_ROLES)}")
    return name


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "dd_" + secrets.token_urlsafe(32)


def _store(s: Session, name: str, role: str, token: str, actor: str | None) -> ApiToken:
    row = ApiToken(name=name, role=role, token_hash=hash_token(token), created_at=wire.utcnow())
    s.add(row)
    s.flush()
    if actor is not None:
        audit.record(s, actor, "token.create", f"token:{row.id}", name=row.name, role=row.role)
    return row


def create_token(db: Database, name: str, role: str = "admin", token: str | None = None,
                 actor: str | None = None) -> str:
    """Store a token (a new random one unless given; a given one already stored is kept) and return it;
    shown this once. :class:`TokenError` for a name or role that will not do."""
    name = check_new_token(name, role)
    token = token or new_token()
    with db.write() as s:
        existing = s.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
        if existing is None:
            _store(s, name, role, token, actor)
    return token


def ensure_token(db: Database, name: str, role: str, token: str | None) -> str:
    """A token of ``role`` that works: ``token`` if it does (stored, not revoked, with that role; one not stored
    yet is stored now), else a new random one stored in its place. For the tokens dashdesk gives its own parts
    (`dashdesk up`), not audited. :class:`TokenError` for a name or role that will not do."""
    name = check_new_token(name, role)
    with db.write() as s:
        if token:
            row = s.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
            if row is None:
                _store(s, name, role, token, None)
                return token
            if row.revoked_at is None and row.role == role:
                return token
        token = new_token()
        _store(s, name, role, token, None)
    return token


def add_token(s: Session, name: str, role: str, actor: str | None = None) -> tuple[ApiToken, str]:
    """A new random token in ``s``'s transaction, audited as ``actor``'s ``token.create``: its row, and the
    token itself (shown this once). :class:`TokenError` for a name or role that will not do."""
    token = new_token()
    return _store(s, check_new_token(name, role), role, token, actor), token


def revoke(s: Session, row: ApiToken, actor: str | None = None) -> bool:
    """Revoke a token (it is refused from then on: 401), audited ``token.revoke``; False if it already was."""
    if row.revoked_at is not None:
        return False
    row.revoked_at = wire.utcnow()
    if actor is not None:
        audit.record(s, actor, "token.revoke", f"token:{row.id}", name=row.name, role=row.role)
    return True


def list_tokens(s: Session) -> list[ApiToken]:
    """Every token, oldest first (revoked ones too): what the admin pages, the API and ``dashdesk token list``
    show. The token itself is kept nowhere, only its hash."""
    return list(s.scalars(select(ApiToken).order_by(ApiToken.id)))


def get(s: Session, token_id: int) -> ApiToken:
    """The token of that id; :class:`NotFound` if there is none."""
    row = s.get(ApiToken, token_id) if 0 < token_id < 2**63 else None
    if row is None:
        raise NotFound("token", str(token_id))
    return row


def find_token(s: Session, name_or_id: str) -> ApiToken:
    """The token ``name_or_id`` names: its id (digits), else its name; of several with that name, the one not
    revoked. :class:`TokenError` if there is none, or more than one not revoked."""
    key = (name_or_id or "").strip()
    token_id = inputs.parse_int(key)
    if token_id is not None:
        row = s.get(ApiToken, token_id) if 0 < token_id < 2**63 else None
        if row is None:
            raise TokenError(f"there is no token {key}")
        return row
    rows = list(s.scalars(select(ApiToken).where(ApiToken.name == key).order_by(ApiToken.id)))
    if not rows:
        raise TokenError(f"there is no token named {key[:MAX_NAME]!r}")
    live = [r for r in rows if r.revoked_at is None]
    if len(live) > 1:
        raise TokenError(f"{len(live)} tokens are named {key!r} (ids {', '.join(str(r.id) for r in live)}); "
                         "give the id")
    return live[0] if live else rows[-1]


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

        Other processes (several servers) follow within ``CACHE_S``.
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


