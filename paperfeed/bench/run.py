"""`paperfeed bench --papers N`: the whole pipeline on a synthetic corpus, one JSON object.

Phases, each timed on its own:
 1. generate N synthetic arXiv records (not measured as a product figure);
 2. ingest them with `paperfeed ingest` in a child process (ingest_rps);
 3. build the lexical index, then the vector index: from real embeddings when
    N <= --real-vectors-below, else from synthetic vectors clustered like real
    ones (embedding a million abstracts is hours of CPU), flagged in the JSON;
 4. embedding throughput on >= 2,000 real-text abstracts (seed pages + the arXiv
    sample + synthetic), product embedder vs plain sentence-transformers;
 5. search latency per mode and ANN recall in a fresh child process that only
    loads what serving loads, so its peak RSS is the serving figure;
 6. with --baseline, the plain path (bm25s one field, exact NumPy, plain
    sentence-transformers) in its own child process, same queries.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from paperfeed.bench import product
from paperfeed.bench.baseline import exact_topk_streaming
from paperfeed.bench.ingest import run_ingest_child
from paperfeed.bench.probe import MODES
from paperfeed.bench.queries import make_queries
from paperfeed.bench.synth import SyntheticCorpus, query_vectors, synthetic_vectors
from paperfeed.procstat import dir_bytes, peak_mb


@dataclass
class BenchOptions:
    papers: int = 10_000
    baseline: bool = False
    queries: int = 500
    embed_docs: int = 2000
    real_vectors_below: int = 20_000
    seed: int = 0
    workdir: Path | None = None
    keep: bool = False
    progress: bool = False
    recall_queries: int = 500


def _log(opts: BenchOptions, msg: str) -> None:
    # phase lines always: a long run in the background is followed through its log
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _id_code(arxiv_id: str) -> int:
    yymm, num = arxiv_id.split(".")
    return int(yymm) * 100_000 + int(num)


def _write_corpus(corpus: SyntheticCorpus, path: Path, opts: BenchOptions) -> np.ndarray:
    """Write the records; return their id codes in generation order (8 bytes a paper)."""
    codes = np.empty(corpus.n, dtype=np.int64)
    bar = None
    if opts.progress:
        from tqdm import tqdm

        bar = tqdm(total=corpus.n, unit="rec", unit_scale=True, desc="generate", file=sys.stderr)
    with open(path, "wb", buffering=1 << 20) as f:
        for i, rec in enumerate(corpus.records()):
            codes[i] = _id_code(rec["id"])
            f.write(orjson.dumps(rec))
            f.write(b"\n")
            if bar is not None and i % 10_000 == 9_999:
                bar.update(10_000)
    if bar is not None:
        bar.update(corpus.n - bar.n)
        bar.close()
    return codes


def _rowid_to_index(data_dir: Path, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rowids, generation index of each), read back from the store by arXiv id: the
    importer may batch or parallelise, so insertion order is not assumed."""
    from paperfeed.store import open_store

    order = np.argsort(codes)
    sorted_codes = codes[order]
    rowids, idx = [], []
    with open_store(data_dir) as store:
        for r in store.conn.execute("SELECT rowid, arxiv_id FROM papers ORDER BY rowid"):
            code = _id_code(r[1])
            pos = int(np.searchsorted(sorted_codes, code))
            if pos >= len(sorted_codes) or sorted_codes[pos] != code:
                raise RuntimeError(f"paper {r[1]} is not in the generated corpus")
            rowids.append(r[0])
            idx.append(int(order[pos]))
    return np.asarray(rowids, dtype=np.int64), np.asarray(idx, dtype=np.int64)


def _iter_texts(data_dir: Path, batch: int = 5000) -> Iterator[tuple[list[int], list[str]]]:
    from paperfeed.store import open_store

    with open_store(data_dir) as store:
        cur = store.conn.execute("SELECT rowid, title, abstract FROM papers ORDER BY rowid")
        while rows := cur.fetchmany(batch):
            yield [r[0] for r in rows], [f"{r[1]}. {r[2]}" for r in rows]


def embed_sample(corpus: SyntheticCorpus, n: int) -> list[str]:
    """n documents (title. abstract): the seed-page and arXiv-sample abstracts first (real
    text), then synthetic ones from the same models to reach n."""
    texts = [f"{d.title}. {d.abstract}" for d in corpus.model.source_docs][:n]
    if len(texts) < n:
        extra = SyntheticCorpus(n - len(texts), corpus.seed + 1, corpus.model)
        texts += [f"{r['title']}. {r['abstract'].strip()}" for r in extra.records()]
    return texts


def _percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms, dtype=np.float64)
    if a.size == 0:
        return {"p50": None, "p95": None, "p99": None, "n": 0}
    return {
        "p50": round(float(np.percentile(a, 50)), 2),
        "p95": round(float(np.percentile(a, 95)), 2),
        "p99": round(float(np.percentile(a, 99)), 2),
        "mean": round(float(a.mean()), 2),
        "n": int(a.size),
    }


def _run_probe(args: list[str], opts: BenchOptions) -> dict:
    """Run `python -m paperfeed.bench.probe ...` and return its JSON; its peak RSS is its own."""
    cmd = [sys.executable, "-m", "paperfeed.bench.probe", *args]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None if opts.progress else subprocess.PIPE)
    if proc.returncode != 0:
        err = (proc.stderr or b"").decode(errors="replace")[-3000:]
        raise RuntimeError(f"probe {args[0]} failed (exit {proc.returncode}): {err}")
    return orjson.loads(proc.stdout.splitlines()[-1])


def run_bench(opts: BenchOptions) -> dict:
    started = time.monotonic()
    base_dir = opts.workdir or Path(tempfile.gettempdir())
    base_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="paperfeed-bench-", dir=base_dir))
    data_dir = tmp / "data"
    result: dict = {"papers": opts.papers, "seed": opts.seed, "cpu_count": os.cpu_count(),
                    "loadavg_1m_start": round(os.getloadavg()[0], 2)}
    try:
        _run(opts, tmp, data_dir, result)
    finally:
        if opts.keep:
            result["data_dir"] = str(data_dir)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    result["total_s"] = round(time.monotonic() - started, 1)
    # other work on the machine stretches every latency: say how busy it was
    result["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    return result


def _run(opts: BenchOptions, tmp: Path, data_dir: Path, result: dict) -> None:
    n = opts.papers
    # 1. corpus
    _log(opts, f"generating {n:,} synthetic papers")
    t0 = time.monotonic()
    corpus = SyntheticCorpus(n, opts.seed)
    corpus_file = tmp / "corpus.jsonl"
    codes = _write_corpus(corpus, corpus_file, opts)
    result["generate_s"] = round(time.monotonic() - t0, 2)

    # 2. ingest, in a child process
    _log(opts, "ingest (child process)")
    ing = run_ingest_child(data_dir, corpus_file)
    rep = ing["report"]
    if rep["added"] != n:
        raise RuntimeError(f"ingest stored {rep['added']} of {n} papers: {rep['errors'][:3]}")
    result["ingest_rps"] = round(n / rep["seconds"]) if rep["seconds"] else None
    result["ingest_wall_s"] = round(ing["wall_s"], 2)
    result["ingest_peak_rss_mb"] = round(ing["peak_rss_mb"], 1)
    result["ingest_cpu_s"] = round(ing["cpu_s"], 2)
    corpus_file.unlink()
    rowids, gen_index = _rowid_to_index(data_dir, codes)
    del codes

    # 3. indexes
    synthetic = n > opts.real_vectors_below
    result["synthetic_vectors"] = synthetic
    embedder_name = product.embedder_name()
    result["embedder"] = embedder_name
    vec_path = tmp / "doc_vectors.f32"  # for the exact baseline and the recall ground truth
    _log(opts, "building the lexical index")
    result["lexical_build_s"] = round(product.build_lexical(data_dir, progress=opts.progress), 2)
    if synthetic:
        _log(opts, "synthetic vectors (topic + subtopic centroids + noise)")
        order = np.argsort(gen_index)  # generation order -> rowid positions
        mm = np.memmap(vec_path, dtype=np.float32, mode="w+", shape=(n, 384))
        step = 65_536
        for s in range(0, n, step):
            e = min(s + step, n)
            # row i of the file is rowids[i]'s vector
            mm[order[s:e]] = synthetic_vectors(corpus, s, e)
        mm.flush()
        del mm

        _log(opts, "building the vector index from synthetic vectors")
        matrix = np.memmap(vec_path, dtype=np.float32, mode="r", shape=(n, 384))
        result["vector_build_s"] = round(product.build_vectors(data_dir, matrix, opts.progress), 2)
        del matrix
        qvecs = query_vectors(corpus, opts.recall_queries, opts.seed)
    else:
        _log(opts, f"embedding all {n:,} papers ({embedder_name}) and building the vector index")
        t0 = time.monotonic()
        build_s, vecs = product.embed_and_build_vectors(data_dir, opts.progress)
        result["vector_build_s"] = round(build_s, 2)
        result["corpus_embed_s"] = round(time.monotonic() - t0, 2)
        # the store's rowids order, matching `rowids`
        vecs.astype(np.float32).tofile(vec_path)
        del vecs
        emb = product.get_embedder()
        texts = make_queries(corpus, opts.recall_queries, opts.seed + 7)
        qvecs = emb.encode(texts)
    result["index_bytes"] = product.index_bytes(data_dir)
    result["db_bytes"] = dir_bytes(data_dir, lambda p: p.parent != data_dir or not p.name.startswith("paperfeed.db"))

    # ground truth for recall: exact top-10 over all vectors, streamed
    def row_chunks() -> Iterator[np.ndarray]:
        m = np.memmap(vec_path, dtype=np.float32, mode="r", shape=(n, 384))
        for s in range(0, n, 65_536):
            yield np.asarray(m[s : s + 65_536])

    truth_pos, _ = exact_topk_streaming(row_chunks(), qvecs, 10)
    truth = rowids[truth_pos]
    np.save(tmp / "recall_queries.npy", qvecs)
    np.save(tmp / "recall_truth.npy", truth)

    # 4. embedding throughput on real text
    _log(opts, f"embedding throughput on {opts.embed_docs:,} real-text abstracts")
    texts = embed_sample(corpus, opts.embed_docs)
    result["embed_docs"] = len(texts)
    emb = product.get_embedder()
    emb.encode(texts[:16])  # load and warm up outside the clock
    t0 = time.perf_counter()
    fast = emb.encode(texts)
    result["embed_dps"] = round(len(texts) / (time.perf_counter() - t0), 1)
    result["build_peak_rss_mb"] = round(peak_mb(), 1)
    if opts.baseline:
        from paperfeed.bench.baseline import plain_encoder

        _log(opts, "embedding throughput, plain sentence-transformers")
        plain = plain_encoder()
        plain(texts[:16])
        t0 = time.perf_counter()
        ref = plain(texts)
        result["baseline_embed_dps"] = round(len(texts) / (time.perf_counter() - t0), 1)
        result["embed_speedup"] = round(result["embed_dps"] / result["baseline_embed_dps"], 2)
        # how far the fast vectors are from the plain model's, text by text
        cos = np.sum(fast * ref, axis=1) / (np.linalg.norm(fast, axis=1) * np.linalg.norm(ref, axis=1))
        result["embed_cosine_vs_plain"] = {"mean": round(float(cos.mean()), 4), "min": round(float(cos.min()), 4)}
        del plain, ref
    del fast

    # 5. serving: latency per mode, ANN recall, serving RSS
    # a distinct query set per mode, same distribution: the searcher caches query vectors
    # and rankings, so reusing one set would time the later modes with warm caches
    pool = make_queries(corpus, 4 * opts.queries, opts.seed)
    per_mode = {m: pool[i * opts.queries : (i + 1) * opts.queries] for i, m in enumerate(MODES)}
    (tmp / "queries.json").write_bytes(orjson.dumps(per_mode))
    _log(opts, f"search latency, {opts.queries} queries x {len(MODES)} modes (child process)")
    probe = _run_probe(["product", str(data_dir), str(tmp)], opts)
    result["search_ms"] = {m: _percentiles(v) for m, v in probe["ms"].items()}
    result["ann_recall_at_10"] = probe.get("ann_recall_at_10")
    result["ann_search_ms"] = _percentiles(probe.get("ann_ms", []))
    result["peak_rss_mb"] = round(probe["peak_rss_mb"], 1)
    result["serving_rss_mb"] = round(probe["rss_mb"], 1)
    result["serving_load_s"] = round(probe["load_s"], 2)
    result["search_info"] = probe.get("info", {})

    # 6. the plain path
    if opts.baseline:
        _log(opts, "baseline: bm25s + exact NumPy + plain sentence-transformers (child process)")
        base = _run_probe(["baseline", str(data_dir), str(tmp)], opts)
        result["baseline"] = {
            "lexical_build_s": round(base["lexical_build_s"], 2),
            "search_ms": {m: _percentiles(v) for m, v in base["ms"].items()},
            "exact_dense_ms": _percentiles(base["exact_ms"]),
            "peak_rss_mb": round(base["peak_rss_mb"], 1),
            "index_bytes": base["index_bytes"],
        }
        ratios = {}
        for mode in ("lexical", "dense", "hybrid"):
            ours = result["search_ms"].get(mode, {}).get("p95")
            theirs = result["baseline"]["search_ms"].get(mode, {}).get("p95")
            if ours and theirs:
                ratios[mode] = round(theirs / ours, 2)
        result["baseline_p95_over_ours"] = ratios
        if result["baseline"]["lexical_build_s"]:
            result["lexical_build_speedup"] = round(result["baseline"]["lexical_build_s"] / result["lexical_build_s"], 2)
