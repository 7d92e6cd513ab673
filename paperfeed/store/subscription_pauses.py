"""Pausing a subscription: plain functions over a Store, like the other SQL modules.

A paused subscription stays active (no new confirmation is needed to resume it);
due_subscriptions skips it, so no digest or alert is composed while it is paused.
"""

from __future__ import annotations

from collections.abc import Iterable

from paperfeed.store.engine import in_chunks
from paperfeed.store.papers import Store


def pause(store: Store, sub_id: int, now: str) -> None:
    """Pause (idempotent) and cancel its digests not sent yet; a confirmation mail still goes."""
    with store.write() as c:
        c.execute(
            "INSERT INTO subscription_pauses (subscription_id, paused_at) VALUES (?, ?) "
            "ON CONFLICT (subscription_id) DO NOTHING",
            (sub_id, now),
        )
        c.execute(
            "UPDATE outbox SET status = 'cancelled', updated_at = ? WHERE subscription_id = ? "
            "AND status = 'pending' AND kind <> 'confirm'",
            (now, sub_id),
        )


def resume(store: Store, sub_id: int) -> None:
    """Send again from the next period on (idempotent). An alert then covers what arrived
    while it was paused, up to the usual number of papers."""
    with store.write() as c:
        c.execute("DELETE FROM subscription_pauses WHERE subscription_id = ?", (sub_id,))


def paused_ids(store: Store, sub_ids: Iterable[int]) -> set[int]:
    ids = list(sub_ids)
    out: set[int] = set()
    for cond, chunk in in_chunks(store.conn, ids):
        out.update(r[0] for r in store.conn.execute(
            f"SELECT subscription_id FROM subscription_pauses WHERE subscription_id {cond}", chunk))  # fmt: skip
    return out
