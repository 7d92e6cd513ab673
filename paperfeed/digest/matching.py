"""Which papers go into a digest.

`alert_papers` is the one place that decides what matches a saved search, so the
ranking can follow the search pipeline without touching composing or sending.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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


# An alert window holds at most this many papers (the newest). Only a bulk import
# (the whole arXiv snapshot at once) goes past it, and an alert listing papers
# from such an import would not be news anyway; this bounds a run's memory.
MAX_WINDOW = 20_000


def candidate_papers(store: Store, after_seq: int, upto_seq: int, filters: dict[str, str]) -> list[Paper]:
    """Visible papers first stored in (after_seq, upto_seq], narrowed by the filters
    (the newest MAX_WINDOW of them)."""
    sql = "SELECT p.rowid FROM papers p WHERE p.added_seq > ? AND p.added_seq <= ? AND p.hidden = 0"
    args: list = [after_seq, upto_seq]
    if filters.get("source"):
        sql += " AND EXISTS (SELECT 1 FROM paper_sources s WHERE s.paper_rowid = p.rowid AND s.source = ?)"
        args.append(filters["source"])
    sql += " ORDER BY p.added_seq DESC LIMIT ?"
    rowids = [r[0] for r in store.conn.execute(sql, [*args, MAX_WINDOW])][::-1]
    papers = store.get_by_rowids(rowids)
    if cat := filters.get("category"):
        papers = [p for p in papers if cat.lower() in (c.lower() for c in p.categories)]
    if author := filters.get("author"):
        needle = author.casefold()
        papers = [p for p in papers if any(needle in a.casefold() for a in p.authors)]
    return papers


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
    """The candidate papers of one alert window, with a small inverted index.

    Most alerts of a run share the same window (their watermarks all moved to the
    same seq at the previous run), so the candidates are read and tokenised once
    per run, and each query only walks the postings of its own terms.
    """

    def __init__(self, papers: Sequence[Paper]) -> None:
        self.papers = list(papers)
        self.postings: dict[str, dict[int, int]] = {}
        self.lengths: list[int] = []
        for i, p in enumerate(self.papers):
            # the title counts twice: a query word in the title matters more
            terms = Counter(_doc_terms(f"{p.title} {p.title} {p.abstract}"))
            self.lengths.append(sum(terms.values()))
            for t, tf in terms.items():
                self.postings.setdefault(t, {})[i] = tf
        self.avg = (sum(self.lengths) / len(self.lengths)) if self.lengths else 1.0

    def rank(self, query: str) -> list[Paper]:
        """BM25 over the window; a paper matches when it has every query term.

        Requiring all terms (after stemming) is what a reader expects of an alert
        for "importance reweighting": papers about both, not every paper on importance.
        """
        try:
            aq = compile_query(query)
        except ValueError:
            return []
        q = aq.terms
        if not q or not self.papers:
            return []
        posts = [self.postings.get(t) for t in q]
        if any(not p for p in posts):
            return []
        docs = set(min(posts, key=len))
        for p in posts:
            docs &= p.keys()
        for ex in aq.excluded:
            if len(ex) == 1:
                docs -= self.postings.get(ex[0], {}).keys()
        if aq.phrases or any(len(ex) > 1 for ex in aq.excluded):
            docs = {i for i in docs if self._phrases_ok(i, aq)}
        n = len(self.papers)
        scored = []
        for i in docs:
            s = 0.0
            for post in posts:
                df, tf = len(post), post[i]
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                s += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * self.lengths[i] / self.avg))
            scored.append((s, i))
        scored.sort(key=lambda si: (-si[0], self.papers[si[1]].rowid))
        return [self.papers[i] for _, i in scored]


    def _phrases_ok(self, i: int, aq: AlertQuery) -> bool:
        p = self.papers[i]
        # title and abstract apart, so a phrase cannot run from one into the other
        fields = (_doc_terms(p.title), _doc_terms(p.abstract))
        if not all(any(_contains(f, ph) for f in fields) for ph in aq.phrases):
            return False
        return not any(len(ex) > 1 and any(_contains(f, ex) for f in fields) for ex in aq.excluded)


def lexical_rank(query: str, papers: Sequence[Paper]) -> list[Paper]:
    return Window(papers).rank(query)


class AlertMatcher:
    """Matches alerts for one run; windows are cached by (after, upto, filters)."""

    def __init__(self, store: Store, max_windows: int = 8) -> None:
        self.store = store
        self.max_windows = max_windows
        self._windows: dict[tuple, Window] = {}

    def window(self, after_seq: int, upto_seq: int, filters: dict[str, str]) -> Window:
        key = (after_seq, upto_seq, tuple(sorted(filters.items())))
        w = self._windows.get(key)
        if w is None:
            if len(self._windows) >= self.max_windows:
                # bounded memory: windows of one-off watermarks are not worth keeping
                self._windows.pop(next(iter(self._windows)))
            w = Window(candidate_papers(self.store, after_seq, upto_seq, filters))
            self._windows[key] = w
        return w

    def match(self, query: str, filters: dict[str, str], after_seq: int, upto_seq: int, limit: int) -> list[Paper]:
        """New papers (first stored in (after_seq, upto_seq]) that match `query`, best first."""
        if after_seq >= upto_seq:
            return []
        return self.window(after_seq, upto_seq, filters).rank(query)[:limit]


def alert_papers(store: Store, query: str, filters: dict[str, str], after_seq: int, upto_seq: int, limit: int) -> list[Paper]:
    return AlertMatcher(store).match(query, filters, after_seq, upto_seq, limit)
