"""Accounts, sessions, votes, moderation and trending: the SQL of the site (issue 4).

Plain functions taking a Store, so a PostgreSQL backend can implement the same
functions. Besides accounts, this module holds the few feed-navigation queries
the daily page needs (neighbouring days, vote-ordered listings), because they
join papers with votes.

Trending formula (Hacker-News style)
-----------------------------------
For a period P (day = 24 h, week = 7 d, month = 30 d) ending now:

    score = V / (age_hours + 2) ** 1.8

where V is the number of votes the paper received within P, and age_hours is the
time between the paper's date (its feed date, else its publication date, else
when it was stored; a bare date counts from 00:00 UTC) and now, floored at 0.
Only papers with at least one vote in P are ranked. The +2 keeps a brand-new
paper from dividing by ~0; the 1.8 gravity makes a day-old paper need about
(26/2)^1.8 ~ 100 times the votes of a fresh one to rank equally, so the list
turns over, while within one period more votes still win. Ties go to more
votes, then the newer paper.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from paperfeed.addresses import AddressError, address_key, clean_address
from paperfeed.models import Paper
from paperfeed.store.papers import Store

GRAVITY = 1.8
PERIODS: dict[str, dt.timedelta] = {
    "day": dt.timedelta(days=1),
    "week": dt.timedelta(days=7),
    "month": dt.timedelta(days=30),
}
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


def _user(row: sqlite3.Row | None) -> User | None:
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
            cur = c.execute(
                "INSERT INTO users (email, email_key, password_hash, is_admin, created_at) VALUES (?,?,?,?,?)",
                (email, address_key(email), pw_hash, int(is_admin), _ts(_now())),
            )
            uid = cur.lastrowid
    except sqlite3.IntegrityError as exc:
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


# ---- votes -----------------------------------------------------------------


def vote(store: Store, user_id: int, paper_rowid: int) -> bool:
    """Upvote; True if a vote was added (False: this user had already voted)."""
    with store.write() as c:
        cur = c.execute(
            "INSERT OR IGNORE INTO votes (user_id, paper_rowid, created_at) VALUES (?,?,?)",
            (user_id, paper_rowid, _ts(_now())),
        )
        return cur.rowcount > 0


def unvote(store: Store, user_id: int, paper_rowid: int) -> bool:
    """Undo a vote; True if there was one."""
    with store.write() as c:
        cur = c.execute("DELETE FROM votes WHERE user_id = ? AND paper_rowid = ?", (user_id, paper_rowid))
        return cur.rowcount > 0


def vote_counts(store: Store, rowids: Iterable[int]) -> dict[int, int]:
    ids = list(rowids)
    out: dict[int, int] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        q = ",".join("?" * len(chunk))
        for r in store.conn.execute(
            f"SELECT paper_rowid, COUNT(*) FROM votes WHERE paper_rowid IN ({q}) GROUP BY paper_rowid", chunk
        ):
            out[r[0]] = r[1]
    return out


def user_voted(store: Store, user_id: int, rowids: Iterable[int]) -> set[int]:
    ids = list(rowids)
    out: set[int] = set()
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        q = ",".join("?" * len(chunk))
        out.update(
            r[0]
            for r in store.conn.execute(
                f"SELECT paper_rowid FROM votes WHERE user_id = ? AND paper_rowid IN ({q})", [user_id, *chunk]
            )
        )
    return out


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


# ---- trending --------------------------------------------------------------


def _paper_time(p: Paper) -> dt.datetime:
    for value in (p.feed_date, p.published, p.created_at):
        if not value:
            continue
        try:
            t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            continue
        return t if t.tzinfo else t.replace(tzinfo=dt.UTC)
    return _now()


def hn_score(votes: int, age_hours: float, gravity: float = GRAVITY) -> float:
    """The decay formula documented at the top of this module."""
    return votes / (max(age_hours, 0.0) + 2.0) ** gravity


def trending(
    store: Store, period: str = "week", limit: int = 30, offset: int = 0, *, now: dt.datetime | None = None
) -> list[tuple[Paper, int, float]]:
    """Visible papers ranked by votes in `period` decayed by age: [(paper, votes, score)]."""
    if period not in PERIODS:
        raise ValueError(f"period must be day, week or month, not {period!r}")
    now = now or _now()
    rows = store.conn.execute(
        "SELECT v.paper_rowid, COUNT(*) FROM votes v JOIN papers p ON p.rowid = v.paper_rowid "
        "WHERE v.created_at >= ? AND p.hidden = 0 GROUP BY v.paper_rowid",
        (_ts(now - PERIODS[period]),),
    ).fetchall()
    counts = {r[0]: r[1] for r in rows}
    papers = store.get_by_rowids(list(counts))
    scored = []
    for p in papers:
        t = _paper_time(p)
        age = (now - t).total_seconds() / 3600.0
        n = counts[p.rowid]
        scored.append((p, n, hn_score(n, age), t))
    scored.sort(key=lambda x: (-x[2], -x[1], -x[3].timestamp(), x[0].rowid))
    return [(p, n, s) for p, n, s, _ in scored[offset : offset + limit]]


# ---- feed navigation -------------------------------------------------------


def latest_feed_date(store: Store) -> str | None:
    return store.conn.execute("SELECT MAX(feed_date) FROM papers WHERE hidden = 0").fetchone()[0]


def prev_feed_date(store: Store, before: str) -> str | None:
    """The nearest day before `before` that has visible papers."""
    return store.conn.execute(
        "SELECT MAX(feed_date) FROM papers WHERE feed_date < ? AND hidden = 0", (before,)
    ).fetchone()[0]


def next_feed_date(store: Store, after: str) -> str | None:
    return store.conn.execute(
        "SELECT MIN(feed_date) FROM papers WHERE feed_date > ? AND hidden = 0", (after,)
    ).fetchone()[0]


def count_range(store: Store, since: str, until: str) -> int:
    return store.conn.execute(
        "SELECT COUNT(*) FROM papers WHERE feed_date >= ? AND feed_date <= ? AND hidden = 0", (since, until)
    ).fetchone()[0]


def list_range(
    store: Store, since: str, until: str, *, order: str = "votes", limit: int = 50, offset: int = 0
) -> list[tuple[Paper, int]]:
    """Visible papers with since <= feed_date <= until, with their vote counts.

    order "votes": most votes first, then newer day, then page/ingest order (so a
    store without votes shows a day in the order its source page had);
    "newest": newer day first, then newest publication.
    """
    order_sql = {
        "votes": "n DESC, p.feed_date DESC, p.rowid ASC",
        "newest": "p.feed_date DESC, p.published DESC, p.rowid DESC",
    }.get(order)
    if order_sql is None:
        raise ValueError(f"order must be votes or newest, not {order!r}")
    rows = store.conn.execute(
        "SELECT p.rowid, COALESCE(v.n, 0) AS n FROM papers p "
        "LEFT JOIN (SELECT paper_rowid, COUNT(*) AS n FROM votes GROUP BY paper_rowid) v "
        "ON v.paper_rowid = p.rowid "
        f"WHERE p.feed_date >= ? AND p.feed_date <= ? AND p.hidden = 0 ORDER BY {order_sql} LIMIT ? OFFSET ?",
        (since, until, limit, offset),
    ).fetchall()
    counts = {r[0]: r[1] for r in rows}
    return [(p, counts[p.rowid]) for p in store.get_by_rowids([r[0] for r in rows])]


def papers_with_votes(store: Store, papers: Sequence[Paper]) -> list[tuple[Paper, int]]:
    counts = vote_counts(store, [p.rowid for p in papers])
    return [(p, counts.get(p.rowid, 0)) for p in papers]


# ---- fallback search -------------------------------------------------------


def substring_search(
    store: Store,
    terms: Sequence[str],
    *,
    since: str | None = None,
    until: str | None = None,
    category: str | None = None,
    author: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> tuple[list[tuple[Paper, float]], int]:
    """Papers containing every term (case-insensitive substring), title hits first.

    Only used by the site while the real search index is unavailable, so that a
    fresh install still answers searches; it scans, which is fine for a small store.
    """
    where, args = ["p.hidden = 0"], []
    for t in terms:
        where.append("instr(lower(p.title || ' ' || p.abstract), ?) > 0")
        args.append(t.lower())
    if since:
        where.append("COALESCE(p.feed_date, p.published) >= ?")
        args.append(since)
    if until:
        where.append("COALESCE(p.feed_date, p.published) <= ?")
        args.append(until)
    if category:
        where.append("instr(lower(p.categories), ?) > 0")
        args.append(category.lower())
    if author:
        where.append("instr(lower(p.authors), ?) > 0")
        args.append(author.lower())
    # the whole phrase counts most, then each term in the title
    phrase = " ".join(terms).lower()
    title_score = " + ".join(["(instr(lower(p.title), ?) > 0)"] * len(terms)) or "0"
    score_sql = f"4 * (instr(lower(p.title || ' ' || p.abstract), ?) > 0) + {title_score}"
    sql_where = " AND ".join(where)
    total = store.conn.execute(f"SELECT COUNT(*) FROM papers p WHERE {sql_where}", args).fetchone()[0]
    rows = store.conn.execute(
        f"SELECT p.rowid, ({score_sql}) AS s FROM papers p WHERE {sql_where} "
        "ORDER BY s DESC, p.feed_date DESC, p.rowid ASC LIMIT ? OFFSET ?",
        [phrase, *(t.lower() for t in terms), *args, limit, offset],
    ).fetchall()
    scores = {r[0]: float(r[1]) for r in rows}
    return [(p, scores[p.rowid]) for p in store.get_by_rowids([r[0] for r in rows])], total


def list_category(store: Store, category: str, *, days: int = 30, limit: int = 100) -> list[Paper]:
    """Visible papers of one category (exact, as arXiv writes it: cs.LG) from the last
    `days` feed days, newest first.

    The window bounds the scan: an unknown category reads a month of papers, not the store.
    """
    latest = latest_feed_date(store)
    if latest is None:
        return []
    since = (dt.date.fromisoformat(latest) - dt.timedelta(days=days)).isoformat()
    rows = store.conn.execute(
        "SELECT p.rowid FROM papers p WHERE p.feed_date >= ? AND p.hidden = 0 "
        "AND EXISTS (SELECT 1 FROM json_each(p.categories) WHERE value = ?) "
        "ORDER BY p.feed_date DESC, p.rowid DESC LIMIT ?",
        (since, category, limit),
    ).fetchall()
    return store.get_by_rowids([r[0] for r in rows])
