"""The product's build path, as the benchmark drives it: `paperfeed.index.sync`.

The indexes are built exactly as `paperfeed ingest` / `paperfeed index` build
them. The one substitution is the embedder for large synthetic corpora: a
`LookupEmbedder` hands `sync` precomputed synthetic vectors for the texts it
asks about, under the default embedder's name, so everything after encoding
(vector index inserts, compression, saves, state bookkeeping) is the real code
and the serving side opens the index unchanged.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def get_embedder() -> Any:
    from paperfeed.embed import get_embedder as _get

    return _get()


def embedder_name() -> str:
    from paperfeed.embed import resolve_name

    return resolve_name("default")


def _text_key(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little",
                          signed=True)  # fmt: skip


class LookupEmbedder:
    """Returns the precomputed vector of each text it was given in advance.

    Texts are matched by a 64-bit hash of the exact text `sync` embeds, so no
    assumption is made about the order in which sync asks.
    """

    def __init__(self, name: str, dim: int, keys: np.ndarray, rows: np.ndarray, matrix: np.ndarray) -> None:
        self.name, self.dim = name, dim
        order = np.argsort(keys)
        self._keys, self._rows, self._matrix = keys[order], rows[order], matrix
        self.calls = 0

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        self.calls += 1
        k = np.fromiter((_text_key(t) for t in texts), dtype=np.int64, count=len(texts))
        pos = np.searchsorted(self._keys, k)
        pos = np.minimum(pos, len(self._keys) - 1)
        if not np.all(self._keys[pos] == k):
            raise RuntimeError("sync asked to embed a text the benchmark did not generate")
        return np.asarray(self._matrix[self._rows[pos]], dtype=np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        raise RuntimeError("the lookup embedder only serves the index build")


def _open_store(data_dir: Path) -> Any:
    from paperfeed.store import open_store

    return open_store(data_dir)


def build_lexical(data_dir: Path, progress: bool = False) -> float:
    """Catch the lexical index up from empty; seconds taken."""
    from paperfeed.index.sync import sync

    with _open_store(data_dir) as store:
        t0 = time.perf_counter()
        sync(store, data_dir, progress, vectors=False)
        return time.perf_counter() - t0


def embed_texts_by_rowid(data_dir: Path, batch: int = 5000) -> Iterator[tuple[list[int], list[str]]]:
    """(rowids, exact texts the vector sync embeds), in rowid order."""
    from paperfeed.index.sync import embed_text
    from paperfeed.models import Paper

    with _open_store(data_dir) as store:
        cur = store.conn.execute("SELECT rowid, title, abstract FROM papers ORDER BY rowid")
        while rows := cur.fetchmany(batch):
            yield [r[0] for r in rows], [embed_text(Paper(title=r[1], abstract=r[2])) for r in rows]


def build_vectors(data_dir: Path, matrix: np.ndarray, progress: bool = False) -> float:
    """Build the vector index through `sync` with precomputed vectors (row i of `matrix`
    is the i-th paper by rowid); seconds taken. The lookup costs a hash per text, far
    below any real encoder."""
    from paperfeed.index.sync import embed_text, passages, sync
    from paperfeed.models import Paper

    keys: list[int] = []
    rows: list[int] = []
    with _open_store(data_dir) as store:
        cur = store.conn.execute("SELECT title, abstract FROM papers ORDER BY rowid")
        for pos, (title, abstract) in enumerate(cur):
            paper = Paper(title=title, abstract=abstract)
            # a long text's passages get its own synthetic vector (sync embeds them too)
            for text in (embed_text(paper), *passages(paper)):
                keys.append(_text_key(text))
                rows.append(pos)
    real = get_embedder()
    lookup = LookupEmbedder(real.name, real.dim, np.asarray(keys, np.int64), np.asarray(rows, np.int64), matrix)
    with _open_store(data_dir) as store:
        t0 = time.perf_counter()
        sync(store, data_dir, progress, embedder=lookup)
        return time.perf_counter() - t0


class RecordingEmbedder:
    """The real embedder, keeping each vector it returns (by text) for the recall ground truth."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.seen: dict[int, np.ndarray] = {}

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        out = self.inner.encode(texts, batch_size=batch_size, progress=progress)
        for t, v in zip(texts, out, strict=True):
            self.seen[_text_key(t)] = v
        return out

    def encode_query(self, text: str) -> np.ndarray:
        return self.inner.encode_query(text)


def embed_and_build_vectors(data_dir: Path, progress: bool = False) -> tuple[float, np.ndarray]:
    """Real embeddings: sync embeds every paper. Returns (seconds, vectors in rowid order)."""
    from paperfeed.index.sync import sync

    rec = RecordingEmbedder(get_embedder())
    with _open_store(data_dir) as store:
        t0 = time.perf_counter()
        sync(store, data_dir, progress, embedder=rec)
        secs = time.perf_counter() - t0
    vecs = [np.stack([rec.seen[_text_key(t)] for t in texts]) for _, texts in embed_texts_by_rowid(data_dir)]
    return secs, np.concatenate(vecs).astype(np.float32)


def index_bytes(data_dir: Path) -> int:
    from paperfeed.index.sync import index_dir

    root = index_dir(data_dir)
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) if root.exists() else 0
