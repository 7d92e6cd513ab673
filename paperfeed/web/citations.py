"""Citations of papers for reference managers: BibTeX and RIS, one paper or many.

BibTeX text fields keep the TeX that arXiv titles are written in ($\\alpha_1$,
\\'e) and escape only what would break the entry or the document: a bare %, &, #
or _, a lone backslash, unbalanced braces. url and doi are written verbatim, as
biblatex reads them. Keys are unique within one export, so a .bib file of a whole
day can be \\cite'd entry by entry.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from paperfeed.models import Paper
from paperfeed.web.ids import arxiv_year

_MATH = re.compile(r"\$[^$]+\$")
# a TeX control word (\alpha), an accent (\'e, \"o) or an already escaped special (\&, \%)
_COMMAND = re.compile(r"\\(?:[A-Za-z]+|['\"`^~=.&%#_${}])")
_ARXIV_CATEGORY = re.compile(r"^[a-z-]+(?:\.[A-Za-z-]+)?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Cited:
    """A paper with what its citation needs beyond the Paper record."""

    paper: Paper
    journal: str | None = None


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def tex_text(text: str) -> str:
    """`text` for a BibTeX text field: its TeX kept, everything else made safe."""
    text = _CONTROL.sub(" ", text)
    keep_braces = _balanced(text)
    out: list[str] = []
    pos = 0
    while pos < len(text):
        m = _MATH.match(text, pos)
        if m and _balanced(m.group()):
            out.append(m.group())
            pos = m.end()
            continue
        m = _COMMAND.match(text, pos)
        if m:
            escaped_brace = m.group() in (r"\{", r"\}") and not keep_braces
            # BibTeX counts \{ as a brace too, so an unbalanced one must not be written as one
            out.append(
                {r"\{": r"\textbraceleft{}", r"\}": r"\textbraceright{}"}[m.group()]
                if escaped_brace
                else m.group()
            )
            pos = m.end()
            continue
        ch = text[pos]
        if ch in "&%#_$":
            out.append("\\" + ch)
        elif ch in "{}":
            out.append(ch if keep_braces else (r"\textbraceleft{}" if ch == "{" else r"\textbraceright{}"))
        elif ch == "\\":
            out.append(r"\textbackslash{}")
        elif ch == "~":
            out.append(r"\textasciitilde{}")
        elif ch == "^":
            out.append(r"\textasciicircum{}")
        else:
            out.append(ch)
        pos += 1
    return "".join(out)


def _verbatim(value: str) -> str:
    # a brace or a backslash would end or break the field; no real URL or DOI needs one
    return re.sub(r"[{}\\\s]", "", value)


def citation_year(p: Paper) -> str | None:
    """The publication year, else the year of the arXiv id; never the day it was ingested."""
    if p.published and p.published[:4].isdigit():
        return p.published[:4]
    return arxiv_year(p.arxiv_id) if p.arxiv_id else None


def base_key(p: Paper) -> str:
    surname = p.authors[0].split()[-1] if p.authors and p.authors[0].split() else "paper"
    # keys are ASCII (BibTeX rejects others); Borel for Borél, not Borl
    ascii_surname = unicodedata.normalize("NFKD", surname).encode("ascii", "ignore").decode()
    first = re.sub(r"[^A-Za-z0-9]+", "", ascii_surname).lower() or "paper"
    word = next((w for w in re.findall(r"[A-Za-z]+", p.title) if len(w) > 3), "paper")
    return f"{first}{citation_year(p) or ''}{word.lower()}"


def _suffixes() -> Iterator[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    yield from letters
    for a in letters:
        for b in letters:
            yield a + b


def unique_keys(papers: Sequence[Paper]) -> list[str]:
    """One key per paper, with a, b, c... appended where papers would share one."""
    bases = [base_key(p) for p in papers]
    shared = {k for k, n in Counter(bases).items() if n > 1}
    taken = set(bases) - shared
    keys = []
    for base in bases:
        key = base
        if base in shared:
            key = next(base + s for s in _suffixes() if base + s not in taken)
        taken.add(key)
        keys.append(key)
    return keys


def bibtex_entry(cited: Cited, key: str) -> str:
    p = cited.paper
    fields = [("title", "{" + tex_text(p.title) + "}")]
    if p.authors:
        # a name with " and " in it would be split in two: braces make it one name
        names = (tex_text(a) if " and " not in a else "{" + tex_text(a) + "}" for a in p.authors)
        fields.append(("author", " and ".join(names)))
    if cited.journal:
        fields.append(("journal", tex_text(cited.journal)))
    year = citation_year(p)
    if year:
        fields.append(("year", year))
    if p.arxiv_id:
        fields += [("eprint", _verbatim(p.arxiv_id)), ("archivePrefix", "arXiv")]
        primary = next((c for c in p.categories if _ARXIV_CATEGORY.match(c)), None)
        if primary:
            fields.append(("primaryClass", primary))
    if p.doi:
        fields.append(("doi", _verbatim(p.doi)))
    links = p.default_links()
    url = links.get("arxiv") or links.get("doi")
    if url:
        fields.append(("url", _verbatim(url)))
    kind = "article" if cited.journal else "misc"
    body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields)
    return f"@{kind}{{{key},\n{body}\n}}\n"


def bibtex(papers: Sequence[Cited]) -> str:
    """A .bib file of `papers`, keys unique across it."""
    keys = unique_keys([c.paper for c in papers])
    return "\n".join(bibtex_entry(c, k) for c, k in zip(papers, keys, strict=True))


def _ris_value(text: str) -> str:
    # one line per tag: a newline inside a value would start a bogus record line
    return " ".join(_CONTROL.sub(" ", text).split())


def ris_entry(cited: Cited) -> str:
    p = cited.paper
    lines = [("TY", "JOUR" if cited.journal else "UNPB"), ("TI", p.title)]
    lines += [("AU", a) for a in p.authors]
    year = citation_year(p)
    if year:
        lines.append(("PY", year))
    if p.published:
        lines.append(("DA", p.published[:10].replace("-", "/")))
    if cited.journal:
        lines.append(("JO", cited.journal))
    if p.abstract:
        lines.append(("AB", p.abstract))
    lines += [("KW", c) for c in p.categories]
    if p.doi:
        lines.append(("DO", p.doi))
    links = p.default_links()
    if p.arxiv_id:
        lines.append(("N1", f"arXiv:{p.arxiv_id}"))
    for name in ("arxiv", "doi"):
        if links.get(name):
            lines.append(("UR", links[name]))
    if links.get("pdf", "").startswith(("https://", "http://")):
        lines.append(("L1", links["pdf"]))
    return "".join(f"{tag}  - {_ris_value(v)}\r\n" for tag, v in lines if _ris_value(v)) + "ER  - \r\n"


def ris(papers: Sequence[Cited]) -> str:
    return "\r\n".join(ris_entry(c) for c in papers)
