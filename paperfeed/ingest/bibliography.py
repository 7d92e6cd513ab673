"""Reference-manager exports read as a reader's library: BibTeX, RIS and CSL-JSON (Zotero's
"CSL JSON" export, also Mendeley's and Zotero's Better BibTeX's).

Each parser turns a file into `Entry` records carrying what matching needs (arXiv id, DOI,
title) and what adding a paper needs (abstract, authors, year). Nothing here raises on bad
input: a broken entry becomes an Entry with `error` set (and the entries around it are kept),
so the caller can report entry by entry. Bytes that are not UTF-8 are read as Windows-1252 in
the entries that contain them, and those entries say so.

BibTeX goes through bibtexparser 2 (with its LaTeX decoding, so {\\"u} matches ü), RIS
through rispy, CSL-JSON through the json module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import bibtexparser
import rispy
from bibtexparser import middlewares as bib_mw

from paperfeed.models import arxiv_id_of, doi_of

MAX_ENTRIES = 20_000
MAX_FIELD = 100_000  # characters kept of a title or abstract; a bigger one is cut and reported

FORMATS = ("bibtex", "ris", "csl-json")
_SURROGATE = re.compile("[\udc80-\udcff]")


@dataclass
class Entry:
    index: int  # 1-based position in the file
    label: str  # how the report names it: a BibTeX key, line number or title
    title: str = ""
    abstract: str = ""
    authors: list[str] = field(default_factory=list)
    year: str | None = None
    doi: str | None = None
    arxiv_id: str | None = None
    error: str | None = None  # the entry cannot be used at all
    warnings: list[str] = field(default_factory=list)


def detect_format(filename: str, data: bytes) -> str | None:
    name = filename.lower()
    if name.endswith((".bib", ".bibtex")):
        return "bibtex"
    if name.endswith((".ris", ".txt")) and re.search(rb"^TY  - ", data[:4096], re.MULTILINE):
        return "ris"
    if name.endswith(".ris"):
        return "ris"
    if name.endswith((".json", ".csljson")):
        return "csl-json"
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith((b"[", b"{")):
        return "csl-json"
    if re.search(rb"^TY  - ", head, re.MULTILINE):
        return "ris"
    if re.search(rb"^\s*@\w+\s*[{(]", head, re.MULTILINE):
        return "bibtex"
    return None


def parse(data: bytes, fmt: str) -> list[Entry]:
    """The entries of a file in format `fmt` (one of FORMATS), errors included."""
    text = data.decode("utf-8-sig", errors="surrogateescape")
    entries = {"bibtex": _bibtex, "ris": _ris, "csl-json": _csl_json}[fmt](text)
    for e in entries[MAX_ENTRIES:]:
        e.error = f"more than {MAX_ENTRIES:,} entries in one file; import the rest separately"
    for e in entries:
        _finish(e)
    return entries


# ---- normalising ---------------------------------------------------------------


def _repair(value: str, entry: Entry) -> str:
    """Text with bytes that were not UTF-8 read as Windows-1252, noted once on the entry."""
    if not _SURROGATE.search(value):
        return value
    note = "contains text that is not UTF-8; read as Windows-1252"
    if note not in entry.warnings:
        entry.warnings.append(note)
    return value.encode("utf-8", "surrogateescape").decode("cp1252", errors="replace")


def _clip(value: str, what: str, entry: Entry) -> str:
    if len(value) > MAX_FIELD:
        entry.warnings.append(f"{what} cut to {MAX_FIELD:,} characters")
        return value[:MAX_FIELD]
    return value


def _finish(e: Entry) -> None:
    e.title = _clip(" ".join(_repair(e.title, e).split()), "title", e)
    e.abstract = _clip(_repair(e.abstract, e).strip(), "abstract", e)
    e.authors = [" ".join(_repair(a, e).split()) for a in e.authors if a and a.strip()][:500]
    if e.doi and not e.arxiv_id:
        e.arxiv_id = arxiv_id_of(e.doi)  # 10.48550/arXiv.2101.00001 is arXiv's own DOI
    if "\x00" in e.title + e.abstract:
        e.error = "contains a NUL character"
    if e.error is None and not (e.title or e.doi or e.arxiv_id):
        e.error = "has no title, DOI or arXiv id to find the paper by"


def _first_arxiv(values: Iterable[str | None]) -> str | None:
    for v in values:
        found = arxiv_id_of(v)
        if found:
            return found
    return None


def _year(value: object) -> str | None:
    m = re.search(r"\b(1[5-9]\d\d|2\d\d\d)\b", str(value or ""))
    return m.group(1) if m else None


# ---- BibTeX --------------------------------------------------------------------


def _bibtex(text: str) -> list[Entry]:
    try:
        library = bibtexparser.parse_string(
            text, append_middleware=[bib_mw.LatexDecodingMiddleware(), bib_mw.SeparateCoAuthors()]
        )
    except Exception as exc:  # noqa: BLE001 - a third-party parser on hostile input: report, never fail
        return [Entry(index=1, label="the file", error=f"cannot be read as BibTeX ({type(exc).__name__})")]
    out: list[Entry] = []
    order: list[tuple[int, Entry]] = []
    for block in library.entries:
        f = {k.lower(): v.value for k, v in block.fields_dict.items()}
        e = Entry(index=0, label=f"@{block.entry_type}{{{block.key}}} (line {block.start_line + 1})")
        e.title = str(f.get("title") or "")
        e.abstract = str(f.get("abstract") or "")
        authors = f.get("author") or []
        e.authors = [_bib_name(a) for a in (authors if isinstance(authors, list) else [authors])]
        e.year = _year(f.get("year") or f.get("date"))
        e.doi = doi_of(str(f.get("doi") or "")) or None
        prefix = str(f.get("archiveprefix") or f.get("eprinttype") or "").lower()
        eprint = str(f.get("eprint") or "")
        e.arxiv_id = _first_arxiv([
            eprint if (prefix == "arxiv" or not prefix) else None, str(f.get("arxivid") or ""),
            str(f.get("arxiv") or ""), str(f.get("url") or ""), str(f.get("journal") or ""),
            str(f.get("note") or ""), str(f.get("howpublished") or ""),
        ])  # fmt: skip
        order.append((block.start_line, e))
    for block in library.failed_blocks:
        line = getattr(block, "start_line", 0) + 1
        error = getattr(block, "error", None)
        text_of = str(getattr(error, "abort_reason", "") or error or "").strip()
        reason = (text_of.splitlines() or [type(error).__name__ if error else "cannot be read"])[0]
        if "Duplicate entry key" in reason:
            reason = f"{reason}; the first entry with that key was used"
        e = Entry(index=0, label=f"entry at line {line}", error=f"is not valid BibTeX: {reason[:200]}")
        order.append((line - 1, e))
    order.sort(key=lambda x: x[0])
    for i, (_, e) in enumerate(order, 1):
        e.index = i
        out.append(e)
    return out


def _bib_name(name: str) -> str:
    """ "Surname, Given" as "Given Surname", the way paper records write names."""
    name = str(name).replace("{", "").replace("}", "").strip()
    if name.count(",") == 1:
        last, first = (x.strip() for x in name.split(","))
        return f"{first} {last}".strip()
    return name


# ---- RIS -------------------------------------------------------------------------


def _ris_records(text: str) -> list[tuple[int, str]]:
    """The file cut into records at each TY line, with the line each starts on, so that one
    broken record cannot take its neighbours down with it."""
    records: list[tuple[int, list[str]]] = []
    closed = True  # before the first record, or after an ER line
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("TY  -") or (closed and line.strip()):
            records.append((n, [line]))
            closed = False
        elif records and not closed:
            records[-1][1].append(line)
        if line.startswith("ER  -"):
            closed = True
    return [(n, "\n".join(lines) + "\n") for n, lines in records]


def _ris(text: str) -> list[Entry]:
    out: list[Entry] = []
    for i, (line, record) in enumerate(_ris_records(text), 1):
        e = Entry(index=i, label=f"record at line {line}")
        if not record.startswith("TY  -"):
            e.error = "does not start with a TY (type) line"
            out.append(e)
            continue
        if not re.search(r"^ER  -", record, re.MULTILINE):
            record += "ER  - \n"
            e.warnings.append("has no ER (end of record) line")
        try:
            parsed = rispy.loads(record, skip_unknown_tags=True)
        except Exception as exc:  # noqa: BLE001 - rispy raises plain exceptions on malformed records
            e.error = (
                f"is not valid RIS: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}"
            )
            out.append(e)
            continue
        if not parsed:
            e.error = "is empty"
            out.append(e)
            continue
        r = parsed[0]
        e.title = str(r.get("title") or r.get("primary_title") or r.get("translated_title") or "")
        e.abstract = str(r.get("abstract") or "")
        names = (r.get("authors") or []) + (r.get("first_authors") or [])
        e.authors = [_bib_name(a) for a in names]
        e.year = _year(r.get("year") or r.get("publication_year") or r.get("date"))
        e.doi = doi_of(str(r.get("doi") or ""))
        urls = r.get("urls") or []
        notes = r.get("notes") or []
        e.arxiv_id = _first_arxiv([*map(str, urls), *map(str, notes), str(r.get("journal_name") or ""),
                                   str(r.get("secondary_title") or ""), str(r.get("number") or "")])  # fmt: skip
        if e.title:
            e.label = f"record at line {line} ({e.title[:60]})"
        out.append(e)
    return out


# ---- CSL-JSON ------------------------------------------------------------------------


def _csl_json(text: str) -> list[Entry]:
    try:
        items = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return [Entry(index=1, label="the file", error=f"is not valid JSON: {str(exc)[:200]}")]
    if isinstance(items, dict):
        items = items.get("items") if isinstance(items.get("items"), list) else [items]
    if not isinstance(items, list):
        return [Entry(index=1, label="the file", error="is not a CSL-JSON list of items")]
    out: list[Entry] = []
    for i, item in enumerate(items, 1):
        e = Entry(index=i, label=f"item {i}")
        if not isinstance(item, dict):
            e.error = "is not a JSON object"
            out.append(e)
            continue
        if isinstance(item.get("id"), str | int):
            e.label = f"item {i} ({str(item['id'])[:60]})"
        e.title = _text(item.get("title"))
        e.abstract = _text(item.get("abstract"))
        e.authors = [n for n in (_csl_name(a) for a in _list(item.get("author"))) if n]
        issued = item.get("issued")
        if isinstance(issued, dict):
            parts = issued.get("date-parts")
            e.year = _year(parts[0][0] if isinstance(parts, list) and parts and isinstance(parts[0], list) and parts[0]
                           else issued.get("raw") or issued.get("literal"))  # fmt: skip
        e.doi = doi_of(_text(item.get("DOI")))
        e.arxiv_id = _first_arxiv([_text(item.get(k)) for k in ("arxiv", "number", "URL", "archive_location", "note",
                                                                 "container-title", "publisher")])  # fmt: skip
        out.append(e)
    return out


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


def _csl_name(a: object) -> str:
    if not isinstance(a, dict):
        return ""
    if _text(a.get("literal")):
        return _text(a.get("literal"))
    return " ".join(x for x in (_text(a.get("given")), _text(a.get("family"))) if x)
