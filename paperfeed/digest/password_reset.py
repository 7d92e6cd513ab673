"""The password-reset mail, sent straight through the configured SMTP server like the
verification mail (paperfeed.digest.verify): outbox rows belong to subscriptions, and
a lost reset mail costs the user one more request."""

from __future__ import annotations

import datetime as dt
import logging

from markupsafe import Markup

from paperfeed.config import Settings
from paperfeed.digest.compose import _env, account_mail
from paperfeed.digest.sender import Outcome, SmtpSender
from paperfeed.store.password_resets import RESET_TTL

log = logging.getLogger(__name__)


def reset_url(settings: Settings, token: str) -> str:
    return f"{settings.base_url}/password/reset/{token}"


def compose_reset(settings: Settings, email: str, url: str, now: dt.datetime) -> tuple[str, bytes]:
    """Not a list mail (no List-Unsubscribe): it goes out only when someone asks for it."""
    subject = "Choose a new paperfeed password"
    hours = int(RESET_TTL.total_seconds() // 3600)
    reason = f"This mail was sent to {email} because a new password was asked for on paperfeed."
    text = (
        f"Someone, hopefully you, asked to choose a new password for the paperfeed account of {email}.\n"
        f"The link works once, for {hours} hour{'' if hours == 1 else 's'}:\n\n{url}\n\n"
        "If you did not ask for this, ignore this mail: your password stays as it is.\n\n-- \n"
        f"{reason}\n"
    )
    body = Markup(_env.get_template("reset.html").render(email=email, reset_url=url, hours=hours))
    return subject, account_mail(settings, email, subject, "Choose a new password", text, body, reason, now,
                                 "paperfeed.reset")  # fmt: skip


def send_reset(settings: Settings, email: str, token: str) -> Outcome:
    _, message = compose_reset(settings, email, reset_url(settings, token), dt.datetime.now(dt.UTC))
    sender = SmtpSender(settings)
    try:
        outcome = sender.send(email, message)
    finally:
        sender.close()
    if outcome.status != "sent":
        log.warning("password reset mail to %s not sent: %s", email, outcome.error)
    return outcome
