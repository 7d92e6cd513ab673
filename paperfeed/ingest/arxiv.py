"""The arXiv OAI metadata snapshot: one JSON object a line, 2.5M lines for all of arXiv.

This is the hot path of a full import, so it avoids strptime and re-encoding:
orjson parses bytes directly and dates are sliced by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from paperfeed.ingest.files import json_lines
from paperfeed.ingest.records import Rejection, check_text
from paperfeed.models import Paper

SOURCE = "arxiv"
_MONTHS = {m: f"{i:02d}" for i, m in enumerate(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)}  # fmt: skip


def looks_like_arxiv(obj: dict) -> bool:
    return "authors_parsed" in obj or ("versions" in obj and "id" in obj)


def created_date(created: str) -> str | None:
    """'Mon, 2 Apr 2007 19:18:42 GMT' -> '2007-04-02'."""
    parts = created.split()
    if len(parts) < 4 or parts[2] not in _MONTHS:
        return None
    day, year = parts[1], parts[3]
    if not (day.isdigit() and year.isdigit()):
        return None
    return f"{year}-{_MONTHS[parts[2]]}-{int(day):02d}"


def _author_name(parts: list) -> str:
    # authors_parsed is [last, first, suffix]; people read "First Last Suffix"
    if len(parts) == 3 and not parts[2]:
        return f"{parts[1]} {parts[0]}" if parts[1] else parts[0]
    ordered = [parts[1], parts[0], *parts[2:]] if len(parts) > 1 else parts
    return " ".join(p for p in ordered if isinstance(p, str) and p)


def to_paper(obj: dict) -> Paper:
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    parsed = obj.get("authors_parsed")
    if isinstance(parsed, list):
        authors = [a for a in parsed if isinstance(a, list)]
    elif isinstance(obj.get("authors"), str):
        authors = [[a.strip()] for a in obj["authors"].replace(" and ", ", ").split(",") if a.strip()]
    else:
        authors = []
    published = None
    versions = obj.get("versions")
    if isinstance(versions, list) and versions and isinstance(versions[0], dict):
        created = versions[0].get("created")
        if isinstance(created, str):
            published = created_date(created)
    if published is None and isinstance(obj.get("update_date"), str):
        published = obj["update_date"][:10]
    return make_paper(obj.get("id"), obj.get("title"), obj.get("abstract"), authors, obj.get("categories"),
                      obj.get("doi"), published)


def make_paper(arxiv_id: object, title: object, abstract: object, authors_parsed: list[list],
               categories: object, doi: object, published: str | None) -> Paper:
    """An arXiv record as a Paper, whichever way it arrived (snapshot line, OAI-PMH record).

    `authors_parsed` holds [last, first, suffix] lists as the snapshot has them, or [name]
    for a name that came unsplit.
    """
    if not isinstance(arxiv_id, str) or not arxiv_id.strip():
        raise ValueError("missing id")
    title = " ".join(check_text("title", title, required=True).split())
    abstract = " ".join(check_text("abstract", abstract).split())
    authors = [_author_name(a) for a in authors_parsed]
    if "\x00" in "".join(authors):
        raise ValueError("NUL byte in authors")
    cats = categories or ""
    if not isinstance(cats, str):
        raise ValueError("categories must be a space-separated string")
    doi = doi.strip() if isinstance(doi, str) and doi.strip() else None
    arxiv_id = arxiv_id.strip()
    return Paper(
        title=title,
        abstract=abstract,
        authors=authors,
        categories=cats.split(),
        arxiv_id=arxiv_id,
        doi=doi,
        published=published,
        feed_date=published,
        sources=[SOURCE],
    )


def parse(path: Path, **_: object) -> Iterator[Paper | Rejection]:
    return json_lines(path, to_paper)
