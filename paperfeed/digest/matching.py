"""Which papers go into a digest.

`alert_papers` is the one place that decides what matches a saved search, so the
ranking can follow the search pipeline without touching composing or sending.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

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
        from paperfeed.store.votes import trending
    except ImportError:
        trending = None
    if trending is not None:
        return [(p, votes) for p, votes, _score in trending(store, TRENDING_PERIOD[period], limit, 0)]
    # Without accounts (no votes yet) the newest papers of the feed are what trends.
    return [(p, None) for p in store.list_papers(order="newest", limit=limit)]


# An alert window holds at most this many papers (the newest). Only a bulk import
# (the whole arXiv snapshot at once) goes past it, and an alert listing papers
# from such an import would not be news anyway; this bounds a run's memory.
MAX_WINDOW = 20_000


def iter_candidates(store: Store, after_seq: int, upto_seq: int, filters: dict[str, str]) -> Iterator[Paper]:
    """Visible papers first stored in (after_seq, upto_seq], narrowed by the filters
    (the newest MAX_WINDOW of them), read in chunks so a big window is never all in memory."""
    sql = "SELECT p.rowid FROM papers p WHERE p.added_seq > ? AND p.added_seq <= ? AND p.hidden = 0"
    args: list = [after_seq, upto_seq]
    if filters.get("source"):
        sql += " AND EXISTS (SELECT 1 FROM paper_sources s WHERE s.paper_rowid = p.rowid AND s.source = ?)"
        args.append(filters["source"])
    sql += " ORDER BY p.added_seq DESC LIMIT ?"
    rowids = [r[0] for r in store.conn.execute(sql, [*args, MAX_WINDOW])][::-1]
    cat = (filters.get("category") or "").lower()
    author = (filters.get("author") or "").casefold()
    for start in range(0, len(rowids), 1000):
        for p in store.get_by_rowids(rowids[start : start + 1000]):
            if cat and cat not in (c.lower() for c in p.categories):
                continue
            if author and not any(author in a.casefold() for a in p.authors):
                continue
            yield p


def candidate_papers(store: Store, after_seq: int, upto_seq: int, filters: dict[str, str]) -> list[Paper]:
    return list(iter_candidates(store, after_seq, upto_seq, filters))


def _analyzers() -> tuple[Callable[[str], list[str]], Callable[[str], list[str]]]:
    """(query analyser, document analyser): the site's lexical index's own when
    it is installed, so an alert matches the words a search on the site would."""
    try:
        from paperfeed.index.lexical import analyze_index, analyze_query

        return analyze_query, analyze_index
    except Exception as exc:  # noqa: BLE001 - mail must go out even if the search stack is broken
        log.info("alerts use their own analyser: %s", exc)
    try:
        import Stemmer

        stem = Stemmer.Stemmer("english").stemWords
    except ImportError:  # pragma: no cover - PyStemmer is a dependency

        def stem(words: list[str]) -> list[str]:
            return words

    def terms(text: str) -> list[str]:
        return stem([w for w in _WORD_RE.findall(text.casefold()) if w not in _STOP])

    return terms, terms


_query_terms, _doc_terms = _analyzers()


@dataclass(frozen=True)
class AlertQuery:
    """A saved search as alerts match it: every term, every phrase, no excluded word."""

    terms: tuple[str, ...]
    phrases: tuple[tuple[str, ...], ...] = ()
    excluded: tuple[tuple[str, ...], ...] = ()


@functools.lru_cache(maxsize=1)
def _search_parser() -> Callable | None:
    try:
        from paperfeed.search import parse_query
    except Exception as exc:  # noqa: BLE001 - as above: fall back rather than not mail
        log.info("alerts parse queries themselves: %s", exc)
        return None
    return parse_query


@functools.lru_cache(maxsize=4096)
def compile_query(query: str) -> AlertQuery:
    """Parse `query` with the site's search syntax ("exact phrase", -word) when the
    search package is installed, so an alert means what the same search on the site
    means. Raises ValueError (the search package's QueryError) for a query it refuses."""
    parse_query = _search_parser()
    if parse_query is None:
        return AlertQuery(tuple(dict.fromkeys(_query_terms(query))))
    pq = parse_query(query)
    phrases = tuple(t for t in (tuple(_doc_terms(ph)) for ph in pq.phrases) if len(t) > 1)
    excluded = tuple(t for t in (tuple(_doc_terms(ex)) for ex in pq.excluded) if t)
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
            terms = Counter(_doc_terms(f"{p.title} {p.title} {p.abstract}"))
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
    fields = (_doc_terms(p.title), _doc_terms(p.abstract))
    if not all(any(_contains(f, ph) for f in fields) for ph in aq.phrases):
        return False
    return not any(len(ex) > 1 and any(_contains(f, ex) for f in fields) for ex in aq.excluded)


def lexical_rank(query: str, papers: Sequence[Paper], limit: int = 1000) -> list[Paper]:
    """Rank an in-memory list of papers as an alert would."""
    by_rowid = {p.rowid: p for p in papers}
    return Window(papers, lambda ids: [by_rowid[i] for i in ids]).rank(query, limit)


class AlertMatcher:
    """Matches alerts for one run; windows are cached by (after, upto, filters), and
    the result of a query over a window too (many people save the same search)."""

    def __init__(self, store: Store, max_windows: int = 4) -> None:
        self.store = store
        self.max_windows = max_windows
        self._windows: dict[tuple, Window] = {}
        self._results: dict[tuple, list[Paper]] = {}

    def window(self, after_seq: int, upto_seq: int, filters: dict[str, str]) -> Window:
        key = (after_seq, upto_seq, tuple(sorted(filters.items())))
        w = self._windows.get(key)
        if w is None:
            if len(self._windows) >= self.max_windows:
                # bounded memory: windows of one-off watermarks are not worth keeping
                old = next(iter(self._windows))
                self._windows.pop(old)
                self._results = {k: v for k, v in self._results.items() if k[0] != old}
            w = Window(iter_candidates(self.store, after_seq, upto_seq, filters), self.store.get_by_rowids)
            self._windows[key] = w
        return w

    def match(self, query: str, filters: dict[str, str], after_seq: int, upto_seq: int, limit: int) -> list[Paper]:
        """New papers (first stored in (after_seq, upto_seq]) that match `query`, best first."""
        if after_seq >= upto_seq:
            return []
        wkey = (after_seq, upto_seq, tuple(sorted(filters.items())))
        rkey = (wkey, query, limit)
        hit = self._results.get(rkey)
        if hit is None:
            hit = self.window(after_seq, upto_seq, filters).rank(query, limit)
            if len(self._results) > 20_000:
                self._results.clear()
            self._results[rkey] = hit
        return hit


def alert_papers(store: Store, query: str, filters: dict[str, str], after_seq: int, upto_seq: int, limit: int) -> list[Paper]:
    return AlertMatcher(store).match(query, filters, after_seq, upto_seq, limit)
