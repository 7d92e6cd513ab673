"""`paperfeed bench` and its subcommands; what they measure lives in paperfeed.bench, web.bench and digest."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson

from paperfeed.cli.options import json_option
from paperfeed.cli.table import LazyGroup
from paperfeed.config import throwaway_sqlite


def _emit(result: dict, as_json: bool) -> None:
    if as_json:
        click.echo(orjson.dumps(result).decode())
    if sys.stderr.isatty() or not as_json:
        from paperfeed.bench.report import table

        click.echo(table(result), err=as_json)


@click.group(cls=LazyGroup, table_prefix="bench", invoke_without_command=True)
@click.option("--papers", type=click.IntRange(100, 10_000_000), default=10_000, show_default=True,
              help="Size of the synthetic corpus.")  # fmt: skip
@json_option("Print one JSON object on stdout.")
@click.option("--baseline", is_flag=True,
              help="Also run the plain path (sentence-transformers encode, exact NumPy, plain bm25s).")  # fmt: skip
@click.option("--queries", type=click.IntRange(10, 100_000), default=500, show_default=True)
@click.option("--embed-docs", type=click.IntRange(10, 1_000_000), default=2000, show_default=True,
              help="Real-text abstracts embedded for embed_dps.")  # fmt: skip
@click.option("--real-vectors-below", type=click.IntRange(0), default=20_000, show_default=True,
              help="Embed the corpus for real up to this size; above it, dense vectors are synthetic.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the throw-away data dir goes (default: system temp).")  # fmt: skip
@click.option("--keep", is_flag=True, help="Keep the data dir and print where it is.")
@click.pass_context
def bench(ctx: click.Context, papers: int, as_json: bool, baseline: bool, queries: int, embed_docs: int,
          real_vectors_below: int, seed: int, workdir: Path | None, keep: bool) -> None:  # fmt: skip
    """Benchmarks on a synthetic corpus of --papers N, in a throw-away data dir.

    Without a subcommand, runs the whole pipeline (ingest, lexical and vector
    index builds, embedding throughput, search latency per mode, ANN recall,
    memory, index size) and prints the figures; --baseline adds the plain path
    side by side, measured in the same run.
    """
    if ctx.invoked_subcommand is not None:
        return
    from paperfeed.bench.run import BenchOptions, run_bench

    opts = BenchOptions(
        papers=papers, baseline=baseline, queries=queries, embed_docs=embed_docs,
        real_vectors_below=real_vectors_below, seed=seed, workdir=workdir, keep=keep,
        progress=sys.stderr.isatty(),
    )  # fmt: skip
    try:
        with throwaway_sqlite():
            result = run_bench(opts)
    except (RuntimeError, OSError) as e:
        raise click.ClickException(str(e)) from e
    _emit(result, as_json)


@click.command("ingest")
@click.option("--records", type=click.IntRange(1, 100_000_000), default=1_000_000, show_default=True,
              help="Synthetic arXiv lines to generate.")  # fmt: skip
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Time this arXiv-format file instead of generating one.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the generated file and throw-away data dir go (default: system temp).")  # fmt: skip
@click.option("--database-url", default="",
              help="Import into this (empty) PostgreSQL database, then into SQLite for comparison.")  # fmt: skip
@json_option()
def bench_ingest(records: int, file: Path | None, seed: int, workdir: Path | None, database_url: str,
                 as_json: bool) -> None:  # fmt: skip
    """Time `paperfeed ingest` of an arXiv OAI snapshot file, in a child process.

    Reports records/s and the importer's peak RSS. The target is 15,000
    records/s (all of arXiv in under 3 minutes) in under 500 MB.
    """
    from paperfeed.bench.ingest import bench_ingest as run

    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    try:
        result = run(records, file, seed, workdir, progress=sys.stderr.isatty(), database_url=database_url)
    except (RuntimeError, OSError) as e:
        raise click.ClickException(str(e)) from e
    _emit(result, as_json)


@click.command("harvest")
@click.option("--records", type=click.IntRange(1, 10_000_000), default=100_000, show_default=True,
              help="Synthetic arXiv records to serve.")  # fmt: skip
@click.option("--page-size", type=click.IntRange(1, 100_000), default=1000, show_default=True,
              help="Records per ListRecords page (arXiv sends 1,000).")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the throw-away data dir goes (default: system temp).")  # fmt: skip
@json_option()
def bench_harvest(records: int, page_size: int, seed: int, workdir: Path | None, as_json: bool) -> None:
    """Time `paperfeed harvest arxiv` replaying a large harvest from a loopback OAI-PMH server.

    Reports records/s (without the polite delay) and the harvester's peak RSS. The target
    is 5,000 records/s: parsing and applying must never be what limits a harvest.
    """
    from paperfeed.bench.harvest import bench_harvest

    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    try:
        with throwaway_sqlite():
            result = bench_harvest(records, seed, page_size, workdir)
    except (RuntimeError, OSError) as e:
        raise click.ClickException(str(e)) from e
    _emit(result, as_json)


@click.command("web")
@click.option("--use-data", is_flag=True,
              help="Benchmark the --data directory as it is (default: a fresh copy of the demo seed corpus).")  # fmt: skip
@click.option("--requests", "n", type=click.IntRange(10, 100_000), default=200, show_default=True,
              help="Sequential requests per page for the server-time figures.")  # fmt: skip
@click.option("--clients", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--seconds", type=click.FloatRange(1, 600), default=15, show_default=True, help="Load run length.")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True, help="Server worker processes.")
@click.option("--database-url", default=None,
              help="An empty PostgreSQL database: load 2 nodes sharing it, beside one SQLite node, in one run.")  # fmt: skip
@json_option("Print the figures as JSON.")
@click.pass_obj
def bench_web(obj: Any, use_data: bool, n: int, clients: int, seconds: float, workers: int,
              database_url: str | None, as_json: bool) -> None:  # fmt: skip
    """Server time (p50/p95, warm) of the daily page and search pages, then N concurrent clients."""
    import contextlib

    from paperfeed.web.bench import bench_web as run

    # --use-data measures the data directory with its own store; the demo copy is throw-away
    with contextlib.nullcontext() if use_data else throwaway_sqlite():
        run(obj.data_dir, use_data, n, clients, seconds, workers, as_json, database_url)


@click.command("mail")
@click.option("--mails", default=10_000, show_default=True, help="Subscriptions, so digests to compose and send.")
@click.option("--papers", "paper_counts", default="402,100000", show_default=True,
              help="Store sizes to run at, comma-separated (402 = just the seed pages).")  # fmt: skip
@click.option("--new", "new_window", default=2000, show_default=True,
              help="Papers that are new for every alert (the last day's ingest).")  # fmt: skip
@click.option("--connections", default=4, show_default=True, type=click.IntRange(1, 32),
              help="Parallel SMTP connections, as `digest send --connections`.")  # fmt: skip
@click.option("--sink-delay-ms", default=0.0, show_default=True, type=click.FloatRange(0, 10_000),
              help="Delay the sink's answer to each mail, like a remote relay.")  # fmt: skip
@json_option("Print the results as JSON.")
def bench_mail(mails: int, paper_counts: str, new_window: int, connections: int, sink_delay_ms: float,
               as_json: bool) -> None:  # fmt: skip
    """Compose and send N digests to a local aiosmtpd sink: mails/s, peak RSS, and
    how mail time changes with the size of the store."""
    from paperfeed.digest.bench import bench_mail as run

    with throwaway_sqlite():
        run(mails, paper_counts, new_window, connections, sink_delay_ms, as_json)


@click.command("mail-kills")
@click.option("--kills", default=1000, show_default=True, type=click.IntRange(1, 1_000_000),
              help="Rounds of send, SIGKILL at a random moment, send again.")  # fmt: skip
@click.option("--mails", default=40, show_default=True, type=click.IntRange(1, 100_000),
              help="Digests sent (and resent) in each round.")  # fmt: skip
@click.option("--connections", default=4, show_default=True, type=click.IntRange(1, 32),
              help="Parallel SMTP connections, as `digest send --connections`.")  # fmt: skip
@click.option("--sink-delay-ms", default=0.0, show_default=True, type=click.FloatRange(0, 10_000),
              help="Delay the sink's answer to each mail, like a remote relay.")  # fmt: skip
@click.option("--seed", default=0, show_default=True, type=int)
@json_option("Print the result as JSON.")
def bench_mail_kills(kills: int, mails: int, connections: int, sink_delay_ms: float, seed: int,
                     as_json: bool) -> None:  # fmt: skip
    """Mails sent twice per 1,000 SIGKILLs of the send job (each followed by a rerun)."""
    from paperfeed.digest.killbench import bench_mail_kills as run

    with throwaway_sqlite():
        run(kills, mails, connections, sink_delay_ms, seed, as_json)


@click.command("embed")
@click.option("--docs", type=click.IntRange(16, 1_000_000), default=2000, show_default=True,
              help="Real-text abstracts embedded per run (seed pages + arXiv sample, then synthetic).")  # fmt: skip
@click.option("--rounds", type=click.IntRange(1, 100), default=2, show_default=True,
              help="Alternating product/plain rounds; figures are medians.")  # fmt: skip
@click.option("--embedder", default="default", show_default=True,
              help="Product backend to measure (see `paperfeed models list`).")  # fmt: skip
@json_option("Print one JSON object on stdout.")
def bench_embed(docs: int, rounds: int, embedder: str, as_json: bool) -> None:
    """Embedding docs/s: the product embedder vs plain sentence-transformers, same texts,
    alternating runs in one process, with the cosine of their vectors."""
    from paperfeed.bench.embed import bench_embed_report

    bench_embed_report(docs, rounds, embedder, as_json)


@click.command("recommend")
@click.option("--papers", type=click.IntRange(100, 10_000_000), default=100_000, show_default=True,
              help="Size of the synthetic corpus.")  # fmt: skip
@click.option("--readers", type=click.IntRange(1, 10_000), default=30, show_default=True,
              help="Libraries (of 10 papers of one topic) to train and serve.")  # fmt: skip
@click.option("--subscribers", type=click.IntRange(0, 1_000_000), default=10_000, show_default=True,
              help="Readers of the digest figure (0: skip it).")  # fmt: skip
@click.option("--day", type=click.IntRange(1, 1_000_000), default=2000, show_default=True,
              help="New papers of the day the digest ranks.")  # fmt: skip
@click.option("--cold-subscribers", type=click.IntRange(0, 1_000_000), default=300, show_default=True,
              help="Readers of the cold digest figure, whose models must all be trained (0: skip it).")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the throw-away data dir goes (default: system temp).")  # fmt: skip
@json_option("Print one JSON object on stdout.")
def bench_recommend(papers: int, readers: int, subscribers: int, day: int, cold_subscribers: int, seed: int,
                    workdir: Path | None, as_json: bool) -> None:  # fmt: skip
    """"For you" p95 with a trained model cached (target 150 ms) and the retrain after a save
    (target 1 s), on a synthetic corpus of --papers N; then one day's --day papers ranked for
    --subscribers readers at once, and the For-you mail composed end to end for them in a child
    process, their models stored (target 2 minutes, 1 GB), and for --cold-subscribers more whose
    models must all be trained."""
    from paperfeed.bench.recommend import bench_recommend as run

    try:
        with throwaway_sqlite():
            result = run(papers, readers=readers, subscribers=subscribers, day=day, seed=seed, workdir=workdir,
                         progress=sys.stderr.isatty(), cold_subscribers=cold_subscribers)  # fmt: skip
    except (RuntimeError, OSError) as e:
        raise click.ClickException(str(e)) from e
    _emit(result, as_json)


@click.command("lighthouse")
@click.option("--url", help="A running site's page (default: the home page of a throw-away demo server).")
@click.option("--path", "paths", multiple=True, default=["/"], show_default=True,
              help="Page(s) of the demo server to score; repeatable.")  # fmt: skip
@click.option("--min-score", type=click.IntRange(0, 100), default=0, show_default=True,
              help="Exit with status 1 when a category scores below this.")  # fmt: skip
@json_option("Print the scores as JSON.")
def bench_lighthouse(url: str | None, paths: tuple[str, ...], min_score: int, as_json: bool) -> None:
    """Lighthouse scores (performance, accessibility, best practices, SEO) of the site's pages."""
    import logging

    from paperfeed.bench.lighthouse import LighthouseMissing, score_pages

    logging.getLogger("httpx").setLevel(logging.WARNING)  # the readiness polls are noise here
    try:
        with throwaway_sqlite():  # the demo server's store (a --url site is measured over HTTP only)
            results = score_pages(url, paths)
    except LighthouseMissing as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(orjson.dumps(results).decode())
    else:
        for target, r in results.items():
            click.echo(f"{target}  (Lighthouse {r['lighthouse']})")
            for k, v in r["scores"].items():
                click.echo(f"  {k:15} {v:3d}")
            for a in r["failed_audits"]:
                click.echo(f"    - {a}")
    low = [f"{t} {k} {v}" for t, r in results.items() for k, v in r["scores"].items() if v < min_score]
    if low:
        raise click.ClickException(f"below {min_score}: " + "; ".join(low))
