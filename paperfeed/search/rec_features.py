"""The corpus as the recommender sees it: one row per visible paper, a dense and a lexical part.

* dense: the paper's MiniLM vector from the vector index (unit norm), float32; for a long text,
  which the model truncates, the mean of its passages' vectors instead (see `paper_vectors`);
* lexical: hashed word 1-2 grams of title + abstract, sublinear tf times idf, L2-normalised
  (a CSR matrix). Hashing needs no vocabulary, so a new paper is one more row and nothing else
  changes; the idf comes from document frequencies kept beside the rows.

`corpus_features(searcher, store)` holds one `CorpusFeatures` per data directory and brings it up
to date with the store by `seq`, like the search indexes: only papers changed since the last look
are re-read.

The features are also saved under the index directory (`index/foryou/`, the generation protocol
of `paperfeed.index.generations`) and read back memory-mapped. A restart, and every other worker
process or node on the same disk, then opens them in well under a second instead of building
them (about 11 s at 100k papers, 107 s at a million), and the workers of one machine share one
copy in the page cache instead of holding one each. Every catch-up that changed something writes
a new generation, one process at a time (the others wait for it and open what it saved): a
rewrite of the files, about 0.15 GB at 100k papers and 1.5 GB at a million, paid once per change
of the corpus (a harvest), not once per worker.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, HashingVectorizer
from sklearn.utils import murmurhash3_32

from paperfeed.index.damage import IndexDamaged
from paperfeed.index.generations import drop_stale, load_npy, read_meta, save_npy, write_meta, writer_lock
from paperfeed.index.sync import PASSAGE_SLOTS, STORE_TOKEN_KEY, embed_text, index_dir
from paperfeed.index.vectors import dequantize, quantize
from paperfeed.latex import plain_text

log = logging.getLogger(__name__)

N_FEATURES = 2**20
_WORD = re.compile(r"(?u)\b\w\w+\b")


def words(text: str) -> list[str]:
    """Lowercased words of two characters or more, English stopwords and numbers left out: the
    unigrams of the lexical features, and the vocabulary the "why" terms are taken from."""
    return [w for w in _WORD.findall(text.lower()) if w not in ENGLISH_STOP_WORDS and not w.isdigit()]


def paper_text(p: Any) -> str:
    """A paper's title and abstract as the lexical features read them: as typeset (no LaTeX
    commands: "Schr\\"odinger" is "Schrödinger", not "schr" and "odinger")."""
    return plain_text(embed_text(p))


def terms(text: str) -> list[str]:
    """The lexical features' terms of a text: its `words` and each pair of adjacent ones
    ("low rank", "fine tuning")."""
    ws = words(text)
    return ws + [f"{a} {b}" for a, b in zip(ws, ws[1:], strict=False)]


_HASHER = HashingVectorizer(
    analyzer=terms, n_features=N_FEATURES, alternate_sign=False, norm=None, dtype=np.float32
)


def term_column(term: str) -> int:
    """The hashed column of one term (as HashingVectorizer computes it)."""
    return abs(murmurhash3_32(term, seed=0)) % N_FEATURES


COUNT_MAX = np.iinfo(np.uint16).max
DOT_ROWS = 32_768
FEATURES_DIR = "foryou"
FEATURES_FORMAT = 2  # 2: papers read as typeset (paper_text)
_ARRAYS = ("rowids", "dense", "scale", "data", "indices", "indptr", "df")


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
    # (store token, model, dimension) the features were built for: another store or model, and
    # they are built again
    source: tuple[str, str, int] | None = None
    mapped: bool = False  # read memory-mapped from a saved generation
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

    def covers(self, seq: int, vec_len: int) -> bool:
        """Up to date with a store at `seq` whose vector index holds `vec_len` vectors. At the same
        seq, features with more vectors (saved by a process whose vector index refreshed first)
        have every vector this one has and more: they are used as they are."""
        return self.seq == seq and self.vec_len >= vec_len

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
        """Memory held by the features (the whole tf-idf only once something asked for it). When
        `mapped`, most of it is the saved files in the page cache, shared between processes."""
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
    """The up-to-date features of `searcher`'s data directory: held by this process, else the
    saved generation, else built; then caught up with the store by seq and saved."""
    key = Path(searcher.data_dir).resolve()
    directory = features_dir(key)
    with _LOCK:
        feats = _CACHE.get(key) or CorpusFeatures()
        vec = searcher.vectors
        vec_len = len(vec) if vec is not None else 0
        source = _source(store, vec)
        if feats.source == source and feats.covers(store.max_seq(), vec_len):
            return feats
        with contextlib.ExitStack() as stack:
            # one process at a time builds: the others wait, then open what it saved
            try:
                stack.enter_context(writer_lock(directory))
                shared = True
            except OSError as exc:
                log.warning("For-you features kept in memory only: %s", exc)
                shared = False
            feats = _up_to_date(feats, searcher, store, directory, source, vec_len, shared=shared)
        _CACHE[key] = feats
        return feats


def _up_to_date(
    feats: CorpusFeatures, searcher: Any, store: Any, directory: Path, source: tuple[str, str, int],
    vec_len: int, *, shared: bool,
) -> CorpusFeatures:
    meta = _saved_meta(directory, source)
    # read after the saved meta: a generation another process saved is then never ahead of this
    # store, unless the store went back in time (restored from a backup), and then it is not used
    seq = store.max_seq()
    if feats.source != source or feats.seq > seq:
        feats = CorpusFeatures()
    if meta is not None and meta["seq"] <= seq and (meta["seq"], meta["vec_len"]) > (feats.seq, feats.vec_len):
        feats = _open_saved(directory, meta, source) or feats
    if feats.covers(seq, vec_len):
        return feats
    feats, changed = _catch_up(feats, searcher, store, seq, vec_len)
    feats.source = source
    if shared and source[0] and changed:
        feats = _save(feats, directory)
    return feats


def features_dir(data_dir: Path) -> Path:
    """Where the features of `data_dir` are saved."""
    return index_dir(Path(data_dir)) / FEATURES_DIR


def _source(store: Any, vec: Any) -> tuple[str, str, int]:
    token = store.meta_get(STORE_TOKEN_KEY) or ""
    return (token, vec.model, int(vec.dim)) if vec is not None else (token, "", 0)


def _saved_meta(directory: Path, source: tuple[str, str, int]) -> dict | None:
    """The saved generation's meta when it was built for this store and model."""
    try:
        meta = read_meta(directory)
    except IndexDamaged as exc:
        log.warning("For-you features: %s; building them again", exc)
        return None
    if meta is None or meta.get("format") != FEATURES_FORMAT or tuple(meta.get("source") or ()) != source:
        return None
    return meta


def _open_saved(directory: Path, meta: dict, source: tuple[str, str, int]) -> CorpusFeatures | None:
    """The generation `meta` names, memory-mapped; None when it is gone (replaced meanwhile) or
    damaged (logged: the features are built again and saved over it)."""
    gen = meta["generation"]
    try:
        a = {name: load_npy(directory / f"{name}-{gen}.npy", "r") for name in _ARRAYS}
        n = len(a["rowids"])
        if a["dense"].shape[0] != n or a["scale"].shape != (n,) or a["indptr"].shape != (n + 1,) or n != meta["count"]:
            raise IndexDamaged(directory, f"generation {gen} is inconsistent")
        counts = sp.csr_matrix((a["data"], a["indices"], a["indptr"]), shape=(n, N_FEATURES), copy=False)
    except FileNotFoundError:
        return None
    except (IndexDamaged, ValueError) as exc:
        log.warning("For-you features: %s; building them again", exc)
        return None
    return CorpusFeatures(rowids=a["rowids"], dense=a["dense"], scale=a["scale"], counts=counts, df=a["df"],
                          seq=int(meta["seq"]), vec_len=int(meta["vec_len"]), source=source, mapped=True)


def _save(feats: CorpusFeatures, directory: Path) -> CorpusFeatures:
    """Save `feats` as a new generation and return them memory-mapped from it (the same values),
    so this process holds no private copy. A failed save (a read-only or full disk) is logged and
    the features stay in memory."""
    t0 = time.perf_counter()
    try:
        meta = _write_generation(feats, directory)
    except OSError as exc:
        log.warning("For-you features not saved to %s: %s", directory, exc)
        return feats
    saved = _open_saved(directory, meta, feats.source or ("", "", 0))
    if saved is None:
        return feats
    log.info("For-you features saved: %d papers in %.1f s", len(saved), time.perf_counter() - t0)
    return saved


def _write_generation(feats: CorpusFeatures, directory: Path) -> dict:
    gen = f"{time.time_ns():x}"
    c = feats.counts
    # one index dtype for both arrays, or scipy converts (copies) one of them when they are read
    idx = np.int32 if c.nnz < np.iinfo(np.int32).max else np.int64
    arrays = {"rowids": feats.rowids, "dense": feats.dense, "scale": feats.scale, "data": c.data,
              "indices": c.indices.astype(idx, copy=False), "indptr": c.indptr.astype(idx, copy=False),
              "df": feats.df}
    for name in _ARRAYS:
        save_npy(directory / f"{name}-{gen}.npy", np.ascontiguousarray(arrays[name]))
    meta = {"format": FEATURES_FORMAT, "generation": gen, "source": list(feats.source or ()), "seq": feats.seq,
            "vec_len": feats.vec_len, "count": len(feats), "saved": time.time()}
    write_meta(directory, meta)
    drop_stale(directory, {f"{name}-{gen}.npy" for name in _ARRAYS}, _ARRAYS)
    return meta


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


def _catch_up(
    old: CorpusFeatures, searcher: Any, store: Any, seq: int, vec_len: int
) -> tuple[CorpusFeatures, int]:
    """The features caught up with the store, and how many rows changed (read again or given
    their vector)."""
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
            blocks.append(term_counts([paper_text(p) for p in fresh]))
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
    # rows read again, and older rows that now get their vector
    changed = len(gone) + int(missing[: len(rowids) - len(fresh_ids)].sum())
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
    feats = CorpusFeatures(rowids=rowids, dense=dense, scale=scale, counts=counts, df=df, seq=seq, vec_len=vec_len)
    return feats, changed
