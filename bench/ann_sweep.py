"""ANN recall and latency against exact search, for several HNSW search widths.

    .venv/bin/python bench/ann_sweep.py --papers 1000000 --ef 96,160,256

Builds the product's VectorIndex (int8 codes, usearch HNSW) over the bench's
synthetic clustered vectors, then measures recall@10 against exact float32
search and per-query latency at each search width.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from paperfeed.bench.synth import SyntheticCorpus, query_vectors, synthetic_vectors
from paperfeed.index import vectors as vmod
from paperfeed.index.vectors import VectorIndex


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--papers", type=int, default=200_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--ef", default="96,160,256")
    args = ap.parse_args()
    n = args.papers
    corpus = SyntheticCorpus(n, seed=0)
    for _ in corpus.records():
        pass
    out: dict = {"papers": n}
    with tempfile.TemporaryDirectory() as tmp:
        idx = VectorIndex.open(Path(tmp) / "v", 384, "synthetic", ann_threshold=1)
        t = time.perf_counter()
        X = np.empty((n, 384), np.float32)
        for s in range(0, n, 100_000):
            e = min(n, s + 100_000)
            X[s:e] = synthetic_vectors(corpus, s, e)
            idx.upsert(np.arange(s, e), X[s:e])
        idx.save()
        out["build_s"] = round(time.perf_counter() - t, 1)
        Q = query_vectors(corpus, args.queries, seed=1)
        truth = np.argsort(-(Q @ X.T), axis=1)[:, :10]
        del X
        for ef in (int(x) for x in args.ef.split(",")):
            vmod.HNSW_EF_SEARCH = ef
            lat, hits = [], 0
            for q, t10 in zip(Q, truth, strict=True):
                s = time.perf_counter()
                ids, _ = idx.search(q, 10)
                lat.append((time.perf_counter() - s) * 1000)
                hits += len(set(map(int, ids[:10])) & set(map(int, t10)))
            out[f"ef{ef}"] = {"recall_at_10": round(hits / (10 * len(Q)), 4),
                              "p50_ms": round(float(np.percentile(lat, 50)), 2),
                              "p95_ms": round(float(np.percentile(lat, 95)), 2)}
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
