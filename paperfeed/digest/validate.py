"""Input checks for subscriptions: every message here is shown to a person as is."""

from __future__ import annotations

import re
import unicodedata

MAX_EMAIL = 254  # RFC 5321 path limit
MAX_LOCAL = 64
MAX_QUERY = 500
MAX_FILTER = 200
KINDS = ("trending", "alert")
PERIODS = ("daily", "weekly")
FILTER_KEYS = ("category", "author", "source")

# Deliberately narrower than RFC 5322: quoted local parts, comments and IP
# literals are legal but are almost always typos or attacks in a sign-up form.
_LOCAL_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class SubscriptionError(ValueError):
    """Bad input for a subscription; str() is a message for the person who typed it."""


def _has_control(text: str, *, strict: bool = False) -> bool:
    # Format characters (Cf) are legitimate in text (the zero-width non-joiner in
    # Persian, emoji joiners) but never in an address.
    bad = ("Cc", "Cf", "Zl", "Zp") if strict else ("Cc", "Zl", "Zp")
    return any(unicodedata.category(ch) in bad for ch in text)


def clean_email(raw: str) -> str:
    """The address to store, or SubscriptionError saying what is wrong with it."""
    if raw is None or not str(raw).strip():
        raise SubscriptionError("Enter an email address.")
    text = str(raw)
    # checked before strip(): a trailing CR/LF is exactly what a header injection looks like
    if "\r" in text or "\n" in text or _has_control(text, strict=True):
        raise SubscriptionError("The email address must not contain line breaks or control characters.")
    email = text.strip()
    if len(email) > MAX_EMAIL:
        raise SubscriptionError(f"That email address is too long (at most {MAX_EMAIL} characters).")
    if email.count("@") != 1:
        raise SubscriptionError("Enter a single email address such as name@example.org.")
    local, domain = email.split("@")
    if not local or len(local) > MAX_LOCAL or not _LOCAL_RE.match(local):
        raise SubscriptionError(f"The part before @ in {email!r} is not a valid mailbox name.")
    try:
        ascii_domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        raise SubscriptionError(f"{domain!r} is not a valid mail domain.") from None
    labels = ascii_domain.rstrip(".").split(".")
    if len(labels) < 2 or not all(_LABEL_RE.match(label) for label in labels) or labels[-1].isdigit():
        raise SubscriptionError(f"{domain!r} is not a valid mail domain (expected something like example.org).")
    # the domain is stored in its ASCII (IDNA) form, so every address works in
    # SMTP envelopes and headers without SMTPUTF8
    return f"{local}@{ascii_domain.rstrip('.').lower()}"


def clean_query(raw: str | None) -> str:
    if raw is None or not str(raw).strip():
        raise SubscriptionError("Enter the search to be alerted about, for example: importance reweighting.")
    text = str(raw)
    if len(text) > MAX_QUERY:
        raise SubscriptionError(f"The search is {len(text):,} characters long; at most {MAX_QUERY} are allowed.")
    if "\r" in text or "\n" in text or _has_control(text):
        raise SubscriptionError("The search must be on one line, without control characters.")
    return " ".join(text.split())


def clean_period(raw: str | None) -> str:
    if raw not in PERIODS:
        raise SubscriptionError(f"How often must be daily or weekly, not {raw!r}.")
    return raw


def clean_filters(raw: dict[str, str | None] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (raw or {}).items():
        if key not in FILTER_KEYS:
            raise SubscriptionError(f"Unknown filter {key!r}; use one of {', '.join(FILTER_KEYS)}.")
        if value is None or not str(value).strip():
            continue
        text = str(value)
        if len(text) > MAX_FILTER:
            raise SubscriptionError(f"The {key} filter is too long (at most {MAX_FILTER} characters).")
        if "\r" in text or "\n" in text or _has_control(text):
            raise SubscriptionError(f"The {key} filter must be on one line, without control characters.")
        out[key] = text.strip()
    return out
