"""Which papers go into a digest.

`alert_papers` is the one place that decides what matches a saved search, so the
ranking can follow the search pipeline without touching composing or sending.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from paperfeed.models import Paper
from paperfeed.search.query import Filters, QueryError
from paperfeed.search.window import Window
from paperfeed.store.papers import Store
from paperfeed.store.votes import trending

log = logging.getLogger(__name__)

TRENDING_PERIOD = {"daily": "day", "weekly": "week"}


def trending_papers(store: Store, period: str, limit: int) -> list[tuple[Paper, int | None]]:
    """Top papers of the period by the site's trending score, with their vote counts."""
    return [(p, votes) for p, votes, _score in trending(store, TRENDING_PERIOD[period], limit, 0)]


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
    try:
        f = Filters.parse(category=filters.get("category"), author=filters.get("author"))
    except QueryError as exc:
        # stored before filters were checked at subscribe time: nothing can match it
        log.warning("alert filters %r skipped: %s", filters, exc)
        return
    for start in range(0, len(rowids), 1000):
        for p in store.get_by_rowids(rowids[start : start + 1000]):
            if f.admits(p):
                yield p


def candidate_papers(store: Store, after_seq: int, upto_seq: int, filters: dict[str, str]) -> list[Paper]:
    return list(iter_candidates(store, after_seq, upto_seq, filters))


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
