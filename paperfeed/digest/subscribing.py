"""Subscribing, confirming (double opt-in) and unsubscribing.

A confirmation mail goes through the same outbox as the digests (see `paperfeed.digest.sending`
for how the outbox sends exactly once).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from paperfeed.config import Settings
from paperfeed.digest import compose, tokens
from paperfeed.digest.periods import iso, utcnow
from paperfeed.digest.validate import (
    SubscriptionError,
    clean_email,
    clean_filters,
    clean_period,
    clean_query,
)
from paperfeed.search import window
from paperfeed.store import outbox as ob
from paperfeed.store import subscriptions as subs
from paperfeed.store.papers import Store
from paperfeed.store.subscriptions import Subscription

log = logging.getLogger(__name__)

CONFIRM_RESEND = dt.timedelta(minutes=10)  # one confirmation mail per subscription per 10 min
CONFIRMS_PER_HOUR = 5  # confirmation mails to one address, whatever the subscriptions


@dataclass
class SubscribeResult:
    subscription: Subscription
    created: bool
    confirm_queued: bool

    @property
    def message(self) -> str:
        s = self.subscription
        if s.status == "active":
            return f"{s.email} is already subscribed: {s.describe()}."
        if self.confirm_queued:
            return f"Confirmation mail queued for {s.email}: nothing is sent until its link is clicked."
        return (f"A confirmation mail was sent to {s.email} a short while ago; click its link to confirm "
                "(to protect inboxes, we do not send another yet).")


def subscribe(
    store: Store,
    settings: Settings,
    email: str,
    *,
    trending: str | None = None,
    query: str | None = None,
    every: str = "daily",
    filters: dict[str, str | None] | None = None,
    now: dt.datetime | None = None,
) -> SubscribeResult:
    """Validate, create (or find) a pending subscription and queue its confirmation mail.

    Raises SubscriptionError with a message for the person who typed the input.
    """
    now = now or utcnow()
    addr = clean_email(email)
    if (trending is None) == (query is None):
        raise SubscriptionError("Choose either the trending digest or a search to be alerted about.")
    if trending is not None:
        kind, period, q, f = "trending", clean_period(trending), "", {}
        if filters and any(filters.values()):
            raise SubscriptionError("Filters apply to search alerts only.")
    else:
        kind, period, q, f = "alert", clean_period(every), clean_query(query), clean_filters(filters)
        try:
            window.compile_query(q)
        except ValueError as exc:
            raise SubscriptionError(f"That search cannot be run: {exc}.") from None
        if not window.query_terms(q):
            raise SubscriptionError(
                f"“{q}” has no words to search for (only very common words); add a topic word."
            )
    sub, created = subs.upsert_subscription(store, addr, kind, period, q, f, iso(now))
    queued = False
    if sub.status == "pending":
        queued = queue_confirmation(store, settings, sub, now)
    return SubscribeResult(subs.get_subscription(store, sub.id) or sub, created, queued)


def queue_confirmation(store: Store, settings: Settings, sub: Subscription, now: dt.datetime) -> bool:
    """Put a confirmation mail in the outbox, unless one was queued moments ago
    (which keeps the form from being used to flood someone's inbox)."""
    if sub.last_confirm_at and dt.datetime.fromisoformat(sub.last_confirm_at.replace("Z", "+00:00")) > now - CONFIRM_RESEND:
        return False
    # many different subscriptions typed in for one address are a flood too
    if ob.recent_confirmations(store, sub.email_key, iso(now - dt.timedelta(hours=1))) >= CONFIRMS_PER_HOUR:
        return False
    with store.write() as c:
        n = subs.note_confirm_queued(c, sub.id, iso(now))
        key = f"confirm-{n}"
        subject, message = compose.compose_confirm(settings, sub, key, now)
        return ob.insert(
            c, subscription_id=sub.id, kind="confirm", period_key=key, recipient=sub.email,
            message_id=compose.message_id(settings, sub.id, key), subject=subject, message=message,
            paper_count=0, now=iso(now),
        )  # fmt: skip


def confirm(store: Store, settings: Settings, token: str, now: dt.datetime | None = None) -> Subscription:
    """What the confirmation link does. Idempotent. Raises TokenError."""
    sub_id, key, epoch = tokens.read_confirm_token(settings.secret_key, token)
    return _confirm_checked(store, sub_id, key, epoch, now or utcnow())


def check_confirmable(store: Store, sub_id: int, key: str, epoch: int,
                      sub: Subscription | None = None) -> Subscription:  # fmt: skip
    """The subscription a confirmation link may confirm; TokenError when the link is not for
    it as it is now."""
    sub = sub or subs.get_subscription(store, sub_id)
    if sub is None or not tokens.same_address(sub.email_key, key):
        raise tokens.TokenError("This confirmation link is for a subscription that no longer exists.")
    # An old confirmation mail must not undo a later unsubscribe, not even after the
    # address was subscribed again (by anyone): that consent needs a link mailed since.
    if sub.status == "unsubscribed" or epoch != sub.epoch:
        raise tokens.TokenError("This subscription was cancelled after this link was sent; "
                                "use the link in the newest confirmation mail, or subscribe again.")  # fmt: skip
    return sub


def _confirm_checked(store: Store, sub_id: int, key: str, epoch: int, now: dt.datetime) -> Subscription:
    check_confirmable(store, sub_id, key, epoch)
    out = subs.confirm_subscription(store, sub_id, store.max_seq(), iso(now), epoch=epoch)
    # checked again on what the transaction saw
    return check_confirmable(store, sub_id, key, epoch, out)


def confirm_email(store: Store, email: str, now: dt.datetime | None = None) -> list[Subscription]:
    """The operator's shortcut: confirm every pending subscription of an address."""
    addr = clean_email(email)
    now = now or utcnow()
    pending = subs.list_subscriptions(store, email=addr, status="pending")
    return [_confirm_checked(store, s.id, tokens.address_digest(s.email_key), s.epoch, now) for s in pending]


def unsubscribe(store: Store, settings: Settings, token: str, now: dt.datetime | None = None) -> Subscription:
    """What the unsubscribe link does (GET button or RFC 8058 POST). Idempotent.
    Raises TokenError."""
    sub_id, key = tokens.read_unsubscribe_token(settings.secret_key, token)
    sub = subs.get_subscription(store, sub_id)
    if sub is None or not tokens.same_address(sub.email_key, key):
        raise tokens.TokenError("This unsubscribe link is for a subscription that no longer exists.")
    out = subs.unsubscribe(store, sub_id, iso(now or utcnow()))
    assert out is not None
    return out


# ---- the send job ---------------------------------------------------------
