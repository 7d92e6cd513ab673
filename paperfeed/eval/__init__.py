"""Retrieval evaluation on BEIR-layout collections (corpus.jsonl, queries.jsonl, qrels/test.tsv).

The collection goes through the product's own path: `ingest_paths` into a throw-away data
directory, `sync` to build the indexes, then every judged query through `Searcher.rank`. So the
figures measure what users get, not a side pipeline. Metrics come from ranx.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from paperfeed.search.query import QueryError, normalize_mode

log = logging.getLogger(__name__)

METRICS = ("ndcg@10", "map@100", "recall@100", "mrr@10")
DEPTH = 100


class EvalError(ValueError):
    """The collection cannot be evaluated (missing files, no judged queries)."""


@dataclass
class Collection:
    root: Path
    corpus: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    errors: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.root.name


def load_collection(root: Path, split: str = "test") -> Collection:
    root = Path(root)
    corpus = root / "corpus.jsonl"
    qfile = root / "queries.jsonl"
    qrels_file = root / "qrels" / f"{split}.tsv"
    missing = [str(p) for p in (corpus, qfile, qrels_file) if not p.is_file()]
    if missing:
        raise EvalError(
            f"not a BEIR-layout collection: missing {', '.join(missing)} "
            "(expected corpus.jsonl, queries.jsonl and qrels/test.tsv)"
        )
    errors: list[str] = []
    qrels: dict[str, dict[str, int]] = {}
    with qrels_file.open(encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or not parts[0].strip():
                if line.strip():
                    errors.append(f"{qrels_file}:{n}: expected query-id<TAB>corpus-id<TAB>score")
                continue
            try:
                score = int(float(parts[2]))
            except ValueError:
                if n > 1:  # the header line
                    errors.append(f"{qrels_file}:{n}: score is not a number")
                continue
            qrels.setdefault(parts[0].strip(), {})[parts[1].strip()] = score
    queries: dict[str, str] = {}
    with qfile.open("rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                obj = orjson.loads(raw)
                qid, text = str(obj["_id"]), str(obj["text"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                errors.append(f"{qfile}:{n}: expected a JSON object with _id and text")
                continue
            if qid in qrels:
                queries[qid] = text
    # Queries with no positive judgement cannot score; ranx would count them as zeros.
    qrels = {q: d for q, d in qrels.items() if q in queries and any(v > 0 for v in d.values())}
    queries = {q: t for q, t in queries.items() if q in qrels}
    if not queries:
        raise EvalError(f"{root}: no judged queries (queries.jsonl ids do not match qrels/{split}.tsv)")
    return Collection(root, corpus, queries, qrels, errors)


@dataclass
class EvalRun:
    mode: str
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    run: dict[str, dict[str, float]]
    queries: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {m: round(self.metrics[m], 4) for m in METRICS}
        d.update(queries=self.queries, mode=self.mode, search_seconds=round(self.seconds, 2))
        return d


def build(
    coll: Collection, data_dir: Path, *, progress: bool = False, vectors: bool = True
) -> dict[str, Any]:
    """Ingest the corpus into `data_dir` and index it (vectors only when a mode needs them).
    Returns the ingest report as a dict."""
    from paperfeed.index import sync
    from paperfeed.ingest import ingest_paths
    from paperfeed.store import open_store

    t0 = time.perf_counter()
    with open_store(data_dir) as store:
        report = ingest_paths(store, [coll.corpus], "beir", progress=progress, source_name=_source(coll))
        sync(store, data_dir, progress=progress, vectors=vectors)
    out = report.to_dict()
    out["index_seconds"] = round(time.perf_counter() - t0, 2)
    return out


def _source(coll: Collection) -> str:
    return f"beir:{coll.name}"


def run_mode(coll: Collection, data_dir: Path, mode: str, *, searcher: Any = None) -> EvalRun:
    from paperfeed.search import Searcher
    from paperfeed.store import open_store

    mode = normalize_mode(mode)
    src = _source(coll)
    with open_store(data_dir) as store:
        s = searcher or Searcher(data_dir, auto_sync=False)
        ext = {
            r: e
            for r, e in store.conn.execute(
                "SELECT paper_rowid, ext_id FROM paper_sources WHERE source = ? AND ext_id IS NOT NULL",
                (src,),
            )
        }
        run: dict[str, dict[str, float]] = {}
        t0 = time.perf_counter()
        for qid, text in coll.queries.items():
            try:
                ranking = s.rank(text, mode=mode, depth=DEPTH, store=store)
            except QueryError:
                ranking = None  # e.g. a query with no letters: it retrieves nothing
            docs: dict[str, float] = {}
            if ranking is not None:
                for r, sc in zip(ranking.rids[:DEPTH], ranking.scores[:DEPTH], strict=False):
                    if r in ext:
                        docs[ext[r]] = float(sc)
            run[qid] = docs
        seconds = time.perf_counter() - t0
    return score_run(coll, mode, run, seconds)


def score_run(coll: Collection, name: str, run: dict[str, dict[str, float]], seconds: float = 0.0) -> EvalRun:
    """Metrics of a run (query id -> document id -> score) against the collection's judgments."""
    from ranx import Qrels, Run, evaluate

    # a query that retrieved nothing still counts (as zeros); ranx needs a document to hold it
    run = {q: (run.get(q) or {"__none__": 0.0}) for q in coll.queries}
    qrels = Qrels(coll.qrels)
    r = Run(run)
    metrics = {m: float(v) for m, v in evaluate(qrels, r, list(METRICS)).items()}
    # ranx keeps the per-query scores on the run after evaluate (metric -> query id -> score).
    per_query = {m: {q: float(v) for q, v in r.scores[m].items()} for m in METRICS}
    return EvalRun(name, metrics, per_query, run, len(coll.queries), seconds)


def compare(a: EvalRun, b: EvalRun) -> dict[str, Any]:
    """Paired tests per metric over the same queries: Student's t and Wilcoxon signed-rank."""
    from scipy import stats

    out: dict[str, Any] = {}
    for m in METRICS:
        qs = sorted(set(a.per_query[m]) & set(b.per_query[m]))
        xa = [a.per_query[m][q] for q in qs]
        xb = [b.per_query[m][q] for q in qs]
        diff = [y - x for x, y in zip(xa, xb, strict=True)]
        t = stats.ttest_rel(xb, xa) if any(diff) else None
        try:
            w = stats.wilcoxon(xb, xa) if any(diff) else None
        except ValueError:
            w = None
        p_t = float(t.pvalue) if t is not None and not math.isnan(t.pvalue) else 1.0
        p_w = float(w.pvalue) if w is not None and not math.isnan(w.pvalue) else 1.0
        out[m] = {
            a.mode: round(a.metrics[m], 4),
            b.mode: round(b.metrics[m], 4),
            "delta": round(b.metrics[m] - a.metrics[m], 4),
            "p_ttest": float(f"{p_t:.3g}"),
            "p_wilcoxon": float(f"{p_w:.3g}"),
            "significant": p_t < 0.05,
            "wins": sum(d > 0 for d in diff),
            "losses": sum(d < 0 for d in diff),
        }
    return out


def evaluate_dir(
    root: Path,
    modes: list[str],
    *,
    progress: bool = False,
    keep: Path | None = None,
    baseline: bool = False,
) -> tuple[Collection, dict[str, Any], list[EvalRun]]:
    """Ingest, index and evaluate one collection in each mode (and, with `baseline`, the plain
    pipeline's four runs after them, named as in `plain.RUNS`)."""
    coll = load_collection(root)
    with tempfile.TemporaryDirectory(prefix="paperfeed-eval-") as tmp:
        data_dir = keep or Path(tmp)
        modes = [normalize_mode(m) for m in modes]
        ingest = build(coll, data_dir, progress=progress, vectors=any(m != "lexical" for m in modes))
        from paperfeed.search import Searcher

        s = Searcher(data_dir, auto_sync=False)
        runs = [run_mode(coll, data_dir, m, searcher=s) for m in modes]
    if baseline:
        from paperfeed.eval.plain import plain_runs

        t0 = time.perf_counter()
        plain = plain_runs(str(coll.corpus), coll.queries)
        seconds = time.perf_counter() - t0
        runs += [score_run(coll, name, run, seconds) for name, run in plain.items()]
    return coll, ingest, runs


def suite_dirs(paths: list[Path], suite: Path | None) -> list[Path]:
    """The collections to evaluate: the directories given, plus every collection under `suite`
    (a folder of BEIR-layout folders), in name order."""
    out = [Path(p) for p in paths]
    if suite is not None:
        if not Path(suite).is_dir():
            raise EvalError(f"--suite {suite}: not a directory")
        found = sorted(d for d in Path(suite).iterdir() if (d / "corpus.jsonl").is_file())
        if not found:
            raise EvalError(f"--suite {suite}: no collections in it (folders with corpus.jsonl)")
        out += found
    if not out:
        raise EvalError("name a collection directory, or a folder of them with --suite")
    return list(dict.fromkeys(out))


def summarize(per_collection: dict[str, list[EvalRun]], reference: str = "plain-wsum") -> dict[str, Any]:
    """For every run name: nDCG@10 per collection, the mean, and, where the reference run is
    there, the ratio to it per collection, their mean (the suite's figure of merit), the
    worst ratio, and a paired test against it per collection."""
    names = list(dict.fromkeys(r.mode for runs in per_collection.values() for r in runs))
    out: dict[str, Any] = {}
    for name in names:
        row: dict[str, Any] = {"ndcg@10": {}, "ratio": {}, "vs_reference": {}}
        for coll, runs in per_collection.items():
            by_name = {r.mode: r for r in runs}
            if name not in by_name:
                continue
            run = by_name[name]
            row["ndcg@10"][coll] = round(run.metrics["ndcg@10"], 4)
            ref = by_name.get(reference)
            if ref is not None and ref.metrics["ndcg@10"] > 0:
                row["ratio"][coll] = round(run.metrics["ndcg@10"] / ref.metrics["ndcg@10"], 4)
                if name != reference:
                    c = compare(ref, run)["ndcg@10"]
                    row["vs_reference"][coll] = {k: c[k] for k in ("delta", "p_ttest", "p_wilcoxon", "wins", "losses")}
        vals = list(row["ndcg@10"].values())
        row["mean_ndcg@10"] = round(sum(vals) / len(vals), 4) if vals else None
        ratios = list(row["ratio"].values())
        if ratios:
            row["mean_ratio"] = round(sum(ratios) / len(ratios), 4)
            row["min_ratio"] = min(ratios)
        out[name] = row
    return out
