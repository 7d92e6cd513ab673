"""Papers like one paper: "Similar papers" on its page and `/api/papers/{id}/similar`.

    pairs = similar_papers(searcher, store, rowid, k=8)   # [(rowid, score), ...], best first

The vector index gives the CANDIDATES nearest to the paper's vector; they are ranked by the
cosine of their vectors plus LEXICAL_WEIGHT times the cosine of their tf-idf words and pairs,
each standardised over the candidates. Both come from the recommender's corpus features
(`rec_features`), where a long paper's vector is the mean of its passages', not the model's
window over its first 200 words.

Measured as the cold start of `paperfeed eval recommend` (`paperfeed eval recommend --similar
--suite ../shared/ir --baseline`: each reader's library is one paper, its other relevant
documents are held out; raw `bench/results/eval-similar.json`), nDCG@10 as a ratio to the better
of arxiv-sanity-lite's SVM and the MiniLM centroid, adi / cranfield / lisa / med / npl / time:
the vector index's nearest neighbours alone (the page until session 11) 0.977 / 1.018 / 1.008 /
0.982 / 1.022 / 0.824 (time's articles are 620 words long, past the model's window), mean
nDCG@10 0.366; this 1.046 / 1.044 / 1.090 / 1.008 / 1.055 / 1.022, mean 0.397. The words' weight
0.3 / 0.5 / 0.7 gives means 0.397 / 0.394 / 0.395: a plateau.
"""

from __future__ import annotations

import numpy as np

from paperfeed.search.rec_features import corpus_features
from paperfeed.search.searcher import Searcher
from paperfeed.store.papers import Store

CANDIDATES = 200
LEXICAL_WEIGHT = 0.3


def similar_papers(searcher: Searcher, store: Store, rowid: int, k: int = 8) -> list[tuple[int, float]]:
    """The `k` papers most like paper `rowid`, as (rowid, score), best first; empty when the
    paper is not in the features yet, or without its vector (not indexed yet, or hidden)."""
    vec = searcher.vectors
    if vec is None or k <= 0:
        return []
    feats = corpus_features(searcher, store)
    found, row = feats.rows_of([rowid])
    if not found.any():
        return []
    query = feats.vectors(row)[0]
    if not query.any():  # in the features before the vector index has its vector
        return []
    ids, _ = vec.search(query, CANDIDATES + 1)
    _, rows = feats.rows_of([i for i in ids.tolist() if i != rowid])
    if not len(rows):
        return []
    dense = feats.vectors(rows) @ query
    lexical = (feats.tfidf_rows(rows) @ feats.tfidf_rows(row).T).toarray().ravel()
    score = _standard(dense) + LEXICAL_WEIGHT * _standard(lexical)
    top = np.argsort(-score, kind="stable")[:k]
    return [(int(feats.rowids[rows[i]]), float(score[i])) for i in top]


def _standard(x: np.ndarray) -> np.ndarray:
    """x in standard deviations from its mean (0 when all alike)."""
    sd = float(x.std())
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)
