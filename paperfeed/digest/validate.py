"""Input checks for subscriptions: every message here is shown to a person as is."""

from __future__ import annotations

from paperfeed.addresses import AddressError, clean_address, has_hidden
from paperfeed.search.query import Filters, QueryError

MAX_QUERY = 500
MAX_FILTER = 200
KINDS = ("trending", "alert")
PERIODS = ("daily", "weekly")
FILTER_KEYS = ("category", "author", "source")

class SubscriptionError(ValueError):
    """Bad input for a subscription; str() is a message for the person who typed it."""


def _has_control(text: str) -> bool:
    # Format characters (Cf) are legitimate in text (the zero-width non-joiner in
    # Persian, emoji joiners), unlike in an address.
    return has_hidden(text, ("Cc", "Zl", "Zp"))


def clean_email(raw: str) -> str:
    """The address to store (paperfeed.addresses, shared with accounts), or SubscriptionError."""
    try:
        return clean_address(raw)
    except AddressError as exc:
        raise SubscriptionError(str(exc)) from None


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
    try:
        # the search's own checks, so an alert's filters mean what they mean on the site
        Filters.parse(category=out.get("category"), author=out.get("author"))
    except QueryError as exc:
        raise SubscriptionError(str(exc)) from None
    return out
