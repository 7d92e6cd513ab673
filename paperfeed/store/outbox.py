"""Outbox SQL: every mail is a row, composed once, then sent, then marked sent.

Plain functions over a Store (or its connection inside a transaction), the same on
both engines. Who may send a row:
- SQLite: one sender per data directory (`send_lock`, an flock), so a row in 'sending'
  is a leftover of a sender that died, and is sent again.
- PostgreSQL: any number of senders on any nodes. A row is claimed under a session
  advisory lock on its id, held until its outcome is recorded, and the claim reads it
  with SELECT ... FOR UPDATE SKIP LOCKED; a row in 'sending' whose lock is free belongs
  to a sender whose connection ended (it died), and is sent again.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from paperfeed.store.papers import Connection, Store

CLAIM_LOCK = "outbox.claim"

_COLS = (
    "id, subscription_id, kind, period_key, recipient, message_id, subject, message, paper_count, status, "
    "attempts, next_attempt_at, last_code, last_error, created_at, sent_at, updated_at"
)


@dataclass
class OutboxRow:
    id: int
    subscription_id: int
    kind: str
    period_key: str
    recipient: str
    message_id: str
    subject: str
    message: bytes | None
    paper_count: int
    status: str
    attempts: int
    next_attempt_at: str
    last_code: int | None
    last_error: str | None
    created_at: str
    sent_at: str | None
    updated_at: str

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "subscription_id": self.subscription_id,
            "kind": self.kind,
            "period_key": self.period_key,
            "recipient": self.recipient,
            "message_id": self.message_id,
            "subject": self.subject,
            "paper_count": self.paper_count,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at,
            "last_code": self.last_code,
            "last_error": self.last_error,
            "created_at": self.created_at,
            "sent_at": self.sent_at,
        }


def _row(r: Any) -> OutboxRow:
    blob = r[7]
    return OutboxRow(
        id=r[0],
        subscription_id=r[1],
        kind=r[2],
        period_key=r[3],
        recipient=r[4],
        message_id=r[5],
        subject=r[6],
        message=zlib.decompress(blob) if blob is not None else None,
        paper_count=r[8],
        status=r[9],
        attempts=r[10],
        next_attempt_at=r[11],
        last_code=r[12],
        last_error=r[13],
        created_at=r[14],
        sent_at=r[15],
        updated_at=r[16],
    )


def insert(
    c: Connection,
    *,
    subscription_id: int,
    kind: str,
    period_key: str,
    recipient: str,
    message_id: str,
    subject: str,
    message: bytes,
    paper_count: int,
    now: str,
) -> bool:
    """Add a composed mail; False when (subscription, period_key) already has one.

    Call inside a write transaction together with whatever the mail consumes (an
    alert's watermark), so the two are recorded together or not at all.
    """
    cur = c.execute(
        "INSERT INTO outbox (subscription_id, kind, period_key, recipient, message_id, subject, message, "
        "paper_count, status, attempts, next_attempt_at, created_at, updated_at) "
        "VALUES (?,?,?,?,?,?,?,?,'pending',0,?,?,?) ON CONFLICT DO NOTHING",
        (subscription_id, kind, period_key, recipient, message_id, subject,
         zlib.compress(message, 1), paper_count, now, now, now),
    )  # fmt: skip
    return cur.rowcount > 0


def get(store: Store, row_id: int) -> OutboxRow | None:
    r = store.conn.execute(f"SELECT {_COLS} FROM outbox WHERE id=?", (row_id,)).fetchone()
    return _row(r) if r else None


def list_rows(
    store: Store, *, status: str | None = None, subscription_id: int | None = None, limit: int = 1000
) -> list[OutboxRow]:
    where, args = [], []
    if status is not None:
        where.append("status = ?")
        args.append(status)
    if subscription_id is not None:
        where.append("subscription_id = ?")
        args.append(subscription_id)
    sql = f"SELECT {_COLS} FROM outbox" + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY id LIMIT ?"
    return [_row(r) for r in store.conn.execute(sql, [*args, limit])]


def due_ids(store: Store, now: str, *, limit: int = 100_000) -> list[int]:
    """Rows to send now: pending ones whose backoff has passed, and 'sending' ones.

    A 'sending' row seen here was left by a sender that died between claiming it
    and recording the answer (callers hold the send lock, so no live sender owns
    it). It is sent again, with the same Message-ID.
    """
    rows = store.conn.execute(
        "SELECT id FROM outbox WHERE status = 'sending' OR (status = 'pending' AND next_attempt_at <= ?) "
        "ORDER BY id LIMIT ?",
        (now, limit),
    )
    return [r[0] for r in rows]


def waiting(store: Store, now: str) -> int:
    """Pending mails whose next attempt is later than `now` (deferred by a 4xx)."""
    return store.conn.execute(
        "SELECT COUNT(*) FROM outbox WHERE status = 'pending' AND next_attempt_at > ?", (now,)
    ).fetchone()[0]


@contextmanager
def send_lock(store: Store) -> Iterator[bool]:
    """Whether this process may send now: on SQLite only while no other sender holds the data
    directory's lock; on PostgreSQL always (rows are claimed one by one, see the module doc)."""
    if store.engine.row_locks:
        yield True
        return
    with store.lock("digest") as got:
        yield got


def claim(store: Store, row_id: int, now: str) -> OutboxRow | None:
    """Mark a row 'sending' and count the attempt, committed before any SMTP traffic.

    Holds the row's claim lock (PostgreSQL) until `release`; None when another sender has it."""
    if not store.engine.try_row_lock(store.conn, CLAIM_LOCK, row_id):
        return None
    try:
        row = _claim(store, row_id, now)
    except BaseException:
        release(store, row_id)
        raise
    if row is None:
        release(store, row_id)
    return row


def release(store: Store, row_id: int) -> None:
    """Give up the claim of a row whose outcome is recorded (or that was not claimed)."""
    store.engine.row_unlock(store.conn, CLAIM_LOCK, row_id)


def _claim(store: Store, row_id: int, now: str) -> OutboxRow | None:
    with store.write(serial=False) as c:
        if not c.execute(
            "SELECT id FROM outbox WHERE id=? AND status IN ('pending', 'sending')" + store.engine.skip_locked,
            (row_id,),
        ).fetchone():
            return None
        # someone who unsubscribed after this mail was composed does not get it
        c.execute(
            "UPDATE outbox SET status='cancelled', updated_at=? WHERE id=? AND status IN ('pending', 'sending') "
            "AND (SELECT status FROM subscriptions s WHERE s.id = outbox.subscription_id) = 'unsubscribed'",
            (now, row_id),
        )
        cur = c.execute(
            "UPDATE outbox SET status='sending', attempts=attempts+1, updated_at=? "
            "WHERE id=? AND status IN ('pending', 'sending')",
            (now, row_id),
        )
        if cur.rowcount == 0:
            return None
        r = c.execute(f"SELECT {_COLS} FROM outbox WHERE id=?", (row_id,)).fetchone()
        return _row(r)


def mark_sent(store: Store, row_id: int, code: int | None, now: str) -> None:
    with store.write(serial=False) as c:
        c.execute(
            "UPDATE outbox SET status='sent', sent_at=?, last_code=?, last_error=NULL, updated_at=? WHERE id=?",
            (now, code, now, row_id),
        )


def mark_retry(store: Store, row_id: int, code: int | None, error: str, next_at: str, now: str) -> None:
    with store.write(serial=False) as c:
        c.execute(
            "UPDATE outbox SET status='pending', next_attempt_at=?, last_code=?, last_error=?, updated_at=? "
            "WHERE id=?",
            (next_at, code, error[:1000], now, row_id),
        )


def mark_failed(store: Store, row_id: int, code: int | None, error: str, now: str, *, suppress_key: str | None) -> None:
    """A permanent failure. With `suppress_key`, the address is suppressed and its
    other unsent mails are set aside in the same transaction."""
    from paperfeed.store.subscriptions import suppress

    with store.write() as c:
        c.execute(
            "UPDATE outbox SET status='failed', last_code=?, last_error=?, updated_at=? WHERE id=?",
            (code, error[:1000], now, row_id),
        )
        if suppress_key is not None:
            suppress(c, suppress_key, code, error, now)
            c.execute(
                "UPDATE outbox SET status='suppressed', last_error=?, updated_at=? "
                "WHERE status='pending' AND kind != 'confirm' AND subscription_id IN "
                "(SELECT id FROM subscriptions WHERE email_key=?)",
                (f"address suppressed after {code}: {error[:200]}", now, suppress_key),
            )


def has_mailed(store: Store, subscription_id: int, kind: str) -> bool:
    """Whether a `kind` mail for the subscription was ever queued (sent or still on its way)."""
    row = store.conn.execute(
        "SELECT 1 FROM outbox WHERE subscription_id = ? AND kind = ? AND status NOT IN ('cancelled', 'failed') LIMIT 1",
        (subscription_id, kind),
    ).fetchone()
    return row is not None


def recent_confirmations(store: Store, email_key: str, since: str) -> int:
    """Confirmation mails queued for an address since `since`, over all its subscriptions."""
    return store.conn.execute(
        "SELECT COUNT(*) FROM outbox o JOIN subscriptions s ON s.id = o.subscription_id "
        "WHERE s.email_key = ? AND o.kind = 'confirm' AND o.created_at >= ?",
        (email_key, since),
    ).fetchone()[0]


def counts(store: Store) -> dict[str, int]:
    return {r[0]: r[1] for r in store.conn.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status")}


def prune_bodies(store: Store, before: str) -> int:
    """Drop the stored bytes of mails sent before `before`; the rows stay, for the
    exactly-once record and the history."""
    with store.write() as c:
        cur = c.execute(
            "UPDATE outbox SET message=NULL WHERE status IN ('sent', 'failed', 'suppressed', 'cancelled') "
            "AND message IS NOT NULL AND updated_at < ?",
            (before,),
        )
        return cur.rowcount
