"""Search latency in a fresh process: `python -m paperfeed.bench.probe product|baseline DATA WORK`.

Run as a child of `paperfeed bench`, so its peak RSS is what serving search
costs (the index builds, the corpus generator and the other side's models are
in other processes). Prints one JSON object on stdout.

product:  opens the Searcher the way the web app does, then times every query
          in each mode, and measures recall@10 of the approximate vector index
          against the exact top-10 the parent computed (WORK/recall_*.npy).
baseline: the plain path on the same data: bm25s over title + abstract, exact
          NumPy dot products over the float32 vectors (WORK/doc_vectors.f32),
          plain sentence-transformers for query vectors, RRF for hybrid.
Every mode returns the top 10 as papers loaded from the store, as a page would.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psutil

from paperfeed.procstat import peak_mb
from paperfeed.search import QueryError, Searcher, open_searcher
from paperfeed.store import open_store

MODES = ("lexical", "dense", "hybrid", "default")
WARMUP = 20
K = 10


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def _product(data_dir: Path, work: Path) -> dict:
    per_mode: dict[str, list[str]] = orjson.loads((work / "queries.json").read_bytes())
    t0 = time.perf_counter()
    store = open_store(data_dir)
    searcher = open_searcher(data_dir, store)
    # warm-up on queries no mode is timed on: loads the model, maps the index files
    for q in [f"{a} {b}" for a, b in zip(per_mode["lexical"][:WARMUP], per_mode["dense"][:WARMUP], strict=False)]:
        searcher.search(q, store=store, limit=K)
    load_s = time.perf_counter() - t0
    ms: dict[str, list[float]] = {}
    errors: dict[str, str] = {}
    for mode in MODES:
        times = []
        try:
            for q in per_mode[mode]:
                s = time.perf_counter()
                try:
                    searcher.search(q, store=store, limit=K, mode=mode if mode != "default" else "best")
                except QueryError:
                    continue  # refused with a message (e.g. only common words): nothing was searched
                times.append((time.perf_counter() - s) * 1000)
        except Exception as e:  # noqa: BLE001 - one broken mode must not hide the others
            errors[mode] = f"{type(e).__name__}: {e}"
        ms[mode] = times
    out: dict[str, Any] = {"ms": ms, "load_s": load_s, "errors": errors}
    out.update(_ann_recall(searcher, work))
    out["info"] = _info(searcher)
    out["rss_mb"] = _rss_mb()
    out["peak_rss_mb"] = peak_mb()
    store.close()
    return out


def _info(searcher: Searcher) -> dict:
    vec = searcher.vectors
    info: dict[str, Any] = {"searcher": type(searcher).__name__}
    if vec is not None:
        info.update(vector_index=type(vec).__name__, vector_uses_ann=vec.uses_ann,
                    vector_ann_threshold=vec.ann_threshold, vectors=len(vec))  # fmt: skip
    return info


def _ann_recall(searcher: Searcher, work: Path) -> dict:
    qpath, tpath = work / "recall_queries.npy", work / "recall_truth.npy"
    vec = searcher.vectors
    if vec is None or not qpath.exists():
        return {"ann_recall_at_10": None, "ann_error": "no vector index"}
    qv, truth = np.load(qpath), np.load(tpath)
    hits_total, times = 0, []
    for q, t in zip(qv, truth, strict=True):
        s = time.perf_counter()
        ids, _scores = vec.search(q, K)
        times.append((time.perf_counter() - s) * 1000)
        hits_total += len(set(int(i) for i in list(ids)[:K]) & set(int(i) for i in t))
    return {"ann_recall_at_10": round(hits_total / (K * len(qv)), 4), "ann_ms": times}


def _rrf(*rankings: list[int], k: int = 60) -> list[int]:
    score: dict[int, float] = {}
    for ranking in rankings:
        for r, doc in enumerate(ranking):
            score[doc] = score.get(doc, 0.0) + 1.0 / (k + r + 1)
    return sorted(score, key=lambda d: -score[d])


def _baseline(data_dir: Path, work: Path) -> dict:
    from paperfeed.bench.baseline import PlainLexical, exact_topk, plain_encoder

    per_mode: dict[str, list[str]] = orjson.loads((work / "queries.json").read_bytes())
    store = open_store(data_dir)
    rows = store.conn.execute("SELECT rowid, title, abstract FROM papers ORDER BY rowid").fetchall()
    rowids = np.asarray([r[0] for r in rows], dtype=np.int64)
    texts = [f"{r[1]}. {r[2]}" for r in rows]
    del rows
    lex = PlainLexical(texts)
    del texts
    n = len(rowids)
    matrix = np.fromfile(work / "doc_vectors.f32", dtype=np.float32).reshape(n, -1)
    encode = plain_encoder()
    warm = per_mode["default"][:WARMUP]
    encode(warm)
    for q in warm:
        lex.search(q, K)
    ms: dict[str, list[float]] = {"lexical": [], "dense": [], "hybrid": []}
    exact_ms: list[float] = []
    for q in per_mode["lexical"]:
        s = time.perf_counter()
        store.get_by_rowids(rowids[lex.search(q, K)].tolist())
        ms["lexical"].append((time.perf_counter() - s) * 1000)
    for q in per_mode["dense"]:
        s = time.perf_counter()
        qv = encode([q])
        e = time.perf_counter()
        top = exact_topk(matrix, qv, K)[0]
        exact_ms.append((time.perf_counter() - e) * 1000)
        store.get_by_rowids(rowids[top].tolist())
        ms["dense"].append((time.perf_counter() - s) * 1000)
    for q in per_mode["hybrid"]:
        s = time.perf_counter()
        fused = _rrf(lex.search(q, 100), exact_topk(matrix, encode([q]), 100)[0].tolist())[:K]
        store.get_by_rowids(rowids[fused].tolist())
        ms["hybrid"].append((time.perf_counter() - s) * 1000)
    index_dir = work / "bm25s-index"
    lex.retriever.save(str(index_dir))
    idx_bytes = sum(f.stat().st_size for f in index_dir.rglob("*") if f.is_file()) + matrix.nbytes
    out = {
        "ms": ms,
        "exact_ms": exact_ms,
        "lexical_build_s": lex.build_s,
        "index_bytes": idx_bytes,
        "rss_mb": _rss_mb(),
        "peak_rss_mb": peak_mb(),
    }
    store.close()
    return out


def main(argv: list[str]) -> None:
    if len(argv) != 3 or argv[0] not in ("product", "baseline"):
        sys.exit("usage: python -m paperfeed.bench.probe product|baseline DATA_DIR WORK_DIR")
    kind, data_dir, work = argv[0], Path(argv[1]), Path(argv[2])
    out = _product(data_dir, work) if kind == "product" else _baseline(data_dir, work)
    sys.stdout.write(orjson.dumps(out).decode() + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
