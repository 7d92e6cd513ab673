"""Which papers go into a digest.

`alert_papers` is the one place that decides what matches a saved search, so the
ranking can follow the search pipeline without touching composing or sending.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Sequence

from paperfeed.models import Paper
from paperfeed.store.papers import Store

log = logging.getLogger(__name__)

TRENDING_PERIOD = {"daily": "day", "weekly": "week"}
_WORD_RE = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "into", "is", "it", "of", "on", "or", "that", "the", "to", "with", "via", "using", "towards"]
)


def trending_papers(store: Store, period: str, limit: int) -> list[tuple[Paper, int | None]]:
    """Top papers of the period by the site's trending score, with their vote counts."""
    try:
        from paperfeed.store.accounts import trending
    except ImportError:
        trending = None
    if trending is not None:
        return [(p, votes) for p, votes, _score in trending(store, TRENDING_PERIOD[period], limit, 0)]
    # Without accounts (no votes yet) the newest papers of the feed are what trends.
    return [(p, None) for p in store.list_papers(order="newest", limit=limit)]


def candidate_papers(store: Store, after_seq: int, upto_seq: int, filters: dict[str, str]) -> list[Paper]:
    """Visible papers first stored in (after_seq, upto_seq], narrowed by the filters."""
    sql = "SELECT p.rowid FROM papers p WHERE p.added_seq > ? AND p.added_seq <= ? AND p.hidden = 0"
    args: list = [after_seq, upto_seq]
    if filters.get("source"):
        sql += " AND EXISTS (SELECT 1 FROM paper_sources s WHERE s.paper_rowid = p.rowid AND s.source = ?)"
        args.append(filters["source"])
    sql += " ORDER BY p.added_seq"
    rowids = [r[0] for r in store.conn.execute(sql, args)]
    papers = store.get_by_rowids(rowids)
    if cat := filters.get("category"):
        papers = [p for p in papers if cat.lower() in (c.lower() for c in p.categories)]
    if author := filters.get("author"):
        needle = author.casefold()
        papers = [p for p in papers if any(needle in a.casefold() for a in p.authors)]
    return papers


def _stemmer():  # noqa: ANN202
    try:
        import Stemmer

        return Stemmer.Stemmer("english")
    except ImportError:  # pragma: no cover - PyStemmer is a dependency
        return None


_STEM = _stemmer()


def _terms(text: str) -> list[str]:
    words = [w for w in _WORD_RE.findall(text.casefold()) if w not in _STOP]
    return _STEM.stemWords(words) if _STEM is not None else words


def lexical_rank(query: str, papers: Sequence[Paper]) -> list[Paper]:
    """BM25 over just the candidate papers; a paper matches when it has every query term.

    Requiring all terms (after stemming) is what a reader expects of an alert for
    "importance reweighting": papers about both, not every paper on importance.
    """
    q = list(dict.fromkeys(_terms(query)))
    if not q or not papers:
        return []
    docs = [Counter(_terms(f"{p.title} {p.title} {p.abstract}")) for p in papers]
    n = len(docs)
    avg = sum(sum(d.values()) for d in docs) / n or 1.0
    df = {t: sum(1 for d in docs if t in d) for t in q}
    scored = []
    for p, d in zip(papers, docs, strict=True):
        if not all(t in d for t in q):
            continue
        length = sum(d.values())
        s = 0.0
        for t in q:
            idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
            tf = d[t]
            s += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * length / avg))
        scored.append((s, p))
    scored.sort(key=lambda sp: (-sp[0], sp[1].rowid))
    return [p for _, p in scored]


def alert_papers(store: Store, query: str, filters: dict[str, str], after_seq: int, upto_seq: int, limit: int) -> list[Paper]:
    """New papers (first stored in (after_seq, upto_seq]) that match `query`, best first."""
    candidates = candidate_papers(store, after_seq, upto_seq, filters)
    if not candidates:
        return []
    return lexical_rank(query, candidates)[:limit]
