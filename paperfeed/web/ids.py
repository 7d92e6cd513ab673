"""Paper ids in URLs: the site's own ids and arXiv ids, new-style (2210.02885) and
old-style (hep-th/9901001), with or without a version suffix."""

from __future__ import annotations

import re

from paperfeed.models import Paper
from paperfeed.store import Store

# arXiv identifier schemes: YYMM.NNNN(N) since 2007, archive(.SUBJ)/YYMMNNN before
_ARXIV_RE = re.compile(
    r"^(?:arxiv:)?(?P<id>\d{4}\.\d{4,5}|[a-z][a-z-]*(?:\.[A-Za-z]{2})?/\d{7})(?P<version>v\d+)?$",
    re.IGNORECASE,
)


def parse_arxiv_id(text: str) -> tuple[str, str | None] | None:
    """(bare arXiv id, version or None) for an arXiv identifier, else None."""
    m = _ARXIV_RE.match(text.strip())
    if m is None:
        return None
    bare = m.group("id")
    if "/" in bare:
        archive, number = bare.split("/")
        # archives are lower case and subject classes upper case in arXiv's own ids (math.AG/0101001)
        name, _, subj = archive.partition(".")
        bare = f"{name.lower()}{'.' + subj.upper() if subj else ''}/{number}"
    return bare, m.group("version")


def arxiv_year(arxiv_id: str) -> str | None:
    """The year an arXiv id was assigned, which its YYMM digits record."""
    digits = arxiv_id.split("/")[-1][:2]
    if not digits.isdigit():
        return None
    yy = int(digits)
    # old-style ids start in 1991; new-style ones in 2007, so 91-99 can only be the 1990s
    return f"{1900 + yy if yy >= 91 else 2000 + yy}"


def lookup_paper(store: Store, ident: str) -> tuple[Paper | None, bool]:
    """The paper `ident` names, and whether `ident` was not already its plain form
    (a version suffix or an arXiv: prefix), so a page can redirect to one URL per paper."""
    if len(ident) > 64:
        return None, False
    p = store.get_paper(ident)
    if p is not None:
        return p, False
    parsed = parse_arxiv_id(ident)
    if parsed is None:
        return None, False
    bare, version = parsed
    row = store.conn.execute("SELECT id FROM papers WHERE arxiv_id = ?", (bare,)).fetchone()
    if row is None:
        return None, False
    return store.get_paper(row[0]), bool(version) or bare != ident
