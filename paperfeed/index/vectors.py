"""The dense vector store: int64 paper ids -> L2-normalised embeddings, cosine search.

Design, and why (figures measured on this project's 2-core machine; `measure_recall` below
re-measures recall and latency on a live index, for `paperfeed bench`):

* Storage is int8 scalar quantisation with one float32 factor per vector (1 byte a dimension + 4
  bytes a vector: 388 B instead of 1,536 B for 384 dims). The factor is chosen so the dequantised
  vector has exactly unit norm, so dot products stay cosines. A per-vector factor needs no
  calibration set and never clips, whatever the embedding model. Scores are asymmetric: the float32
  query against the dequantised int8 vectors, which loses less than quantising both sides.
  Measured loss: exact search on the int8 codes finds 0.994 of float32 exact top-10 (200k).

* Below `ann_threshold` vectors (default 50,000) search is exact: one float32 matrix-vector
  product in NumPy over all vectors (a few ms at 50k). Above it, an HNSW graph finds 4k candidates
  and the int8 codes rescore them. The HNSW library was chosen by measurement against hnswlib and
  faiss-cpu: 100k x 384 clustered synthetic unit vectors (embedding-like: clusters in a 64-d
  subspace plus noise), 200 held-out queries, M=16, efConstruction=128, build on 2 threads, one
  query on 1 thread. The machine was shared with other heavy jobs (load 7-15 on 2 cores), so build
  times and p95 are inflated and noisy; recall and memory are not affected.

      library (storage)            build   index RSS   recall@10 (ef 32/64/128)   p50 ef64
      usearch i8, its own f32->i8   238 s     66 MB     0.932 / 0.935 / 0.938      0.39 ms
      usearch i8, our codes (*)       -       66 MB     0.990 at 30k (vs 0.959 own conversion)
      hnswlib f32                   145 s    183 MB     0.983 / 0.991 / 0.996      0.27 ms
      faiss HNSW-SQ8                263 s     72 MB     0.972 / 0.984 / 0.989      0.45 ms
      faiss HNSW-Flat f32           183 s    187 MB     0.980 / 0.991 / 0.997      0.32 ms

  (*) usearch's own float->int8 conversion uses a fixed scale (x * 127), which wastes most of the
  int8 range on unit vectors and caps recall near 0.94; feeding it our per-vector codes gives
  hnswlib's recall at a third of its memory. The whole store measured through this class at 200k
  (the same data, codes + rescoring): recall@10 vs float32 exact 0.988, p50 0.74 ms, p95 10 ms
  (contended machine), 5k-vector daily add 6.5 s, save 0.8 s, reopen 0.17 s, 190 MB on disk.

  Why usearch: memory is the binding constraint at 1M (float32 graphs = ~1.9 GB, over the app's
  2.5 GB budget with BM25 and the model beside them; usearch i8 ~0.66 GB); it removes vectors
  (faiss's HNSW cannot), adds incrementally, saves/loads one file, and is a small maintained wheel
  without OpenMP/BLAS. faiss-SQ8 matches the memory but not the removal or the recall.

* Incremental: upserts append to an in-memory delta and to the HNSW graph; nothing is rebuilt.
  Replaced and removed vectors are tombstoned and dropped when `save()` compacts.

* Memory: the saved codes are memory-mapped read-only, so the OS pages them in only for the rows a
  query actually touches (rescoring ~100 candidates); the HNSW index (int8 vectors + graph) is the
  resident part: ~0.7 GB at 1M x 384 (66 MB per 100k measured; 1M itself was not built here,
  the shared machine was too loaded to build it in the time available).

* Crash safety: every save writes a new generation of files (ids, codes, factors, HNSW graph) next to
  the old ones, fsyncs them, then atomically replaces `meta.json`, which names the generation in use;
  only then are older generations deleted. A crash at any point leaves the previous or the new
  generation, never a mix. A missing or unreadable HNSW file is rebuilt from the codes. Any other
  unreadable file (meta.json, ids, codes, factors) raises IndexDamaged: taken for an empty index,
  it would be replaced by the next save, and the vectors still on disk deleted.

* Vectors from different embedding models are never compared: the directory records the model name
  and dimension, and opening it with another model starts empty.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from paperfeed.config import Settings
from paperfeed.index.damage import IndexDamaged
from paperfeed.index.generations import (
    META,
    drop_stale,
    load_npy,
    read_meta,
    save_npy,
    write_meta,
    writer_lock,
)

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


def _usearch_index_class() -> Any:
    """usearch's Index class, imported after onnxruntime.

    Importing onnxruntime after usearch (whose SIMD module is loaded on import)
    segfaults the process: `python -c "import usearch.index; import onnxruntime"`
    crashes with onnxruntime 1.31 and usearch 2.26 here. So onnxruntime, when
    installed, is always loaded first.
    """
    with contextlib.suppress(ImportError):
        import onnxruntime  # noqa: F401
    from usearch.index import Index

    return Index


DEFAULT_ANN_THRESHOLD = Settings.from_env().ann_threshold
# HNSW parameters (see the table above): M=16 keeps the graph small, efConstruction=128 buys
# recall at build time, efSearch adapts to the number of candidates asked for.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128
# Measured at 1M synthetic clustered vectors (`python bench/ann_sweep.py --papers 1000000`):
# recall@10 vs exact float32 0.931 at ef 96, 0.954 at 192, 0.956 at 320 (p95 1.5 / 1.7 / 2.4 ms).
HNSW_EF_SEARCH = 320
# Candidates taken from the graph per result wanted, rescored exactly with the int8 codes.
RESCORE_FACTOR = 4
# With a filter (`allowed`) of at most this many ids, scan them exactly instead of using the graph.
EXACT_FILTER_LIMIT = 20_000
_CHUNK = 65_536  # rows per block when scanning codes (bounds the float32 temporary to ~100 MB)


# -- quantisation -----------------------------------------------------------------------------------
def quantize(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float vectors -> (int8 codes, float32 per-vector factors); codes * factor has unit norm."""
    x = np.asarray(vectors, dtype=np.float32)
    absmax = np.abs(x).max(axis=1, keepdims=True)
    absmax[absmax == 0] = 1.0
    codes = np.rint(x * (127.0 / absmax)).astype(np.int8)
    norms = np.linalg.norm(codes.astype(np.float32), axis=1)
    factors = np.where(norms > 0, 1.0 / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
    return codes, factors


def dequantize(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    return codes.astype(np.float32) * factors[:, None]


def _normalize(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-12)


def _topk(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores, best first."""
    if k >= len(scores):
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")]


def _open_generation(directory: Path, *, mapped: bool = False
                     ) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray] | None:  # fmt: skip
    """(meta, ids, factors, codes) of the saved generation, None when nothing was ever saved. The
    codes, and with `mapped` everything, are memory-mapped. Raises IndexDamaged when a file is
    missing, truncated, garbage or disagrees with the others."""
    directory = Path(directory)
    for _attempt in range(5):
        meta = read_meta(directory)
        if meta is None:
            return None
        gen = meta["generation"]
        mode = "r" if mapped else None
        try:
            ids = load_npy(directory / f"ids-{gen}.npy", mode)
            factors = load_npy(directory / f"factors-{gen}.npy", mode)
            codes = load_npy(directory / f"codes-{gen}.npy", "r")
        except FileNotFoundError:
            # a concurrent save replaced this generation between reading meta and the files
            time.sleep(0.05)
            continue
        if codes.ndim != 2 or codes.shape[0] != len(ids) or factors.shape != (len(ids),):
            raise IndexDamaged(directory, f"generation {gen} is inconsistent")
        if meta.get("count", len(ids)) != len(ids):
            raise IndexDamaged(directory, f"{META} records {meta['count']} vectors, the files hold {len(ids)}")
        return meta, ids, factors, codes
    raise IndexDamaged(directory, f"the generation named in {META} is missing")


def stored_count(directory: Path) -> int:
    """How many vectors the saved generation really holds, read from the files' headers (cheap:
    nothing is loaded). 0 for a directory never saved. Raises IndexDamaged."""
    opened = _open_generation(directory, mapped=True)
    return 0 if opened is None else len(opened[1])


class VectorIndex:
    """See the module docstring. Thread-safe: searches may run concurrently with one writer."""

    def __init__(self, directory: Path, dim: int, model: str, *, ann_threshold: int | None = None) -> None:
        self.directory = Path(directory)
        self.dim = int(dim)
        self.model = model
        self.ann_threshold = DEFAULT_ANN_THRESHOLD if ann_threshold is None else int(ann_threshold)
        self._lock = threading.RLock()
        self._generation: str | None = None
        # base = the saved generation (codes memory-mapped); delta = rows added since
        self._base_ids = np.zeros(0, np.int64)
        self._base_codes: np.ndarray = np.zeros((0, self.dim), np.int8)
        self._base_factors = np.zeros(0, np.float32)
        self._delta_ids = np.zeros(0, np.int64)
        self._delta_codes = np.zeros((0, self.dim), np.int8)
        self._delta_factors = np.zeros(0, np.float32)
        self._dn = 0  # rows used in the delta arrays (they grow by doubling)
        self._alive = np.zeros(0, bool)  # per row (base rows, then delta rows)
        self._count = 0
        self._lookup: tuple[np.ndarray, np.ndarray] | None = None  # (sorted alive ids, their rows)
        self._dense: np.ndarray | None = None  # float32 copy of all rows, exact mode only
        self._ann: Any = None  # usearch.index.Index when built
        self._ann_file: str | None = None
        self._ann_dirty = False
        self._dirty = False

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, directory: Path, dim: int, model: str, *, ann_threshold: int | None = None) -> VectorIndex:
        """Load the index saved in `directory`, or start an empty one. A directory written for
        another model or dimension is ignored (and replaced at the next save)."""
        self = cls(directory, dim, model, ann_threshold=ann_threshold)
        self._load()
        return self

    def _read_meta(self) -> dict | None:
        return read_meta(self.directory)

    def _load(self) -> None:
        meta = self._read_meta()
        if meta is not None and (meta.get("version"), meta.get("model"), meta.get("dim")) == (
                FORMAT_VERSION, self.model, self.dim):  # fmt: skip
            opened = _open_generation(self.directory)
        else:
            opened = None
            if meta is not None:
                log.info("vector index %s holds %s/%s vectors, not %s/%s: starting empty",
                         self.directory, meta.get("model"), meta.get("dim"), self.model, self.dim)
        if opened is None:
            return
        meta, ids, factors, codes = opened
        gen = meta["generation"]
        if (meta.get("model"), meta.get("dim")) != (self.model, self.dim):
            return  # replaced by another model's vectors since the first look
        if codes.shape[1] != self.dim:
            raise IndexDamaged(self.directory, f"generation {gen} has {codes.shape[1]} dimensions, not {self.dim}")
        self._generation = gen
        self._base_ids, self._base_codes, self._base_factors = ids, codes, factors
        self._alive = np.ones(len(ids), bool)
        self._count = len(ids)
        ann_file = meta.get("ann")
        if ann_file and self._count >= self.ann_threshold:
            try:
                Index = _usearch_index_class()

                ann = Index.restore(str(self.directory / ann_file))
                if ann is None or len(ann) != self._count or ann.ndim != self.dim:
                    raise ValueError("does not match the stored vectors")
                self._ann, self._ann_file = ann, ann_file
            except Exception as exc:  # noqa: BLE001 - any damage: rebuild from the codes
                log.warning("vector index %s: HNSW file %s unusable (%s); it will be rebuilt",
                            self.directory, ann_file, exc)

    def refresh(self) -> bool:
        """Reload if another process saved a newer generation (for long-running readers).
        Unsaved changes in this object are discarded. Returns True when something was reloaded."""
        with self._lock:
            meta = self._read_meta()
            if meta is None or meta.get("generation") == self._generation:
                return False
            fresh = VectorIndex.open(self.directory, self.dim, self.model, ann_threshold=self.ann_threshold)
            self.__dict__.update({k: v for k, v in fresh.__dict__.items() if k != "_lock"})
            return True

    # -- rows ----------------------------------------------------------------------------------
    @property
    def _nb(self) -> int:
        return len(self._base_ids)

    def _row_ids(self) -> np.ndarray:
        return np.concatenate([self._base_ids, self._delta_ids[: self._dn]])

    def _ids_at(self, rows: np.ndarray) -> np.ndarray:
        """Ids of `rows` without materialising the whole id column (this runs per query)."""
        rows = np.asarray(rows, dtype=np.int64)
        nb = self._nb
        out = np.empty(len(rows), np.int64)
        in_base = rows < nb
        out[in_base] = self._base_ids[rows[in_base]]
        out[~in_base] = self._delta_ids[rows[~in_base] - nb]
        return out

    def _get_lookup(self) -> tuple[np.ndarray, np.ndarray]:
        if self._lookup is None:
            rows = np.flatnonzero(self._alive)
            ids = self._row_ids()[rows]
            order = np.argsort(ids, kind="stable")
            self._lookup = (ids[order], rows[order])
        return self._lookup

    def _rows_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, rows of the found ids) for `ids`."""
        sorted_ids, rows = self._get_lookup()
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if len(sorted_ids) == 0:
            return np.zeros(len(ids), bool), np.zeros(0, np.int64)
        pos = np.searchsorted(sorted_ids, ids)
        pos_c = np.minimum(pos, len(sorted_ids) - 1)
        found = sorted_ids[pos_c] == ids
        return found, rows[pos_c[found]]

    def _gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(codes, factors) of `rows` (any order)."""
        rows = np.asarray(rows, dtype=np.int64)
        nb = self._nb
        codes = np.empty((len(rows), self.dim), np.int8)
        factors = np.empty(len(rows), np.float32)
        in_base = rows < nb
        if in_base.any():
            br = rows[in_base]
            # sorted access is much kinder to the memory-mapped file
            order = np.argsort(br)
            tmp = np.asarray(self._base_codes[br[order]])
            sel = np.flatnonzero(in_base)
            codes[sel[order]] = tmp
            factors[in_base] = self._base_factors[br]
        if (~in_base).any():
            dr = rows[~in_base] - nb
            codes[~in_base] = self._delta_codes[dr]
            factors[~in_base] = self._delta_factors[dr]
        return codes, factors

    def _append(self, ids: np.ndarray, codes: np.ndarray, factors: np.ndarray) -> None:
        need = self._dn + len(ids)
        if need > len(self._delta_ids):
            cap = max(need, 2 * len(self._delta_ids), 1024)
            grow_ids = np.zeros(cap, np.int64)
            grow_codes = np.zeros((cap, self.dim), np.int8)
            grow_factors = np.zeros(cap, np.float32)
            grow_ids[: self._dn] = self._delta_ids[: self._dn]
            grow_codes[: self._dn] = self._delta_codes[: self._dn]
            grow_factors[: self._dn] = self._delta_factors[: self._dn]
            self._delta_ids, self._delta_codes, self._delta_factors = grow_ids, grow_codes, grow_factors
        self._delta_ids[self._dn:need] = ids
        self._delta_codes[self._dn:need] = codes
        self._delta_factors[self._dn:need] = factors
        self._dn = need
        self._alive = np.concatenate([self._alive, np.ones(len(ids), bool)])

    # -- public API ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._count

    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add or replace vectors (normalised here; the last one wins for repeated ids)."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1)
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors have {vectors.shape[1]} dims, the index {self.dim}")
        if len(ids) == 0:
            return
        if (ids < 0).any():
            raise ValueError("ids must be non-negative")
        # keep the last occurrence of each id
        _, last = np.unique(ids[::-1], return_index=True)
        keep = np.sort(len(ids) - 1 - last)
        ids, vectors = ids[keep], _normalize(vectors[keep])
        codes, factors = quantize(vectors)
        with self._lock:
            found, rows = self._rows_of(ids)
            self._alive[rows] = False
            self._count -= int(found.sum())
            self._append(ids, codes, factors)
            self._count += len(ids)
            self._lookup = None
            self._dense = None
            self._dirty = True
            if self._ann is not None:
                if found.any():
                    self._ann.remove(ids[found].astype(np.uint64))
                self._ann.add(ids.astype(np.uint64), codes, threads=_threads())
                self._ann_dirty = True

    def remove(self, ids: np.ndarray) -> None:
        """Remove vectors; unknown ids are ignored."""
        ids = np.unique(np.asarray(ids, dtype=np.int64).ravel())
        with self._lock:
            found, rows = self._rows_of(ids)
            if not found.any():
                return
            self._alive[rows] = False
            self._count -= len(rows)
            self._lookup = None
            self._dense = None
            self._dirty = True
            if self._ann is not None:
                self._ann.remove(ids[found].astype(np.uint64))
                self._ann_dirty = True

    def has(self, ids: np.ndarray) -> np.ndarray:
        with self._lock:
            return self._rows_of(ids)[0]

    def get(self, ids: np.ndarray) -> np.ndarray:
        """float32 (len(ids), dim) dequantised vectors. Raises KeyError naming a missing id."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        with self._lock:
            found, rows = self._rows_of(ids)
            if not found.all():
                raise KeyError(int(ids[~found][0]))
            codes, factors = self._gather(rows)
        return dequantize(codes, factors)

    def ids(self) -> np.ndarray:
        """All stored ids, ascending."""
        with self._lock:
            return self._get_lookup()[0].copy()

    @property
    def uses_ann(self) -> bool:
        return self._count >= self.ann_threshold

    def search(self, query: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
               exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(ids, cosine scores) of the k nearest stored vectors, best first.

        `allowed`: optional id whitelist (e.g. the papers matching a date/category filter). `exact`
        forces a full scan (used to measure the ANN's recall)."""
        q = _normalize(np.asarray(query, dtype=np.float32).ravel())
        if q.shape[0] != self.dim:
            raise ValueError(f"query has {q.shape[0]} dims, the index {self.dim}")
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        with self._lock:
            if self._count == 0:
                return np.zeros(0, np.int64), np.zeros(0, np.float32)
            if allowed is not None:
                allowed = np.unique(np.asarray(allowed, dtype=np.int64).ravel())
                found, rows = self._rows_of(allowed)
                if len(rows) == 0:
                    return np.zeros(0, np.int64), np.zeros(0, np.float32)
                if exact or not self.uses_ann or len(rows) <= EXACT_FILTER_LIMIT:
                    return self._score_rows(q, rows, k)
                res = self._ann_search(q, k, allowed=allowed[found])
                if res is not None:
                    return res
                return self._score_rows(q, rows, k)
            if exact or not self.uses_ann:
                return self._scan(q, k)
            res = self._ann_search(q, k)
            return res if res is not None else self._scan(q, k)

    def _score_rows(self, q: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        codes, factors = self._gather(rows)
        scores = (codes.astype(np.float32) @ q) * factors
        top = _topk(scores, k)
        return self._ids_at(rows[top]), scores[top].astype(np.float32)

    def _scan(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact search over every alive row."""
        n = self._nb + self._dn
        small = n <= max(self.ann_threshold, 1)
        if small and self._dense is None:
            # below the ANN threshold a float32 copy is small (<= 77 MB at 50k x 384) and makes
            # each query a single BLAS matrix-vector product
            self._dense = np.concatenate([
                dequantize(np.asarray(self._base_codes), self._base_factors),
                dequantize(self._delta_codes[: self._dn], self._delta_factors[: self._dn]),
            ])
        if self._dense is not None:
            scores = self._dense @ q
        else:
            scores = np.empty(n, np.float32)
            for seg_codes, seg_factors, offset in (
                (self._base_codes, self._base_factors, 0),
                (self._delta_codes[: self._dn], self._delta_factors[: self._dn], self._nb),
            ):
                for s in range(0, len(seg_factors), _CHUNK):
                    block = np.asarray(seg_codes[s:s + _CHUNK]).astype(np.float32)
                    scores[offset + s:offset + s + len(block)] = (block @ q) * seg_factors[s:s + _CHUNK]
        scores[~self._alive] = -np.inf
        top = _topk(scores, min(k, self._count))
        return self._ids_at(top), scores[top].astype(np.float32)

    # -- ANN -------------------------------------------------------------------------------------
    def _ensure_ann(self) -> Any:
        if self._ann is None:
            Index = _usearch_index_class()

            t0 = time.perf_counter()
            # The graph is fed our int8 codes directly. usearch's own float->int8 conversion uses a
            # fixed scale of 127 (components of a 384-d unit vector stay below ~0.3, so ~6 bits
            # are used); our per-vector scaling uses the full range, and since it is uniform within a
            # vector, the cosine of the codes is the cosine of the dequantised vectors. Measured at
            # 30k: recall@10 0.959 -> 0.990 from this alone.
            ann = Index(ndim=self.dim, metric="cos", dtype="i8", connectivity=HNSW_M,
                        expansion_add=HNSW_EF_CONSTRUCTION, expansion_search=HNSW_EF_SEARCH)
            alive = np.flatnonzero(self._alive)
            row_ids = self._row_ids()
            for s in range(0, len(alive), _CHUNK):
                rows = alive[s:s + _CHUNK]
                ann.add(row_ids[rows].astype(np.uint64), self._gather(rows)[0], threads=_threads())
            self._ann = ann
            self._ann_dirty = True
            log.info("vector index %s: built HNSW over %d vectors in %.1f s",
                     self.directory, len(alive), time.perf_counter() - t0)
        return self._ann

    def _ann_search(self, q: np.ndarray, k: int, *, allowed: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Graph candidates, rescored with the int8 codes. None if a filter left too few."""
        ann = self._ensure_ann()
        want = k * RESCORE_FACTOR
        if allowed is not None:
            # oversample in proportion to how much of the collection the filter excludes
            want = int(math.ceil(want * self._count / max(len(allowed), 1)))
        want = min(want, self._count)
        ann.expansion_search = max(HNSW_EF_SEARCH, want)
        keys = np.asarray(ann.search(quantize(q[None])[0][0], want, threads=1).keys, dtype=np.int64)
        if allowed is not None:
            keys = keys[np.isin(keys, allowed, assume_unique=False)]
            if len(keys) < k:
                return None
        found, rows = self._rows_of(keys)
        return self._score_rows(q, rows, k)

    # -- persistence ---------------------------------------------------------------------------
    def save(self) -> None:
        """Write a new generation (compacting tombstones) and switch to it atomically."""
        with self._lock, writer_lock(self.directory):
            if self.uses_ann:
                self._ensure_ann()
            if not self._dirty and not self._ann_dirty and self._generation is not None:
                return
            gen = f"{time.time_ns():x}"
            d = self.directory
            n_rows = self._nb + self._dn
            alive = np.flatnonzero(self._alive)
            row_ids = self._row_ids()
            ann_file = self._ann_file
            if self._dirty or self._generation is None:
                save_npy(d / f"ids-{gen}.npy", row_ids[alive])
                factors = np.concatenate([self._base_factors, self._delta_factors[: self._dn]])
                save_npy(d / f"factors-{gen}.npy", factors[alive])
                # codes may be larger than memory allows twice: stream them into a .npy memmap
                out = np.lib.format.open_memmap(d / f"codes-{gen}.npy.tmp", mode="w+", dtype=np.int8,
                                                shape=(len(alive), self.dim))
                for s in range(0, len(alive), _CHUNK):
                    out[s:s + _CHUNK] = self._gather(alive[s:s + _CHUNK])[0]
                out.flush()
                del out
                with open(d / f"codes-{gen}.npy.tmp", "rb+") as fh:
                    os.fsync(fh.fileno())
                os.replace(d / f"codes-{gen}.npy.tmp", d / f"codes-{gen}.npy")
                data_gen = gen
            else:
                data_gen = self._generation
            if self._ann is not None and (self._ann_dirty or ann_file is None):
                ann_file = f"ann-{gen}.usearch"
                self._ann.save(str(d / ann_file))
                with open(d / ann_file, "rb+") as fh:
                    os.fsync(fh.fileno())
            elif self._ann is None:
                ann_file = None
            meta = {"version": FORMAT_VERSION, "model": self.model, "dim": self.dim, "count": len(alive),
                    "generation": data_gen, "ann": ann_file, "saved": time.time(),
                    "quantization": "int8 per-vector factor (unit norm after dequantisation)"}
            write_meta(d, meta)
            # the new generation is durable: reopen its codes memory-mapped, drop older files
            if data_gen == gen:
                self._base_ids = np.load(d / f"ids-{gen}.npy")
                self._base_factors = np.load(d / f"factors-{gen}.npy")
                self._base_codes = np.load(d / f"codes-{gen}.npy", mmap_mode="r")
                self._delta_ids = np.zeros(0, np.int64)
                self._delta_codes = np.zeros((0, self.dim), np.int8)
                self._delta_factors = np.zeros(0, np.float32)
                self._dn = 0
                self._alive = np.ones(len(alive), bool)
                self._lookup = None
                self._dense = None
            self._generation, self._ann_file = data_gen, ann_file
            self._dirty = self._ann_dirty = False
            keep = {f"ids-{data_gen}.npy", f"factors-{data_gen}.npy", f"codes-{data_gen}.npy"}
            if ann_file:
                keep.add(ann_file)
            drop_stale(d, keep, ("ids", "factors", "codes", "ann"))
            log.debug("vector index %s: saved generation %s (%d vectors, %d rows compacted away)",
                      d, data_gen, len(alive), n_rows - len(alive))


def _threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def measure_recall(index: VectorIndex, *, queries: np.ndarray | None = None, k: int = 10,
                   sample: int = 100, seed: int = 0) -> dict[str, float]:
    """ANN recall@k against exact search over the same stored vectors, and per-query latencies.

    Without `queries`, `sample` stored vectors are used as queries (each finds itself first; the
    other k-1 neighbours are what is measured). Used by `paperfeed bench` and the tests."""
    if queries is None:
        ids = index.ids()
        if len(ids) == 0:
            return {"recall": 1.0, "queries": 0}
        rng = np.random.default_rng(seed)
        pick = rng.choice(ids, size=min(sample, len(ids)), replace=False)
        queries = index.get(pick)
    hits = total = 0
    lat_ann, lat_exact = [], []
    for q in np.asarray(queries, dtype=np.float32):
        t = time.perf_counter()
        exact_ids, _ = index.search(q, k, exact=True)
        lat_exact.append(time.perf_counter() - t)
        t = time.perf_counter()
        got, _ = index.search(q, k)
        lat_ann.append(time.perf_counter() - t)
        hits += len(np.intersect1d(exact_ids, got))
        total += len(exact_ids)
    return {
        "recall": hits / max(total, 1),
        "queries": len(lat_ann),
        "uses_ann": float(index.uses_ann),
        "p50_ms": float(np.percentile(lat_ann, 50) * 1000),
        "p95_ms": float(np.percentile(lat_ann, 95) * 1000),
        "exact_p50_ms": float(np.percentile(lat_exact, 50) * 1000),
        "exact_p95_ms": float(np.percentile(lat_exact, 95) * 1000),
    }


def quantization_recall(vectors: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    """recall@k of exact search over the int8 codes vs float32 exact search (the storage loss)."""
    x = _normalize(vectors)
    q = _normalize(queries)
    codes, factors = quantize(x)
    approx = dequantize(codes, factors)
    exact_top = np.argpartition(-(q @ x.T), k - 1, axis=1)[:, :k]
    quant_top = np.argpartition(-(q @ approx.T), k - 1, axis=1)[:, :k]
    hits = sum(len(np.intersect1d(a, b)) for a, b in zip(exact_top, quant_top, strict=True))
    return hits / (k * len(q))
