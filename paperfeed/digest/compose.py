"""Building the mails: multipart/alternative, plain text first, then HTML with inline CSS."""

from __future__ import annotations

import binascii
import datetime as dt
import functools
import hashlib
import textwrap
import urllib.parse
from dataclasses import dataclass
from email.policy import SMTP
from email.utils import format_datetime, parseaddr

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from paperfeed.config import Settings
from paperfeed.digest import tokens
from paperfeed.latex import plain_text
from paperfeed.models import Paper
from paperfeed.store.subscriptions import Subscription

EXCERPT_CHARS = 320
MAX_AUTHORS = 6
SUBJECT_QUERY_CHARS = 60

_env = Environment(
    loader=PackageLoader("paperfeed.digest", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The first lines of an abstract, cut at a word boundary."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit].rsplit(" ", 1)[0].rstrip(",.;:")
    return cut + "…"


def authors_line(authors: list[str]) -> str:
    if len(authors) <= MAX_AUTHORS:
        return ", ".join(authors)
    return ", ".join(authors[:MAX_AUTHORS]) + f", et al. ({len(authors)} authors)"


@dataclass
class Links:
    """The absolute URLs a mail needs, all from settings.base_url."""

    base: str
    unsubscribe: str
    manage: str
    mailto: str

    @classmethod
    def for_subscription(cls, settings: Settings, sub: Subscription) -> Links:
        token = tokens.unsubscribe_token(settings.secret_key, sub.id, sub.email_key)
        _, from_addr = parseaddr(settings.mail_from)
        mailto = f"mailto:{from_addr or 'paperfeed@localhost'}?subject=" + urllib.parse.quote(f"unsubscribe {token}")
        return cls(
            base=settings.base_url,
            unsubscribe=f"{settings.base_url}/unsubscribe/{token}",
            # a signed page for this address: a subscriber needs no account to manage mail
            manage=f"{settings.base_url}/manage/{tokens.manage_token(settings.secret_key, sub.id, sub.email_key)}",
            mailto=mailto,
        )


def message_id(settings: Settings, sub_id: int, period_key: str) -> str:
    """A Message-ID that is a function of the outbox row's identity (subscription,
    period): every attempt to send that row carries the same one, so a receiver
    that keeps Message-IDs drops a repeat."""
    h = hashlib.blake2b(f"{settings.secret_key}|{sub_id}|{period_key}".encode(), digest_size=6).hexdigest()
    host = urllib.parse.urlsplit(settings.base_url).hostname or "localhost"
    return f"<paperfeed.{sub_id}.{period_key}.{h}@{host}>"


def mail_date(now: dt.datetime) -> str:
    """The Date header of every mail: RFC 5322 with a numeric zone (`+0000`). The mails
    built with email.message.EmailMessage get this form whatever they are given (its
    header registry re-formats dates), so the hand-built digests use it too; "GMT" is
    RFC 5322's obsolete zone syntax."""
    return format_datetime(now.astimezone(dt.UTC))


@functools.lru_cache(maxsize=16)
def _folded(name: str, value: str) -> bytes:
    """A header line as the email package folds and RFC 2047-encodes it."""
    return SMTP.fold_binary(*SMTP.header_store_parse(name, value))


def _header(name: str, value: str) -> bytes:
    # values here never hold CR/LF: addresses and queries are validated on the way
    # in, and paper text never goes into a header
    if "\r" in value or "\n" in value:
        raise ValueError(f"line break in the {name} header")
    if value.isascii() and len(name) + len(value) < 76:
        return f"{name}: {value}\r\n".encode("ascii")
    # through the header registry, which RFC 2047-encodes non-ASCII text
    return SMTP.fold_binary(*SMTP.header_store_parse(name, value))


def _qp(text: str) -> bytes:
    # quoted-printable keeps lines under 76 characters whatever the content (a
    # 10,000-character title), as RFC 5322's 998 limit requires
    return binascii.b2a_qp(text.replace("\r\n", "\n").encode("utf-8"), istext=True).replace(b"\n", b"\r\n")


def _build(
    settings: Settings,
    sub: Subscription,
    period_key: str,
    subject: str,
    text: str,
    html: str,
    links: Links,
    now: dt.datetime,
) -> bytes:
    """multipart/alternative (text, then HTML), both UTF-8 quoted-printable.

    Assembled directly rather than through email.message.EmailMessage, whose
    header folding made up 80% of composing time; the tests parse every mail
    with the email package to hold this to the standard.
    """
    mid = message_id(settings, sub.id, period_key)
    host = urllib.parse.urlsplit(settings.base_url).hostname or "localhost"
    # '=' is always escaped in quoted-printable, so a boundary starting with
    # '=_' cannot occur inside either part
    boundary = "=_pf_" + hashlib.blake2b(mid.encode(), digest_size=12).hexdigest()
    head = b"".join([
        _folded("From", settings.mail_from),
        _header("To", sub.email),
        _header("Subject", subject),
        _header("Date", mail_date(now)),
        _header("Message-ID", mid),
        _header("List-Id", f"paperfeed {sub.kind} <{sub.kind}.{host}>"),
        f"List-Unsubscribe: <{links.unsubscribe}>,\r\n <{links.mailto}>\r\n".encode("ascii"),
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
        b"Auto-Submitted: auto-generated\r\n",
        b"MIME-Version: 1.0\r\n",
        f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'.encode("ascii"),
    ])  # fmt: skip
    b = boundary.encode("ascii")
    return b"".join([
        head, b"\r\n",
        b"--", b, b"\r\n", b'Content-Type: text/plain; charset="utf-8"\r\n',
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n", _qp(text), b"\r\n",
        b"--", b, b"\r\n", b'Content-Type: text/html; charset="utf-8"\r\n',
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n", _qp(html), b"\r\n",
        b"--", b, b"--\r\n",
    ])  # fmt: skip


# for composers in other modules (paperfeed.digest.foryou): the same headers and MIME layout
build_message = _build


def _paper_view(base: str, p: Paper, votes: int | None) -> dict:
    title = " ".join(plain_text(p.title).split())
    return {
        "title": title,
        "url": f"{base}/papers/{urllib.parse.quote(p.id)}",
        "authors": authors_line(p.authors),
        "excerpt": excerpt(plain_text(p.abstract)),
        "pdf": p.default_links().get("pdf"),
        "votes": votes,
        "meta": " · ".join(x for x in (p.feed_date or p.published, ", ".join(p.categories[:6]),
                                       f"arXiv:{p.arxiv_id}" if p.arxiv_id else "") if x),  # fmt: skip
        # every link in a mail says where it goes: a row of identical "PDF" links does not
        "pdf_label": f"PDF of arXiv:{p.arxiv_id}" if p.arxiv_id else f"PDF of “{_short(title, 40)}”",
    }


@dataclass
class PaperBlock:
    """The part of a digest that is the same for every recipient of the same papers,
    rendered once per run instead of once per mail."""

    html: Markup
    text: str
    count: int


def paper_block(settings: Settings, papers: list[tuple[Paper, int | None]], more_url: str | None, more_label: str) -> PaperBlock:
    views = [_paper_view(settings.base_url, p, v) for p, v in papers]
    html = Markup(_env.get_template("papers.html").render(papers=views, more_url=more_url, more_label=more_label))
    parts = []
    for i, v in enumerate(views, 1):
        lines = [f"{i}. {v['title']}"]
        if v["authors"]:
            lines.append(textwrap.fill(v["authors"], 76, initial_indent="   ", subsequent_indent="   "))
        if v["excerpt"]:
            lines.append(textwrap.fill(v["excerpt"], 76, initial_indent="   ", subsequent_indent="   "))
        votes = f"{v['votes']} vote{'' if v['votes'] == 1 else 's'}" if v["votes"] is not None else ""
        meta = " · ".join(x for x in (v["meta"], votes) if x)
        if meta:
            lines.append(f"   {meta}")
        lines.append(f"   {v['url']}")
        parts.append("\n".join(lines))
    text = "\n\n".join(parts)
    if more_url:
        text += f"\n\n{more_label}: {more_url}"
    return PaperBlock(html=html, text=text, count=len(views))


def _footer_text(reason: str, links: Links) -> str:
    return f"\n\n-- \n{reason}\nManage your subscriptions: {links.manage}\nUnsubscribe: {links.unsubscribe}\n"


def _period_label(sub: Subscription, period_key: str) -> str:
    if sub.period == "weekly":
        year, week = period_key.split("-W")
        return f"week {int(week)}, {year}"
    return dt.date.fromisoformat(period_key).strftime("%a %d %b %Y")


def compose_trending(
    settings: Settings, sub: Subscription, period_key: str, block: PaperBlock, now: dt.datetime
) -> tuple[str, bytes]:
    links = Links.for_subscription(settings, sub)
    label = _period_label(sub, period_key)
    subject = f"Trending papers, {label}"
    heading = "Trending papers this week" if sub.period == "weekly" else "Trending papers today"
    intro = f"The {block.count} most upvoted recent papers on paperfeed."
    reason = f"You get this {sub.period} digest because {sub.email} subscribed to trending papers."
    text = f"{heading} ({label})\n{intro}\n\n{block.text}{_footer_text(reason, links)}"
    html = _env.get_template("mail_base.html").render(
        subject=subject, heading=heading, intro=intro, body_html=block.html, reason=reason,
        base_url=settings.base_url, manage_url=links.manage, unsubscribe_url=links.unsubscribe,
    )  # fmt: skip
    return subject, _build(settings, sub, period_key, subject, text, html, links, now)


def _short(text: str, limit: int = SUBJECT_QUERY_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def compose_alert(
    settings: Settings, sub: Subscription, period_key: str, block: PaperBlock, now: dt.datetime,
    *, first: bool = False,
) -> tuple[str, bytes]:  # fmt: skip
    links = Links.for_subscription(settings, sub)
    n = block.count
    subject = f'{n} new paper{"" if n == 1 else "s"} for "{_short(sub.query)}"'
    heading = f"New papers for “{sub.query}”"
    papers = f"{n} paper{' has' if n == 1 else 's have'}"
    # there is no "last alert" before the first one
    intro = (f"{papers} arrived on paperfeed since you subscribed." if first
             else f"{papers} arrived on paperfeed since your last alert.")  # fmt: skip
    reason = f"You get this {sub.period} alert because {sub.email} saved the search “{sub.query}”."
    text = f"{heading}\n{intro}\n\n{block.text}{_footer_text(reason, links)}"
    html = _env.get_template("mail_base.html").render(
        subject=subject, heading=heading, intro=intro, body_html=block.html, reason=reason,
        base_url=settings.base_url, manage_url=links.manage, unsubscribe_url=links.unsubscribe,
    )  # fmt: skip
    return subject, _build(settings, sub, period_key, subject, text, html, links, now)


def compose_confirm(settings: Settings, sub: Subscription, period_key: str, now: dt.datetime) -> tuple[str, bytes]:
    links = Links.for_subscription(settings, sub)
    token = tokens.confirm_token(settings.secret_key, sub.id, sub.email_key, sub.epoch)
    confirm_url = f"{settings.base_url}/subscriptions/confirm/{token}"
    what = sub.describe()
    what = what[0].lower() + what[1:]
    subject = "Confirm your paperfeed subscription"
    body = Markup(_env.get_template("confirm.html").render(what=what, email=sub.email, confirm_url=confirm_url))
    reason = f"This mail was sent to {sub.email} because the address was entered on paperfeed."
    html = _env.get_template("mail_base.html").render(
        subject=subject, heading="Confirm your subscription", intro="", body_html=body, reason=reason,
        base_url=settings.base_url, manage_url=links.manage, unsubscribe_url=links.unsubscribe,
    )  # fmt: skip
    text = (
        f"Someone, hopefully you, asked to receive {what} at {sub.email}.\n"
        f"Nothing will be sent until you confirm. To confirm, open:\n\n{confirm_url}\n\n"
        "If you did not ask for this, ignore this mail: you will get nothing more."
        f"{_footer_text(reason, links)}"
    )
    return subject, _build(settings, sub, period_key, subject, text, html, links, now)


def compose_verify_email(settings: Settings, email: str, verify_url: str, now: dt.datetime) -> tuple[str, bytes]:
    """The account verification mail. Not a list mail (no List-Unsubscribe): it
    goes out once per sign-up or per click on "send the link again"."""
    subject = "Confirm your email address for paperfeed"
    reason = f"This mail was sent to {email} because the address was used to create a paperfeed account."
    text = (
        f"A paperfeed account was created with the address {email}.\n"
        "Confirm that it is yours to see and manage the subscriptions of this address:\n\n"
        f"{verify_url}\n\n"
        "If you did not create this account, someone typed your address. Nothing of yours is\n"
        "shown to them; the same link lets you take the account over.\n\n-- \n"
        f"{reason}\n"
    )
    body = Markup(_env.get_template("verify.html").render(email=email, verify_url=verify_url))
    return subject, account_mail(settings, email, subject, "Confirm your email address", text, body, reason, now,
                                 "paperfeed.verify")  # fmt: skip


def account_mail(settings: Settings, email: str, subject: str, heading: str, text: str, body_html: Markup,
                 reason: str, now: dt.datetime, id_prefix: str) -> bytes:  # fmt: skip
    """A mail about the reader's account (verification, password reset): not a list mail, so no
    List-Unsubscribe; plain text and HTML in the digests' frame."""
    from email.message import EmailMessage
    from email.utils import make_msgid

    host = urllib.parse.urlsplit(settings.base_url).hostname or "localhost"
    html = _env.get_template("mail_base.html").render(
        subject=subject, heading=heading, intro="", body_html=body_html, reason=reason,
        base_url=settings.base_url, manage_url="", unsubscribe_url="",
    )  # fmt: skip
    msg = EmailMessage(policy=SMTP)
    msg["From"] = settings.mail_from
    msg["To"] = email
    msg["Subject"] = subject
    msg["Date"] = mail_date(now)
    msg["Message-ID"] = make_msgid(id_prefix, domain=host)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text, cte="quoted-printable")
    msg.add_alternative(html, subtype="html", cte="quoted-printable")
    return msg.as_bytes()
