"""Search: query parsing, hybrid retrieval, fusion, feedback reranking, filters, snippets.

from paperfeed.search import open_searcher, search, QueryError
searcher = open_searcher(data_dir, store)          # hold it warm (one per process)
res = searcher.search("effective rank", store=store, mode="best", limit=10, offset=0,
                      since="2024-01", category="cs.LG")
res.hits[0].paper, res.hits[0].score, res.hits[0].snippet (safe HTML with <mark>)
searcher.similar(paper.rowid, limit=8, store=store)    # the vector index's nearest neighbours
similar.similar_papers(searcher, store, rowid, k=8)    # "Similar papers": vectors and words
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from paperfeed.search.query import MODES, Filters, ParsedQuery, QueryError, parse_query
from paperfeed.search.searcher import Hit, Ranking, Searcher, SearchResults
from paperfeed.store import Store


def open_searcher(data_dir: Path, store: Store | None = None, **kw: Any) -> Searcher:
    """A warm Searcher for `data_dir`; with `store`, the indexes are caught up first."""
    return Searcher.open(Path(data_dir), store, **kw)


def search(
    store: Store,
    searcher: Searcher,
    query: str,
    *,
    mode: str = "best",
    limit: int = 10,
    offset: int = 0,
    filters: Filters | None = None,
    **filter_args: Any,
) -> SearchResults:
    """Module-level form of `Searcher.search` (filter_args: since, until, category, author, source)."""
    return searcher.search(
        query, store=store, mode=mode, limit=limit, offset=offset, filters=filters, **filter_args
    )


__all__ = [
    "MODES",
    "Filters",
    "Hit",
    "ParsedQuery",
    "QueryError",
    "Ranking",
    "SearchResults",
    "Searcher",
    "open_searcher",
    "parse_query",
    "search",
]
