"""Password-reset tokens: random, single-use, expiring, and stored only as a hash.

Plain functions over a Store like the other SQL modules. Timestamps are computed
here rather than by the database, so the SQL is the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from argon2 import PasswordHasher

from paperfeed.store.accounts import MAX_PASSWORD, MIN_PASSWORD, AccountError, User, get_user
from paperfeed.store.papers import Store

RESET_TTL = dt.timedelta(hours=1)

_hasher = PasswordHasher()


def _ts(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_reset(store: Store, user_id: int, *, now: dt.datetime | None = None) -> str:
    """A new reset token for the account; returns the token for the link (only its hash is kept)."""
    now = now or dt.datetime.now(dt.UTC)
    token = secrets.token_urlsafe(32)
    with store.write() as c:
        # swept here rather than by a job: requests are rare, and each one cleans up
        c.execute("DELETE FROM password_resets WHERE expires_at < ?", (_ts(now - dt.timedelta(days=1)),))
        c.execute(
            "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
            (_hash(token), user_id, _ts(now), _ts(now + RESET_TTL)),
        )
    return token


def reset_user(store: Store, token: str, *, now: dt.datetime | None = None) -> User | None:
    """The account a token may still reset (unused, unexpired), without using it up."""
    if not token or len(token) > 200:
        return None
    now = now or dt.datetime.now(dt.UTC)
    row = store.conn.execute(
        "SELECT user_id FROM password_resets WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
        (_hash(token), _ts(now)),
    ).fetchone()
    return get_user(store, row[0]) if row else None


def use_reset(store: Store, token: str, password: str, *, now: dt.datetime | None = None) -> User:
    """Set a new password with the token, once. Every session of the account ends and
    every other reset link of it dies. The link reached the mailbox, so the address
    counts as proven too. Raises AccountError (user-facing) otherwise."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"Choose a password of at least {MIN_PASSWORD} characters.")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"Choose a password of at most {MAX_PASSWORD} characters.")
    if not token or len(token) > 200:
        raise AccountError("This link is not valid.")
    now = now or dt.datetime.now(dt.UTC)
    pw_hash = _hasher.hash(password)  # outside the write transaction: argon2 takes a while
    th = _hash(token)
    with store.write() as c:
        row = c.execute(
            "SELECT user_id FROM password_resets WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
            (th, _ts(now)),
        ).fetchone()
        # the guard in the UPDATE makes a second, concurrent use of the same token a no-op
        if row is None or c.execute(
            "UPDATE password_resets SET used_at = ? WHERE token_hash = ? AND used_at IS NULL", (_ts(now), th)
        ).rowcount != 1:
            raise AccountError("This link has expired or was already used; ask for a new one.")
        user_id = row[0]
        c.execute(
            "UPDATE users SET password_hash = ?, email_verified_at = COALESCE(email_verified_at, ?) WHERE id = ?",
            (pw_hash, _ts(now), user_id),
        )
        c.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
        c.execute("DELETE FROM password_resets WHERE user_id = ? AND token_hash <> ?", (user_id, th))
    user = get_user(store, user_id)
    assert user is not None
    return user
