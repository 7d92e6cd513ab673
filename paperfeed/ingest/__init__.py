"""Ingest: parsers turn files into normalised Paper records; the store dedups them.

Every parser streams its input and yields either a Paper or a Rejection, so a
malformed record is reported with file and line while the rest are kept, and
memory stays flat on multi-GB files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from paperfeed.ingest import arxiv, beir, hfpage, pipeline, tabular
from paperfeed.ingest.files import check_input
from paperfeed.ingest.records import InputError, Rejection
from paperfeed.models import Paper
from paperfeed.store import Store

log = logging.getLogger(__name__)

FORMATS = ("hf-page", "arxiv", "beir", "jsonl", "csv")
BATCH = 5000
MAX_ERRORS_KEPT = 1000

__all__ = ["FORMATS", "IngestReport", "InputError", "detect_format", "ingest_paths", "iter_records"]


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)  # "file:line: message", the first MAX_ERRORS_KEPT
    seconds: float = 0.0

    @property
    def records(self) -> int:
        return self.added + self.updated + self.unchanged + self.rejected

    def reject(self, message: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(message)

    def to_dict(self) -> dict:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
        }


def detect_format(path: Path) -> str:
    """Guess the format from the name and the first record."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    with path.open("rb") as f:
        head = f.read(65536)
    text = head.decode("utf-8", "replace")
    is_page = suffix in (".txt", ".html", ".htm") or hfpage.looks_like_page(text)
    if is_page and not text.lstrip().startswith("{"):
        return "hf-page"
    for line in head.splitlines():
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            break
        if isinstance(obj, dict):
            if arxiv.looks_like_arxiv(obj):
                return "arxiv"
            if beir.looks_like_beir(obj):
                return "beir"
            return "jsonl"
        break
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    raise InputError(
        f"{path}: cannot tell the format; pass --format one of {', '.join(FORMATS)}"
    )


_PARSERS: dict[str, Callable[..., Iterator[Paper | Rejection]]] = {
    "hf-page": hfpage.parse,
    "arxiv": arxiv.parse,
    "beir": beir.parse,
    "jsonl": tabular.parse_jsonl,
    "csv": tabular.parse_csv,
}


def iter_records(
    path: Path, fmt: str | None = None, *, year: int | None = None, source: str | None = None
) -> Iterator[Paper | Rejection]:
    """Parse one input; raises InputError before yielding anything if it cannot be read at all."""
    check_input(path)
    fmt = fmt or detect_format(path)
    if fmt not in _PARSERS:
        raise InputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    kwargs: dict = {"year": year or dt.date.today().year}
    if source:
        kwargs["source"] = source
    if path.stat().st_size >= pipeline.MIN_BYTES:
        return pipeline.parse_in_worker(path, fmt, kwargs)
    return _PARSERS[fmt](path, **kwargs)


class _Progress:
    """A tqdm bar over input bytes on a terminal; periodic log lines elsewhere (servers, CI)."""

    def __init__(self, total_bytes: int, enabled: bool | None) -> None:
        tty = sys.stderr.isatty() if enabled is None else enabled
        self.bar = None
        self.last_log = time.monotonic()
        if tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="ingest", file=sys.stderr)

    def update_to(self, nbytes: int, report: IngestReport) -> None:
        if self.bar is not None:
            self.bar.update(max(0, nbytes - self.bar.n))
            self.bar.set_postfix(added=report.added, rejected=report.rejected, refresh=False)
        elif time.monotonic() - self.last_log > 5:
            self.last_log = time.monotonic()
            log.info("ingest: %d records (%d added, %d rejected)", report.records, report.added, report.rejected)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def ingest_paths(
    store: Store,
    paths: Sequence[Path | str],
    fmt: str | None = None,
    *,
    year: int | None = None,
    progress: bool | None = None,
    source_name: str | None = None,
    today: str | None = None,
) -> IngestReport:
    """Ingest files into the store in batches, one transaction per batch.

    An input that cannot be read at all is reported as one error and skipped;
    the others are still ingested. Papers that come with no feed date (a page
    without a date) enter today's feed.
    """
    report = IngestReport()
    started = time.monotonic()
    today = today or dt.date.today().isoformat()
    paths = [Path(p) for p in paths]
    total = sum(p.stat().st_size for p in paths if p.is_file())
    bar = _Progress(total, progress)
    done_bytes = 0
    with store.bulk(), contextlib.ExitStack() as cleanup:
        cleanup.callback(bar.close)
        for path in paths:
            size = path.stat().st_size if path.is_file() else 0
            seen = 0
            try:
                records = iter_records(path, fmt, year=year, source=source_name)
            except InputError as e:
                report.reject(str(e))
                continue
            for batch in _read_ahead(_batches(records, report, today)):
                _flush(store, batch, report)
                seen += _batch_bytes(batch)
                bar.update_to(done_bytes + min(seen, size), report)
            done_bytes += size
            bar.update_to(done_bytes, report)
    report.seconds = time.monotonic() - started
    return report


def _batches(records: Iterator[Paper | Rejection], report: IngestReport, today: str) -> Iterator[list[Paper]]:
    """The papers of one input in batches of BATCH; rejections go to the report as they come."""
    batch: list[Paper] = []
    for rec in records:
        if isinstance(rec, Rejection):
            report.reject(str(rec))
            continue
        if not rec.feed_date:
            rec.feed_date = rec.published or today
        batch.append(rec)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = object()


def _read_ahead(batches: Iterator[list[Paper]]) -> Iterator[list[Paper]]:
    """The same batches in the same order, the next one read (received from the parser process,
    made into Papers) by a thread while this one waits for the store to write the current one:
    the store's waits on the database release the GIL. Profiled on a PostgreSQL import, that
    reading was 40% of the importing process's work, done while the server sat idle."""
    ahead: queue.Queue = queue.Queue(1)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(_END)
        except BaseException as exc:  # raised in the importing thread, as without the thread
            put(_Failed(exc))

    reader = threading.Thread(target=read, name="ingest-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            item = ahead.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        reader.join()


def _batch_bytes(batch: Sequence[Paper]) -> int:
    # an estimate of the input consumed, good enough for a progress bar
    return sum(len(p.title) + len(p.abstract) + 200 for p in batch)


def _flush(store: Store, batch: list[Paper], report: IngestReport) -> None:
    counts = store.upsert_papers(batch)
    report.added += counts.added
    report.updated += counts.updated
    report.unchanged += counts.unchanged
