"""`paperfeed bench recommend`: "For you" latency and retrain time on a synthetic corpus.

The corpus is the main bench's (paperfeed.bench.synth, ingested by the real importer, dense
vectors synthetic: topic + subtopic centroids + noise). Readers are drawn per topic: a library of
LIBRARY papers of one topic. Measured, in this process, with the real store and indexes:

* features_build_s: the recommender's corpus features built from nothing (once per process; then
  they follow the store by seq);
* retrain_ms: `train` on a library that just gained a paper (what a save costs);
* for_you_ms: `recommend` with a trained model, whole corpus and the month's window, with the
  "why" fields, k = 50 (what a page view costs with the model cached);
* digest: the day's newest papers ranked for many readers at once (`rank_for_many`), with the
  readers' models cached (training is the retrain figure, paid once per library change).
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from paperfeed.bench import product
from paperfeed.bench.ingest import run_ingest_child
from paperfeed.bench.run import BenchOptions, _percentiles, _rowid_to_index, _write_corpus
from paperfeed.bench.synth import SyntheticCorpus, synthetic_vectors

LIBRARY = 10
TARGET_FOR_YOU_P95_MS = 150
TARGET_RETRAIN_S = 1.0


def _log(msg: str) -> None:
    print(f"[bench recommend {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def bench_recommend(papers: int, *, readers: int = 30, subscribers: int = 10_000, day: int = 2000, seed: int = 0,
                    workdir: Path | None = None, progress: bool = False) -> dict[str, Any]:  # fmt: skip
    base = workdir or Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="paperfeed-benchrec-", dir=base))
    try:
        return _run(papers, readers, subscribers, day, seed, tmp, progress)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build(papers: int, seed: int, tmp: Path, progress: bool) -> tuple[SyntheticCorpus, np.ndarray, np.ndarray, Path]:
    data_dir = tmp / "data"
    _log(f"generating and ingesting {papers:,} synthetic papers")
    corpus = SyntheticCorpus(papers, seed)
    corpus_file = tmp / "corpus.jsonl"
    codes = _write_corpus(corpus, corpus_file, BenchOptions(papers=papers, progress=progress))
    rep = run_ingest_child(data_dir, corpus_file)["report"]
    if rep["added"] != papers:
        raise RuntimeError(f"ingest stored {rep['added']} of {papers} papers: {rep['errors'][:3]}")
    corpus_file.unlink()
    rowids, gen_index = _rowid_to_index(data_dir, codes)
    _log("indexes (synthetic vectors)")
    matrix = np.empty((papers, 384), np.float32)
    order = np.argsort(gen_index)  # generation order -> rowid positions
    for s in range(0, papers, 65_536):
        e = min(s + 65_536, papers)
        matrix[order[s:e]] = synthetic_vectors(corpus, s, e)
    product.build_vectors(data_dir, matrix, progress)
    return corpus, rowids, gen_index, data_dir


def _digest(searcher: Any, store: Any, models: list[tuple[Any, list[int]]], subscribers: int, day: int
            ) -> dict[str, Any]:  # fmt: skip
    """One day's `day` newest papers ranked for `subscribers` readers by `rank_for_many` (the
    readers' trained models are cycled: ranking is what is timed, each model is a cached one)."""
    from paperfeed.search.recommend import rank_for_many

    newest = [r for (r,) in store.conn.execute("SELECT rowid FROM papers ORDER BY rowid DESC LIMIT ?", (day,))]
    many = [models[i % len(models)] for i in range(subscribers)]
    _log(f"digest: {len(newest):,} papers for {subscribers:,} readers")
    t0 = time.perf_counter()
    ranked = rank_for_many([m for m, _ in many], searcher, store, newest, exclude=[lib for _, lib in many], k=10)
    seconds = time.perf_counter() - t0
    return {"subscribers": subscribers, "papers": len(newest), "top": 10, "seconds": round(seconds, 2),
            "ranked": sum(1 for r in ranked if r),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}  # fmt: skip


def _run(papers: int, readers: int, subscribers: int, day: int, seed: int, tmp: Path, progress: bool
         ) -> dict[str, Any]:  # fmt: skip
    from paperfeed.search import Searcher
    from paperfeed.search.rec_features import corpus_features
    from paperfeed.search.recommend import recommend, train
    from paperfeed.store import open_store

    corpus, rowids, gen_index, data_dir = _build(papers, seed, tmp, progress)
    # other work on the machine stretches every latency: say how busy it was
    result: dict[str, Any] = {"papers": papers, "readers": readers, "library": LIBRARY,
                              "loadavg_1m_start": round(os.getloadavg()[0], 2)}  # fmt: skip
    topics = np.array([corpus.topic_of(int(i)) for i in gen_index])
    rng = np.random.default_rng(seed)
    with open_store(data_dir) as store:
        searcher = Searcher(data_dir, auto_sync=False)
        _log("recommender features (cold)")
        t0 = time.perf_counter()
        feats = corpus_features(searcher, store)
        result["features_build_s"] = round(time.perf_counter() - t0, 2)
        result["features_mb"] = round(
            (feats.dense.nbytes + feats.counts.data.nbytes + feats.counts.indices.nbytes
             + feats.tfidf().data.nbytes + feats.tfidf().indices.nbytes) / 2**20, 1)  # fmt: skip
        newest = store.conn.execute("SELECT MAX(feed_date) FROM papers").fetchone()[0]
        window = [r for (r,) in store.conn.execute(
            "SELECT rowid FROM papers WHERE feed_date >= date(?, '-30 days')", (newest,))]  # fmt: skip
        result["month_window"] = len(window)
        retrain: list[float] = []
        whole: list[float] = []
        month: list[float] = []
        models: list[tuple[Any, list[int]]] = []
        train(searcher, store, [int(rowids[0])])  # imports and first-use costs outside the clock
        _log(f"{readers} readers: retrain after a save, then For you")
        for _ in range(readers):
            topic = rng.choice(np.unique(topics))
            pool = rowids[topics == topic]
            lib = [int(r) for r in rng.choice(pool, min(LIBRARY + 1, len(pool)), replace=False)]
            t0 = time.perf_counter()
            model = train(searcher, store, lib)
            retrain.append((time.perf_counter() - t0) * 1000)
            models.append((model, lib))
            t0 = time.perf_counter()
            recommend(model, searcher, store, exclude=lib, k=50)
            whole.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            recommend(model, searcher, store, candidates=window, exclude=lib, k=50)
            month.append((time.perf_counter() - t0) * 1000)
        if subscribers:
            result["digest"] = _digest(searcher, store, models, subscribers, day)
    result["retrain_ms"] = _percentiles(retrain)
    result["for_you_ms"] = _percentiles(whole)
    result["for_you_month_ms"] = _percentiles(month)
    result["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["targets"] = {
        "for_you_p95_ms": TARGET_FOR_YOU_P95_MS,
        "retrain_s": TARGET_RETRAIN_S,
        "for_you_met": result["for_you_ms"]["p95"] <= TARGET_FOR_YOU_P95_MS,
        "retrain_met": result["retrain_ms"]["p95"] <= TARGET_RETRAIN_S * 1000,
    }
    return result
