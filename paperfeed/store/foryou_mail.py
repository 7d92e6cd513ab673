"""Which account, tag and size each "For you" mail subscription is for (table
foryou_subscriptions); the address, period and status are its subscriptions row."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from paperfeed.store.engine import in_chunks
from paperfeed.store.papers import Store


@dataclass(frozen=True, slots=True)
class ForYouMail:
    subscription_id: int
    user_id: int
    tag_id: int | None
    size: int


def set_options(store: Store, subscription_id: int, user_id: int, tag_id: int | None, size: int) -> None:
    with store.write() as c:
        c.execute(
            "INSERT INTO foryou_subscriptions (subscription_id, user_id, tag_id, size) VALUES (?,?,?,?) "
            "ON CONFLICT (user_id) DO UPDATE SET subscription_id = excluded.subscription_id, "
            "tag_id = excluded.tag_id, size = excluded.size",
            (subscription_id, user_id, tag_id, size),
        )


def for_user(store: Store, user_id: int) -> ForYouMail | None:
    r = store.conn.execute(
        "SELECT subscription_id, user_id, tag_id, size FROM foryou_subscriptions WHERE user_id = ?",
        (user_id,),
    ).fetchone()
    return ForYouMail(*r) if r else None


def for_subscriptions(store: Store, subscription_ids: Iterable[int]) -> dict[int, ForYouMail]:
    ids = list(subscription_ids)
    out: dict[int, ForYouMail] = {}
    for cond, chunk in in_chunks(store.conn, ids):
        for r in store.conn.execute(
            f"SELECT subscription_id, user_id, tag_id, size FROM foryou_subscriptions WHERE subscription_id {cond}",
            chunk,
        ):
            out[r[0]] = ForYouMail(*r)
    return out
