"""Signed tokens for the confirmation and unsubscribe links.

A token signs (subscription id, address): changing either breaks the signature,
so a token for one address cannot be turned into one for another. The salts
keep a confirmation token from working as an unsubscribe token and back.
"""

from __future__ import annotations

from itsdangerous import BadData, URLSafeSerializer, URLSafeTimedSerializer

CONFIRM_MAX_AGE = 14 * 24 * 3600  # a confirmation link older than this is refused


class TokenError(ValueError):
    """A token that is malformed, tampered with, expired or for another purpose."""


def _unsub(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt="paperfeed.unsubscribe.v1")


def _confirm(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="paperfeed.confirm.v1")


def unsubscribe_token(secret: str, sub_id: int, email_key: str) -> str:
    # no expiry: an unsubscribe link in a year-old mail must still work
    return _unsub(secret).dumps([sub_id, email_key])


def confirm_token(secret: str, sub_id: int, email_key: str) -> str:
    return _confirm(secret).dumps([sub_id, email_key])


def _check(payload: object) -> tuple[int, str]:
    if (
        not isinstance(payload, list)
        or len(payload) != 2
        or not isinstance(payload[0], int)
        or not isinstance(payload[1], str)
    ):
        raise TokenError("This link is not valid.")
    return payload[0], payload[1]


def read_unsubscribe_token(secret: str, token: str) -> tuple[int, str]:
    """(subscription id, address key), or TokenError."""
    try:
        return _check(_unsub(secret).loads(token))
    except BadData:
        raise TokenError("This unsubscribe link is not valid: it may have been cut short or altered.") from None


def read_confirm_token(secret: str, token: str, max_age: int = CONFIRM_MAX_AGE) -> tuple[int, str]:
    try:
        return _check(_confirm(secret).loads(token, max_age=max_age))
    except BadData as exc:
        if "expired" in str(exc).lower():
            raise TokenError("This confirmation link has expired; subscribe again to get a new one.") from None
        raise TokenError("This confirmation link is not valid: it may have been cut short or altered.") from None
