"""`paperfeed bench recommend`: "For you" latency and retrain time on a synthetic corpus.

The corpus is the main bench's (paperfeed.bench.synth, ingested by the real importer, dense
vectors synthetic: topic + subtopic centroids + noise). Readers are drawn per topic: a library of
LIBRARY papers of one topic. Measured, in this process, with the real store and indexes:

* features_build_s: the recommender's corpus features built from nothing and saved (once per
  corpus; then they follow the store by seq);
* features_open: what a restarted server, or another worker, pays instead: a fresh process opens
  the saved features (memory-mapped) and ranks the whole corpus once for a reader; its open time
  and how much of its memory is private (RssAnon) and how much is the shared files (RssFile);
* retrain_ms: `train` on a library that just gained a paper (what a save costs);
* for_you_ms: `recommend` with a trained model, whole corpus and the month's window, with the
  "why" fields, k = 50 (what a page view costs with the model cached);
* similar_ms: "Similar papers" of a paper (`search.similar.similar_papers`, k = 8), what a paper
  page adds;
* digest (rank only): the day's newest papers ranked for many readers at once
  (`rank_for_many`), with the readers' models in memory;
* digest_warm: the For-you mail end to end, as `digest send` composes it, in a child process
  started for it: --subscribers accounts, each with a library of LIBRARY papers and an active
  daily For-you subscription, the newest feed day made of the --day newest papers; every
  library's model is already in the store (trained when the library last changed: one model per
  distinct library, TEMPLATES of them, stored for each of its readers). Wall time from the
  child's start (imports, store, indexes, the recommender features opened as the parent saved
  them, all mails composed into the outbox), its stages, and its peak RSS;
* save_then_page_ms: a save, then the For-you page (month window) through the product's path:
  the stored model is stale, so it is retrained, stored and the window ranked;
* digest_cold: the same for --cold-subscribers more accounts whose models are not stored, so
  that every one is trained in the run (what the first mail after everyone changed their
  library would cost), with the per-reader cost and what 10,000 of them would take at that
  rate (extrapolated, said so).
"""

from __future__ import annotations

import datetime as dt
import json
import os
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
from paperfeed.procstat import peak_mb, status_mb

LIBRARY = 10
TEMPLATES = 200
TARGET_DIGEST_S = 120
TARGET_DIGEST_RSS_MB = 1024
TARGET_FOR_YOU_P95_MS = 150
TARGET_RETRAIN_S = 1.0


def _log(msg: str) -> None:
    print(f"[bench recommend {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def bench_recommend(papers: int, *, readers: int = 30, subscribers: int = 10_000, day: int = 2000, seed: int = 0,
                    workdir: Path | None = None, progress: bool = False, cold_subscribers: int = 300
                    ) -> dict[str, Any]:  # fmt: skip
    base = workdir or Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="paperfeed-benchrec-", dir=base))
    try:
        return _run(papers, readers, subscribers, day, seed, tmp, progress, cold_subscribers)
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
            "peak_rss_mb": round(peak_mb(), 1)}  # fmt: skip


def _run(papers: int, readers: int, subscribers: int, day: int, seed: int, tmp: Path, progress: bool,
         cold_subscribers: int = 0) -> dict[str, Any]:  # fmt: skip
    from paperfeed.search import Searcher
    from paperfeed.search.rec_features import corpus_features
    from paperfeed.search.recommend import recommend, train
    from paperfeed.search.similar import similar_papers
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
        result["features_mb"] = round(feats.nbytes() / 2**20, 1)
        result["features_saved"] = feats.mapped
        result["features_open"] = _features_child(data_dir, [int(r) for r in rowids[:LIBRARY]])
        newest = store.conn.execute("SELECT MAX(feed_date) FROM papers").fetchone()[0]
        window = [r for (r,) in store.conn.execute(
            "SELECT rowid FROM papers WHERE feed_date >= date(?, '-30 days')", (newest,))]  # fmt: skip
        result["month_window"] = len(window)
        retrain: list[float] = []
        whole: list[float] = []
        month: list[float] = []
        similar: list[float] = []
        models: list[tuple[Any, list[int]]] = []
        train(searcher, store, [int(rowids[0])])  # imports and first-use costs outside the clock
        _log(f"{readers} readers: retrain after a save, then For you")
        for _ in range(readers):
            topic = rng.choice(np.unique(topics))
            pool = rowids[topics == topic]
            lib = [int(r) for r in rng.choice(pool, min(LIBRARY + 1, len(pool)), replace=False)]
            t0 = time.perf_counter()
            similar_papers(searcher, store, lib[0], 8)
            similar.append((time.perf_counter() - t0) * 1000)
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
        # the whole-corpus For-you above built the corpus-wide tf-idf; day/week/month windows never do
        result["features_mb_after_whole_corpus"] = round(corpus_features(searcher, store).nbytes() / 2**20, 1)
        if subscribers:
            result["digest"] = _digest(searcher, store, models, subscribers, day)
    if subscribers:
        result.update(_digest_end_to_end(data_dir, rowids, topics, gen_index, subscribers, cold_subscribers, day,
                                         rng))  # fmt: skip
    result["retrain_ms"] = _percentiles(retrain)
    result["for_you_ms"] = _percentiles(whole)
    result["for_you_month_ms"] = _percentiles(month)
    result["similar_ms"] = _percentiles(similar)
    result["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    result["peak_rss_mb"] = round(peak_mb(), 1)
    result["targets"] = {
        "for_you_p95_ms": TARGET_FOR_YOU_P95_MS,
        "retrain_s": TARGET_RETRAIN_S,
        "for_you_met": result["for_you_ms"]["p95"] <= TARGET_FOR_YOU_P95_MS,
        "for_you_month_met": result["for_you_month_ms"]["p95"] <= TARGET_FOR_YOU_P95_MS,
        "retrain_met": result["retrain_ms"]["p95"] <= TARGET_RETRAIN_S * 1000,
    }
    if "save_then_page_ms" in result:
        result["targets"]["save_then_page_met"] = result["save_then_page_ms"]["p95"] <= TARGET_RETRAIN_S * 1000
    if "digest_warm" in result:
        warm = result["digest_warm"]
        result["targets"].update({
            "digest_s": TARGET_DIGEST_S, "digest_rss_mb": TARGET_DIGEST_RSS_MB,
            "digest_warm_met": warm["wall_s"] <= TARGET_DIGEST_S and warm["peak_rss_mb"] <= TARGET_DIGEST_RSS_MB,
        })  # fmt: skip
    return result


# ---- the mail, end to end ----------------------------------------------------------------


def _digest_end_to_end(data_dir: Path, rowids: np.ndarray, topics: np.ndarray, gen_index: np.ndarray,
                       subscribers: int, cold: int, day: int, rng: np.random.Generator) -> dict[str, Any]:  # fmt: skip
    from paperfeed.search import Searcher
    from paperfeed.search.recommend import train
    from paperfeed.store import open_store, rec_models

    out: dict[str, Any] = {}
    with open_store(data_dir) as store:
        newest = [r for (r,) in store.conn.execute("SELECT rowid FROM papers ORDER BY rowid DESC LIMIT ?", (day,))]
        latest = store.conn.execute("SELECT MAX(feed_date) FROM papers").fetchone()[0]
        today = (dt.date.fromisoformat(latest) + dt.timedelta(days=1)).isoformat()
        with store.write() as c:  # the day's papers: one feed day of `day` papers
            for i in range(0, len(newest), 500):
                chunk = newest[i : i + 500]
                c.execute(f"UPDATE papers SET feed_date = ? WHERE rowid IN ({','.join('?' * len(chunk))})",
                          [today, *chunk])  # fmt: skip
        older = np.setdiff1d(rowids, np.array(newest))
        older_topics = topics[np.searchsorted(rowids, older)]
        libs = []
        for _ in range(TEMPLATES):
            pool = older[older_topics == rng.choice(np.unique(older_topics))]
            libs.append([int(r) for r in rng.choice(pool, min(LIBRARY, len(pool)), replace=False)])
        _log(f"digest: {subscribers:,} readers of {TEMPLATES} distinct libraries, their models stored")
        searcher = Searcher(data_dir, auto_sync=False)
        blobs = [train(searcher, store, lib).to_bytes() for lib in libs]
        users = _add_readers(store, subscribers, libs, "warm")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with store.write() as c:
            for i in range(0, len(users), 1000):
                c.executemany(
                    "INSERT INTO rec_models (user_id, tag_key, version, seq, model, trained_at) VALUES (?,?,?,?,?,?)",
                    [(u, "", "v1", store.max_seq(), blobs[t], stamp) for u, t in users[i : i + 1000]],
                )
        out["digest_models_stored"] = rec_models.count(store)
    now = dt.datetime.fromisoformat(today + "T07:00:00+00:00")
    _log(f"digest (warm): composing {subscribers:,} mails over {len(newest):,} papers in a child process")
    warm = _compose_child(data_dir, now)
    warm.update({"subscribers": subscribers, "papers": len(newest), "distinct_libraries": TEMPLATES})
    out["digest_warm"] = warm
    if cold:
        with open_store(data_dir) as store:
            cold_libs = []
            for _ in range(cold):
                pool = older[older_topics == rng.choice(np.unique(older_topics))]
                cold_libs.append([int(r) for r in rng.choice(pool, min(LIBRARY, len(pool)), replace=False)])
            _add_readers(store, cold, cold_libs, "cold")
        _log(f"digest (cold): {cold:,} more readers whose models must all be trained")
        res = _compose_child(data_dir, now)  # the warm readers have their mail of this day already
        per = res["compose_s"] / max(res["composed"], 1)
        res.update({"subscribers": cold, "papers": len(newest), "per_reader_s": round(per, 3),
                    "extrapolated_10k_s": round(res["wall_s"] - res["compose_s"] + per * 10_000, 1),
                    "note": "every model trained in the run; extrapolated_10k_s = start-up + 10,000 x per_reader_s"})  # fmt: skip
        out["digest_cold"] = res
    out["save_then_page_ms"] = _save_then_page(data_dir, users, libs, older, older_topics, rowids, topics, rng)
    return out


def _save_then_page(data_dir: Path, users: list[tuple[int, int]], libs: list[list[int]], older: np.ndarray,
                    older_topics: np.ndarray, rowids: np.ndarray, topics: np.ndarray, rng: np.random.Generator,
                    n: int = 30) -> dict[str, float]:  # fmt: skip
    """What a reader waits for after a save, through the product's path: the save, then the
    For-you page (month window) with a persisting cache, which finds the stored model stale,
    retrains, stores the new one and ranks."""
    from paperfeed.search import Searcher
    from paperfeed.search.foryou import for_you
    from paperfeed.search.recommend import ModelCache
    from paperfeed.store import library as lib
    from paperfeed.store import open_store

    times: list[float] = []
    cache = ModelCache(persist=True)
    with open_store(data_dir) as store:
        searcher = Searcher(data_dir, auto_sync=False)
        for uid, t in users[:n]:
            topic = topics[np.searchsorted(rowids, libs[t][0])]
            extra = int(rng.choice(older[older_topics == topic]))
            t0 = time.perf_counter()
            lib.save(store, uid, [extra])
            page = for_you(store, searcher, cache, uid, window="month", k=50)
            times.append((time.perf_counter() - t0) * 1000)
            assert page.items
    assert cache.trained == len(times)
    return _percentiles(times)


def _add_readers(store: Any, n: int, libs: list[list[int]], tag: str) -> list[tuple[int, int]]:
    """n accounts, reader i with library libs[i % len(libs)] (version 1) and an active daily
    For-you subscription of 10 papers; returns (user_id, library index)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out: list[tuple[int, int]] = []
    with store.write() as c:
        for i in range(n):
            email = f"{tag}{i}@bench.example.org"
            uid = c.execute(
                "INSERT INTO users (email, email_key, password_hash, created_at, email_verified_at) "
                "VALUES (?,?,?,?,?) RETURNING id", (email, email, "-", stamp, stamp)).fetchone()[0]  # fmt: skip
            t = i % len(libs)
            c.executemany("INSERT INTO library_papers (user_id, paper_rowid, created_at) VALUES (?,?,?)",
                          [(uid, r, stamp) for r in libs[t]])  # fmt: skip
            c.execute("INSERT INTO library_state (user_id, version, neg_version) VALUES (?, 1, 0)", (uid,))
            sid = c.execute(
                "INSERT INTO subscriptions (email, email_key, kind, period, query, filters, status, watermark_seq, "
                "created_at, confirmed_at, updated_at) VALUES (?,?,'foryou','daily','','{}','active',0,?,?,?) "
                "RETURNING id", (email, email, stamp, stamp, stamp)).fetchone()[0]  # fmt: skip
            c.execute("INSERT INTO foryou_subscriptions (subscription_id, user_id, tag_id, size) VALUES (?,?,NULL,10)",
                      (sid, uid))  # fmt: skip
            out.append((uid, t))
    return out


def _compose_child(data_dir: Path, now: dt.datetime) -> dict[str, Any]:
    """`compose_period` of the daily For-you mail in a fresh process (what `digest send` runs):
    its wall time from start, stages, and peak RSS."""
    from paperfeed.bench.ingest import run_measured

    code = f"from paperfeed.bench.recommend import compose_child; compose_child({str(data_dir)!r}, {now.isoformat()!r})"
    run = run_measured([sys.executable, "-c", code], {"PAPERFEED_DATABASE_URL": ""})
    if run["returncode"] != 0:
        raise RuntimeError(f"digest child failed: {run['stderr'].decode(errors='replace')[-2000:]}")
    res = json.loads(run["stdout"].splitlines()[-1])
    res.update({"wall_s": round(run["wall_s"], 2), "cpu_s": round(run["cpu_s"], 2),
                "peak_rss_mb": round(max(run["peak_rss_mb"], res.pop("hwm_mb")), 1),
                "loadavg_1m": round(os.getloadavg()[0], 2)})  # fmt: skip
    return res


def compose_child(data_dir: str, now: str) -> None:
    """The child of `_compose_child`: prints one JSON line."""
    t0 = time.perf_counter()
    from paperfeed.config import Settings
    from paperfeed.digest import foryou as mail
    from paperfeed.search import open_searcher
    from paperfeed.search import recommend as rec
    from paperfeed.search.rec_features import corpus_features
    from paperfeed.store import open_store

    trained = [0]
    real = rec.train

    def counted(*a: Any, **kw: Any) -> Any:
        trained[0] += 1
        return real(*a, **kw)

    rec.train = counted  # type: ignore[assignment]
    settings = Settings(data_dir=Path(data_dir), base_url="https://papers.example.org", secret_key="bench")
    with open_store(Path(data_dir)) as store:
        t1 = time.perf_counter()
        searcher = open_searcher(Path(data_dir), store, auto_sync=False)
        corpus_features(searcher, store)
        t2 = time.perf_counter()
        run = mail.compose_period(store, settings, "daily", dt.datetime.fromisoformat(now), None, searcher=searcher)
        t3 = time.perf_counter()
    print(json.dumps({"composed": run.composed, "empty": run.empty, "trained": trained[0],
                      "start_s": round(t1 - t0, 2), "features_s": round(t2 - t1, 2), "compose_s": round(t3 - t2, 2),
                      "hwm_mb": peak_mb()}))  # fmt: skip


def _features_child(data_dir: Path, library: list[int]) -> dict[str, Any]:
    """`features_child` in a fresh process: what opening the saved features costs."""
    code = f"from paperfeed.bench.recommend import features_child; features_child({str(data_dir)!r}, {library!r})"
    from paperfeed.bench.ingest import run_measured

    run = run_measured([sys.executable, "-c", code], {"PAPERFEED_DATABASE_URL": ""})
    if run["returncode"] != 0:
        raise RuntimeError(f"features child failed: {run['stderr'].decode(errors='replace')[-2000:]}")
    return json.loads(run["stdout"].splitlines()[-1])


def features_child(data_dir: str, library: list[int]) -> None:
    """The child of `_features_child`: prints one JSON line."""
    from paperfeed.search import Searcher
    from paperfeed.search.rec_features import corpus_features
    from paperfeed.search.recommend import recommend, train
    from paperfeed.store import open_store

    with open_store(Path(data_dir)) as store:
        searcher = Searcher(Path(data_dir), auto_sync=False)
        before = status_mb("RssAnon", "RssFile")
        t0 = time.perf_counter()
        feats = corpus_features(searcher, store)
        opened = time.perf_counter() - t0
        t0 = time.perf_counter()
        recommend(train(searcher, store, library), searcher, store, exclude=library, k=50)
        ranked = time.perf_counter() - t0
        after = status_mb("RssAnon", "RssFile")
    print(json.dumps({"mapped": feats.mapped, "open_s": round(opened, 3), "train_and_rank_whole_s": round(ranked, 2),
                      "rss_anon_mb_added": round(after["RssAnon"] - before["RssAnon"], 1),
                      "rss_file_mb_added": round(after["RssFile"] - before["RssFile"], 1)}))  # fmt: skip


