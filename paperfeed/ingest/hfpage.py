"""Saved "Daily Papers" search pages: a header, an optional date, then title/abstract line pairs.

Two layouts exist: an older one with blank lines between everything and a
`Daily Papers` / `byAK ...` / date header, and a newer one with no blank lines
where "Subscribe" is glued to the first title.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

from paperfeed.ingest.files import numbered_lines
from paperfeed.ingest.records import Rejection, check_text
from paperfeed.models import Paper

HEADER_LINES = {
    "new",
    "get trending papers in your email inbox!",
    "get trending papers in your email inbox once a day!",
    "subscribe",
    "daily papers",
    "byak and the research community",
}
_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}  # fmt: skip
_DATE_RE = re.compile(r"^([A-Za-z]{3})[a-z]*\.?\s+(\d{1,2})(?:,?\s+(\d{4}))?$")


def looks_like_page(head: str) -> bool:
    first = [ln.strip().lower() for ln in head.splitlines() if ln.strip()][:6]
    return any(ln in HEADER_LINES or ln.startswith("subscribe") for ln in first)


def parse_page_date(text: str, year: int) -> str | None:
    m = _DATE_RE.match(text.strip())
    if not m or m.group(1).lower() not in _MONTHS:
        return None
    try:
        return dt.date(int(m.group(3) or year), _MONTHS[m.group(1).lower()], int(m.group(2))).isoformat()
    except ValueError:
        return None


def parse(path: Path, *, year: int, source: str | None = None) -> Iterator[Paper | Rejection]:
    source = source or f"hf-page:{path.stem}"
    # An undecodable line keeps its place (as None): dropped, it shifted every later
    # title onto the next paper's abstract.
    lines: list[tuple[int, str | None]] = []
    for n, raw in numbered_lines(path):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield Rejection(str(path), n, "invalid UTF-8 (its title/abstract pair is skipped)")
            lines.append((n, None))
            continue
        if text.strip():
            lines.append((n, text.strip()))

    page_date = None
    i = 0
    # The header is everything before the first title: known chrome lines and a date.
    while i < len(lines) and lines[i][1] is not None:
        low = lines[i][1].lower()
        if low in HEADER_LINES:
            i += 1
            continue
        d = parse_page_date(lines[i][1], year) if page_date is None else None
        if d:
            page_date = d
            i += 1
            continue
        if low.startswith("subscribe") and len(low) > len("subscribe"):
            lines[i] = (lines[i][0], lines[i][1][len("subscribe"):].strip())
        break
    if i >= len(lines):
        yield Rejection(str(path), lines[-1][0] if lines else 1, "page has a header but no papers")
        return

    body = lines[i:]
    position = 0
    for j in range(0, len(body), 2):
        n, title = body[j]
        if j + 1 >= len(body):
            yield Rejection(str(path), n, "title without an abstract (page cut short?)")
            return
        _, abstract = body[j + 1]
        if title is None or abstract is None:
            continue  # rejected above, with its line
        try:
            check_text("title", title, required=True)
            check_text("abstract", abstract)
        except ValueError as e:
            yield Rejection(str(path), n, str(e))
            continue
        position += 1
        yield Paper(
            title=title,
            abstract=abstract,
            feed_date=page_date,
            sources=[source],
            positions={source: position},
        )
