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
from paperfeed.index.vectors import dequantize, quantize

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


COUNT_MAX = np.iinfo(np.uint16).max
DOT_ROWS = 32_768


def term_counts(texts: list[str]) -> sp.csr_matrix:
    """Raw hashed term counts, one row per text, as uint16: half the memory of float32 values
    (a count past 65,535 in one text is capped; its log barely changes)."""
    m = _HASHER.transform(texts).tocsr()
    m.sum_duplicates()
    np.minimum(m.data, COUNT_MAX, out=m.data)
    return sp.csr_matrix((m.data.astype(np.uint16), m.indices, m.indptr), shape=m.shape)


@dataclass
class CorpusFeatures:
    rowids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # ascending
    # The vectors as int8 codes times a per-row scale, by the vector index's own `quantize`
    # (codes x scale has unit norm; a zero row gets scale 0): a quarter of float32's memory
    # (1.5 GB -> 0.38 GB at a million papers), cosines within about 1e-3, and int8 -> float32 is
    # nearly free where float16 -> float32 tripled the whole-corpus scoring. Read through
    # `vectors` and `dense_dot`, which compute in float32. A scale of 0: no vector yet.
    dense: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int8))
    scale: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    counts: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, N_FEATURES), dtype=np.uint16))
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

    @property
    def dim(self) -> int:
        return int(self.dense.shape[1])

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """The unit vectors of `rows`, float32."""
        return dequantize(self.dense[rows], self.scale[rows])

    def dense_dot(self, m: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """vectors(rows) @ m (rows None: every row), float32, a slice at a time so that no float32
        copy of the whole corpus is made."""
        n = len(self) if rows is None else len(rows)
        out = np.empty((n, *m.shape[1:]), np.float32)
        for i in range(0, n, DOT_ROWS):
            part = slice(i, i + DOT_ROWS) if rows is None else rows[i : i + DOT_ROWS]
            prod = self.dense[part].astype(np.float32) @ m
            out[i : i + DOT_ROWS] = prod * self.scale[part].reshape(-1, *([1] * (m.ndim - 1)))
        return out

    def idf(self) -> np.ndarray:
        if self._idf is None:
            n = max(len(self), 1)
            self._idf = (np.log((1.0 + n) / (1.0 + self.df)) + 1.0).astype(np.float32)
        return self._idf

    def tfidf(self) -> sp.csr_matrix:
        """Sublinear tf x idf of every row, rows L2-normalised (computed once per corpus version):
        for scoring most of the corpus at once. Training and window-sized scoring use
        `tfidf_rows`, so a server that only ranks days, weeks and months never holds it."""
        if self._tfidf is None:
            self._tfidf = weigh(self.counts, self.idf())
        return self._tfidf

    def tfidf_rows(self, rows: np.ndarray) -> sp.csr_matrix:
        """`tfidf()[rows]`, the same values, weighed from the counts of those rows only: at 100k
        papers the whole matrix is another 90 MB and 0.7 s after every change to the corpus."""
        if self._tfidf is not None:
            return self._tfidf[rows]
        return weigh(self.counts[rows], self.idf())

    def nbytes(self) -> int:
        """Memory held by the features (the whole tf-idf only once something asked for it)."""
        arrays = [self.rowids, self.dense, self.scale, self.df, self.counts.data, self.counts.indices, self.counts.indptr]
        if self._tfidf is not None:
            arrays.append(self._tfidf.data)  # its index arrays are the counts'
        if self._idf is not None:
            arrays.append(self._idf)
        return sum(a.nbytes for a in arrays)


def weigh(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    """Sublinear tf x idf, rows L2-normalised. The result shares `counts`' index arrays (only its
    values are new): at 100k papers that is one array of the size of the values, where the
    matrix-operation form made three or four temporaries of the whole matrix."""
    indptr = counts.indptr
    data = np.log(counts.data.astype(np.float32, copy=False))
    data += np.float32(1.0)
    data *= idf[counts.indices]
    lengths = np.diff(indptr)
    norms = np.zeros(counts.shape[0], np.float32)
    full = lengths > 0
    if full.any():
        norms[full] = np.add.reduceat(data * data, indptr[:-1][full])
    norms = np.sqrt(norms)
    norms[norms == 0] = 1.0
    data /= np.repeat(norms, lengths)
    return sp.csr_matrix((data, counts.indices, indptr), shape=counts.shape)


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


def features_held(data_dir: Path) -> int | None:
    """How many papers the features this process holds for `data_dir` cover (None: not built)."""
    with _LOCK:
        feats = _CACHE.get(Path(data_dir).resolve())
    return None if feats is None else len(feats)


def paper_vectors(vec: Any, passages: Any, rowids: np.ndarray, passage_ids: np.ndarray | None = None) -> np.ndarray:
    """Unit vectors of papers (all of `rowids` must be in `vec`): a long paper's is the mean of
    its passages' vectors, so the words past the model's window count too (`paperfeed eval
    recommend --suite ../shared/ir --baseline`: time, magazine articles of 620 words on average,
    0.604 -> 0.627 nDCG@10; the other five collections unchanged). `passage_ids` (all of
    `passages.ids()`) lets a caller that asks for many slices read them once."""
    out = vec.get(rowids)
    if passages is None or not len(passages) or not len(rowids):
        return out
    pids = passages.ids() if passage_ids is None else passage_ids
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
    # read the changed papers a batch at a time, keeping only their rowids and hashed counts (the
    # papers themselves, all of them on a first build, would be the peak of the process)
    gone_parts: list[np.ndarray] = []
    fresh_parts: list[np.ndarray] = []
    blocks: list[sp.csr_matrix] = []
    for batch in store.iter_changed(max(old.seq, 0)):
        gone_parts.append(np.array([p.rowid for p in batch], np.int64))
        fresh = [p for p in batch if not p.hidden and (p.title or p.abstract)]
        if fresh:
            fresh_parts.append(np.array([p.rowid for p in fresh], np.int64))
            blocks.append(term_counts([embed_text(p) for p in fresh]))
    gone = np.concatenate(gone_parts) if gone_parts else np.zeros(0, np.int64)
    fresh_ids = np.concatenate(fresh_parts) if fresh_parts else np.zeros(0, np.int64)
    keep = ~np.isin(old.rowids, gone)
    every = bool(keep.all())
    same_dim = old.dense.shape[1:] == (dim,)
    old_dense = old.dense if same_dim else np.zeros((len(old), dim), np.int8)
    old_scale = old.scale if same_dim else np.zeros(len(old), np.float32)
    rowids = np.concatenate([old.rowids if every else old.rowids[keep], fresh_ids])
    dense = np.concatenate([old_dense if every else old_dense[keep], np.zeros((len(fresh_ids), dim), np.int8)])
    scale = np.concatenate([old_scale if every else old_scale[keep], np.zeros(len(fresh_ids), np.float32)])
    # vectors may lag the store (embedding runs after the lexical index): rows without one get
    # it on a later catch-up, when the vector index has grown
    missing = scale == 0 if dim else np.zeros(len(rowids), bool)
    if vec is not None and missing.any():
        has = vec.has(rowids[missing])
        rows = np.flatnonzero(missing)[has]
        pv = searcher.passages
        pids = pv.ids() if pv is not None else None
        for i in range(0, len(rows), 8192):  # in slices: no second copy of every vector at once
            part = rows[i : i + 8192]
            dense[part], scale[part] = quantize(paper_vectors(vec, pv, rowids[part], pids))
    df = old.df.copy()
    if not every:
        df -= np.bincount(old.counts[~keep].indices, minlength=N_FEATURES).astype(np.float32)
    counts = old.counts if every else old.counts[keep]
    if blocks:
        for b in blocks:
            df += np.bincount(b.indices, minlength=N_FEATURES).astype(np.float32)
        counts = sp.vstack([counts, *blocks], format="csr")
    del blocks
    if len(rowids) > 1 and not bool((rowids[1:] > rowids[:-1]).all()):  # else already in rowid order
        order = np.argsort(rowids, kind="stable")
        rowids, dense, scale, counts = rowids[order], dense[order], scale[order], counts[order]
    return CorpusFeatures(rowids=rowids, dense=dense, scale=scale, counts=counts, df=df, seq=seq, vec_len=vec_len)
