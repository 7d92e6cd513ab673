"""Recommendations learned from a reader's library: saved papers (positives), "not interested"
(negatives) and the rest of the corpus (background).

    model = train(searcher, store, positives=[rowid, ...], negatives=[rowid, ...])
    recs = recommend(model, searcher, store, candidates=window_rowids, exclude=saved | hidden, k=50)
    recs[0].rowid, recs[0].score, recs[0].nearest_rowid, recs[0].shared_terms

A model is small (the library's own rows, a few sparse vectors); `ModelCache` keeps trained models
per (user, tag, library version) so a page view only scores.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Collection, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from paperfeed.index.sync import embed_text
from paperfeed.search.rec_features import CorpusFeatures, corpus_features, words
from paperfeed.search.searcher import Searcher
from paperfeed.store.papers import Store

# Weight of the lexical side in the fused score (the dense side has 1 - this).
LEXICAL_WEIGHT = 0.5
# How much the negatives pull a paper down (similarity to the nearest negative).
NEGATIVE_WEIGHT = 0.5
SHARED_TERMS = 5


@dataclass(frozen=True)
class Recommendation:
    rowid: int
    score: float
    nearest_rowid: int | None  # the saved paper it is most similar to (the "why")
    shared_terms: tuple[str, ...]  # main terms it shares with the positives (the "why")


@dataclass(frozen=True)
class Recommender:
    """One trained model: what scoring a paper needs, nothing of the corpus."""

    positives: np.ndarray  # rowids of the saved papers the model knows (with features)
    pos_dense: np.ndarray  # their unit vectors (P x d)
    pos_sparse: sp.csr_matrix  # their tf-idf rows (P x F)
    neg_dense: np.ndarray  # (N x d)
    neg_sparse: sp.csr_matrix  # (N x F)
    seq: int  # the corpus version it was trained on

    def __len__(self) -> int:
        return len(self.positives)


class RecommendError(ValueError):
    """Nothing to learn from (no saved paper the index knows)."""


def train(
    searcher: Searcher, store: Store, positives: Sequence[int], negatives: Sequence[int] = ()
) -> Recommender:
    """A model from the library's saved papers (rowids) and "not interested" papers (rowids).
    Papers the indexes do not know (hidden, not yet indexed) are left out."""
    feats = corpus_features(searcher, store)
    neg_set = set(negatives)
    pos_ids = [r for r in dict.fromkeys(positives) if r not in neg_set]
    found, prow = feats.rows_of(pos_ids)
    if not len(prow):
        raise RecommendError("no saved paper is indexed yet: nothing to learn from")
    _, nrow = feats.rows_of(list(dict.fromkeys(negatives)))
    tfidf = feats.tfidf()
    return Recommender(
        positives=feats.rowids[prow],
        pos_dense=feats.dense[prow].copy(),
        pos_sparse=tfidf[prow],
        neg_dense=feats.dense[nrow].copy(),
        neg_sparse=tfidf[nrow],
        seq=feats.seq,
    )


def _scores(model: Recommender, feats: CorpusFeatures, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fused score, index of the nearest positive) for corpus rows `rows`."""
    dense = feats.dense[rows]
    sims = dense @ model.pos_dense.T  # (C x P)
    nearest = sims.argmax(axis=1)
    d_score = 0.5 * sims.max(axis=1) + 0.5 * sims.mean(axis=1)
    lex = feats.tfidf()[rows]
    lsims = np.asarray((lex @ model.pos_sparse.T).todense())
    l_score = 0.5 * lsims.max(axis=1) + 0.5 * lsims.mean(axis=1)
    score = (1 - LEXICAL_WEIGHT) * _minmax(d_score) + LEXICAL_WEIGHT * _minmax(l_score)
    if len(model.neg_dense):
        nd = (dense @ model.neg_dense.T).max(axis=1)
        nl = np.asarray((lex @ model.neg_sparse.T).todense()).max(axis=1)
        score = score - NEGATIVE_WEIGHT * ((1 - LEXICAL_WEIGHT) * np.maximum(nd, 0) + LEXICAL_WEIGHT * nl)
    return score, nearest


def _minmax(x: np.ndarray) -> np.ndarray:
    if not len(x):
        return x
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def recommend(
    model: Recommender,
    searcher: Searcher,
    store: Store,
    *,
    candidates: Sequence[int] | None = None,
    exclude: Collection[int] = (),
    k: int = 50,
) -> list[Recommendation]:
    """The `k` best papers for the model among `candidates` (rowids; None = the whole corpus),
    leaving out `exclude` (the saved and not-interested papers), best first."""
    feats = corpus_features(searcher, store)
    if candidates is None:
        rows = np.arange(len(feats))
    else:
        _, rows = feats.rows_of(candidates)
        rows = np.unique(rows)
    if len(exclude) and len(rows):
        ex = np.asarray(list(exclude), dtype=np.int64)
        rows = rows[~np.isin(feats.rowids[rows], ex)]
    if not len(rows) or k <= 0:
        return []
    score, nearest = _scores(model, feats, rows)
    top = np.argsort(-score, kind="stable")[:k]
    top_rows = rows[top]
    why = _shared_terms(model, feats, store, top_rows, nearest[top])
    return [
        Recommendation(
            rowid=int(feats.rowids[r]),
            score=float(score[t]),
            nearest_rowid=int(model.positives[nearest[t]]),
            shared_terms=why[i],
        )
        for i, (r, t) in enumerate(zip(top_rows, top, strict=True))
    ]


def _shared_terms(
    model: Recommender, feats: CorpusFeatures, store: Store, rows: np.ndarray, nearest: np.ndarray
) -> list[tuple[str, ...]]:
    """For each recommended row: the words it shares with its nearest saved paper, rarest in the
    corpus first (idf of the hashed unigram)."""
    rowids = [int(feats.rowids[r]) for r in rows]
    near_ids = sorted({int(model.positives[n]) for n in nearest})
    papers = {p.rowid: p for p in store.get_by_rowids(rowids + near_ids)}
    near_words = {r: set(words(embed_text(papers[r]))) for r in near_ids if r in papers}
    idf = feats.idf()
    from paperfeed.search.rec_features import term_counts

    out: list[tuple[str, ...]] = []
    for rid, n in zip(rowids, nearest, strict=True):
        p = papers.get(rid)
        mine = set(words(embed_text(p))) if p is not None else set()
        shared = sorted(mine & near_words.get(int(model.positives[n]), set()))
        if shared:
            cols = term_counts(shared).indices if len(shared) else np.zeros(0, np.int64)
            weights = idf[cols] if len(cols) == len(shared) else np.ones(len(shared))
            shared = [w for _, w in sorted(zip(-weights, shared, strict=True))]
        out.append(tuple(shared[:SHARED_TERMS]))
    return out


class ModelCache:
    """Thread-safe LRU of trained models keyed by (user_id, tag or None, library_version).

    The library version changes whenever the user's library does, so a save retrains on the
    next request; the corpus version (store seq) is checked too, as new papers change the idf."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._models: OrderedDict[Hashable, Recommender] = OrderedDict()

    def get_or_train(
        self,
        key: tuple[int, str | None, str],
        searcher: Searcher,
        store: Store,
        positives: Sequence[int],
        negatives: Sequence[int] = (),
    ) -> Recommender:
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
                return model
        model = train(searcher, store, positives, negatives)
        with self._lock:
            self._models[key] = model
            self._models.move_to_end(key)
            while len(self._models) > self.size:
                self._models.popitem(last=False)
        return model

    def __len__(self) -> int:
        with self._lock:
            return len(self._models)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
