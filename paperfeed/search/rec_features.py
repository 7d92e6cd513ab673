"""The corpus as the recommender sees it: one row per visible paper, a dense and a lexical part.

* dense: the paper's MiniLM vector from the vector index (unit norm), float32; for a long text,
  which the model truncates, the mean of its passages' vectors instead (see `paper_vectors`);
* lexical: hashed word 1-2 grams of title + abstract, sublinear tf times idf, L2-normalised
  (a CSR matrix). Hashing needs no vocabulary, so a new paper is one more row and nothing else
  changes; the idf comes from document frequencies kept beside the rows.

`corpus_features(searcher, store)` holds one `CorpusFeatures` per data directory and brings it up
to date with the store by `seq`, like the search indexes: only papers changed since the last look
are re-read.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, HashingVectorizer
from sklearn.utils import murmurhash3_32

from paperfeed.index.sync import PASSAGE_SLOTS, embed_text
from paperfeed.models import Paper

N_FEATURES = 2**20
_WORD = re.compile(r"(?u)\b\w\w+\b")


def words(text: str) -> list[str]:
    """Lowercased words of two characters or more, English stopwords and numbers left out: the
    unigrams of the lexical features, and the vocabulary the "why" terms are taken from."""
    return [w for w in _WORD.findall(text.lower()) if w not in ENGLISH_STOP_WORDS and not w.isdigit()]


def _analyzer(text: str) -> list[str]:
    ws = words(text)
    return ws + [f"{a} {b}" for a, b in zip(ws, ws[1:], strict=False)]


_HASHER = HashingVectorizer(
    analyzer=_analyzer, n_features=N_FEATURES, alternate_sign=False, norm=None, dtype=np.float32
)


def term_column(term: str) -> int:
    """The hashed column of one term (as HashingVectorizer computes it)."""
    return abs(murmurhash3_32(term, seed=0)) % N_FEATURES


def term_counts(texts: list[str]) -> sp.csr_matrix:
    """Raw hashed term counts, one row per text."""
    m = _HASHER.transform(texts).tocsr()
    m.sum_duplicates()
    return m


@dataclass
class CorpusFeatures:
    rowids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # ascending
    dense: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    counts: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, N_FEATURES), dtype=np.float32))
    df: np.ndarray = field(default_factory=lambda: np.zeros(N_FEATURES, np.float32))
    seq: int = -1
    vec_len: int = -1
    _tfidf: sp.csr_matrix | None = None
    _idf: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rowids)

    def rows_of(self, rowids: Any) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, rows) of `rowids` in this corpus."""
        ids = np.asarray(list(rowids), dtype=np.int64).ravel()
        pos = np.searchsorted(self.rowids, ids)
        pos = np.minimum(pos, max(len(self.rowids) - 1, 0))
        found = (self.rowids[pos] == ids) if len(self.rowids) else np.zeros(len(ids), bool)
        return found, pos[found]

    def idf(self) -> np.ndarray:
        if self._idf is None:
            n = max(len(self), 1)
            self._idf = (np.log((1.0 + n) / (1.0 + self.df)) + 1.0).astype(np.float32)
        return self._idf

    def tfidf(self) -> sp.csr_matrix:
        """Sublinear tf x idf, rows L2-normalised (computed once per corpus version)."""
        if self._tfidf is None:
            self._tfidf = weigh(self.counts, self.idf())
        return self._tfidf


def weigh(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    m = counts.copy().astype(np.float32)
    m.data = 1.0 + np.log(m.data)
    m = m.multiply(idf[None, :]).tocsr()
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.diags(1.0 / norms).astype(np.float32) @ m


_LOCK = threading.Lock()
_CACHE: dict[Path, CorpusFeatures] = {}


def corpus_features(searcher: Any, store: Any) -> CorpusFeatures:
    """The up-to-date features of `searcher`'s data directory (built on first use, then
    caught up by seq)."""
    key = Path(searcher.data_dir).resolve()
    with _LOCK:
        feats = _CACHE.get(key) or CorpusFeatures()
        vec = searcher.vectors
        vec_len = len(vec) if vec is not None else 0
        seq = store.max_seq()
        if seq == feats.seq and vec_len == feats.vec_len:
            return feats
        feats = _catch_up(feats, searcher, store, seq, vec_len)
        _CACHE[key] = feats
        return feats


def paper_vectors(vec: Any, passages: Any, rowids: np.ndarray) -> np.ndarray:
    """Unit vectors of papers (all of `rowids` must be in `vec`): a long paper's is the mean of
    its passages' vectors, so the words past the model's window count too. Measured with a
    replica of `paperfeed eval recommend` on the six collections of ../shared/ir: time (magazine
    articles, 620 words on average) 0.623 -> 0.634 nDCG@10, the others within +-0.003."""
    out = vec.get(rowids)
    if passages is None or not len(passages) or not len(rowids):
        return out
    pids = passages.ids()
    owners = pids // PASSAGE_SLOTS
    sel = np.isin(owners, rowids)
    if not sel.any():
        return out
    pids, owners = pids[sel], owners[sel]
    order = np.argsort(rowids, kind="stable")
    rows = order[np.searchsorted(rowids[order], owners)]
    sums = np.zeros_like(out)
    np.add.at(sums, rows, passages.get(pids))
    has = np.bincount(rows, minlength=len(rowids)) > 0
    mean = sums[has]
    out[has] = mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
    return out


def _catch_up(old: CorpusFeatures, searcher: Any, store: Any, seq: int, vec_len: int) -> CorpusFeatures:
    vec = searcher.vectors
    dim = vec.dim if vec is not None else 0
    changed: list[Paper] = [p for batch in store.iter_changed(max(old.seq, 0)) for p in batch]
    gone = np.array([p.rowid for p in changed], np.int64)
    keep = ~np.isin(old.rowids, gone)
    fresh = [p for p in changed if not p.hidden and (p.title or p.abstract)]
    fresh_ids = np.array([p.rowid for p in fresh], np.int64)
    old_dense = old.dense if old.dense.shape[1:] == (dim,) else np.zeros((len(old), dim), np.float32)
    rowids = np.concatenate([old.rowids[keep], fresh_ids])
    dense = np.concatenate([old_dense[keep], np.zeros((len(fresh), dim), np.float32)])
    # vectors may lag the store (embedding runs after the lexical index): rows without one get
    # it on a later catch-up, when the vector index has grown
    missing = ~dense.any(axis=1) if dim else np.zeros(len(rowids), bool)
    if vec is not None and missing.any():
        has = vec.has(rowids[missing])
        rows = np.flatnonzero(missing)[has]
        if len(rows):
            dense[rows] = paper_vectors(vec, searcher.passages, rowids[rows])
    df = old.df.copy()
    if (~keep).any():
        df -= np.bincount(old.counts[~keep].indices, minlength=N_FEATURES).astype(np.float32)
    counts = old.counts[keep]
    if fresh:
        counts_new = term_counts([embed_text(p) for p in fresh])
        df += np.bincount(counts_new.indices, minlength=N_FEATURES).astype(np.float32)
        counts = sp.vstack([counts, counts_new]).tocsr()
    order = np.argsort(rowids, kind="stable")
    return CorpusFeatures(
        rowids=rowids[order], dense=dense[order], counts=counts[order], df=df, seq=seq, vec_len=vec_len
    )
