"""Email addresses: the one validator and the one lookup key, for accounts and
subscriptions alike, and escaping for text that reaches a terminal or a log.

An account and a subscription for the same mailbox must find each other (the
subscriptions page lists an address's subscriptions to its verified account),
and a lookalike address must not stand beside the real one: two validators and
two keys let "Kate@example.org" typed with the Kelvin sign (U+212A) register an
account whose key was kate@example.org, squatting the real Kate's.
"""

from __future__ import annotations

import re
import unicodedata

MAX_EMAIL = 254  # RFC 5321 path limit
MAX_LOCAL = 64

# Deliberately narrower than RFC 5322: quoted local parts, comments and IP
# literals are legal but are almost always typos or attacks in a sign-up form.
_LOCAL_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
# Never in an address, nor shown raw: controls (NUL, ESC, BEL, DEL...), format characters
# (right-to-left overrides, zero-width spaces and joiners), line and paragraph separators.
_HIDDEN = ("Cc", "Cf", "Zl", "Zp")


class AddressError(ValueError):
    """Not an address we accept; str() is a message for the person who typed it."""


def has_hidden(text: str, categories: tuple[str, ...] = _HIDDEN) -> bool:
    return any(unicodedata.category(ch) in categories for ch in text)


def clean_address(raw: str | None) -> str:
    """The address to store and mail to, or AddressError saying what is wrong with it.

    NFKC folds compatibility lookalikes (the Kelvin sign, fullwidth letters) into the
    ASCII letters they stand for; what is still not ASCII in the mailbox name is refused,
    and the domain is stored in its ASCII (IDNA) form, lower case, so every address works
    in SMTP envelopes and headers without SMTPUTF8.
    """
    if raw is None or not str(raw).strip():
        raise AddressError("Enter an email address.")
    text = str(raw)
    # checked before strip(): a trailing CR/LF is exactly what a header injection looks like
    if "\r" in text or "\n" in text or has_hidden(text):
        raise AddressError("The email address must not contain line breaks or control characters.")
    email = unicodedata.normalize("NFKC", text).strip()
    if len(email) > MAX_EMAIL:
        raise AddressError(f"That email address is too long (at most {MAX_EMAIL} characters).")
    if email.count("@") != 1:
        raise AddressError("Enter a single email address such as name@example.org.")
    local, domain = email.split("@")
    if not local or len(local) > MAX_LOCAL or not _LOCAL_RE.match(local):
        raise AddressError(f"The part before @ in {printable(email)!r} is not a valid mailbox name.")
    try:
        ascii_domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        raise AddressError(f"{printable(domain)!r} is not a valid mail domain.") from None
    labels = ascii_domain.rstrip(".").split(".")
    if len(labels) < 2 or not all(_LABEL_RE.match(label) for label in labels) or labels[-1].isdigit():
        raise AddressError(f"{printable(domain)!r} is not a valid mail domain (expected something like example.org).")
    return f"{local}@{ascii_domain.rstrip('.').lower()}"


def address_key(email: str | None) -> str:
    """The key an address is found by, everywhere: one mailbox, one key.

    Input that is not a valid address still gets a key (a log-in form must look it up
    and find nothing), folded the same way.
    """
    try:
        return clean_address(email).lower()
    except AddressError:
        return unicodedata.normalize("NFKC", email or "").strip().casefold()


def printable(text: str) -> str:
    """`text` with every control, format and separator character written as an escape
    (\\x1b, \\u202e), for terminals and logs: raw, they can rewrite what is shown."""
    if not has_hidden(text):
        return text
    out = []
    for ch in text:
        if unicodedata.category(ch) in _HIDDEN:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)
