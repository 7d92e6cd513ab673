"""An in-memory matcher for a window of new papers: what alerts rank with.

A saved search's alert ranks the papers stored since its last mail. A search index query per
alert would be far slower than this: most alerts of a run share one window, which is read and
tokenised once, and each query intersects NumPy postings. The query is read by `parse_query`
and words by the index's own analyser, so an alert matches what the same search on the site
matches.
"""

from __future__ import annotations

import functools
import math
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from paperfeed.index.lexical import analyze_index
from paperfeed.models import Paper
from paperfeed.search.query import parse_query


@dataclass(frozen=True)
class AlertQuery:
    """A saved search as alerts match it: every term, every phrase, no excluded word."""

    terms: tuple[str, ...]
    phrases: tuple[tuple[str, ...], ...] = ()
    excluded: tuple[tuple[str, ...], ...] = ()


@functools.lru_cache(maxsize=4096)
def compile_query(query: str) -> AlertQuery:
    """Parse `query` with the site's search syntax ("exact phrase", -word), so an alert
    means what the same search on the site means. Raises ValueError (the search package's QueryError) for a query it refuses."""
    pq = parse_query(query)
    phrases = tuple(t for t in (tuple(analyze_index(ph)) for ph in pq.phrases) if len(t) > 1)
    excluded = tuple(t for t in (tuple(analyze_index(ex)) for ex in pq.excluded) if t)
    return AlertQuery(tuple(pq.terms), phrases, excluded)


def query_terms(query: str) -> list[str]:
    """The words of `query` an alert matches on (stemmed, without stopwords)."""
    try:
        return list(compile_query(query).terms)
    except ValueError:
        return []


def _contains(seq: Sequence[str], sub: Sequence[str]) -> bool:
    n = len(sub)
    return any(list(seq[i : i + n]) == list(sub) for i in range(len(seq) - n + 1))


class Window:
    """The candidate papers of one alert window, as a compact inverted index.

    Most alerts of a run share the same window (their watermarks all moved to the
    same seq at the previous run), so its papers are read and tokenised once per
    run; each query then intersects the postings of its own terms with NumPy. Only
    ids, lengths and postings are kept (a few bytes per term occurrence), and
    papers are read back from the store for the ones a mail lists.
    """

    def __init__(self, papers: Iterable[Paper], fetch: Callable[[list[int]], list[Paper]]) -> None:
        self._fetch = fetch
        idx: dict[str, array] = {}
        tfs: dict[str, array] = {}
        rowids: list[int] = []
        lengths: list[int] = []
        for p in papers:
            i = len(rowids)
            # the title counts twice: a query word in the title matters more
            terms = Counter(analyze_index(f"{p.title} {p.title} {p.abstract}"))
            rowids.append(p.rowid)
            lengths.append(sum(terms.values()))
            for t, tf in terms.items():
                a = idx.get(t)
                if a is None:
                    a = idx[t] = array("i")
                    tfs[t] = array("f")
                a.append(i)
                tfs[t].append(tf)
        self._idx, self._tfs = idx, tfs
        self.rowids = np.asarray(rowids, dtype=np.int64)
        self.lengths = np.asarray(lengths, dtype=np.float32)
        self.avg = float(self.lengths.mean()) if len(lengths) else 1.0

    def __len__(self) -> int:
        return len(self.rowids)

    def _post(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        a = self._idx.get(term)
        if a is None:
            return None
        return np.frombuffer(a, dtype=np.int32), np.frombuffer(self._tfs[term], dtype=np.float32)

    def rank(self, query: str, limit: int) -> list[Paper]:
        """The best `limit` papers by BM25; a paper matches when it has every query term.

        Requiring all terms (after stemming) is what a reader expects of an alert
        for "importance reweighting": papers about both, not every paper on importance.
        """
        try:
            aq = compile_query(query)
        except ValueError:
            return []
        if not aq.terms or not len(self) or limit <= 0:
            return []
        posts = [self._post(t) for t in aq.terms]
        if any(p is None for p in posts):
            return []
        docs = min((p[0] for p in posts), key=len)  # type: ignore[index]
        for p in posts:
            docs = np.intersect1d(docs, p[0], assume_unique=True)  # type: ignore[index]
        for ex in aq.excluded:
            ep = self._post(ex[0]) if len(ex) == 1 else None
            if ep is not None:
                docs = np.setdiff1d(docs, ep[0], assume_unique=True)
        if not len(docs):
            return []
        n = len(self)
        scores = np.zeros(len(docs), dtype=np.float64)
        norm = 1.2 * (0.25 + 0.75 * self.lengths[docs] / self.avg)
        for pidx, ptf in posts:  # type: ignore[misc]
            df = len(pidx)
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            tf = ptf[np.searchsorted(pidx, docs)]
            scores += idf * tf * 2.2 / (tf + norm)
        order = np.lexsort((self.rowids[docs], -scores))
        ranked = [int(r) for r in self.rowids[docs[order]]]
        if not aq.phrases and not any(len(ex) > 1 for ex in aq.excluded):
            return self._fetch(ranked[:limit])
        out: list[Paper] = []
        for start in range(0, len(ranked), 200):  # read texts only as far as needed
            out += [p for p in self._fetch(ranked[start : start + 200]) if _phrases_ok(p, aq)]
            if len(out) >= limit:
                break
        return out[:limit]


def _phrases_ok(p: Paper, aq: AlertQuery) -> bool:
    # title and abstract apart, so a phrase cannot run from one into the other
    fields = (analyze_index(p.title), analyze_index(p.abstract))
    if not all(any(_contains(f, ph) for f in fields) for ph in aq.phrases):
        return False
    return not any(len(ex) > 1 and any(_contains(f, ex) for f in fields) for ex in aq.excluded)


def lexical_rank(query: str, papers: Sequence[Paper], limit: int = 1000) -> list[Paper]:
    """Rank an in-memory list of papers as an alert would."""
    by_rowid = {p.rowid: p for p in papers}
    return Window(papers, lambda ids: [by_rowid[i] for i in ids]).rank(query, limit)
