"""Recommendations learned from a reader's library: saved papers (positives), "not interested"
(negatives) and the rest of the corpus (background).

    model = train(searcher, store, positives=[rowid, ...], negatives=[rowid, ...])
    recs = recommend(model, searcher, store, candidates=window_rowids, exclude=saved | hidden, k=50)
    recs[0].rowid, recs[0].score, recs[0].nearest_rowid, recs[0].shared_terms

A model is small (the SVM's non-zero weights and the library's vectors); `ModelCache` keeps trained models
per (user, tag, library version) so a page view only scores, and with `persist` keeps them in the
store too (paperfeed.store.rec_models), so other processes and the mail use them untrained.
"""

from __future__ import annotations

import logging
import re
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from paperfeed.search.rec_features import CorpusFeatures, corpus_features, paper_text, term_column, words
from paperfeed.search.searcher import Searcher
from paperfeed.store import rec_models
from paperfeed.store.papers import Store

log = logging.getLogger(__name__)

# The model: a linear SVM (arxiv-sanity-lite's learner) over [tf-idf ; DENSE_SCALE x MiniLM
# vector], positives = the library, the rest = background. Measured on the six collections of
# ../shared/ir with `paperfeed eval recommend --suite ../shared/ir --baseline` (README); the
# choice by a replica on cached vectors, nDCG@10 over the better baseline per collection:
#   all terms, dense x1.0:      time 0.922  adi 1.131  cranfield 1.033  med 1.039
#   library terms, dense x1.0:  time 0.944  adi 1.127  cranfield 1.031  med 1.029
#   library terms, dense x0.5:  time 0.992  adi 1.083  cranfield 1.054  med 1.028
#   + BM25 query of the library's terms, fused 0.7/0.3: time 1.007, adi 1.022 (dropped)
# The dense part is what separates adi (short texts) and what hurts time (long ones): x0.5 is
# the best worst case.
# Later, on the product (`eval recommend` on the suite, ratio to the better baseline, kept:
# time 1.035, med 1.051, cranfield 1.053, mean 1.104), not kept: self-training on the top 2 / 5
# unlabelled papers (time 0.99 / 0.97); scores smoothed over each candidate's 5 / 10 nearest
# candidates (time 1.01, med 1.04); asl's max_df 0.1 / 0.3 (time 1.01 / 1.03); DENSE_SCALE chosen
# per library by cross-validation on the library from 0.35 / 0.5 / 0.7 (mean 1.11, cranfield
# 1.04, med 1.04); pivoted length normalisation of the tf-idf rows (slope 0.8: time 1.056 but med
# 1.036; only the longest 10% of rows, slope 0.5: time 1.050 but cranfield 1.045). Time's
# standard error over its 29 readers is 0.061, six times the gap to 1.05. Session 10: the lexical
# columns limited to each library paper's top 100 / 200 tf-idf terms (long texts bring many
# incidental ones): time 0.595 / 0.601 against 0.627, cranfield and med down too; the tf-idf
# rows of texts past 400 terms scaled up by (terms / 400) ** 0.3 / 0.5 (a pivot in absolute
# length, so abstracts are untouched): time 0.622 / 0.621, cranfield 0.439: not kept.
# Session 11, on the product before the centroid blend (PROTOTYPE_WEIGHT; ratios as above, then
# adi 1.082, cranfield 1.054, med 1.051, npl 1.182, time 1.035), none kept, each lifting time at
# most where another collection falls:
#   PU learning, scores out of fold (each background paper scored by a model trained without
#   it), 3 / 5 folds: time 1.022 / 1.038, cranfield 1.032 / 1.041, adi 1.058 / 1.062;
#   reliable negatives (Rocchio-SVM, Li & Liu 2003: the 1 / 3 x |library| background papers
#   nearest the library's centroid left out of training): time 1.032 / 1.037, adi 1.067 / 1.031;
#   consensus weighting (a term's column scaled by the number of saved papers that have it, to
#   the power 0.5; 0.25 with the mean scale kept): time 1.081 / 1.048, but cranfield 1.030 /
#   1.043, med 1.028 / 1.046, npl 1.125 / 1.180, adi 1.057 / 1.042;
#   the same with the library's tf-idf centroid as the scale (power 0.25): time 1.046, adi
#   1.057, cranfield 1.047, med 1.045;
#   z-fused with the lexical cosine to the nearest saved paper (0.1): time 1.029, npl 1.141;
#   z-fused with BM25 (k1 1.2, b 0.75) of the library's top 50 terms (0.2 / 0.4): time 1.041 /
#   1.046, med 1.030 / 1.005, adi 1.040 / 1.022;
#   the dense part of texts past 150 content words scaled by (150 / words) ** 0.5 / -0.25:
#   time 0.972 / 1.055 (med 1.047);
#   SVM_C 0.05 / 0.2: time 1.024 / 1.033; DENSE_SCALE 0.4 / 0.6: time 1.048 (adi 1.018) / 1.012.
# Every lever that helps time (long texts) moves weight from the MiniLM part to the lexical one,
# and that is what the five collections of abstract-length texts lose.
DENSE_SCALE = 0.5
SVM_C = 0.1
# Background papers the SVM sees: all of them up to this many, else a random sample. The retrain
# cost grows linearly with it (with liblinear, 20k took 10 s p50 at load 10 on 2 cores; with
# `fit_linear_svm`, the same objective, 8k takes 0.14-0.3 s at 100k papers); every evaluation
# collection but npl (11k) is smaller, so their figures are the full method's.
BACKGROUND = 8_000
# "Not interested" papers weigh this many times a background paper in training, and a candidate
# whose vector is this close to one (a near duplicate) is pushed down by the excess.
NEGATIVE_WEIGHT = 5.0
NEAR_DUPLICATE = 0.8
SHARED_TERMS = 5
# With few saved papers an SVM fits their accidents (two points define its margin); the plain
# centroid of their vectors is the stronger guess then (Rocchio against SVM, as in text
# classification with few positives). So the centroid's cosine is blended in, weighing
# PROTOTYPE_WEIGHT / P**2 against the SVM's 1 (both standardised) for P saved papers: 8 for one,
# 2 for two, 0.9 for three, 0.03 for sixteen. See `_with_prototype`. Measured with
# `paperfeed eval recommend --suite ../shared/ir --baseline --library-size N` (N = 1, 2, 3) and
# at the protocol's half: mean nDCG@10 0.386 -> 0.394, 0.430 -> 0.446, 0.481 -> 0.488 and
# 0.5015 -> 0.5030; npl at one saved paper 0.84 -> 1.07 of the better baseline (README). 8 of
# 3 / 5 / 8 / 12 / 16; leave-one-collection-out picks 12 every time, 8-12 being one plateau.
PROTOTYPE_WEIGHT = 8.0


@dataclass(frozen=True)
class Recommendation:
    rowid: int
    score: float
    nearest_rowid: int | None  # the saved paper it is most similar to (the "why")
    shared_terms: tuple[str, ...]  # main terms it shares with the positives (the "why")


@dataclass(frozen=True, eq=False)
class Recommender:
    """One trained model: a few kB of weights and the library's vectors, nothing of the corpus."""

    positives: np.ndarray  # rowids of the saved papers the model learnt from
    pos_dense: np.ndarray  # their unit vectors (P x d), for the "nearest saved paper"
    neg_dense: np.ndarray  # "not interested" vectors (N x d), for the near-duplicate push-down
    lex_index: np.ndarray  # hashed term columns with a non-zero weight
    lex_weight: np.ndarray  # their weights
    dense_weight: np.ndarray  # (d,) weights of the dense part (DENSE_SCALE folded in)
    bias: float
    seq: int  # the corpus version it was trained on
    negatives: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # rowids of neg_dense

    def __len__(self) -> int:
        return len(self.positives)

    def to_bytes(self) -> bytes:
        """The model without the vectors (they are the corpus's, re-read by `from_bytes`): a few
        kB, what paperfeed.store.rec_models keeps."""
        head = struct.pack(_HEAD, _MAGIC, len(self.positives), len(self.negatives), len(self.lex_index),
                           len(self.dense_weight), float(self.bias), int(self.seq))  # fmt: skip
        return b"".join([
            head,
            np.asarray(self.positives, "<i8").tobytes(),
            np.asarray(self.negatives, "<i8").tobytes(),
            np.asarray(self.lex_index, "<i4").tobytes(),
            np.asarray(self.lex_weight, "<f4").tobytes(),
            np.asarray(self.dense_weight, "<f4").tobytes(),
        ])  # fmt: skip

    @classmethod
    def from_bytes(cls, data: bytes, feats: CorpusFeatures) -> Recommender | None:
        """The model `to_bytes` wrote, its vectors read from `feats`; None when it cannot be used
        as it is (a paper it learnt from is no longer in the corpus, or the vectors changed
        dimension): then it is retrained."""
        if len(data) < _HEAD_SIZE or data[:4] != _MAGIC:
            return None
        _, n_pos, n_neg, n_lex, dim, bias, seq = struct.unpack_from(_HEAD, data)
        if dim != feats.dim:
            return None
        off = _HEAD_SIZE
        parts = []
        for dtype, n in (("<i8", n_pos), ("<i8", n_neg), ("<i4", n_lex), ("<f4", n_lex), ("<f4", dim)):
            parts.append(np.frombuffer(data, dtype, n, off))
            off += n * np.dtype(dtype).itemsize
        pos, neg, lex_index, lex_weight, dense_weight = parts
        found_p, prow = feats.rows_of(pos)
        found_n, nrow = feats.rows_of(neg)
        if not (found_p.all() and found_n.all()):
            return None
        return cls(positives=pos.astype(np.int64), pos_dense=feats.vectors(prow), neg_dense=feats.vectors(nrow),
                   lex_index=lex_index.astype(np.int32), lex_weight=lex_weight.astype(np.float32),
                   dense_weight=dense_weight.astype(np.float32), bias=bias, seq=seq,
                   negatives=neg.astype(np.int64))  # fmt: skip


# PFR2: the centroid blend (PROTOTYPE_WEIGHT). A stored PFR1 model ranks the old way, so it is
# not used: the page and the mail train the reader's model again.
_MAGIC = b"PFR2"
_HEAD = "<4sIIIIdq"
_HEAD_SIZE = struct.calcsize(_HEAD)


class RecommendError(ValueError):
    """Nothing to learn from (no saved paper the index knows)."""


def train(
    searcher: Searcher, store: Store, positives: Sequence[int], negatives: Sequence[int] = ()
) -> Recommender:
    """A model from the library's saved papers (rowids) and "not interested" papers (rowids).
    Papers the indexes do not know (hidden, not yet indexed) are left out."""
    feats = corpus_features(searcher, store)
    neg_set = set(negatives)
    _, prow = feats.rows_of([r for r in dict.fromkeys(positives) if r not in neg_set])
    if not len(prow):
        raise RecommendError("no saved paper is indexed yet: nothing to learn from")
    _, nrow = feats.rows_of(list(dict.fromkeys(negatives)))
    prow, nrow = np.unique(prow), np.unique(nrow)
    rest = np.setdiff1d(np.arange(len(feats)), np.concatenate([prow, nrow]), assume_unique=True)
    if len(rest) > BACKGROUND:
        # seeded by the library, so the same library always trains the same model
        seed = int(np.bitwise_xor.reduce(feats.rowids[prow]) & 0xFFFFFFFF)
        rest = np.sort(np.random.default_rng(seed).choice(rest, BACKGROUND, replace=False))
    rows = np.concatenate([prow, nrow, rest])
    y = np.zeros(len(rows), np.int8)
    y[: len(prow)] = 1
    # balanced classes (as arxiv-sanity-lite), then the explicit negatives weigh more
    n_other = max(len(rows) - len(prow), 1)
    weight = np.full(len(rows), len(rows) / (2.0 * n_other), np.float64)
    weight[: len(prow)] = len(rows) / (2.0 * len(prow))
    weight[len(prow) : len(prow) + len(nrow)] *= NEGATIVE_WEIGHT
    # The lexical features are the library's own terms (positives' and negatives'): a paper is
    # judged by what it shares with the library. This measured better than the whole vocabulary
    # (time 0.579 -> 0.593 nDCG@10) and keeps the problem small enough to retrain in well
    # under a second on a 20k background.
    tfidf = feats.tfidf_rows(rows)
    cols = np.unique(tfidf[: len(prow) + len(nrow)].indices)
    pos_dense = feats.vectors(prow)
    if len(rows) == len(prow):  # a corpus of nothing but the library: nothing to tell apart
        lex, dense_w, bias = np.zeros(len(cols)), np.zeros(feats.dim), 0.0
    else:
        lex_x = _columns(tfidf, cols)
        dense_x = feats.vectors(rows) * np.float32(DENSE_SCALE)
        coef, bias = fit_linear_svm(lex_x, dense_x, y, SVM_C * weight)
        lex, dense_w = coef[: len(cols)], coef[len(cols) :] * DENSE_SCALE
        back = slice(len(prow) + len(nrow), len(rows))
        lex, dense_w, bias = _with_prototype(
            lex, dense_w, bias, lex_x[back] @ lex + dense_x[back] @ coef[len(cols) :], dense_x[back], pos_dense
        )
    nz = np.flatnonzero(lex)
    return Recommender(
        positives=feats.rowids[prow],
        pos_dense=pos_dense,
        neg_dense=feats.vectors(nrow),
        lex_index=cols[nz].astype(np.int32),
        lex_weight=lex[nz].astype(np.float32),
        dense_weight=dense_w.astype(np.float32),
        bias=bias,
        seq=feats.seq,
        negatives=feats.rowids[nrow],
    )


def _with_prototype(lex: np.ndarray, dense: np.ndarray, bias: float, svm_back: np.ndarray, dense_back: np.ndarray,
                    pos_dense: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:  # fmt: skip
    """The SVM's weights with the library's centroid blended in: the score becomes
    svm / sd(svm) + PROTOTYPE_WEIGHT / P**2 x cos(centroid) / sd(cos), P saved papers, each
    standard deviation over the background rows (`svm_back`, `dense_back`: their SVM scores
    without the bias, and their dense features). It stays one linear model, so the paths that
    score (`recommend`, `rank_for_many`) and the stored layout are those of the plain SVM."""
    sd_svm = float(svm_back.std())
    centroid = pos_dense.mean(axis=0).astype(np.float64)
    sd_cos = float((dense_back @ centroid.astype(np.float32)).std()) / DENSE_SCALE
    if sd_svm <= 0 or sd_cos <= 0:  # nothing told apart (a degenerate background): as trained
        return lex, dense, bias
    blend = PROTOTYPE_WEIGHT / len(pos_dense) ** 2
    return lex / sd_svm, dense / sd_svm + blend * centroid / sd_cos, bias / sd_svm


def fit_linear_svm(
    lex: sp.csr_matrix, dense: np.ndarray, y: np.ndarray, c: np.ndarray, *, tol: float = 1e-4, max_iter: int = 1000
) -> tuple[np.ndarray, float]:
    """(coef, intercept) of scikit-learn's `LinearSVC(C=1, dual=False, tol=tol).fit([lex | dense],
    y, sample_weight=c)`: the same objective, solved the way liblinear's primal solver does it,
    with the dense block kept dense.

    The objective is liblinear's L2-regularised squared hinge with the intercept as one more
    feature of value 1 (regularised too, as liblinear does): 0.5 |w|^2 + sum_i c_i max(0, 1 -
    y_i (w . x_i + b))^2, y in {0, 1} read as -1/+1. It is strictly convex, so the optimum is
    unique; like liblinear, Newton steps from w = 0 with conjugate gradients on the generalised
    Hessian (CG stops at 0.1 x the gradient's norm), a backtracking line search, and the stop
    |grad| <= tol x min(#pos, #neg) / n x |grad at 0|. What makes it faster than liblinear here:
    the Hessian products run on the rows inside the margin only (a few thousand of the 8k after
    the first step) and on the dense 384 columns as a BLAS product instead of 3M sparse
    entries. tests/test_recommend.py checks it against LinearSVC."""
    from threadpoolctl import threadpool_limits

    n, k = lex.shape
    d = dense.shape[1]
    lex = lex.astype(np.float64)
    ys = np.where(np.asarray(y) > 0, 1.0, -1.0)
    c = np.asarray(c, np.float64)
    n_pos = int((ys > 0).sum())
    eps = tol * max(min(n_pos, n - n_pos), 1) / n

    def xv(lx: sp.csr_matrix, dx: np.ndarray, v: np.ndarray) -> np.ndarray:
        return lx @ v[:k] + dx @ v[k : k + d].astype(np.float32) + v[-1]

    def xtv(lx: sp.csr_matrix, dx: np.ndarray, u: np.ndarray) -> np.ndarray:
        return np.concatenate([lx.T @ u, dx.T @ u.astype(np.float32), [u.sum()]])

    w = np.zeros(k + d + 1)
    z = np.zeros(n)  # x_i . w for every row
    g0 = None
    # one BLAS thread: the products are small, and a second thread spinning on a shared, busy
    # machine costs more than it gives
    with threadpool_limits(1, user_api="blas"):
        for _ in range(max_iter):
            m = 1.0 - ys * z
            act = np.flatnonzero(m > 0)  # the rows inside the margin: the only ones with a loss
            la, da, ca = lex[act], dense[act], 2.0 * c[act]
            g = w + xtv(la, da, -ca * ys[act] * m[act])
            gn = float(np.linalg.norm(g))
            if g0 is None:
                g0 = gn
            if gn <= eps * g0:
                break
            step = np.zeros_like(w)
            r = -g
            p = r.copy()
            rr = float(r @ r)
            for _cg in range(len(w)):
                if np.sqrt(rr) <= 0.1 * gn:
                    break
                h = p + xtv(la, da, ca * xv(la, da, p))
                a = rr / float(p @ h)
                step += a * p
                r -= a * h
                rr_new = float(r @ r)
                p = r + (rr_new / rr) * p
                rr = rr_new
            xs = xv(lex, dense, step)
            a = _line_search(w, step, g, z, xs, ys, c)
            w += a * step
            z += a * xs
    return w[:-1], float(w[-1])


def _line_search(w: np.ndarray, step: np.ndarray, g: np.ndarray, z: np.ndarray, xs: np.ndarray, ys: np.ndarray,
                 c: np.ndarray) -> float:  # fmt: skip
    """Backtracking (Armijo, 0.01) along `step` of the objective, from step length 1."""
    ws, ss, ww, gs = float(w @ step), float(step @ step), float(w @ w), float(g @ step)

    def f(a: float) -> float:
        mm = np.maximum(1.0 - ys * (z + a * xs), 0.0)
        return 0.5 * (ww + 2 * a * ws + a * a * ss) + float(c @ (mm * mm))

    a, f0 = 1.0, f(0.0)
    while f(a) > f0 + 0.01 * a * gs and a > 1e-10:
        a *= 0.5
    return a


def _columns(m: sp.csr_matrix, cols: np.ndarray) -> sp.csr_matrix:
    """m[:, cols] for sorted `cols`, without scipy's per-call array the width of the hashed
    vocabulary (a million columns)."""
    keep = np.isin(m.indices, cols, kind="table") if len(cols) else np.zeros(len(m.indices), bool)
    kept = np.concatenate([[0], np.cumsum(keep)])
    indptr = kept[m.indptr]
    indices = np.searchsorted(cols, m.indices[keep])
    return sp.csr_matrix((m.data[keep], indices, indptr), shape=(m.shape[0], len(cols)))


def _scores(model: Recommender, feats: CorpusFeatures, rows: np.ndarray) -> np.ndarray:
    """The model's score for corpus rows `rows`."""
    w = np.zeros(feats.counts.shape[1], np.float32)
    w[model.lex_index] = model.lex_weight
    # a large share of the corpus is scored in place (row copies of 100k x 384 cost more)
    whole = len(rows) > len(feats) // 4
    lex = feats.tfidf() if whole else feats.tfidf_rows(rows)
    # one pass over the vectors for the model's dense part and the cosines to "not interested"
    m = np.column_stack([model.dense_weight, model.neg_dense.T]).astype(np.float32)
    dense = feats.dense_dot(m, None if whole else rows)
    score = lex @ w + dense[:, 0] + model.bias
    if len(model.neg_dense):
        near = dense[:, 1:].max(axis=1)
        score = score - np.maximum(near - NEAR_DUPLICATE, 0.0) * _spread(score)
    return score[rows] if whole else score


def _spread(score: np.ndarray) -> float:
    """A scale for the push-down: the score range of the candidates (so that a copy of a
    not-interested paper drops by about a fifth of the range per 0.04 of cosine)."""
    return 5.0 * float(score.max() - score.min()) if len(score) else 0.0


def recommend(
    model: Recommender,
    searcher: Searcher,
    store: Store,
    *,
    candidates: Sequence[int] | None = None,
    exclude: Collection[int] = (),
    k: int = 50,
    explain: bool = True,
) -> list[Recommendation]:
    """The `k` best papers for the model among `candidates` (rowids; None = the whole corpus),
    leaving out `exclude` (the saved and not-interested papers), best first. Without `explain`,
    `shared_terms` are left empty (it reads the papers' texts)."""
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
    score = _scores(model, feats, rows)
    top = _topk(score, k)
    top_rows = rows[top]
    nearest = np.zeros(len(top), np.int64)
    if len(top):
        nearest = (feats.vectors(top_rows) @ model.pos_dense.T).argmax(axis=1)
    why: list[tuple[str, ...]] = [()] * len(top_rows)
    if explain:
        rowids = [int(feats.rowids[r]) for r in top_rows]
        near_ids = [int(model.positives[n]) for n in nearest]
        memo = ExplainMemo()
        memo.load(store, rowids + near_ids)
        idf = feats.idf()
        why = [memo.why(model, r, n, idf) for r, n in zip(rowids, near_ids, strict=True)]
    return [
        Recommendation(
            rowid=int(feats.rowids[r]),
            score=float(score[t]),
            nearest_rowid=int(model.positives[nearest[i]]),
            shared_terms=why[i],
        )
        for i, (r, t) in enumerate(zip(top_rows, top, strict=True))
    ]


def _topk(score: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores, best first (ties by position, i.e. by rowid)."""
    if k < len(score):
        part = np.argpartition(-score, k - 1)[:k]
        return part[np.lexsort((part, -score[part]))]
    return np.argsort(-score, kind="stable")


def why_terms(model: Recommender, shared: Iterable[str], column: Callable[[str], int], idf: np.ndarray,
              shown: Callable[[str], str | None] | None = None) -> tuple[str, ...]:  # fmt: skip
    """The "why" terms of a recommendation, from the terms (`rec_features.terms`: words and
    adjacent pairs) it shares with its nearest saved paper: those the model weighs most in favour,
    a pair in place of its own words ("low rank", not "rank"), at most SHARED_TERMS. `shown` gives
    a term as the papers write it ("low-rank"), or None when they have it only as a fragment
    ("fine" of "fine-tuning", "sparse fine" of "sparse fine-tuning"): such a term is passed over.

    The model's weight says what this reader's library is about; the rarest shared words (the
    former choice) were often filler ("particularly", "offers"). `paperfeed eval recommend --suite
    ../shared/ir --why` (the share of shown terms that the reader's hidden request contains, 0 to
    1), adi / cranfield / lisa / med / npl / time: rarest first 0.267 / 0.190 / 0.409 / 0.215 /
    0.359 / 0.048; by weight 0.268 / 0.314 / 0.517 / 0.312 / 0.459 / 0.264; by weight, as written
    (no fragments) 0.258 / 0.292 / 0.505 / 0.317 / 0.445 / 0.261, kept: the pairs it drops
    ("sparse fine", two words across a full stop) scored by one of their words but read as
    nonsense. The weight times the terms' (1 + log tf) in both papers, with or without idf, or
    times their burstiness (collection frequency / document frequency, to tell topic words from
    filler) moved no collection by more than 0.013. nDCG@10 does not move. When the model favours
    none of the terms (a library too small to tell words apart), the rarest shared words are
    named."""
    cand = sorted(shared)
    if not cand:
        return ()
    cols = np.fromiter((column(t) for t in cand), np.int64, len(cand))
    weight = np.zeros(len(cand), np.float32)
    if len(model.lex_index):
        pos = np.minimum(np.searchsorted(model.lex_index, cols), len(model.lex_index) - 1)
        hit = model.lex_index[pos] == cols
        weight[hit] = model.lex_weight[pos[hit]]
    if weight.max() > 0:
        order = [i for i in np.lexsort((-idf[cols], -weight)) if weight[i] > 0]
    else:
        order = [i for i in np.argsort(-idf[cols], kind="stable") if " " not in cand[i]]
    chosen: list[tuple[str, str]] = []  # (term, as shown)
    for i in order:
        term = cand[i]
        parts = term.split(" ")
        if all(any(p in t.split(" ") for t, _ in chosen) for p in parts):
            continue  # its words are named already
        form = term if shown is None else shown(term)
        if form is None:
            continue
        inside = [k for k, (t, _) in enumerate(chosen) if t in parts]
        if inside:  # the pair says more than its word already chosen: it takes that place
            chosen[inside[0]] = (term, form)
            chosen = [c for k, c in enumerate(chosen) if k not in inside[1:]]
        else:
            chosen.append((term, form))
        if len(chosen) == SHARED_TERMS:
            break
    return tuple(form for _, form in chosen)


class Wording:
    """A text's words as it writes them, to show a why term that way. It searches the
    lower-cased text on demand (str.find, then a look at the neighbours): a page explains 50
    papers, and tokenising each whole text up front cost more than the ranking."""

    MAX_BETWEEN = 3  # common words a pair may have between its two words ("flow over a plate")

    def __init__(self, text: str) -> None:
        self.low = text.lower()

    def form(self, term: str) -> str | None:
        """`term` (a word, or two joined by one space, as `rec_features.terms` makes them) as the
        text writes it, lower-cased: "low-rank", "flow over a plate". None when the text has it
        only as a fragment: inside a longer hyphenated word ("fine" of "fine-tuning", "sparse
        fine" of "sparse fine-tuning"), or across punctuation."""
        low = self.low
        first, _, second = term.partition(" ")
        i = low.find(first)
        while i >= 0:
            end: int | None = i + len(first)
            if not (_joined(low, i - 1) or _is_word(low, end)):
                end = self._pair_end(end, second) if second else end
                if end is not None and not _joined(low, end):
                    return " ".join(low[i:end].split())
            i = low.find(first, i + 1)
        return None

    def _pair_end(self, pos: int, second: str) -> int | None:
        for _ in range(self.MAX_BETWEEN + 1):
            m = _NEXT_WORD.match(self.low, pos)
            if m is None:
                return None  # punctuation between: not one phrase
            if m.group(1) == second:
                return m.end()
            if m.group(1) not in ENGLISH_STOP_WORDS:
                return None
            pos = m.end()
        return None


_NEXT_WORD = re.compile(r"[ \t\n-]+(\w+)")


def _is_word(text: str, i: int) -> bool:
    return 0 <= i < len(text) and (text[i].isalnum() or text[i] == "_")


def _joined(text: str, i: int) -> bool:
    """Whether position `i` holds a letter or a hyphen: a word found next to it is a fragment."""
    return _is_word(text, i) or (0 <= i < len(text) and text[i] == "-")


def rank_for_many(
    models: Sequence[Recommender],
    searcher: Searcher,
    store: Store,
    candidates: Sequence[int],
    *,
    exclude: Sequence[Collection[int]] | None = None,
    k: int = 10,
    chunk: int = 1000,
) -> list[list[tuple[int, float]]]:
    """The top `k` (rowid, score) of `candidates` for each model, best first, scored for many
    readers at once (a digest): one sparse and one dense matrix product per `chunk` models, so
    memory stays at candidates x chunk floats. `exclude[i]` are rowids to leave out for model i.
    Same scores and order as `recommend` (near-duplicate push-down included), without the why
    fields (`explain_many` adds them)."""
    feats = corpus_features(searcher, store)
    _, rows = feats.rows_of(candidates)
    rows = np.unique(rows)
    if not len(rows) or not models:
        return [[] for _ in models]
    lex = feats.tfidf_rows(rows)
    dense = feats.vectors(rows)
    ids = feats.rowids[rows]
    out: list[list[tuple[int, float]]] = []
    for start in range(0, len(models), chunk):
        group = models[start : start + chunk]
        cols = np.concatenate([m.lex_index for m in group]).astype(np.int64)
        owner = np.repeat(np.arange(len(group)), [len(m.lex_index) for m in group])
        w = sp.csr_matrix((np.concatenate([m.lex_weight for m in group]), (cols, owner)),
                          shape=(feats.counts.shape[1], len(group)))  # fmt: skip
        scores = np.asarray((lex @ w).todense(), np.float32)
        scores += dense @ np.stack([m.dense_weight for m in group], axis=1)
        scores += np.array([m.bias for m in group], np.float32)
        for j, model in enumerate(group):
            col = scores[:, j]
            ex = exclude[start + j] if exclude is not None else ()
            out_mask = np.isin(ids, np.fromiter(ex, np.int64, len(ex))) if len(ex) else None
            if len(model.neg_dense):
                # as in `recommend`: the spread is that of the candidates left after `exclude`
                left = col if out_mask is None else col[~out_mask]
                near = (dense @ model.neg_dense.T).max(axis=1)
                col = col - np.maximum(near - NEAR_DUPLICATE, 0.0) * _spread(left)
            if out_mask is not None:
                col = np.where(out_mask, -np.inf, col)
            top = _topk(col, min(k, len(col)))
            out.append([(int(ids[t]), float(col[t])) for t in top if np.isfinite(col[t])])
    return out


class ExplainMemo:
    """Papers (rowid -> Paper), their terms and the terms' hashed columns, kept between
    `explain_many` calls: a digest explains the same day's papers for every reader."""

    def __init__(self) -> None:
        self.papers: dict[int, Any] = {}
        self.words: dict[int, tuple[str, ...]] = {}
        self.pairs: dict[int, frozenset[str]] = {}
        self.columns: dict[str, int] = {}
        self.wordings: dict[int, Wording] = {}
        self.texts: dict[int, str] = {}

    def load(self, store: Store, rowids: Iterable[int]) -> None:
        """Read the papers of `rowids` not read yet."""
        missing = [r for r in set(rowids) if r not in self.papers]
        for p in store.get_by_rowids(missing):
            self.papers[p.rowid] = p

    def text_of(self, rowid: int) -> str:
        got = self.texts.get(rowid)
        if got is None:
            p = self.papers.get(rowid)
            got = self.texts[rowid] = paper_text(p) if p is not None else ""
        return got

    def words_of(self, rowid: int) -> tuple[str, ...]:
        got = self.words.get(rowid)
        if got is None:
            got = self.words[rowid] = tuple(words(self.text_of(rowid)))
        return got

    def pairs_of(self, rowid: int) -> frozenset[str]:
        got = self.pairs.get(rowid)
        if got is None:
            ws = self.words_of(rowid)
            got = self.pairs[rowid] = frozenset(f"{a} {b}" for a, b in zip(ws, ws[1:], strict=False))
        return got

    def shared_terms(self, rowid: int, near_id: int) -> set[str]:
        """The terms (`rec_features.terms`) two papers share. The pairs of `rowid` are made only
        of words both have: most of its text shares nothing, and a page explains 50 papers."""
        mine = self.words_of(rowid)
        both = set(mine) & set(self.words_of(near_id))
        pairs = {f"{a} {b}" for a, b in zip(mine, mine[1:], strict=False) if a in both and b in both}
        return both | (pairs & self.pairs_of(near_id))

    def column(self, term: str) -> int:
        col = self.columns.get(term)
        if col is None:
            col = self.columns[term] = term_column(term)
        return col

    def written_as(self, rowid: int, term: str) -> str | None:
        """`term` as paper `rowid` writes it (`Wording.form`)."""
        w = self.wordings.get(rowid)
        if w is None:
            w = self.wordings[rowid] = Wording(self.text_of(rowid))
        return w.form(term)

    def why(self, model: Recommender, rowid: int, near_id: int, idf: np.ndarray) -> tuple[str, ...]:
        """The why terms of `rowid` recommended by `model` next to its nearest saved paper, as
        `rowid` writes them (each a whole word or pair in both papers)."""

        def shown(term: str) -> str | None:
            return self.written_as(near_id, term) and self.written_as(rowid, term)

        return why_terms(model, self.shared_terms(rowid, near_id), self.column, idf, shown)

    def clear(self) -> None:
        self.papers.clear()
        self.words.clear()
        self.pairs.clear()
        self.columns.clear()
        self.wordings.clear()
        self.texts.clear()


def explain_many(
    ranked: Sequence[tuple[Recommender, Sequence[int]]],
    searcher: Searcher,
    store: Store,
    memo: ExplainMemo | None = None,
) -> list[list[tuple[int | None, tuple[str, ...]]]]:
    """The why fields of `recommend` (nearest saved paper, shared terms) for many models' top
    rowids at once: `ranked[i]` = (model, rowids). Papers are read into `memo.papers`."""
    feats = corpus_features(searcher, store)
    memo = memo if memo is not None else ExplainMemo()
    need = {int(r) for _, rowids in ranked for r in rowids}
    nearest_all: list[np.ndarray] = []
    for model, rowids in ranked:
        _, rows = feats.rows_of(rowids)
        near = (feats.vectors(rows) @ model.pos_dense.T).argmax(axis=1) if len(rows) else np.zeros(0, np.int64)
        nearest_all.append(near)
        need.update(int(model.positives[n]) for n in near)
    memo.load(store, need)
    idf = feats.idf()
    out: list[list[tuple[int | None, tuple[str, ...]]]] = []
    for (model, rowids), near in zip(ranked, nearest_all, strict=True):
        items: list[tuple[int | None, tuple[str, ...]]] = []
        for rid, n in zip(rowids, near, strict=True):
            near_id = int(model.positives[n])
            items.append((near_id, memo.why(model, int(rid), near_id, idf)))
        out.append(items)
    return out


class ModelCache:
    """Thread-safe LRU of trained models keyed by (user_id, tag or None, library_version).

    The library version changes whenever the user's library does, so a save retrains on the
    next request. New papers in the corpus do not need a retrain: the weights are on hashed
    term columns and vector dimensions, which new papers do not move.

    With `persist`, a model is also kept in the store (paperfeed.store.rec_models) when it is
    trained, and looked up there before training: every process and node sharing the store
    (the site's workers, `digest send`) trains a library once per change."""

    def __init__(self, size: int = 256, *, persist: bool = False) -> None:
        self.size = size
        self.persist = persist
        self.trained = 0  # models trained by this cache
        self.loaded = 0  # models read from the store
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
        model = self.get(key)
        if model is not None:
            return model
        if self.persist:
            stored = rec_models.load(store, key[0], key[1], key[2])
            if stored is not None:
                model = Recommender.from_bytes(stored.model, corpus_features(searcher, store))
                if model is not None:
                    self.loaded += 1
                    self.put(key, model)
                    return model
        model = train(searcher, store, positives, negatives)
        self.trained += 1
        if self.persist:
            self.store_model(store, key, model)
        self.put(key, model)
        return model

    def get(self, key: Hashable) -> Recommender | None:
        """The model in memory, or None."""
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
            return model

    def put(self, key: Hashable, model: Recommender) -> None:
        with self._lock:
            self._models[key] = model
            self._models.move_to_end(key)
            while len(self._models) > self.size:
                self._models.popitem(last=False)

    def load_stored(
        self, keys: Sequence[tuple[int, str | None, str]], searcher: Searcher, store: Store
    ) -> dict[tuple[int, str | None, str], Recommender]:
        """The models of `keys` that are in memory or stored for that library version (one query
        per 500 users), without training any: what a digest scores with."""
        out: dict[tuple[int, str | None, str], Recommender] = {}
        rest = []
        for key in keys:
            model = self.get(key)
            if model is not None:
                out[key] = model
            else:
                rest.append(key)
        if not rest or not self.persist:
            return out
        stored = rec_models.load_many(store, [u for u, _, _ in rest])
        feats = corpus_features(searcher, store)
        for key in rest:
            row = stored.get((key[0], rec_models.tag_key(key[1])))
            if row is None or row.version != key[2]:
                continue
            model = Recommender.from_bytes(row.model, feats)
            if model is not None:
                self.loaded += 1
                out[key] = model
        return out

    @staticmethod
    def store_model(store: Store, key: tuple[int, str | None, str], model: Recommender) -> None:
        try:
            rec_models.save(store, key[0], key[1], key[2], model.seq, model.to_bytes())
        except store.engine.IntegrityError:  # the user went away meanwhile
            log.info("model of user %s not kept: no such user", key[0])

    def __len__(self) -> int:
        with self._lock:
            return len(self._models)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
