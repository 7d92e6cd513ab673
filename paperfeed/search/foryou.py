""" "For you": the papers of a window ranked for one reader, with why each one is there.

One function serves the page, the API, the per-tag Atom feed and the mail, so they always agree:

- the window is the latest feed day ("today"), or the 7 or 30 feed days up to it: relative to
  the newest papers the store has, not to the clock, as the daily page is;
- candidates are the window's visible papers, minus everything in the library (every tag, not
  only the one shown) and everything marked "not interested";
- the recommender (paperfeed.search.recommend) is trained on the library, or one tag of it, with
  "not interested" as negatives, and cached per (user, tag, library version): a save changes the
  version, so the next request retrains and every later one only scores;
- papers by followed authors come first in the all-tags view, labelled with the follow, because
  the reader asked for them by name; a followed paper the model also ranks keeps its "why";
- cold start: one saved paper is enough to train on; with none, the followed authors' papers
  (of any day) are the positives, so following an author alone gives a ranked page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from paperfeed.models import Paper
from paperfeed.search.recommend import (
    ExplainMemo,
    ModelCache,
    Recommender,
    RecommendError,
    explain_many,
    rank_for_many,
    recommend,
)
from paperfeed.search.searcher import Searcher
from paperfeed.store import library as lib
from paperfeed.store.papers import Store

WINDOWS: dict[str, int] = {"today": 1, "week": 7, "month": 30}
MAX_ITEMS = 200


@dataclass(frozen=True)
class ForYouItem:
    paper: Paper
    score: float | None  # None for a followed author's paper the model did not rank
    nearest: Paper | None  # the saved paper it is most like
    shared_terms: tuple[str, ...]
    follow: lib.Follow | None = None  # set when it is there because its author is followed


@dataclass
class ForYou:
    window: str
    since: str | None
    until: str | None
    tag: lib.Tag | None
    trained_on: int  # saved papers the model learned from (0: no model)
    items: list[ForYouItem] = field(default_factory=list)
    note: str | None = None  # why there is no ranking, in words
    from_follows: bool = False  # the model learned from followed authors' papers (empty library)


def window_range(store: Store, window: str) -> tuple[str, str] | None:
    """(since, until) feed days of the window, ending on the newest feed day; None when the
    store has no papers."""
    days = WINDOWS[window]
    latest = store.conn.execute("SELECT MAX(feed_date) FROM papers WHERE hidden = 0").fetchone()[0]
    if latest is None:
        return None
    since = dt.date.fromisoformat(latest) - dt.timedelta(days=days - 1)
    return since.isoformat(), latest


def window_rowids(store: Store, since: str, until: str) -> list[int]:
    rows = store.conn.execute(
        "SELECT rowid FROM papers WHERE feed_date >= ? AND feed_date <= ? AND hidden = 0", (since, until)
    )
    return [r[0] for r in rows]


@dataclass
class _Reader:
    """One reader's request, prepared: what the model learns from and what is left out."""

    out: ForYou
    k: int
    positives: list[int] = field(default_factory=list)
    negatives: list[int] = field(default_factory=list)
    exclude: set[int] = field(default_factory=set)
    follows: list[lib.Follow] = field(default_factory=list)
    key: tuple[int, str | None, str] | None = None  # the model's cache key; None: no model to use


def _prepare(store: Store, searcher: Searcher | None, user_id: int, tag_id: int | None, window: str, k: int,
             span: tuple[str, str] | None) -> _Reader:  # fmt: skip
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}, not {window!r}")
    k = max(1, min(k, MAX_ITEMS))
    tag = lib.get_tag(store, user_id, tag_id) if tag_id is not None else None
    if tag_id is not None and tag is None:
        raise LookupError("There is no such tag.")
    out = ForYou(window=window, since=span[0] if span else None, until=span[1] if span else None, tag=tag,
                 trained_on=0)  # fmt: skip
    r = _Reader(out=out, k=k)
    if span is None:
        out.note = "There are no papers yet."
        return r
    r.positives = lib.saved_rowids(store, user_id, tag_id)
    r.negatives = lib.negative_rowids(store, user_id)
    r.exclude = set(lib.saved_rowids(store, user_id)) | set(r.negatives)
    r.follows = lib.list_follows(store, user_id) if tag is None else []
    if not r.positives and r.follows:
        # cold start: an empty library learns from the followed authors' papers
        r.positives = lib.papers_by_follows(store, r.follows)
        out.from_follows = bool(r.positives)
    if not r.positives:
        out.note = ("Save papers to this tag to get recommendations for it." if tag else
                    "Save a paper (or follow an author) to get recommendations: one saved paper is enough.")  # fmt: skip
    elif searcher is None or not searcher.ready():
        out.note = "Recommendations appear once the search index is built."
    else:
        r.key = (user_id, None if tag_id is None else str(tag_id), lib.library_version(store, user_id, tag_id))
    return r


_NOT_INDEXED = "Your saved papers are not indexed yet; recommendations appear once they are."


def _finish(store: Store, r: _Reader, ranked: list[ForYouItem]) -> ForYou:
    """Followed authors' papers first (all-tags view), then the ranked ones, k in all."""
    out = r.out
    followed: list[ForYouItem] = []
    if out.tag is None and out.since is not None and out.until is not None:
        by_rowid = {i.paper.rowid: i for i in ranked}
        for p, f in lib.followed_papers(store, r.follows, out.since, out.until, limit=r.k):
            if p.rowid in r.exclude:
                continue
            item = by_rowid.pop(p.rowid, None)
            followed.append(ForYouItem(p, item.score if item else None, item.nearest if item else None,
                                       item.shared_terms if item else (), follow=f))  # fmt: skip
        ranked = [i for i in ranked if i.paper.rowid in by_rowid]
    out.items = (followed + ranked)[: r.k]
    return out


def for_you(
    store: Store,
    searcher: Searcher | None,
    cache: ModelCache,
    user_id: int,
    *,
    tag_id: int | None = None,
    window: str = "week",
    k: int = 50,
    explain: bool = True,
) -> ForYou:
    """The ranked window for `user_id` (see the module docstring). `tag_id` must be the user's
    (checked here too: another user's id gives the same answer as an unknown one). Without
    `explain`, items carry no shared terms (a feed shows none, and they cost a few ms each)."""
    span = window_range(store, window) if window in WINDOWS else None
    r = _prepare(store, searcher, user_id, tag_id, window, k, span)
    out = r.out
    ranked: list[ForYouItem] = []
    if r.key is not None and span is not None:
        assert searcher is not None
        try:
            model = cache.get_or_train(r.key, searcher, store, r.positives, r.negatives)
        except RecommendError:
            model = None
            out.note = _NOT_INDEXED
        if model is not None:
            out.trained_on = len(model)
            # papers the model learned from are never recommended (a followed author's own papers
            # are listed, labelled, below)
            recs = recommend(model, searcher, store, candidates=window_rowids(store, *span),
                             exclude=r.exclude | set(r.positives), k=r.k, explain=explain)  # fmt: skip
            papers = {p.rowid: p for p in store.get_by_rowids(
                [x.rowid for x in recs] + [x.nearest_rowid for x in recs if x.nearest_rowid is not None])}  # fmt: skip
            ranked = [
                ForYouItem(papers[x.rowid], x.score, papers.get(x.nearest_rowid) if x.nearest_rowid else None,
                           x.shared_terms)
                for x in recs if x.rowid in papers and not papers[x.rowid].hidden
            ]  # fmt: skip
    if span is None:
        return out
    return _finish(store, r, ranked)


def train_for(store: Store, searcher: Searcher, cache: ModelCache, user_id: int, tag_id: int | None = None) -> bool:
    """Train (or find, in memory or stored) the model `for_you` would use for (user, tag) now,
    without ranking anything: what a library change triggers. False when there is nothing to
    learn from yet or the tag is not the user's."""
    try:
        r = _prepare(store, searcher, user_id, tag_id, "today", 1, window_range(store, "today"))
    except LookupError:
        return False
    if r.key is None:
        return False
    try:
        cache.get_or_train(r.key, searcher, store, r.positives, r.negatives)
    except RecommendError:
        return False
    return True


@dataclass(frozen=True)
class Request:
    user_id: int
    tag_id: int | None = None
    k: int = 10


def for_you_many(store: Store, searcher: Searcher | None, cache: ModelCache, requests: Sequence[Request], *,
                 window: str = "today", memo: ExplainMemo | None = None) -> list[ForYou]:  # fmt: skip
    """`for_you` (with the why fields) for many readers over one window, as the mail does it:
    the window is read once, the models come from `cache` (in memory, else stored: see
    ModelCache.persist) and only missing or stale ones are trained, and the window is scored
    for all readers at once (rank_for_many). Same items as `for_you` for each reader.
    `memo` keeps papers and their words between calls. A request for a tag that is not
    the user's raises LookupError, as for_you does."""
    span = window_range(store, window) if window in WINDOWS else None
    readers = [_prepare(store, searcher, q.user_id, q.tag_id, window, q.k, span) for q in requests]
    if span is None:
        return [r.out for r in readers]
    keys = [r.key for r in readers if r.key is not None]
    models: dict[tuple[int, str | None, str], Recommender] = {}
    if keys:
        assert searcher is not None
        models = cache.load_stored(keys, searcher, store)
    scored: list[tuple[_Reader, Recommender]] = []
    for r in readers:
        if r.key is None:
            continue
        model = models.get(r.key)
        if model is None:
            assert searcher is not None
            try:
                model = cache.get_or_train(r.key, searcher, store, r.positives, r.negatives)
            except RecommendError:
                r.out.note = _NOT_INDEXED
                continue
            models[r.key] = model
        r.out.trained_on = len(model)
        scored.append((r, model))
    ranked_items: dict[int, list[ForYouItem]] = {}
    if scored:
        assert searcher is not None
        cand = window_rowids(store, *span)
        top = rank_for_many([m for _, m in scored], searcher, store, cand,
                            exclude=[r.exclude | set(r.positives) for r, _ in scored],
                            k=max(r.k for r, _ in scored))  # fmt: skip
        top = [t[: r.k] for t, (r, _) in zip(top, scored, strict=True)]
        memo = memo if memo is not None else ExplainMemo()
        cache_papers = memo.papers
        why = explain_many([(m, [rid for rid, _ in t]) for t, (_, m) in zip(top, scored, strict=True)],
                           searcher, store, memo)  # fmt: skip
        for t, (r, _), w in zip(top, scored, why, strict=True):
            items = []
            for (rid, score), (near, terms) in zip(t, w, strict=True):
                p = cache_papers.get(rid)
                if p is None or p.hidden:
                    continue
                items.append(ForYouItem(p, score, cache_papers.get(near) if near else None, terms))
            ranked_items[id(r)] = items
    return [_finish(store, r, ranked_items.get(id(r), [])) for r in readers]
