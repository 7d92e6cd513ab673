"""Plain JSON lines and CSV: title, abstract, authors, date (and optionally id, categories, doi, arxiv_id, url).

For everything that is not an arXiv snapshot or a saved page: a lab's reading
list, an export from a reference manager. Text is stored as given.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

from paperfeed.ingest.files import json_lines, numbered_lines
from paperfeed.ingest.records import Rejection, check_list, check_text
from paperfeed.models import Paper

DATE_KEYS = ("date", "published", "published_date", "feed_date")


def _date(value: object, field: str) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a YYYY-MM-DD string")
    try:
        return dt.date.fromisoformat(value.strip()[:10]).isoformat()
    except ValueError as e:
        raise ValueError(f"{field} {value[:40]!r} is not a YYYY-MM-DD date") from e


def to_paper(obj: dict, source: str) -> Paper:
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    title = check_text("title", obj.get("title"), required=True)
    abstract = check_text("abstract", obj.get("abstract", obj.get("summary")))
    published = None
    for k in DATE_KEYS:
        if obj.get(k) not in (None, ""):
            published = _date(obj[k], k)
            break
    feed_date = _date(obj.get("feed_date"), "feed_date") or published
    ext = obj.get("id")
    ext_ids = {}
    if isinstance(ext, int | str) and str(ext).strip():
        ext_ids[source] = str(ext).strip()
    arxiv_id = check_text("arxiv_id", obj.get("arxiv_id")).strip() or None
    doi = check_text("doi", obj.get("doi")).strip() or None
    links = {}
    url = check_text("url", obj.get("url")).strip()
    if url:
        if not url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        links["url"] = url
    return Paper(
        title=title,
        abstract=abstract,
        authors=check_list("authors", obj.get("authors")),
        categories=check_list("categories", obj.get("categories")),
        arxiv_id=arxiv_id,
        doi=doi,
        published=published,
        feed_date=feed_date,
        sources=[source],
        ext_ids=ext_ids,
        links=links,
    )


def parse_jsonl(path: Path, *, source: str | None = None, **_: object) -> Iterator[Paper | Rejection]:
    source = source or f"jsonl:{path.stem}"
    return json_lines(path, lambda obj: to_paper(obj, source))


def _csv_lines(path: Path) -> Iterator[str]:
    """Decoded lines for the csv module; an undecodable line is replaced so the csv
    reader keeps its line count, and flagged so the record is rejected."""
    for _, raw in numbered_lines(path):
        try:
            yield raw.decode("utf-8-sig") + "\n"
        except UnicodeDecodeError:
            yield raw.decode("utf-8", "replace").replace("\n", " ") + "\x00BADUTF8\n"


class _Lines:
    """The csv reader's line source: remembers the lines of the record being read, and
    takes lines back to read them again."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self._back: list[str] = []
        self.taken: list[str] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._back.pop() if self._back else next(self._lines)
        self.taken.append(line)
        return line

    def give_back(self, lines: list[str]) -> None:
        self._back.extend(reversed(lines))


def parse_csv(path: Path, *, source: str | None = None, **_: object) -> Iterator[Paper | Rejection]:
    source = source or f"csv:{path.stem}"
    lines = _Lines(_csv_lines(path))
    try:
        header = next(csv.reader(lines), None)
    except csv.Error:
        header = None
    names = [f.strip().lower() for f in header or []]
    if "title" not in names:
        yield Rejection(str(path), 1, "CSV header must have a 'title' column (and abstract, authors, date)")
        return
    line = len(lines.taken) + 1
    while True:
        lines.taken = []
        try:
            # one reader per record, so reading can restart on any line after a broken one
            row = next(csv.reader(lines), None)
        except csv.Error as e:
            yield Rejection(str(path), line, f"broken CSV ({e})")
            line += len(lines.taken)
            continue
        if row is None:
            return
        taken, here = lines.taken, line
        if len(taken) > 1 and sum(t.count('"') for t in taken) % 2:
            # A quote left open runs the field on through the following lines, swallowing
            # their records; a quoted field spanning lines legitimately holds an even number
            # of quote marks. Reject this line only, and read the next ones afresh.
            yield Rejection(str(path), here, "unterminated quoted field")
            lines.give_back(taken[1:])
            line += 1
            continue
        line += len(taken)
        if not row:
            continue  # a blank line
        if any("\x00BADUTF8" in v for v in row):
            yield Rejection(str(path), here, "invalid UTF-8")
            continue
        if len(row) > len(names):
            yield Rejection(str(path), here, "more fields than the header has")
            continue
        obj = dict(zip(names, row, strict=False))
        try:
            yield to_paper(obj, source)
        except ValueError as e:
            yield Rejection(str(path), here, str(e))
