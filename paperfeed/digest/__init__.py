"""Email: subscriptions (double opt-in), composing, an exactly-once outbox, SMTP.

See paperfeed.digest.jobs for how exactly-once is achieved and where its edge is.
"""

from paperfeed.digest.jobs import (
    RunReport,
    SubscribeResult,
    confirm,
    confirm_email,
    flush_outbox,
    run_scheduled,
    send_digests,
    subscribe,
    unsubscribe,
)
from paperfeed.digest.tokens import TokenError
from paperfeed.digest.validate import SubscriptionError

__all__ = [
    "RunReport",
    "SubscribeResult",
    "SubscriptionError",
    "TokenError",
    "confirm",
    "confirm_email",
    "flush_outbox",
    "run_scheduled",
    "send_digests",
    "subscribe",
    "unsubscribe",
]
