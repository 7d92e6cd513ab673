"""Email: subscriptions (double opt-in), composing, an exactly-once outbox, SMTP.

Operating it
------------
Settings (environment, or the same keys in lower case in <data>/config.toml):
PAPERFEED_SMTP_HOST, _SMTP_PORT, _SMTP_USER, _SMTP_PASSWORD, _SMTP_TLS
(none | starttls | ssl), PAPERFEED_MAIL_FROM, PAPERFEED_BASE_URL (every link in a
mail is absolute, from it; use the public https URL) and PAPERFEED_SECRET_KEY
(signs the confirmation and unsubscribe links; changing it breaks old links).

    paperfeed subscribe reader@example.org --query "importance reweighting" --every daily
    paperfeed subscriptions confirm reader@example.org     # what the mailed link does
    */10 * * * *  paperfeed --data /srv/paperfeed digest send   # cron: any frequency is safe

or set digest_interval_minutes (or `serve --digest-every SECONDS`) and
`paperfeed serve` runs the same job, at start-up and then on that interval, in
the serve process only (one scheduler whatever --workers says). Daily
digests belong to the UTC day, weekly ones to the ISO week; one mail per
subscription per period. `digest send --dry-run DIR` writes the mails that would
go out now as .eml files and changes nothing. Requests that reach the mailto
half of List-Unsubscribe are not read by paperfeed: process them with
`paperfeed subscriptions unsubscribe EMAIL`.

See paperfeed.digest.sending for how exactly-once is achieved and where its edge is.
"""

from paperfeed.digest.sending import RunReport, flush_outbox, run_scheduled, send_digests
from paperfeed.digest.subscribing import SubscribeResult, confirm, confirm_email, subscribe, unsubscribe
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
