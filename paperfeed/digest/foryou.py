"""The "For you" mail: the top N of an account's recommendations for the day or the week, on
the same outbox as every digest (paperfeed.digest.sending: one row per subscription and period, so
a mail is composed and sent once; RFC 8058 one-click unsubscribe in every mail).

Opting in is done signed in, by an account whose address is proven (paperfeed.web.auth), so
there is no second confirmation mail: the subscription is active at once. A daily mail lists
the newest feed day, a weekly one the last 7 feed days (paperfeed.search.foryou windows). No
mail goes out when nothing was added to the store since the last one (the watermark), or when
there is nothing to recommend.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import textwrap
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from markupsafe import Markup

from paperfeed.addresses import address_key
from paperfeed.config import Settings
from paperfeed.digest import compose
from paperfeed.digest.periods import iso, period_key
from paperfeed.digest.sender import DryRunSender
from paperfeed.digest.validate import SubscriptionError, clean_period
from paperfeed.latex import plain_text
from paperfeed.search.foryou import ForYouItem, Request, for_you_many
from paperfeed.search.recommend import ExplainMemo, ModelCache
from paperfeed.search.searcher import Searcher
from paperfeed.store import foryou_mail
from paperfeed.store import outbox as ob
from paperfeed.store import subscriptions as subs
from paperfeed.store.accounts import User
from paperfeed.store.papers import Store
from paperfeed.store.subscriptions import Subscription

log = logging.getLogger(__name__)

SIZES = (5, 10, 20, 30)
DEFAULT_SIZE = 10
WINDOW = {"daily": "today", "weekly": "week"}
BATCH = 200


def current(store: Store, user: User) -> tuple[Subscription, foryou_mail.ForYouMail] | None:
    """The account's For-you mail while it is active, else None."""
    opts = foryou_mail.for_user(store, user.id)
    sub = subs.get_subscription(store, opts.subscription_id) if opts else None
    if opts is None or sub is None or sub.status != "active":
        return None
    return sub, opts


def enable(store: Store, user: User, period: str, size: int = DEFAULT_SIZE, tag_id: int | None = None,
           now: dt.datetime | None = None) -> Subscription:  # fmt: skip
    """Start (or change) the account's For-you mail. `tag_id` must already be checked to be the
    user's. Raises SubscriptionError when the address is not proven yet."""
    if not user.email_verified:
        raise SubscriptionError("Confirm your email address first (see “Your subscriptions”): "
                                "mail goes only to an address that is proven yours.")  # fmt: skip
    period = clean_period(period)
    if size not in SIZES:
        raise SubscriptionError(f"Choose {', '.join(map(str, SIZES))} papers.")
    stamp = iso(now or dt.datetime.now(dt.UTC))
    old = foryou_mail.for_user(store, user.id)
    sub = subs.get_subscription(store, old.subscription_id) if old else None
    if sub is not None and sub.period != period and not subs.set_period(store, sub.id, period, stamp):
        sub = None
    if sub is None or sub.email_key != address_key(user.email):
        sub, _ = subs.upsert_subscription(store, user.email, "foryou", period, "", {}, stamp)
    if sub.status != "active":
        # watermark 0: the first mail goes out on the next run, with the window as it is
        sub = subs.confirm_subscription(store, sub.id, 0, stamp, epoch=sub.epoch) or sub
    foryou_mail.set_options(store, sub.id, user.id, tag_id, size)
    return subs.get_subscription(store, sub.id) or sub


def disable(store: Store, user: User, now: dt.datetime | None = None) -> bool:
    found = current(store, user)
    if found is None:
        return False
    subs.unsubscribe(store, found[0].id, iso(now or dt.datetime.now(dt.UTC)))
    return True


# ---- composing --------------------------------------------------------------------------


def _why(item: ForYouItem, from_follows: bool) -> str:
    parts = []
    if item.follow is not None:
        parts.append(f"By {item.follow.describe()}, whom you follow.")
    if item.nearest is not None:
        terms = f"; shares {', '.join(item.shared_terms)}" if item.shared_terms else ""
        whose = " (by an author you follow)" if from_follows else ", which you saved"
        parts.append(f"Like “{' '.join(plain_text(item.nearest.title).split())}”{whose}{terms}.")
    return " ".join(parts)


@functools.lru_cache(maxsize=16_384)
def _fill(text: str) -> str:
    """One paragraph of the text part (a digest wraps the same day's authors and excerpts for
    every reader: wrapped once)."""
    return textwrap.fill(text, 76, initial_indent="   ", subsequent_indent="   ")


def compose_foryou(settings: Settings, sub: Subscription, key: str, items: list[ForYouItem], now: dt.datetime,
                   more_url: str, *, from_follows: bool = False, views_cache: dict[int, dict] | None = None
                   ) -> tuple[str, bytes]:  # fmt: skip
    """The mail. `views_cache` (rowid -> the paper's view) is shared between the mails of a run."""
    links = compose.Links.for_subscription(settings, sub)
    views = []
    for item in items:
        base = views_cache.get(item.paper.rowid) if views_cache is not None else None
        if base is None:
            base = compose._paper_view(settings.base_url, item.paper, None)
            if views_cache is not None:
                views_cache[item.paper.rowid] = base
        v = dict(base)
        v["why"] = _why(item, from_follows)
        views.append(v)
    n = len(views)
    label = compose._period_label(sub, key)
    subject = f"For you: {n} paper{'' if n == 1 else 's'}, {label}"
    heading = "Papers for you this week" if sub.period == "weekly" else "Papers for you today"
    intro = "New papers ranked by the papers you saved on paperfeed, with why each one is here."
    reason = f"You get this {sub.period} mail because {sub.email} asked for For-you papers on paperfeed."
    body = Markup(compose._env.get_template("foryou.html").render(papers=views, more_url=more_url))
    chunks = []
    for i, v in enumerate(views, 1):
        lines = [f"{i}. {v['title']}"]
        for part in (v["authors"], v["excerpt"], v["why"]):
            if part:
                lines.append(_fill(part))
        if v["meta"]:
            lines.append(f"   {v['meta']}")
        lines.append(f"   {v['url']}")
        chunks.append("\n".join(lines))
    text = (f"{heading} ({label})\n{intro}\n\n" + "\n\n".join(chunks) + f"\n\nAll your recommendations: {more_url}"
            f"\n\n-- \n{reason}\nManage your subscriptions: {links.manage}\nUnsubscribe: {links.unsubscribe}\n")  # fmt: skip
    html = compose._env.get_template("mail_base.html").render(
        subject=subject, heading=heading, intro=intro, body_html=body, reason=reason,
        base_url=settings.base_url, manage_url=links.manage, unsubscribe_url=links.unsubscribe,
    )  # fmt: skip
    return subject, compose.build_message(settings, sub, key, subject, text, html, links, now)


@dataclass
class ComposeRun:
    composed: int = 0
    empty: int = 0
    written: list[str] = field(default_factory=list)  # dry run: .eml files


def compose_period(store: Store, settings: Settings, period: str, now: dt.datetime, dry: DryRunSender | None,
                   searcher: Searcher | None = None) -> ComposeRun:  # fmt: skip
    """Put this period's For-you mails in the outbox (or, with `dry`, in .eml files).

    The searcher (indexes and vectors) is opened only when some mail is due."""
    report = ComposeRun()
    key = period_key(period, now)
    upto = store.max_seq()
    # models are trained when a library changes and kept in the store: a mail run scores with
    # them, training only the missing or stale ones (and keeping those for the next run)
    cache = ModelCache(size=2 * BATCH, persist=True)
    memo = ExplainMemo()  # the window's papers and their words, read once for every mail
    views: dict[int, dict] = {}
    after_id = 0
    while True:
        batch = subs.due_subscriptions(store, period, key, after_id=after_id, limit=BATCH, kinds=("foryou",))
        if not batch:
            return report
        after_id = batch[-1].id
        if len(memo.papers) > 50 * BATCH:  # the window's papers and the readers' nearest saved ones
            memo.clear()
        opts = foryou_mail.for_subscriptions(store, [s.id for s in batch])
        if searcher is None:
            from paperfeed.search import open_searcher

            searcher = open_searcher(Path(settings.data_dir), store, auto_sync=False)
        rows: list[tuple[Subscription, str, bytes, int]] = []
        nothing_new: list[Subscription] = []
        due = [(sub, opts[sub.id]) for sub in batch if sub.id in opts and sub.watermark_seq < upto]
        report.empty += len(batch) - len(due)
        # one window, models from the store (trained only when missing or stale), all readers
        # of the batch scored at once
        results = for_you_many(store, searcher, cache, [Request(o.user_id, o.tag_id, o.size) for _, o in due],
                               window=WINDOW[period], memo=memo)  # fmt: skip
        for (sub, o), result in zip(due, results, strict=True):
            if not result.items:
                report.empty += 1
                nothing_new.append(sub)
                continue
            more = f"{settings.base_url}/for-you?" + urllib.parse.urlencode(
                {k: v for k, v in (("tag", o.tag_id), ("window", WINDOW[period])) if v is not None})  # fmt: skip
            subject, msg = compose_foryou(
                settings, sub, key, result.items, now, more, from_follows=result.from_follows, views_cache=views
            )
            rows.append((sub, subject, msg, len(result.items)))
        if dry is not None:
            for sub, _subject, msg, _n in rows:
                report.written.append(str(dry.write(f"foryou-{sub.id}-{key}-{sub.email}", msg)))
            report.composed += len(rows)
            continue
        stamp = iso(now)
        with store.write() as c:
            for sub, subject, msg, n in rows:
                if ob.insert(c, subscription_id=sub.id, kind="foryou", period_key=key, recipient=sub.email,
                             message_id=compose.message_id(settings, sub.id, key), subject=subject, message=msg,
                             paper_count=n, now=stamp):  # fmt: skip
                    report.composed += 1
                    subs.set_watermark(c, sub.id, upto, stamp)
            for sub in nothing_new:
                subs.set_watermark(c, sub.id, upto, stamp)
