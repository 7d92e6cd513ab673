"""Importing a reference-manager export into a reader's library.

Each entry is matched to a paper by its arXiv id, else its DOI, else its normalised title (the
store's own dedup key). Unmatched entries that carry a title and an abstract may be added as
papers (when the reader asks): they join the corpus without a feed day, so they are searchable
and can be learned from, but never crowd the daily list. Everything else unmatched is reported
by name. Entries that name a paper already matched by an earlier entry are reported as
duplicates. Nothing here raises on bad input: the report says what happened to every entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from paperfeed.ingest.bibliography import FORMATS, Entry, detect_format, parse
from paperfeed.models import Paper, title_key
from paperfeed.store import library as lib
from paperfeed.store.papers import Store

SOURCE = "library-import"


@dataclass
class EntryResult:
    index: int
    label: str
    status: str  # matched | added | duplicate | unmatched | error
    message: str
    paper_id: str | None = None
    matched_by: str | None = None  # arxiv | doi | title


@dataclass
class ImportReport:
    format: str | None
    results: list[EntryResult] = field(default_factory=list)
    saved: int = 0  # papers newly in the library
    error: str | None = None  # the whole file could not be read

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    def to_dict(self) -> dict:
        return {
            "format": self.format, "error": self.error, "saved": self.saved,
            "counts": {s: self.count(s) for s in ("matched", "added", "duplicate", "unmatched", "error")},
            "entries": [r.__dict__ for r in self.results],
        }  # fmt: skip


def import_library(
    store: Store,
    user_id: int,
    data: bytes,
    filename: str = "",
    *,
    fmt: str | None = None,
    tag_id: int | None = None,
    add_papers: bool = False,
) -> ImportReport:
    """Parse `data`, match its entries, save the matches (into `tag_id` too, which must be the
    user's), and report entry by entry. Raises LibraryError only for a tag that is not the user's."""
    if tag_id is not None and lib.get_tag(store, user_id, tag_id) is None:
        raise lib.LibraryError("There is no such tag.")
    fmt = fmt or detect_format(filename, data)
    report = ImportReport(format=fmt)
    if fmt not in FORMATS:
        report.error = "This file is not BibTeX, RIS or CSL-JSON (name it .bib, .ris or .json)."
        return report
    entries = parse(data, fmt)
    if not entries:
        report.error = "No entries were found in this file."
        return report
    usable = [e for e in entries if e.error is None]
    by_arxiv, by_doi, by_title = lib.match_identifiers(
        store,
        arxiv_ids=[e.arxiv_id for e in usable if e.arxiv_id],
        dois=[e.doi for e in usable if e.doi],
        title_keys=[title_key(e.title) for e in usable if e.title],
    )
    found: dict[int, int] = {}  # entry index -> rowid
    how: dict[int, str] = {}
    to_add: list[Entry] = []
    for e in usable:
        key = title_key(e.title) if e.title else ""
        for name, table, value in (
            ("arxiv", by_arxiv, e.arxiv_id),
            ("doi", by_doi, e.doi),
            ("title", by_title, key),
        ):
            if value and value in table:
                found[e.index], how[e.index] = table[value], name
                break
        else:
            if add_papers and e.title and e.abstract:
                to_add.append(e)
    if to_add:
        _add_papers(store, to_add, found, how)
    ids = {p.rowid: p.id for p in store.get_by_rowids(sorted(set(found.values())))}
    seen: dict[int, Entry] = {}
    keep: list[int] = []
    for e in entries:
        if e.error is not None:
            report.results.append(EntryResult(e.index, e.label, "error", f"{e.label} {e.error}"))
            continue
        note = f" ({'; '.join(e.warnings)})" if e.warnings else ""
        rowid = found.get(e.index)
        if rowid is None:
            why = "no paper has its arXiv id, DOI or title"
            if add_papers and e.title and not e.abstract:
                why += "; it has no abstract, so it was not added as a paper"
            report.results.append(EntryResult(e.index, e.label, "unmatched", f"{e.label}: {why}{note}"))
            continue
        if rowid in seen:
            report.results.append(EntryResult(e.index, e.label, "duplicate",
                                               f"{e.label}: the same paper as {seen[rowid].label}{note}",
                                               ids.get(rowid), how[e.index]))  # fmt: skip
            continue
        seen[rowid] = e
        keep.append(rowid)
        status = "added" if how[e.index] == "added" else "matched"
        verb = "added as a new paper" if status == "added" else f"matched by {how[e.index]}"
        report.results.append(EntryResult(e.index, e.label, status, f"{e.label}: {verb}{note}", ids.get(rowid),
                                          None if status == "added" else how[e.index]))  # fmt: skip
    try:
        report.saved = lib.save(store, user_id, keep, [tag_id] if tag_id is not None else [])
    except lib.LibraryError as exc:
        report.error = str(exc)
    return report


def _add_papers(store: Store, entries: list[Entry], found: dict[int, int], how: dict[int, str]) -> None:
    papers = [
        Paper(title=e.title, abstract=e.abstract, authors=list(e.authors), doi=e.doi, arxiv_id=e.arxiv_id,
              published=e.year, sources=[SOURCE])
        for e in entries
    ]  # fmt: skip
    store.upsert_papers(papers)
    by_arxiv, by_doi, by_title = lib.match_identifiers(
        store, arxiv_ids=[p.arxiv_id for p in papers if p.arxiv_id], dois=[p.doi for p in papers if p.doi],
        title_keys=[title_key(p.title) for p in papers],
    )  # fmt: skip
    for e in entries:
        rowid = by_arxiv.get(e.arxiv_id or "") or by_doi.get(e.doi or "") or by_title.get(title_key(e.title))
        if rowid is not None:
            found[e.index], how[e.index] = rowid, "added"
