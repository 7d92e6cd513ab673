"""The send job: composing digests and alerts into the outbox, and sending it.

Exactly once, and where the edge is
-----------------------------------
1. Compose: for each active subscription with no outbox row for this period
   (2025-11-22 for daily, 2025-W47 for weekly), the mail is built and inserted
   with status 'pending'. UNIQUE (subscription_id, period_key) makes a second
   insert for the same period impossible; an alert's watermark moves in the same
   transaction, so the papers it lists are consumed exactly when it is recorded.
2. Claim: the row becomes 'sending' (attempts + 1), committed before any SMTP.
3. Send, then mark 'sent' (or 'pending' with a later next_attempt_at on 4xx /
   connection errors, or 'failed' + address suppressed on 5xx).

On SQLite only one send job runs at a time (an flock on <data>/digest.lock,
released by the kernel when the holder dies, so a SIGKILLed run never blocks the
next). Hence a 'sending' row found by a run is a leftover of a run that died
between steps 2 and 3, and it is sent again with the same Message-ID. On
PostgreSQL any number of send jobs run at once, on any nodes: each row is claimed
under its own lock (paperfeed.store.outbox), which the server drops when a sender
dies, so a 'sending' row whose lock is free is such a leftover.

The one window that SMTP cannot close (RFC 1047): the server accepted the mail
(250 after DATA) and the process died before step 3 committed. We resend rather
than risk a lost mail; the resend is byte-identical with the same Message-ID, so
receivers that deduplicate on Message-ID (most stores do) show one mail. Anywhere
else a crash leaves either no row (recomposed next run) or a row that is sent
exactly once.

How wide that window is, measured with `paperfeed bench mail-kills` (SIGKILL at a
random moment of a send, then a rerun; 40 digests a round, local aiosmtpd): 661
mails sent twice per 1,000 kills with 4 connections, 265 with 1, none lost. Each
row is marked sent in its own commit straight after its 250 (0.1 ms here); what
is left is the 250 travelling back after the server has taken the mail, so a
kill duplicates at most one mail per connection, the ones whose reply was in
flight (bench/results/mail-kills-*.json).
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from paperfeed.addresses import address_key
from paperfeed.config import Settings
from paperfeed.digest import compose, foryou, matching
from paperfeed.digest.periods import iso, period_key, utcnow
from paperfeed.digest.sender import DryRunSender, SmtpSender
from paperfeed.digest.validate import (
    clean_period,
)
from paperfeed.store import outbox as ob
from paperfeed.store import subscriptions as subs
from paperfeed.store.papers import Store
from paperfeed.store.subscriptions import Subscription

log = logging.getLogger(__name__)

TRENDING_SIZE = 10
ALERT_SIZE = 25
COMPOSE_BATCH = 200
RETRY_BASE = dt.timedelta(minutes=5)
RETRY_MAX = dt.timedelta(hours=6)
MAX_ATTEMPTS = 10  # about a day of backoff
KEEP_BODIES = dt.timedelta(days=30)
SMTP_CONNECTIONS = 4  # parallel connections: a remote relay costs round trips per mail


@dataclass
class RunReport:
    composed: int = 0
    empty: int = 0
    sent: int = 0
    retry: int = 0
    failed: int = 0
    written: list[str] = field(default_factory=list)  # dry run: .eml files
    waiting: int = 0  # mails deferred by an earlier failure, not due yet
    locked: bool = False  # another send job held the lock; nothing done
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "composed": self.composed, "empty": self.empty, "sent": self.sent, "retry": self.retry,
            "failed": self.failed, "waiting": self.waiting, "written": len(self.written), "locked": self.locked,
            "errors": self.errors,
        }  # fmt: skip


class Locked(Exception):
    pass


@contextmanager
def send_lock(store: Store) -> Iterator[None]:
    """May this process send now (paperfeed.store.outbox.send_lock); raises Locked if not."""
    with ob.send_lock(store) as got:
        if not got:
            raise Locked
        yield


def _compose_period(
    store: Store,
    settings: Settings,
    period: str,
    now: dt.datetime,
    report: RunReport,
    dry: DryRunSender | None,
) -> None:
    key = period_key(period, now)
    upto = store.max_seq()
    trending_block: compose.PaperBlock | None = None
    matcher = matching.AlertMatcher(store)
    # alerts for the same query over the same window list the same papers: render once
    blocks: dict[tuple, compose.PaperBlock] = {}
    after_id = 0
    while True:
        batch = subs.due_subscriptions(store, period, key, after_id=after_id, limit=COMPOSE_BATCH)
        if not batch:
            return
        after_id = batch[-1].id
        rows: list[tuple[Subscription, str, bytes, int, int | None]] = []
        no_match: list[Subscription] = []
        for sub in batch:
            if sub.kind == "trending":
                if trending_block is None:
                    papers = matching.trending_papers(store, period, TRENDING_SIZE)
                    trending_block = compose.paper_block(
                        settings, papers, f"{settings.base_url}/trending", "All trending papers"
                    )
                if trending_block.count == 0:
                    report.empty += 1
                    continue
                subject, msg = compose.compose_trending(settings, sub, key, trending_block, now)
                rows.append((sub, subject, msg, trending_block.count, None))
            else:
                papers = matcher.match(sub.query, sub.filters, sub.watermark_seq, upto, ALERT_SIZE + 1)
                if not papers:
                    # nothing new matched: no mail, but these papers are done with
                    report.empty += 1
                    if upto > sub.watermark_seq:
                        no_match.append(sub)
                    continue
                more = None
                if len(papers) > ALERT_SIZE:
                    papers = papers[:ALERT_SIZE]
                    more = f"{settings.base_url}/search?{urlencode({'q': sub.query})}"
                block_key = (tuple(p.rowid for p in papers), more)
                block = blocks.get(block_key)
                if block is None:
                    block = compose.paper_block(settings, [(p, None) for p in papers], more, "More results on paperfeed")
                    if len(blocks) > 1000:
                        blocks.clear()
                    blocks[block_key] = block
                first = not ob.has_mailed(store, sub.id, "alert")
                subject, msg = compose.compose_alert(settings, sub, key, block, now, first=first)
                rows.append((sub, subject, msg, block.count, upto))
        if dry is not None:
            for sub, _subject, msg, _n, _wm in rows:
                report.written.append(str(dry.write(f"{sub.kind}-{sub.id}-{key}-{sub.email}", msg)))
            report.composed += len(rows)
            continue
        stamp = iso(now)
        with store.write() as c:
            for sub, subject, msg, n, wm in rows:
                inserted = ob.insert(
                    c, subscription_id=sub.id, kind=sub.kind, period_key=key, recipient=sub.email,
                    message_id=compose.message_id(settings, sub.id, key), subject=subject, message=msg,
                    paper_count=n, now=stamp,
                )  # fmt: skip
                if inserted:
                    report.composed += 1
                    if wm is not None:
                        subs.set_watermark(c, sub.id, wm, stamp)
            for sub in no_match:
                subs.set_watermark(c, sub.id, upto, stamp)


def _compose_foryou(store: Store, settings: Settings, period: str, now: dt.datetime, report: RunReport,
                    dry: DryRunSender | None) -> None:  # fmt: skip
    try:
        run = foryou.compose_period(store, settings, period, now, dry)
    except Exception as exc:  # noqa: BLE001 - a broken index must not hold back the other mails
        log.exception("For-you mails of %s not composed", period)
        report.errors.append(f"For-you mails not composed: {type(exc).__name__}: {exc}")
        return
    report.composed += run.composed
    report.empty += run.empty
    report.written += run.written


def _backoff(attempts: int) -> dt.timedelta:
    return min(RETRY_BASE * (2 ** max(attempts - 1, 0)), RETRY_MAX)


class _SendRun:
    """What the sending threads of one run share: the report, the attempt budget,
    and a stop flag raised when the server cannot be reached."""

    def __init__(self, now: dt.datetime, report: RunReport, limit: int | None,
                 on_sent: Callable[[int], None] | None) -> None:  # fmt: skip
        self.now = now
        self.report = report
        self.limit = limit
        self.on_sent = on_sent
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.attempts = 0

    def take(self) -> bool:
        with self.lock:
            if self.stop.is_set() or (self.limit is not None and self.attempts >= self.limit):
                return False
            self.attempts += 1
            return True

    def handle(self, store: Store, sender: SmtpSender, row_id: int) -> None:
        """Claim (committed), send, record: the three steps of the module docstring."""
        row = ob.claim(store, row_id, iso(utcnow()))
        if row is None:
            return
        try:
            self._send(store, sender, row)
        finally:
            ob.release(store, row.id)

    def _send(self, store: Store, sender: SmtpSender, row: ob.OutboxRow) -> None:
        if row.message is None:
            return
        outcome = sender.send(row.recipient, row.message)
        stamp = iso(utcnow())
        if outcome.status == "sent":
            ob.mark_sent(store, row.id, outcome.code, stamp)
            with self.lock:
                self.report.sent += 1
                if self.on_sent:
                    self.on_sent(row.id)
        elif outcome.status == "retry" and row.attempts < MAX_ATTEMPTS:
            ob.mark_retry(store, row.id, outcome.code, outcome.error, iso(self.now + _backoff(row.attempts)), stamp)
            log.warning("mail %s to %s deferred: %s", row.id, row.recipient, outcome.error)
            with self.lock:
                self.report.retry += 1
                if outcome.connection:
                    self.report.errors.append(outcome.error)
                    # the server is unreachable or refusing us: the rest would fail the same way
                    self.stop.set()
        else:
            permanent = outcome.status == "failed"
            error = outcome.error if permanent else f"gave up after {row.attempts} attempts: {outcome.error}"
            ob.mark_failed(
                store, row.id, outcome.code, error, stamp,
                suppress_key=address_key(row.recipient) if permanent else None,
            )  # fmt: skip
            log.warning("mail %s to %s failed: %s", row.id, row.recipient, error)
            with self.lock:
                self.report.failed += 1


def _send_due(
    store: Store,
    settings: Settings,
    now: dt.datetime,
    report: RunReport,
    limit: int | None,
    on_sent: Callable[[int], None] | None,
    connections: int = 1,
) -> None:
    """Send every due row, over up to `connections` SMTP connections at once.

    Parallel connections matter with a remote relay, where each mail costs several
    round trips; each thread has its own SMTP connection and its own Store.
    """
    run = _SendRun(now, report, limit, on_sent)
    tried: set[int] = set()
    while not run.stop.is_set():
        ids = [i for i in ob.due_ids(store, iso(now)) if i not in tried]
        if not ids:
            return
        tried.update(ids)
        if limit is not None and run.attempts >= limit:
            return
        # The first mail goes on this thread: if the server is down, that one mail
        # takes the failure (and its backoff) and no other connection is tried.
        first = SmtpSender(settings)
        try:
            if run.take():
                run.handle(store, first, ids[0])
            rest = ids[1:]
            n = max(1, min(connections, len(rest)))
            if run.stop.is_set() or not rest:
                continue
            if n == 1:
                for row_id in rest:
                    if not run.take():
                        break
                    run.handle(store, first, row_id)
                continue
            work: queue.SimpleQueue[int] = queue.SimpleQueue()
            for row_id in rest:
                work.put(row_id)
            errors: list[BaseException] = []
            threads = [
                threading.Thread(target=_worker, args=(run, store.data_dir, settings, work, errors,
                                                       first if i == 0 else None),
                                 name=f"digest-smtp-{i}", daemon=True)
                for i in range(n)
            ]  # fmt: skip
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if errors:
                raise errors[0]
        finally:
            first.close()


def _worker(run: _SendRun, data_dir: Path, settings: Settings, work: queue.SimpleQueue[int],
            errors: list[BaseException], sender: SmtpSender | None) -> None:  # fmt: skip
    """One sending thread: its own Store (sqlite3 connections are per thread) and SMTP connection."""
    own = Store(data_dir)
    sender = sender or SmtpSender(settings)
    try:
        while True:
            try:
                row_id = work.get_nowait()
            except queue.Empty:
                return
            if not run.take():
                return
            run.handle(own, sender, row_id)
    except BaseException as exc:  # noqa: BLE001 - re-raised by the caller's thread
        errors.append(exc)
        run.stop.set()
    finally:
        sender.close()
        own.close()


def send_digests(
    store: Store,
    settings: Settings,
    *,
    period: str | None = None,
    dry_run: Path | None = None,
    now: dt.datetime | None = None,
    limit: int | None = None,
    on_sent: Callable[[int], None] | None = None,
    connections: int = SMTP_CONNECTIONS,
) -> RunReport:
    """Compose what is due for this period and send everything due in the outbox.

    Safe to run at any frequency and from several places at once: a run that
    finds another one holding the lock returns at once with `locked=True`.
    With `dry_run`, mails are written to that folder as .eml and nothing is
    recorded or sent. `limit` caps the number of send attempts (tests, benches).
    `connections` SMTP connections send in parallel.
    """
    now = now or utcnow()
    periods = [clean_period(period)] if period else ["daily", "weekly"]
    report = RunReport()
    try:
        with send_lock(store):
            if dry_run is not None:
                dry = DryRunSender(dry_run)
                for p in periods:
                    _compose_period(store, settings, p, now, report, dry)
                    _compose_foryou(store, settings, p, now, report, dry)
                for row_id in ob.due_ids(store, iso(now)):
                    row = ob.get(store, row_id)
                    if row is not None and row.message is not None:
                        report.written.append(str(dry.write(f"{row.kind}-{row.subscription_id}-{row.recipient}", row.message)))
                return report
            for p in periods:
                _compose_period(store, settings, p, now, report, None)
                _compose_foryou(store, settings, p, now, report, None)
            _send_due(store, settings, now, report, limit, on_sent, connections)
            _prune(store, now)
            report.waiting = ob.waiting(store, iso(now))
    except Locked:
        report.locked = True
    return report


def flush_outbox(store: Store, settings: Settings, now: dt.datetime | None = None) -> RunReport:
    """Send what is already in the outbox (a fresh confirmation mail) without composing."""
    now = now or utcnow()
    report = RunReport()
    try:
        with send_lock(store):
            _send_due(store, settings, now, report, None, None)
    except Locked:
        report.locked = True
    return report


def _prune(store: Store, now: dt.datetime) -> None:
    today = now.date().isoformat()
    if store.meta_get("digest.pruned") == today:
        return
    ob.prune_bodies(store, iso(now - KEEP_BODIES))
    store.meta_set("digest.pruned", today)


def run_scheduled(store: Store, settings: Settings) -> RunReport:
    """The entry point `paperfeed serve` calls every digest_interval_minutes."""
    report = send_digests(store, settings)
    if not report.locked and (report.composed or report.sent or report.retry or report.failed):
        log.info("digest run: %s", report.to_dict())
    return report
