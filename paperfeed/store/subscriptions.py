"""Subscriptions SQL: plain functions over a Store, so another backend can
implement the same functions. Validation and tokens live in paperfeed.digest."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import orjson

from paperfeed.addresses import address_key
from paperfeed.store.papers import Connection, Store

_COLS = (
    "id, email, email_key, kind, period, query, filters, status, watermark_seq, confirm_sent, "
    "last_confirm_at, created_at, confirmed_at, unsubscribed_at, updated_at, epoch"
)


def now_iso(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Subscription:
    id: int
    email: str
    email_key: str
    kind: str  # trending | alert
    period: str  # daily | weekly
    query: str = ""
    filters: dict[str, str] = field(default_factory=dict)
    status: str = "pending"  # pending | active | unsubscribed
    watermark_seq: int = 0
    confirm_sent: int = 0
    last_confirm_at: str | None = None
    created_at: str = ""
    confirmed_at: str | None = None
    unsubscribed_at: str | None = None
    updated_at: str = ""
    epoch: int = 0  # cancellations so far: confirmation links are valid for one epoch

    def describe(self) -> str:
        """One line a person recognises: what this subscription sends."""
        if self.kind == "trending":
            return f"Trending papers, {self.period}"
        if self.kind == "foryou":
            return f"For you: papers ranked by your library, {self.period}"
        extra = "".join(f", {k}: {v}" for k, v in sorted(self.filters.items()))
        return f'New papers matching "{self.query}"{extra}, {self.period}'

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "email": self.email,
            "kind": self.kind,
            "period": self.period,
            "query": self.query,
            "filters": dict(self.filters),
            "status": self.status,
            "created_at": self.created_at,
            "confirmed_at": self.confirmed_at,
            "unsubscribed_at": self.unsubscribed_at,
        }


def _row(r: Any) -> Subscription:
    return Subscription(
        id=r[0],
        email=r[1],
        email_key=r[2],
        kind=r[3],
        period=r[4],
        query=r[5],
        filters=orjson.loads(r[6]),
        status=r[7],
        watermark_seq=r[8],
        confirm_sent=r[9],
        last_confirm_at=r[10],
        created_at=r[11],
        confirmed_at=r[12],
        unsubscribed_at=r[13],
        updated_at=r[14],
        epoch=r[15],
    )


def filters_json(filters: dict[str, str]) -> str:
    # sorted keys: the same filters always give the same text, which the
    # identity index compares
    return orjson.dumps({k: v for k, v in filters.items() if v}, option=orjson.OPT_SORT_KEYS).decode()


def upsert_subscription(
    store: Store, email: str, kind: str, period: str, query: str, filters: dict[str, str], now: str
) -> tuple[Subscription, bool]:
    """Create a pending subscription, or find the existing one for the same thing.

    Returns (subscription, created). An unsubscribed one is made pending again, so
    subscribing anew needs a fresh confirmation.
    """
    key = address_key(email)
    fj = filters_json(filters)
    with store.write() as c:
        r = c.execute(
            f"SELECT {_COLS} FROM subscriptions WHERE email_key=? AND kind=? AND period=? AND query=? AND filters=?",
            (key, kind, period, query, fj),
        ).fetchone()
        if r is not None:
            sub = _row(r)
            if sub.status == "unsubscribed":
                c.execute(
                    "UPDATE subscriptions SET status='pending', email=?, updated_at=? WHERE id=?",
                    (email, now, sub.id),
                )
                sub.status, sub.email = "pending", email
            return sub, False
        sid = c.execute(
            "INSERT INTO subscriptions (email, email_key, kind, period, query, filters, status, created_at, "
            "updated_at) VALUES (?,?,?,?,?,?,'pending',?,?) RETURNING id",
            (email, key, kind, period, query, fj, now, now),
        ).fetchone()[0]
        r = c.execute(f"SELECT {_COLS} FROM subscriptions WHERE id=?", (sid,)).fetchone()
        return _row(r), True


def get_subscription(store: Store, sub_id: int) -> Subscription | None:
    r = store.conn.execute(f"SELECT {_COLS} FROM subscriptions WHERE id=?", (sub_id,)).fetchone()
    return _row(r) if r else None


def list_subscriptions(
    store: Store, *, email: str | None = None, status: str | None = None, period: str | None = None
) -> list[Subscription]:
    where, args = [], []
    if email is not None:
        where.append("email_key = ?")
        args.append(address_key(email))
    if status is not None:
        where.append("status = ?")
        args.append(status)
    if period is not None:
        where.append("period = ?")
        args.append(period)
    sql = f"SELECT {_COLS} FROM subscriptions"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id"
    return [_row(r) for r in store.conn.execute(sql, args)]


def due_subscriptions(store: Store, period: str, period_key: str, *, after_id: int = 0, limit: int = 500,
                      kinds: tuple[str, ...] = ("trending", "alert")) -> list[Subscription]:  # fmt: skip
    """Active subscriptions of `period` and `kinds` with nothing in the outbox for `period_key`
    yet, not paused, and whose address is not suppressed, in id order, one page at a time."""
    rows = store.conn.execute(
        f"SELECT {', '.join('s.' + c.strip() for c in _COLS.split(','))} FROM subscriptions s "
        f"WHERE s.status = 'active' AND s.kind IN ({','.join('?' * len(kinds))}) AND s.period = ? AND s.id > ? "
        "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.subscription_id = s.id AND o.period_key = ?) "
        "AND NOT EXISTS (SELECT 1 FROM mail_suppressions m WHERE m.email_key = s.email_key) "
        "AND NOT EXISTS (SELECT 1 FROM subscription_pauses z WHERE z.subscription_id = s.id) "
        "ORDER BY s.id LIMIT ?",
        (*kinds, period, after_id, period_key, limit),
    )
    return [_row(r) for r in rows]


def confirm_subscription(store: Store, sub_id: int, watermark_seq: int, now: str, *, epoch: int
                         ) -> Subscription | None:  # fmt: skip
    """Activate a subscription (idempotent). The alert window starts at `watermark_seq`
    the first time; a second click changes nothing. Confirming proves the address
    takes mail, so it also lifts a suppression from an earlier hard bounce.

    Only while it is in `epoch` and not unsubscribed, checked in the same transaction
    (an unsubscribe may land between reading the link and this); else it is returned
    unchanged, and None when it does not exist."""
    with store.write() as c:
        r = c.execute(f"SELECT {_COLS} FROM subscriptions WHERE id=?", (sub_id,)).fetchone()
        if r is None:
            return None
        sub = _row(r)
        if sub.epoch != epoch or sub.status == "unsubscribed":
            return sub
        if sub.status != "active":
            c.execute(
                "UPDATE subscriptions SET status='active', confirmed_at=?, unsubscribed_at=NULL, "
                "watermark_seq=?, updated_at=? WHERE id=?",
                (now, watermark_seq, now, sub_id),
            )
            c.execute("DELETE FROM mail_suppressions WHERE email_key=?", (sub.email_key,))
        # confirmed by another route (the operator's CLI, an earlier mail): a
        # confirmation mail still waiting to go out would only confuse
        c.execute(
            "UPDATE outbox SET status='cancelled', updated_at=? WHERE subscription_id=? AND kind='confirm' "
            "AND status='pending'",
            (now, sub_id),
        )
        r = c.execute(f"SELECT {_COLS} FROM subscriptions WHERE id=?", (sub_id,)).fetchone()
        return _row(r)


def unsubscribe(store: Store, sub_id: int, now: str) -> Subscription | None:
    """Stop a subscription (idempotent) and cancel its mails not sent yet."""
    with store.write() as c:
        r = c.execute(f"SELECT {_COLS} FROM subscriptions WHERE id=?", (sub_id,)).fetchone()
        if r is None:
            return None
        if r["status"] != "unsubscribed":
            c.execute(
                "UPDATE subscriptions SET status='unsubscribed', unsubscribed_at=?, updated_at=?, epoch=epoch+1 "
                "WHERE id=?",
                (now, now, sub_id),
            )
        c.execute(
            "UPDATE outbox SET status='cancelled', updated_at=? WHERE subscription_id=? AND status='pending'",
            (now, sub_id),
        )
        r = c.execute(f"SELECT {_COLS} FROM subscriptions WHERE id=?", (sub_id,)).fetchone()
        return _row(r)


def set_period(store: Store, sub_id: int, period: str, now: str) -> bool:
    """Change daily <-> weekly; refused (False) when the same address already has
    that exact subscription with the other period."""
    try:
        with store.write() as c:
            cur = c.execute("UPDATE subscriptions SET period=?, updated_at=? WHERE id=?", (period, now, sub_id))
            return cur.rowcount > 0
    except store.engine.IntegrityError:
        return False


def note_confirm_queued(c: Connection, sub_id: int, now: str) -> int:
    """Count one more confirmation mail; returns its number (for its outbox key)."""
    c.execute(
        "UPDATE subscriptions SET confirm_sent = confirm_sent + 1, last_confirm_at=?, updated_at=? WHERE id=?",
        (now, now, sub_id),
    )
    return c.execute("SELECT confirm_sent FROM subscriptions WHERE id=?", (sub_id,)).fetchone()[0]


def set_watermark(c: Connection, sub_id: int, seq: int, now: str) -> None:
    c.execute(
        "UPDATE subscriptions SET watermark_seq = CASE WHEN watermark_seq > ? THEN watermark_seq ELSE ? END, "
        "updated_at=? WHERE id=?",
        (seq, seq, now, sub_id),
    )


def suppress(c: Connection, email_key: str, code: int | None, reason: str, now: str) -> None:
    c.execute(
        "INSERT INTO mail_suppressions (email_key, code, reason, created_at) VALUES (?,?,?,?) "
        "ON CONFLICT(email_key) DO UPDATE SET code=excluded.code, reason=excluded.reason",
        (email_key, code, reason[:500], now),
    )


def suppression(store: Store, email: str) -> tuple[int | None, str] | None:
    r = store.conn.execute(
        "SELECT code, reason FROM mail_suppressions WHERE email_key=?", (address_key(email),)
    ).fetchone()
    return (r[0], r[1]) if r else None
