"""search, index, eval, and the search latency benchmark (mounted as `paperfeed bench search`)."""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

import click
import orjson

from paperfeed.cli.options import json_option, progress_option, show_progress

MODE_CHOICE = click.Choice(["best", "hybrid", "lexical", "dense"], case_sensitive=False)


@click.command()
@click.argument("query", nargs=-1, required=True)
@click.option("--mode", type=MODE_CHOICE, default="best", show_default=True, help="Retrieval pipeline.")
@click.option("--limit", type=click.IntRange(1, 200), default=10, show_default=True)
@click.option("--offset", type=click.IntRange(0, 1000), default=0, help="Skip this many hits (pagination).")
@click.option("--since", help="Only papers dated on or after YYYY-MM-DD (or YYYY-MM, YYYY).")
@click.option("--until", help="Only papers dated on or before YYYY-MM-DD (or YYYY-MM, YYYY).")
@click.option("--category", help="Only papers in this arXiv category, e.g. cs.CL (comma-separated: any of).")
@click.option("--author", help="Only papers with an author matching this name.")
@click.option("--source", help="Only papers from this source, e.g. hf-page:000_8dc835357653a6ba.")
@json_option("Print a JSON list of hits (id, title, score, snippet, ...).")
@click.pass_context
def search(ctx: click.Context, query: tuple[str, ...], mode: str, limit: int, offset: int, since: str | None,
           until: str | None, category: str | None, author: str | None, source: str | None,
           as_json: bool) -> None:  # fmt: skip
    """Search papers. Quote "exact phrases"; -word excludes a word."""
    from paperfeed.search import QueryError, open_searcher
    from paperfeed.store import open_store, store_exists

    data_dir: Path = ctx.obj.data_dir
    text = " ".join(query)
    if not store_exists(data_dir):
        raise click.ClickException(f"no papers in {data_dir} yet: run `paperfeed ingest FILE...` first")
    with open_store(data_dir) as store:
        try:
            searcher = open_searcher(data_dir, store)
            res = searcher.search(text, store=store, mode=mode, limit=limit, offset=offset, since=since,
                                  until=until, category=category, author=author, source=source)  # fmt: skip
        except QueryError as e:
            raise click.UsageError(str(e)) from None
        except ValueError as e:
            from paperfeed.index.sync import problems

            # a damaged index file surfaces as tantivy's ValueError: say which, and the fix
            found = problems(data_dir, deep=True)
            if found:
                raise click.ClickException(found[0]) from e
            raise
    if as_json:
        click.echo(orjson.dumps([h.to_dict() for h in res.hits]).decode())
        return
    for note in res.notes:
        click.echo(f"note: {note}", err=True)
    if not res.hits:
        click.echo("no results")
        return
    import html
    import re

    for h in res.hits:
        p = h.paper
        date = p.published or p.feed_date or "----------"
        click.echo(f"{h.rank:>3}. {click.style(p.title, bold=True)}  [{date}]  {p.id}  score {h.score:.3f}")
        snip = re.sub(r"</?mark>", "", h.snippet) if not sys.stdout.isatty() else h.snippet.replace(
            "<mark>", "\x1b[1;33m").replace("</mark>", "\x1b[0m")  # fmt: skip
        click.echo("     " + html.unescape(snip))
    shown = f"{res.offset + 1}-{res.offset + len(res.hits)}"
    click.echo(f"({shown} of {res.total} ranked, {res.mode}, {res.took_ms:.0f} ms)", err=True)


@click.command()
@click.option("--rebuild", is_flag=True, help="Delete the indexes and recreate them from the store.")
@click.option(
    "--status", "show_status", is_flag=True, help="Only say how far behind the store the indexes are."
)
@click.option("--no-vectors", is_flag=True, help="Only the lexical index (embed later: it resumes).")
@progress_option
@json_option()
@click.pass_context
def index(ctx: click.Context, rebuild: bool, show_status: bool, no_vectors: bool, progress: bool | None,
          as_json: bool) -> None:  # fmt: skip
    """Bring the search indexes up to date with the store (resumable), or --rebuild them."""
    from paperfeed.index import status, sync
    from paperfeed.store import open_store

    data_dir: Path = ctx.obj.data_dir
    with open_store(data_dir) as store:
        if show_status:
            out = status(store, data_dir)
            click.echo(
                orjson.dumps(out).decode() if as_json else "\n".join(f"{k}: {v}" for k, v in out.items())
            )
            return
        try:
            report = sync(store, data_dir, show_progress(progress), vectors=not no_vectors, rebuild=rebuild)
        except KeyboardInterrupt:
            raise click.ClickException(
                "stopped; run `paperfeed index` again to resume where it left off"
            ) from None
    if as_json:
        click.echo(orjson.dumps(report.to_dict()).decode())
    else:
        click.echo(
            f"lexical: {report.lexical_indexed} indexed, {report.lexical_removed} removed; vectors: "
            f"{report.embedded} embedded, {report.embed_skipped} unchanged, {report.vectors_removed} removed"
            + (f"; rebuilt {', '.join(report.rebuilt)}" if report.rebuilt else "")
            + f" ({report.seconds:.1f}s)"
        )


class EvalCommand(click.Command):
    """`eval DIR...` measures search; `eval recommend DIR...` measures recommendations (its own
    options), so the word "recommend" in first place hands the rest of the line to that command."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:  # fmt: skip
        if args and args[0] == "recommend":
            from paperfeed.cli.recommend import eval_recommend

            return eval_recommend.make_context(f"{info_name} recommend", args[1:], parent=parent, **extra)
        return super().make_context(info_name, args, parent=parent, **extra)


@click.command(name="eval", cls=EvalCommand)
@click.argument("directories", nargs=-1, type=click.Path(path_type=Path))
@click.option("--suite", type=click.Path(path_type=Path),
              help="A folder of collections (e.g. ../shared/ir): evaluate every one in it.")  # fmt: skip
@click.option("--mode", type=MODE_CHOICE, default="best", show_default=True, help="Retrieval pipeline to measure.")
@click.option(
    "--compare", "compare_modes", help="Two modes M1,M2: both runs plus a paired significance test."
)
@click.option("--all-modes", is_flag=True, help="Evaluate every mode.")
@click.option("--baseline", is_flag=True,
              help="Also run the plain pipeline (bm25s, plain sentence-transformers, RRF and weighted-sum "
                   "fusion) and compare every mode with its weighted sum, per collection.")  # fmt: skip
@json_option("Print exactly one JSON object.")
@progress_option
def eval_(directories: tuple[Path, ...], suite: Path | None, mode: str, compare_modes: str | None,
          all_modes: bool, baseline: bool, as_json: bool, progress: bool | None) -> None:  # fmt: skip
    """Measure retrieval quality on BEIR-layout collections (corpus.jsonl, queries.jsonl,
    qrels/test.tsv): nDCG@10, MAP@100, Recall@100, MRR@10. Each corpus is ingested and indexed
    into a throw-away data directory through the normal ingest and index path, and each query is
    searched exactly as a user typed it. With several collections, the summary gives each
    mode's nDCG@10 per collection and the mean; with --baseline, its ratio to the plain
    pipeline's weighted sum per collection, the mean of those ratios, and a paired test.

    `paperfeed eval recommend DIR... [--suite DIR] [--baseline] [--json]` measures the
    recommender instead (see `paperfeed eval recommend --help`)."""
    from paperfeed.config import throwaway_sqlite
    from paperfeed.eval import METRICS, EvalError, compare, evaluate_dir, suite_dirs, summarize
    from paperfeed.search.query import QueryError, normalize_mode

    try:
        if compare_modes:
            modes = [normalize_mode(m) for m in compare_modes.split(",") if m.strip()]
            if len(modes) != 2:
                raise click.BadParameter("expected two modes, e.g. hybrid,best", param_hint="--compare")
        elif all_modes:
            modes = ["lexical", "dense", "hybrid", "best"]
        else:
            modes = [normalize_mode(mode)]
    except QueryError as e:
        raise click.BadParameter(str(e), param_hint="--compare") from None
    try:
        dirs = suite_dirs(list(directories), suite)
    except EvalError as e:
        raise click.UsageError(str(e)) from None
    results: dict[str, dict[str, Any]] = {}
    all_runs: dict[str, list[Any]] = {}
    for directory in dirs:
        try:
            with throwaway_sqlite():  # its data directory is throw-away
                coll, ingest, runs = evaluate_dir(directory, modes, progress=show_progress(progress),
                                                  baseline=baseline)  # fmt: skip
        except EvalError as e:
            raise click.ClickException(str(e)) from None
        rejected = ingest.get("rejected", 0)
        if not as_json:
            for err in coll.errors + ingest.get("errors", []):
                click.echo(f"rejected: {err}", err=True)
        out: dict[str, Any] = dict(runs[0].to_dict())
        out.update(collection=str(directory), documents=ingest.get("added", 0), rejected=rejected,
                   index_seconds=ingest.get("index_seconds"))  # fmt: skip
        if rejected or coll.errors:
            out["errors"] = (coll.errors + ingest.get("errors", []))[:100]
        if len(runs) > 1:
            out["modes"] = {r.mode: r.to_dict() for r in runs}
        if compare_modes:
            out["compare"] = compare(runs[0], runs[1])
        name = coll.name if coll.name not in results else str(directory)
        results[name] = out
        all_runs[name] = runs
        if not as_json:
            _print_collection(directory, out, runs, METRICS, bool(compare_modes))
    summary = summarize(all_runs) if len(dirs) > 1 or baseline else None
    if as_json:
        if len(dirs) == 1:
            single = next(iter(results.values()))
            if summary is not None:
                single["summary"] = summary
            click.echo(orjson.dumps(single).decode())
        else:
            click.echo(orjson.dumps({"collections": results, "summary": summary}).decode())
        return
    if summary is not None:
        _print_summary(summary)


def _print_collection(directory: Path, out: dict[str, Any], runs: list[Any], metrics: tuple[str, ...],
                      compared: bool) -> None:  # fmt: skip
    rejected = out["rejected"]
    click.echo(f"{directory}: {out['documents']} documents, {runs[0].queries} judged queries"
               + (f", {rejected} corpus lines rejected" if rejected else ""))  # fmt: skip
    click.echo(f"{'mode':<11}" + "".join(f"{m:>12}" for m in metrics))
    for r in runs:
        click.echo(f"{r.mode:<11}" + "".join(f"{r.metrics[m]:>12.4f}" for m in metrics))
    if compared:
        a, b = runs[:2]
        click.echo(f"\npaired tests, {b.mode} vs {a.mode} ({a.queries} queries):")
        for m, c in out["compare"].items():
            sig = "significant" if c["significant"] else "not significant"
            click.echo(f"  {m:<11} delta {c['delta']:+.4f}  t-test p={c['p_ttest']:.4g}  "
                       f"wilcoxon p={c['p_wilcoxon']:.4g}  ({sig} at 0.05; {c['wins']} wins, {c['losses']} losses)")  # fmt: skip
    click.echo("")


def _print_summary(summary: dict[str, Any]) -> None:
    colls = list(dict.fromkeys(c for row in summary.values() for c in row["ndcg@10"]))
    click.echo("nDCG@10" + (" (ratio to plain-wsum)" if any(r["ratio"] for r in summary.values()) else ""))
    click.echo(f"{'mode':<11}" + "".join(f"{c[:12]:>16}" for c in colls) + f"{'mean':>10}{'mean ratio':>12}{'min':>8}")
    for name, row in summary.items():
        cells = []
        for c in colls:
            v = row["ndcg@10"].get(c)
            r = row["ratio"].get(c)
            cells.append(f"{'' if v is None else f'{v:.3f}'}{'' if r is None else f' ({r:.2f})'}".rjust(16))
        mr = row.get("mean_ratio")
        click.echo(f"{name:<11}" + "".join(cells) + f"{row['mean_ndcg@10']:>10.4f}"
                   + (f"{mr:>12.3f}{row['min_ratio']:>8.3f}" if mr is not None else ""))  # fmt: skip
    for name, row in summary.items():
        tests = row["vs_reference"]
        if not tests:
            continue
        click.echo(f"{name} vs plain-wsum, paired t-test p per collection: "
                   + ", ".join(f"{c} {t['delta']:+.3f} p={t['p_ttest']:.3g}" for c, t in tests.items()))  # fmt: skip




BENCH_QUERIES = [
    "effective rank", "weighting vectors", "importance reweighting", "dense retrieval",
    "low-rank adaptation of large language models", '"vector quantization"', "graph neural networks",
    "contrastive learning for sentence embeddings", "reinforcement learning from human feedback",
    "diffusion transformers", "mixture of experts", "retrieval augmented generation evaluation",
]  # fmt: skip


def _bench_queries(store: Any, n: int, seed: int = 7) -> list[str]:
    """Fixed queries plus title fragments of stored papers (2-6 words), deterministic. A fragment
    that search would refuse ("of the": only common words) is skipped: it times nothing."""
    from paperfeed.search.query import QueryError, parse_query

    rng = random.Random(seed)
    titles = [r[0] for r in store.conn.execute("SELECT title FROM papers ORDER BY rowid LIMIT 5000")]
    titles = [t for t in titles if len(t.split()) >= 2]
    out = list(BENCH_QUERIES)
    for _ in range(20 * n):  # bounded: a corpus of nothing but refused fragments still ends
        if len(out) >= n or not titles:
            break
        words = rng.choice(titles).split()
        k = rng.randint(2, min(6, len(words)))
        i = rng.randint(0, len(words) - k)
        fragment = " ".join(words[i : i + k])
        try:
            parse_query(fragment)
        except QueryError:
            continue
        out.append(fragment)
    return out[:n]


@click.command(name="search")
@click.option("--queries", "n_queries", type=click.IntRange(10, 100000), default=200, show_default=True)
@click.option("--modes", default="lexical,dense,hybrid,best", show_default=True, help="Pipelines to time, comma-separated.")
@click.option("--demo/--no-demo", default=None,
              help="Benchmark on the bundled seed corpus in a temporary directory (default: when the data dir is empty).")  # fmt: skip
@json_option()
@click.pass_context
def bench_search(ctx: click.Context, n_queries: int, modes: str, demo: bool | None, as_json: bool) -> None:
    """Warm search latency per mode (p50/p95/p99 ms), model loaded, over a fixed query set."""
    import tempfile

    from paperfeed.index import sync
    from paperfeed.search import open_searcher
    from paperfeed.store import open_store, store_exists

    mode_list = [m.strip() for m in modes.split(",") if m.strip()]
    data_dir: Path = ctx.obj.data_dir
    tmp = None
    url = None  # the data directory's own store (PAPERFEED_DATABASE_URL / database_url)
    if demo or (demo is None and not store_exists(data_dir)):
        from paperfeed.demo import demo_paths
        from paperfeed.ingest import ingest_paths

        tmp = tempfile.TemporaryDirectory(prefix="paperfeed-bench-")
        data_dir = Path(tmp.name)
        url = ""  # the demo corpus goes into a throw-away SQLite store, never the configured database
        with open_store(data_dir, database_url=url) as store:
            ingest_paths(store, demo_paths())
            sync(store, data_dir)
    try:
        with open_store(data_dir, database_url=url) as store:
            searcher = open_searcher(data_dir, store)
            queries = _bench_queries(store, n_queries)
            out: dict[str, Any] = {"papers": store.count(), "queries": len(queries), "search_ms": {}}
            for mode in mode_list:
                for q in queries[:10]:  # warm-up: model, caches of the OS and tantivy
                    searcher._rcache.clear()
                    searcher.search(q, store=store, mode=mode, limit=10)
                lat = []
                for q in queries:
                    # No result cache and no query-vector cache: every search does the full work.
                    searcher._rcache.clear()
                    searcher._qcache.clear()
                    t0 = time.perf_counter()
                    searcher.search(q, store=store, mode=mode, limit=10)
                    lat.append((time.perf_counter() - t0) * 1000)
                lat.sort()
                out["search_ms"][mode] = {
                    "p50": round(_pct(lat, 50), 2), "p95": round(_pct(lat, 95), 2),
                    "p99": round(_pct(lat, 99), 2), "mean": round(sum(lat) / len(lat), 2),
                }  # fmt: skip
    finally:
        if tmp is not None:
            tmp.cleanup()
    if as_json:
        click.echo(orjson.dumps(out).decode())
        return
    click.echo(f"{out['papers']} papers, {out['queries']} queries, warm, limit 10 with snippets")
    click.echo(f"{'mode':<9}{'p50':>9}{'p95':>9}{'p99':>9}{'mean':>9}  (ms)")
    for m, v in out["search_ms"].items():
        click.echo(f"{m:<9}{v['p50']:>9.2f}{v['p95']:>9.2f}{v['p99']:>9.2f}{v['mean']:>9.2f}")


def _pct(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[i]
