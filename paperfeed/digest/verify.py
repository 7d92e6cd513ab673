"""The account verification mail: sent at sign-up and on request, straight
through the configured SMTP server.

It does not go through the outbox, whose rows belong to subscriptions: a lost
verification mail costs the user one click on "send the link again" (offered on
/account/subscriptions), and a failed send frees that button at once.
"""

from __future__ import annotations

import datetime as dt
import logging

from paperfeed.addresses import address_key
from paperfeed.config import Settings
from paperfeed.digest import compose, tokens
from paperfeed.digest.sender import Outcome, SmtpSender
from paperfeed.store import accounts as acc
from paperfeed.store.accounts import User
from paperfeed.store.papers import Store

log = logging.getLogger(__name__)


def verify_url(settings: Settings, user: User) -> str:
    token = tokens.verify_email_token(settings.secret_key, user.id, address_key(user.email))
    return f"{settings.base_url}/account/verify/{token}"


def send_verification(store: Store, settings: Settings, user: User, *, reserved: bool = False) -> Outcome | None:
    """Mail the verification link to the account's address.

    None when nothing was sent: the address is verified, or a link went out
    moments ago. `reserved` means the caller already took the slot with
    accounts.note_verify_sent (to answer the user before the mail is sent).
    """
    if user.email_verified:
        return None
    if not reserved and not acc.note_verify_sent(store, user.id):
        return None
    now = dt.datetime.now(dt.UTC)
    _, message = compose.compose_verify_email(settings, user.email, verify_url(settings, user), now)
    sender = SmtpSender(settings)
    try:
        outcome = sender.send(user.email, message)
    finally:
        sender.close()
    if outcome.status != "sent":
        log.warning("verification mail to %s not sent: %s", user.email, outcome.error)
        acc.forget_verify_sent(store, user.id)
    return outcome
