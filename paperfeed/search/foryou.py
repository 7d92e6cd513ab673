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
from dataclasses import dataclass, field

from paperfeed.models import Paper
from paperfeed.search.recommend import ModelCache, RecommendError, recommend
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
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}, not {window!r}")
    k = max(1, min(k, MAX_ITEMS))
    tag = lib.get_tag(store, user_id, tag_id) if tag_id is not None else None
    if tag_id is not None and tag is None:
        raise LookupError("There is no such tag.")
    span = window_range(store, window)
    out = ForYou(window=window, since=span[0] if span else None, until=span[1] if span else None, tag=tag,
                 trained_on=0)  # fmt: skip
    if span is None:
        out.note = "There are no papers yet."
        return out
    since, until = span
    positives = lib.saved_rowids(store, user_id, tag_id)
    negatives = lib.negative_rowids(store, user_id)
    exclude = set(lib.saved_rowids(store, user_id)) | set(negatives)
    follows = lib.list_follows(store, user_id) if tag is None else []
    if not positives and follows:
        # cold start: an empty library learns from the followed authors' papers
        positives = lib.papers_by_follows(store, follows)
        out.from_follows = bool(positives)
    ranked: list[ForYouItem] = []
    if not positives:
        out.note = ("Save papers to this tag to get recommendations for it." if tag else
                    "Save a paper (or follow an author) to get recommendations: one saved paper is enough.")  # fmt: skip
    elif searcher is None or not searcher.ready():
        out.note = "Recommendations appear once the search index is built."
    else:
        key = (user_id, None if tag_id is None else str(tag_id), lib.library_version(store, user_id, tag_id))
        try:
            model = cache.get_or_train(key, searcher, store, positives, negatives)
        except RecommendError:
            model = None
            out.note = "Your saved papers are not indexed yet; recommendations appear once they are."
        if model is not None:
            out.trained_on = len(model)
            # papers the model learned from are never recommended (a followed author's own papers
            # are listed, labelled, below)
            recs = recommend(model, searcher, store, candidates=window_rowids(store, since, until),
                             exclude=exclude | set(positives), k=k, explain=explain)  # fmt: skip
            papers = {p.rowid: p for p in store.get_by_rowids(
                [r.rowid for r in recs] + [r.nearest_rowid for r in recs if r.nearest_rowid is not None])}  # fmt: skip
            ranked = [
                ForYouItem(papers[r.rowid], r.score, papers.get(r.nearest_rowid) if r.nearest_rowid else None,
                           r.shared_terms)
                for r in recs if r.rowid in papers and not papers[r.rowid].hidden
            ]  # fmt: skip
    followed: list[ForYouItem] = []
    if tag is None:
        by_rowid = {i.paper.rowid: i for i in ranked}
        for p, f in lib.followed_papers(store, follows, since, until, limit=k):
            if p.rowid in exclude:
                continue
            item = by_rowid.pop(p.rowid, None)
            followed.append(ForYouItem(p, item.score if item else None, item.nearest if item else None,
                                       item.shared_terms if item else (), follow=f))  # fmt: skip
        ranked = [i for i in ranked if i.paper.rowid in by_rowid]
    out.items = (followed + ranked)[:k]
    return out
