"""Live harvesting of arXiv over OAI-PMH into the store: incremental, exact and kill-safe.

Per set, the store remembers the last day fully harvested; the next run asks `from` that day
(inclusive, day granularity), so nothing is missed and nothing is fetched in full again.
Each page of records is applied in one transaction together with the resumption point of the
next page, so a run killed at any moment resumes where it stopped and ends in the state an
uninterrupted run gives. One harvest runs at a time per data directory (an flock that the
kernel releases when its holder dies).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from paperfeed import __version__
from paperfeed.config import Settings
from paperfeed.ingest import arxiv_oai
from paperfeed.ingest.arxiv_oai import ArxivRecord
from paperfeed.ingest.oai import DEFAULT_RETRY_SECONDS, BadInput, HarvestError, OaiClient, OaiError, Page
from paperfeed.models import Paper
from paperfeed.store import Store
from paperfeed.store import harvest as hs
from paperfeed.store.papers import _now

log = logging.getLogger(__name__)

SOURCE = "arxiv"
FIRST_RUN_DAYS = 3
LOCK_FILE = "harvest.lock"
MAX_ERRORS_KEPT = 100


class HarvestLocked(HarvestError):
    pass


def user_agent(contact_email: str) -> str:
    contact = f"; mailto:{contact_email}" if contact_email else ""
    return f"paperfeed/{__version__} (self-hosted paper feed; OAI-PMH harvester{contact})"


def make_client(settings: Settings, url: str | None = None, delay: float | None = None,
                retry_seconds: float = DEFAULT_RETRY_SECONDS, timeout: float | None = None) -> OaiClient:  # fmt: skip
    """A client for the configured endpoint (or `url`), naming the operator in its User-Agent."""
    return OaiClient(url or settings.arxiv_oai_url, user_agent=user_agent(settings.contact_email),
                     delay=settings.arxiv_oai_delay if delay is None else delay,
                     retry_seconds=retry_seconds, timeout=timeout)  # fmt: skip


@contextlib.contextmanager
def harvest_lock(data_dir: Path) -> Iterator[None]:
    """One harvest at a time per data directory; a second one raises HarvestLocked at once."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise HarvestLocked(f"another harvest is running in {data_dir}{who}; this one did nothing") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def shared_harvest_lock(store: Store) -> Iterator[None]:
    """On a database several nodes share, one harvest across all of them (an advisory lock the
    server drops when the holder's connection ends); `harvest_lock` covers one data directory."""
    if not store.engine.shared:
        yield
        return
    with store.lock("harvest") as got:
        if not got:
            raise HarvestLocked("another harvest is running on the shared database; this one did nothing")
        yield


def parse_day(value: str, what: str) -> str:
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise BadInput(f"{what} must be a date YYYY-MM-DD, not {value!r}") from None


@dataclass
class SetReport:
    set_spec: str
    from_: str | None = None
    until: str | None = None
    added: int = 0
    revised: int = 0
    deleted: int = 0
    unchanged: int = 0
    rejected: int = 0
    pages: int = 0
    resumed: bool = False
    error: str | None = None
    bad_input: bool = False  # the error is the request's fault: retrying will not help

    @property
    def records(self) -> int:
        return self.added + self.revised + self.deleted + self.unchanged + self.rejected

    def to_dict(self) -> dict:
        return {"set": self.set_spec, "from": self.from_, "until": self.until, "added": self.added,
                "revised": self.revised, "deleted": self.deleted, "unchanged": self.unchanged,
                "rejected": self.rejected, "pages": self.pages, "resumed": self.resumed, "error": self.error}  # fmt: skip


@dataclass
class HarvestReport:
    sets: list[SetReport] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # rejected records, the first MAX_ERRORS_KEPT
    seconds: float = 0.0
    waited: float = 0.0  # polite delays and Retry-After waits
    requests: int = 0

    @property
    def ok(self) -> bool:
        return all(s.error is None for s in self.sets)

    def total(self, name: str) -> int:
        return sum(getattr(s, name) for s in self.sets)

    def to_dict(self) -> dict:
        return {
            "ok": self.ok, "sets": [s.to_dict() for s in self.sets],
            **{k: self.total(k) for k in ("added", "revised", "deleted", "unchanged", "rejected", "records")},
            "errors": self.errors, "seconds": round(self.seconds, 3), "waited": round(self.waited, 3),
            "requests": self.requests,
        }  # fmt: skip


class _Progress:
    """A tqdm bar over the set's records on a terminal; a log line a page elsewhere."""

    def __init__(self, set_spec: str, enabled: bool | None) -> None:
        self.set_spec = set_spec
        self.bar = None
        if sys.stderr.isatty() if enabled is None else enabled:
            from tqdm import tqdm

            self.bar = tqdm(desc=f"harvest {set_spec or 'all'}", unit="rec", file=sys.stderr)

    def page(self, page: Page, rep: SetReport) -> None:
        if self.bar is not None:
            if page.complete_list_size and self.bar.total != page.complete_list_size:
                self.bar.total = page.complete_list_size
            self.bar.update(len(page.records))
            self.bar.set_postfix(added=rep.added, revised=rep.revised, deleted=rep.deleted, refresh=False)
        else:
            total = f"/{page.complete_list_size}" if page.complete_list_size else ""
            log.info("harvest %s: page %d, %d%s records (added %d, revised %d, deleted %d, unchanged %d)",
                     self.set_spec or "all", rep.pages, rep.records, total, rep.added, rep.revised, rep.deleted,
                     rep.unchanged)  # fmt: skip

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def apply_records(store: Store, records: Sequence[ArxivRecord], rep: SetReport,
                  extra: Callable[[], None] | None = None) -> None:  # fmt: skip
    """Write one page of records, and `extra` (the resumption point), in one transaction.

    A paper new to the store takes its feed date from the record; one the store has keeps
    its own (a revision does not move a paper to another day). A deleted record hides its
    paper; a paper arXiv deleted and lists again is shown again, but never one an admin hid.
    """
    with store.write() as c:
        seq0 = store.max_seq()
        ids = [r.arxiv_id for r in records]
        known = hs.known_records(c, ids)
        stored = hs.papers_by_arxiv_id(c, ids)
        live: list[Paper] = []
        for r in records:
            if r.paper is not None:
                if r.arxiv_id in stored:
                    r.paper.feed_date = None
                live.append(r.paper)
        counts = store.upsert_papers(live)
        changed = hs.changed_since(c, seq0)
        revised = 0
        deleted_before = rep.deleted
        # arxiv_records.deleted means "hidden because arXiv deleted it": only such a paper is
        # shown again when arXiv lists it again, never one an admin had hidden already
        hidden_by_arxiv: dict[str, bool] = {}
        for r in records:
            old = known.get(r.arxiv_id)
            if r.deleted:
                hid = r.arxiv_id in stored and store.set_hidden(stored[r.arxiv_id], True)
                rep.deleted += hid
                hidden_by_arxiv[r.arxiv_id] = hid or r.arxiv_id not in stored or bool(old and old.deleted)
            elif r.arxiv_id not in stored:
                continue
            elif old is not None and old.deleted:
                store.set_hidden(stored[r.arxiv_id], False)
                revised += 1
            elif r.arxiv_id in changed or (old is not None and old.updated != r.updated):
                revised += 1
        hs.write_records(c, [(r.arxiv_id, r.datestamp, r.created, r.updated, r.comments, r.journal_ref, r.license,
                              int(hidden_by_arxiv.get(r.arxiv_id, False))) for r in records])  # fmt: skip
        hidden_now = rep.deleted - deleted_before
        rep.added += counts.added
        rep.revised += revised
        # a deleted header for a paper the store lacks, or already hid, changes nothing
        rep.unchanged += len(records) - counts.added - revised - hidden_now
        if extra is not None:
            extra()


def _convert(page: Page, rep: SetReport, report: HarvestReport) -> list[ArxivRecord]:
    out = []
    for rec in page.records:
        try:
            out.append(arxiv_oai.to_record(rec))
        except ValueError as e:
            rep.rejected += 1
            if len(report.errors) < MAX_ERRORS_KEPT:
                report.errors.append(str(e))
    return out


def _window(state: hs.SetState | None, from_: str | None, until: str | None, today: str) -> tuple[str, str | None]:
    if from_ is not None:
        return from_, until
    if state is not None and state.run_token and until is None:
        return state.run_from or today, state.run_until
    if state is not None and state.harvested_until:
        return state.harvested_until, until
    first = dt.date.fromisoformat(today) - dt.timedelta(days=FIRST_RUN_DAYS)
    return first.isoformat(), until


def harvest_set(store: Store, client: OaiClient, set_spec: str, *, from_: str | None, until: str | None,
                today: str, report: HarvestReport, progress: bool | None = None) -> SetReport:  # fmt: skip
    """Harvest one set; the SetReport's `error` says why when it did not complete."""
    state = hs.get_state(store, SOURCE, set_spec)
    run_from, run_until = _window(state, from_, until, today)
    rep = SetReport(set_spec, run_from, run_until)
    report.sets.append(rep)
    token = None
    if (state is not None and state.run_token and state.run_from == run_from and state.run_until == run_until):
        # the same window as an unfinished run: continue after its last applied page
        token = state.run_token
        rep.resumed = True
        rep.added, rep.revised, rep.deleted, rep.unchanged = state.added, state.revised, state.deleted, state.unchanged
        rep.pages = state.pages
    else:
        state = hs.SetState(SOURCE, set_spec, harvested_until=state.harvested_until if state else None)
        state.run_from, state.run_until = run_from, run_until
    state.started_at = state.started_at if rep.resumed else _now()
    state.status, state.last_error = "running", None
    bar = _Progress(set_spec, progress)
    restarted = False
    try:
        while True:
            try:
                for page in client.list_records(metadata_prefix=arxiv_oai.METADATA_PREFIX, set_spec=set_spec or None,
                                                from_=run_from, until=run_until, token=token):  # fmt: skip
                    rep.pages += 1
                    records = _convert(page, rep, report)
                    _apply_page(store, state, page, records, rep)
                    bar.page(page, rep)
                break
            except OaiError as e:
                if e.code == "noRecordsMatch":
                    _finish(store, state, rep, None)
                    break
                if e.code == "badResumptionToken" and not restarted:
                    # an expired token (a run resumed long after it stopped, a server restarted
                    # mid-list): start the window again; pages applied already change nothing
                    log.info("harvest %s: resumption token refused (%s); restarting from %s", set_spec, e.text,
                             run_from)  # fmt: skip
                    token, restarted = None, True
                    continue
                if e.code in ("badArgument", "noSetHierarchy", "cannotDisseminateFormat", "badVerb"):
                    raise BadInput(_explain(e, set_spec)) from None
                raise
    except HarvestError as e:
        rep.error = str(e)
        if isinstance(e, BadInput) and not rep.resumed and rep.pages == 0:
            # input that cannot work stores nothing, not even the error: there is no run to resume
            rep.bad_input = True
        else:
            state.status, state.last_error, state.finished_at = "failed", str(e), _now()
            hs.save_state(store, state)
    finally:
        bar.close()
    return rep


def _explain(e: OaiError, set_spec: str) -> str:
    if e.code == "badArgument" and set_spec and "set" in e.text.lower():
        return f"set {set_spec!r} is not known to the repository ({e.text}); arXiv's sets are e.g. cs, math, " \
               "stat, q-bio, physics, physics:astro-ph"
    return str(e)


def _apply_page(store: Store, state: hs.SetState, page: Page, records: list[ArxivRecord], rep: SetReport) -> None:
    if state.run_response_day is None and page.response_date:
        state.run_response_day = page.response_date[:10]

    def save() -> None:
        state.pages = rep.pages
        if page.token:
            state.run_token, state.run_cursor, state.run_total = page.token, page.cursor, page.complete_list_size
            state.added, state.revised, state.deleted, state.unchanged = rep.added, rep.revised, rep.deleted, \
                rep.unchanged
            hs.save_state(store, state)
        else:
            _finish(store, state, rep, page)

    apply_records(store, records, rep, save)


def _finish(store: Store, state: hs.SetState, rep: SetReport, page: Page | None) -> None:
    """The window is complete: advance the set's datestamp if the window joins on to it."""
    upper = state.run_until or state.run_response_day or (page.response_date[:10] if page else None)
    upper = upper or dt.datetime.now(dt.UTC).date().isoformat()
    old = state.harvested_until
    if old is None or (state.run_from or "") <= old:
        state.harvested_until = max(old or upper, upper)
    state.run_token = state.run_cursor = None
    state.status, state.finished_at, state.last_error = "ok", _now(), None
    state.added, state.revised, state.deleted, state.unchanged = rep.added, rep.revised, rep.deleted, rep.unchanged
    state.pages = rep.pages
    hs.save_state(store, state)


def harvest_arxiv(store: Store, client: OaiClient, sets: Sequence[str], *, from_: str | None = None,
                  until: str | None = None, today: str | None = None,
                  progress: bool | None = None) -> HarvestReport:  # fmt: skip
    """Harvest each set in turn (the caller holds `harvest_lock`). A set that fails does not
    stop the others; the report says which failed and why."""
    started = time.monotonic()
    today = today or dt.datetime.now(dt.UTC).date().isoformat()
    if from_ is not None:
        from_ = parse_day(from_, "--from")
        if from_ > today:
            raise BadInput(f"--from {from_} is in the future (today is {today} UTC)")
    if until is not None:
        until = parse_day(until, "--until")
        if from_ is not None and until < from_:
            raise BadInput(f"--until {until} is before --from {from_}")
    report = HarvestReport()
    with store.bulk():
        for set_spec in dict.fromkeys(sets):
            harvest_set(store, client, set_spec, from_=from_, until=until, today=today, report=report,
                        progress=progress)  # fmt: skip
    report.seconds = time.monotonic() - started
    report.waited = client.waited
    report.requests = client.requests
    return report


def add_by_id(store: Store, client: OaiClient, value: str) -> tuple[Paper, str]:
    """Fetch one paper with GetRecord and store it; returns the stored paper and
    "added", "revised" or "unchanged". Raises BadInput for a malformed or unknown id."""
    try:
        arxiv_id = arxiv_oai.normalise_id(value)
    except ValueError as e:
        raise BadInput(str(e)) from None
    try:
        rec = client.get_record(arxiv_oai.IDENTIFIER_PREFIX + arxiv_id, arxiv_oai.METADATA_PREFIX)
    except OaiError as e:
        if e.code == "idDoesNotExist":
            raise BadInput(f"arXiv has no paper {arxiv_id} ({e.text or 'idDoesNotExist'})") from None
        raise
    try:
        record = arxiv_oai.to_record(rec)
    except ValueError as e:
        raise HarvestError(f"arXiv's record for {arxiv_id} cannot be used: {e}") from None
    if record.deleted:
        raise BadInput(f"arXiv lists {arxiv_id} as deleted")
    rep = SetReport("")
    apply_records(store, [record], rep)
    paper_id = hs.papers_by_arxiv_id(store.conn, [record.arxiv_id])[record.arxiv_id]
    paper = store.get_paper(paper_id)
    assert paper is not None
    status = "added" if rep.added else "revised" if rep.revised else "unchanged"
    return paper, status
