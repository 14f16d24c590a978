"""Web sessions: each sign-in to the desk and admin pages is a row of ``web_sessions``.

The session cookie (Flask's, signed) carries a random key; the database keeps only its SHA-256.
Each page request looks the key up joined with its user (:func:`find`, one query on a unique
index), so that a session ends at once when its row goes: signing out (:func:`end`), and for
every session of a user (:func:`end_user`) a new password, disabling them and a change of their
role (``server.domain.users`` calls it in the transaction of the change, for the admin pages, the API and
``dashdesk user ...`` alike). A session lasts ``[server] session_lifetime_h`` from its sign-in;
expired rows are deleted at the next sign-in.

No Flask here: ``server.desk`` signs people in and out with these.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from server.domain import inputs
from server.domain.tokens import hash_token
from server.models import User, WebSession

# A session's last_seen_at is written at most this often: one write per page request would cost
# more than the session is worth.
SEEN_EVERY = timedelta(minutes=5)
MAX_USER_AGENT = 300
# The keys this module makes are 43 characters; anything longer is not one (and is not hashed).
MAX_KEY = 100


@dataclass(frozen=True)
class Found:
    """A live session and its active user, as :func:`find` answers."""

    session_id: int
    user_id: int
    username: str
    role: str
    last_seen_at: datetime | None


def start(s: Session, user_id: int, lifetime: timedelta, now: datetime, user_agent: str = "") -> tuple[str, int]:
    """A new session of ``user_id`` in ``s``'s transaction, until ``now + lifetime``: its key (for the
    cookie, never stored) and its row's id. Deletes every expired session on the way."""
    s.execute(delete(WebSession).where(WebSession.expires_at <= now))
    key = secrets.token_urlsafe(32)
    row = WebSession(key_hash=hash_token(key), user_id=user_id, created_at=now, expires_at=now + lifetime,
                     last_seen_at=now, user_agent=inputs.without_controls(user_agent or "")[:MAX_USER_AGENT])
    s.add(row)
    s.flush()
    return key, row.id


def find(s: Session, key: str, now: datetime) -> Found | None:
    """The session whose key is ``key``, if it has not expired and its user is active (one query)."""
    if not key or len(key) > MAX_KEY:
        return None
    row = s.execute(select(WebSession.id, WebSession.user_id, User.username, User.role, WebSession.last_seen_at)
                    .join(User, User.id == WebSession.user_id)
                    .where(WebSession.key_hash == hash_token(key), WebSession.expires_at > now,
                           User.active.is_(True))).first()
    return Found(*row) if row is not None else None


def alive(s: Session, session_id: int, now: datetime) -> bool:
    """Whether the session with this row id still holds (for a live-update stream already open)."""
    return s.scalar(select(WebSession.id).where(WebSession.id == session_id, WebSession.expires_at > now)) is not None


def seen(s: Session, session_id: int, now: datetime) -> None:
    s.execute(update(WebSession).where(WebSession.id == session_id).values(last_seen_at=now))


def needs_seen(found: Found, now: datetime) -> bool:
    return found.last_seen_at is None or now - found.last_seen_at >= SEEN_EVERY


def end(s: Session, key: str) -> bool:
    """End the session whose key is ``key`` (signing out); False if there was none."""
    if not key or len(key) > MAX_KEY:
        return False
    return bool(s.execute(delete(WebSession).where(WebSession.key_hash == hash_token(key))).rowcount)


def end_user(s: Session, user_id: int) -> int:
    """End every session of ``user_id`` (in ``s``'s transaction); how many there were."""
    return s.execute(delete(WebSession).where(WebSession.user_id == user_id)).rowcount or 0


def of_user(s: Session, user_id: int, now: datetime) -> list[WebSession]:
    """The user's live sessions, the latest sign-in first."""
    return list(s.scalars(select(WebSession).where(WebSession.user_id == user_id, WebSession.expires_at > now)
                          .order_by(WebSession.created_at.desc(), WebSession.id.desc())))
