"""Accounts: users, email verification, server-side sessions and the moderation log (issue 4).

Sessions are rows in the store, so every web worker and every node sees the same ones.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from paperfeed.addresses import AddressError, address_key, clean_address
from paperfeed.store.papers import Store

SESSION_DAYS = 30
MIN_PASSWORD = 8
# argon2 hashes the whole input: a cap stops a megabyte "password" from being a cheap DoS
MAX_PASSWORD = 1024

_hasher = PasswordHasher()
# verified against when the email is unknown, so a login takes the same time
# whether or not the account exists
_DUMMY_HASH = _hasher.hash("paperfeed-dummy-password")


class AccountError(ValueError):
    """A request about an account that cannot be honoured; the message is user-facing."""


@dataclass(slots=True, frozen=True)
class User:
    id: int
    email: str
    is_admin: bool
    created_at: str
    # set once a mailed link proved the account holder reads this address
    email_verified_at: str | None = None

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ts(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _user(row: Any) -> User | None:
    if row is None:
        return None
    return User(id=row["id"], email=row["email"], is_admin=bool(row["is_admin"]), created_at=row["created_at"],
                email_verified_at=row["email_verified_at"])


def normalize_email(email: str) -> str:
    """The address as stored (paperfeed.addresses: the validator subscriptions use too);
    raises AccountError with what is wrong."""
    try:
        return clean_address(email)
    except AddressError as exc:
        raise AccountError(str(exc)) from None


# ---- users -----------------------------------------------------------------


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"Choose a password of at least {MIN_PASSWORD} characters.")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"Choose a password of at most {MAX_PASSWORD} characters.")


def create_user(store: Store, email: str, password: str, *, is_admin: bool = False) -> User:
    email = normalize_email(email)
    _check_password(password)
    pw_hash = _hasher.hash(password)
    try:
        with store.write() as c:
            uid = c.execute(
                "INSERT INTO users (email, email_key, password_hash, is_admin, created_at) VALUES (?,?,?,?,?) "
                "RETURNING id",
                (email, address_key(email), pw_hash, int(is_admin), _ts(_now())),
            ).fetchone()[0]
    except store.engine.IntegrityError as exc:
        raise AccountError("An account with this email already exists; log in instead.") from exc
    user = get_user(store, uid)
    assert user is not None
    return user


def get_user(store: Store, user_id: int) -> User | None:
    return _user(store.conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone())


def get_user_by_email(store: Store, email: str) -> User | None:
    row = store.conn.execute("SELECT * FROM users WHERE email_key = ?", (address_key(email),)).fetchone()
    return _user(row)


def list_users(store: Store) -> list[User]:
    return [_user(r) for r in store.conn.execute("SELECT * FROM users ORDER BY id")]  # type: ignore[misc]


def set_admin(store: Store, user_id: int, is_admin: bool) -> None:
    with store.write() as c:
        c.execute("UPDATE users SET is_admin = ? WHERE id = ?", (int(is_admin), user_id))


def authenticate(store: Store, email: str, password: str) -> User | None:
    """The user if the password matches, else None (same cost either way)."""
    if len(password) > MAX_PASSWORD:
        return None
    row = store.conn.execute(
        "SELECT * FROM users WHERE email_key = ?", (address_key(email),)
    ).fetchone()
    try:
        _hasher.verify(row["password_hash"] if row else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if row is None:
        return None
    if _hasher.check_needs_rehash(row["password_hash"]):
        with store.write() as c:
            c.execute("UPDATE users SET password_hash = ? WHERE id = ?", (_hasher.hash(password), row["id"]))
    return _user(row)


# ---- email verification ------------------------------------------------------
# Sign-up takes any address; only a signed link mailed to it proves the account
# holder reads it (paperfeed.digest.verify sends it, paperfeed.web.auth checks it).

VERIFY_RESEND = dt.timedelta(minutes=10)


def mark_email_verified(store: Store, user_id: int) -> User | None:
    """Record that the account's address is proven (idempotent: the first time stays)."""
    with store.write() as c:
        c.execute("UPDATE users SET email_verified_at = COALESCE(email_verified_at, ?) WHERE id = ?",
                  (_ts(_now()), user_id))  # fmt: skip
    return get_user(store, user_id)


def claim_unverified(store: Store, user_id: int, password: str) -> User:
    """The mailbox owner takes over an account someone registered with their address.

    Allowed only while the address is unverified: whoever created the account never
    proved it, and the caller holds a link that only reached that mailbox. Every
    session of the account ends, so the person who registered it is logged out.
    """
    _check_password(password)
    pw_hash = _hasher.hash(password)
    with store.write() as c:
        cur = c.execute(
            "UPDATE users SET password_hash = ?, email_verified_at = ? WHERE id = ? AND email_verified_at IS NULL",
            (pw_hash, _ts(_now()), user_id),
        )
        if cur.rowcount == 0:
            raise AccountError("This address is already confirmed; log in instead.")
        c.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
    user = get_user(store, user_id)
    assert user is not None
    return user


def note_verify_sent(store: Store, user_id: int, *, now: dt.datetime | None = None) -> bool:
    """Reserve a verification mail for an unverified account; False when one went out
    moments ago (so the resend button cannot flood an inbox) or it is verified."""
    now = now or _now()
    with store.write() as c:
        cur = c.execute(
            "UPDATE users SET verify_sent_at = ? WHERE id = ? AND email_verified_at IS NULL "
            "AND (verify_sent_at IS NULL OR verify_sent_at < ?)",
            (_ts(now), user_id, _ts(now - VERIFY_RESEND)),
        )
        return cur.rowcount > 0


def forget_verify_sent(store: Store, user_id: int) -> None:
    """The mail did not go out: let the user ask again at once."""
    with store.write() as c:
        c.execute("UPDATE users SET verify_sent_at = NULL WHERE id = ?", (user_id,))


# ---- sessions --------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_session(store: Store, user_id: int, *, days: int = SESSION_DAYS) -> str:
    """A new session; returns the token for the cookie (only its hash is stored)."""
    token = secrets.token_urlsafe(32)
    now = _now()
    with store.write() as c:
        c.execute(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?,?,?,?)",
            (_token_hash(token), user_id, _ts(now), _ts(now + dt.timedelta(days=days))),
        )
        # expired rows are swept on login rather than by a separate job
        c.execute("DELETE FROM sessions WHERE expires_at < ?", (_ts(now),))
    return token


def session_user(store: Store, token: str | None) -> User | None:
    if not token or len(token) > 200:
        return None
    row = store.conn.execute(
        "SELECT u.* FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ? AND s.expires_at > ?",
        (_token_hash(token), _ts(_now())),
    ).fetchone()
    return _user(row)


def delete_session(store: Store, token: str | None) -> None:
    if not token:
        return
    with store.write() as c:
        c.execute("DELETE FROM sessions WHERE token_hash = ?", (_token_hash(token),))


# ---- moderation ------------------------------------------------------------


def set_paper_hidden(store: Store, paper_id: str, hidden: bool, *, by_user: int | None) -> bool:
    """Hide or show a paper (admins only; the caller checks) and log who did it."""
    changed = store.set_hidden(paper_id, hidden)
    if changed:
        with store.write() as c:
            c.execute(
                "INSERT INTO moderation_log (paper_rowid, user_id, action, at) "
                "SELECT rowid, ?, ?, ? FROM papers WHERE id = ?",
                (by_user, "hide" if hidden else "show", _ts(_now()), paper_id),
            )
    return changed
