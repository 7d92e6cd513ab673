"""`paperfeed bench`: the main benchmark, `bench ingest`, and the other concerns' benches."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from paperfeed.cli.main import load_lazy

# subcommands owned by other concerns, imported only when asked for
EXTERNAL: dict[str, str] = {
    "search": "paperfeed.cli.search:bench_search",
    "web": "paperfeed.web.bench:bench_web",
    "mail": "paperfeed.digest.bench:bench_mail",
    "mail-kills": "paperfeed.digest.killbench:bench_mail_kills",
    "embed": "paperfeed.bench.embed:bench_embed_cmd",
}
EXTERNAL_HELP = {
    "search": "Search quality and latency benchmarks.",
    "web": "HTTP load benchmark of the site and API.",
    "mail": "Digest composition and sending benchmark.",
    "mail-kills": "Mails sent twice per 1,000 SIGKILLs of the digest send job.",
    "embed": "Embedding docs/s, product embedder vs plain sentence-transformers.",
}


class BenchGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*self.commands, *EXTERNAL])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        target = EXTERNAL.get(name)
        if target is None:
            return None
        return load_lazy(name, target, EXTERNAL_HELP.get(name, ""), f"bench {name}")

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, self.commands[n].get_short_help_str() if n in self.commands else EXTERNAL_HELP.get(n, ""))
                for n in self.list_commands(ctx)]  # fmt: skip
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _emit(result: dict, as_json: bool) -> None:
    if as_json:
        click.echo(orjson.dumps(result).decode())
    if sys.stderr.isatty() or not as_json:
        from paperfeed.bench.report import table

        click.echo(table(result), err=as_json)


@click.group(cls=BenchGroup, invoke_without_command=True)
@click.option("--papers", type=click.IntRange(100, 10_000_000), default=10_000, show_default=True,
              help="Size of the synthetic corpus.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
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
        result = run_bench(opts)
    except ImportError as e:
        raise click.ClickException(f"the search or embedding part is not available in this build ({e})") from e
    except (RuntimeError, OSError) as e:
        raise click.ClickException(str(e)) from e
    _emit(result, as_json)


@bench.command("ingest")
@click.option("--records", type=click.IntRange(1, 100_000_000), default=1_000_000, show_default=True,
              help="Synthetic arXiv lines to generate.")  # fmt: skip
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Time this arXiv-format file instead of generating one.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the generated file and throw-away data dir go (default: system temp).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True)
def ingest_cmd(records: int, file: Path | None, seed: int, workdir: Path | None, as_json: bool) -> None:
    """Time `paperfeed ingest` of an arXiv OAI snapshot file, in a child process.

    Reports records/s and the importer's peak RSS. The target is 15,000
    records/s (all of arXiv in under 3 minutes) in under 500 MB.
    """
    from paperfeed.bench.ingest import bench_ingest

    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    try:
        result = bench_ingest(records, file, seed, workdir, progress=sys.stderr.isatty())
    except (RuntimeError, OSError) as e:
        raise click.ClickException(str(e)) from e
    _emit(result, as_json)


@bench.command("harvest")
@click.option("--records", type=click.IntRange(1, 10_000_000), default=100_000, show_default=True,
              help="Synthetic arXiv records to serve.")  # fmt: skip
@click.option("--page-size", type=click.IntRange(1, 100_000), default=1000, show_default=True,
              help="Records per ListRecords page (arXiv sends 1,000).")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the throw-away data dir goes (default: system temp).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True)
def harvest_cmd(records: int, page_size: int, seed: int, workdir: Path | None, as_json: bool) -> None:
    """Time `paperfeed harvest arxiv` replaying a large harvest from a loopback OAI-PMH server.

    Reports records/s (without the polite delay) and the harvester's peak RSS. The target
    is 5,000 records/s: parsing and applying must never be what limits a harvest.
    """
    from paperfeed.bench.harvest import bench_harvest

    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    try:
        result = bench_harvest(records, seed, page_size, workdir)
    except (RuntimeError, OSError) as e:
        raise click.ClickException(str(e)) from e
    _emit(result, as_json)


@bench.command("recommend")
@click.option("--papers", type=click.IntRange(100, 10_000_000), default=100_000, show_default=True,
              help="Size of the synthetic corpus.")  # fmt: skip
@click.option("--readers", type=click.IntRange(1, 10_000), default=30, show_default=True,
              help="Libraries (of 10 papers of one topic) to train and serve.")  # fmt: skip
@click.option("--subscribers", type=click.IntRange(0, 1_000_000), default=10_000, show_default=True,
              help="Readers of the digest figure (0: skip it).")  # fmt: skip
@click.option("--day", type=click.IntRange(1, 1_000_000), default=2000, show_default=True,
              help="New papers of the day the digest ranks.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the throw-away data dir goes (default: system temp).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True)
def recommend_cmd(papers: int, readers: int, subscribers: int, day: int, seed: int, workdir: Path | None,
                  as_json: bool) -> None:  # fmt: skip
    """"For you" p95 with a trained model cached (target 150 ms) and the retrain after a save
    (target 1 s), on a synthetic corpus of --papers N; then one day's --day papers ranked for
    --subscribers readers at once, as the digest does (target 2 minutes, 1 GB)."""
    from paperfeed.bench.recommend import bench_recommend

    try:
        result = bench_recommend(papers, readers=readers, subscribers=subscribers, day=day, seed=seed,
                                 workdir=workdir, progress=sys.stderr.isatty())  # fmt: skip
    except (RuntimeError, OSError) as e:
        raise click.ClickException(str(e)) from e
    _emit(result, as_json)
