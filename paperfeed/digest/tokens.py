"""Signed tokens for the confirmation and unsubscribe links.

A token signs (subscription id, hash of the address): changing either breaks the
signature, so a token for one address cannot be turned into one for another. The
address is hashed so that links (which end up in server logs) do not carry it. The salts
keep a confirmation token from working as an unsubscribe token and back.
"""

from __future__ import annotations

import hashlib
import hmac

from itsdangerous import BadData, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

CONFIRM_MAX_AGE = 14 * 24 * 3600  # a confirmation link older than this is refused


class TokenError(ValueError):
    """A token that is malformed, tampered with, expired or for another purpose."""


def _unsub(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt="paperfeed.unsubscribe.v1")


def _confirm(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="paperfeed.confirm.v1")


def address_digest(email_key: str) -> str:
    return hashlib.blake2b(email_key.encode(), digest_size=9).hexdigest()


def same_address(email_key: str, digest: str) -> bool:
    return hmac.compare_digest(address_digest(email_key), digest)


def unsubscribe_token(secret: str, sub_id: int, email_key: str) -> str:
    # no expiry: an unsubscribe link in a year-old mail must still work
    return _unsub(secret).dumps([sub_id, address_digest(email_key)])


def confirm_token(secret: str, sub_id: int, email_key: str, epoch: int) -> str:
    """`epoch` is the subscription's cancellation count: the link dies with the next unsubscribe."""
    return _confirm(secret).dumps([sub_id, address_digest(email_key), epoch])


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
    """(subscription id, address digest), or TokenError; check the digest with same_address()."""
    try:
        return _check(_unsub(secret).loads(token))
    except BadData:
        raise TokenError("This unsubscribe link is not valid: it may have been cut short or altered.") from None


def _read_timed(serializer: URLSafeTimedSerializer, token: str, max_age: int, *, expired: str, invalid: str
                ) -> tuple[int, str]:
    try:
        return _check(serializer.loads(token, max_age=max_age))
    except SignatureExpired:
        raise TokenError(expired) from None
    except BadData:
        raise TokenError(invalid) from None


def read_confirm_token(secret: str, token: str, max_age: int = CONFIRM_MAX_AGE) -> tuple[int, str, int]:
    """(subscription id, address digest, epoch), or TokenError. Links mailed before epochs
    existed carry none: they belong to epoch 0, so a later unsubscribe still kills them."""
    invalid = "This confirmation link is not valid: it may have been cut short or altered."
    try:
        payload = _confirm(secret).loads(token, max_age=max_age)
    except SignatureExpired:
        raise TokenError("This confirmation link has expired; subscribe again to get a new one.") from None
    except BadData:
        raise TokenError(invalid) from None
    if isinstance(payload, list) and len(payload) == 3:
        epoch = payload.pop()
        if isinstance(epoch, int) and not isinstance(epoch, bool):
            return (*_check(payload), epoch)
        raise TokenError(invalid)
    return (*_check(payload), 0)


# ---- account email verification ------------------------------------------------

VERIFY_MAX_AGE = 3 * 24 * 3600


def _verify(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="paperfeed.verify-email.v1")


def verify_email_token(secret: str, user_id: int, email_key: str) -> str:
    """Signs (account id, address digest): it proves only that its holder got the
    mail sent to that address for that account."""
    return _verify(secret).dumps([user_id, address_digest(email_key)])


def read_verify_email_token(secret: str, token: str, max_age: int = VERIFY_MAX_AGE) -> tuple[int, str]:
    """(account id, address digest), or TokenError; check the digest with same_address()."""
    return _read_timed(
        _verify(secret), token, max_age,
        expired="This link has expired; log in and ask for a new one.",
        invalid="This link is not valid: it may have been cut short or altered.",
    )  # fmt: skip


# ---- managing an address's subscriptions from a mail ---------------------------


def _manage(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt="paperfeed.manage.v1")


def manage_token(secret: str, sub_id: int, email_key: str) -> str:
    """Signs (subscription id, address digest) like the unsubscribe link, for the page that
    manages every subscription of that address. No expiry, as for unsubscribing: the link
    in an old mail must still let its reader stop the mail."""
    return _manage(secret).dumps([sub_id, address_digest(email_key)])


def read_manage_token(secret: str, token: str) -> tuple[int, str]:
    """(subscription id, address digest), or TokenError; check the digest with same_address()."""
    try:
        return _check(_manage(secret).loads(token))
    except BadData:
        raise TokenError("This link is not valid: it may have been cut short or altered.") from None
