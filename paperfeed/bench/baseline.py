"""The plain path that `bench --baseline` measures the product against.

bm25s over title + abstract as one field (no field weights, default
tokenizer), exact dense search by a NumPy matrix product, and
sentence-transformers `encode` with its defaults. Nothing here is tuned: it is
what a reader would write in an afternoon.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np


def exact_topk(matrix: np.ndarray, queries: np.ndarray, k: int = 10) -> np.ndarray:
    """Row ids of the k largest dot products per query (exact), best first."""
    scores = queries @ matrix.T
    k = min(k, matrix.shape[0])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, part, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(part, order, axis=1)


def exact_topk_streaming(
    chunks: Iterator[np.ndarray], queries: np.ndarray, k: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k over a matrix given in row chunks, without holding it whole.

    Returns (ids, scores), ids being global row numbers, best first."""
    best_ids = np.full((len(queries), 0), -1, dtype=np.int64)
    best_sc = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    offset = 0
    for chunk in chunks:
        sc = queries @ chunk.T
        ids = np.broadcast_to(np.arange(offset, offset + len(chunk)), sc.shape)
        all_sc = np.concatenate([best_sc, sc], axis=1)
        all_ids = np.concatenate([best_ids, ids], axis=1)
        kk = min(k, all_sc.shape[1])
        part = np.argpartition(-all_sc, kk - 1, axis=1)[:, :kk]
        best_sc = np.take_along_axis(all_sc, part, axis=1)
        best_ids = np.take_along_axis(all_ids, part, axis=1)
        offset += len(chunk)
    order = best_sc.argsort(axis=1)[:, ::-1]
    return np.take_along_axis(best_ids, order, axis=1), np.take_along_axis(best_sc, order, axis=1)


class PlainLexical:
    """bm25s with its default tokenizer and parameters, one field."""

    def __init__(self, texts: Sequence[str]) -> None:
        import bm25s

        started = time.perf_counter()
        self.n_docs = len(texts)
        self.retriever = bm25s.BM25()
        self.retriever.index(bm25s.tokenize(list(texts), show_progress=False), show_progress=False)
        self.build_s = time.perf_counter() - started

    def search(self, query: str, k: int = 10) -> list[int]:
        import bm25s

        # strings, not ids: the retriever maps them onto its own vocabulary
        tokens = bm25s.tokenize([query], show_progress=False, return_ids=False)
        k = min(k, self.n_docs)
        docs, scores = self.retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        return [int(d) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]


def plain_encoder() -> Callable[[Sequence[str]], np.ndarray]:
    """sentence-transformers' `encode` with defaults on the packaged all-MiniLM-L6-v2."""
    from sentence_transformers import SentenceTransformer

    from paperfeed.embed import packaged_model_path

    model = SentenceTransformer(str(packaged_model_path()), device="cpu", local_files_only=True)

    def encode(texts: Sequence[str]) -> np.ndarray:
        # defaults, except the per-call progress bar: one per query would flood the terminal
        return model.encode(list(texts), convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)

    return encode
