"""`paperfeed eval recommend`: recommendation quality by the issue-13 protocol."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson


@click.command(name="recommend")
@click.argument("directories", nargs=-1, type=click.Path(path_type=Path))
@click.option("--suite", type=click.Path(path_type=Path),
              help="A folder of collections (e.g. ../shared/ir): evaluate every one in it.")  # fmt: skip
@click.option("--baseline", is_flag=True,
              help="Also run arxiv-sanity-lite's tf-idf + linear SVM and the MiniLM centroid, in the same run.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep each collection's data directory in DIR/NAME and reuse it on the next run "
                   "(ingest and embedding done once).")  # fmt: skip
@click.option("--why", is_flag=True,
              help="Also measure the explanations: the share of the terms shown with each reader's top 10 "
                   "that the reader's request (never shown to the recommender) contains (JSON: why@10).")  # fmt: skip
@click.option("--library-size", type=click.IntRange(min=1), default=None,
              help="The cold start: each reader's library is the first N of its relevant documents instead of "
                   "half (a query needs N + 1 or more, and at least 4, to be a reader).")  # fmt: skip
@click.option("--similar", is_flag=True,
              help="Measure \"Similar papers\" instead: each reader's library is its first relevant document, "
                   "ranked by that paper's similar papers (and, beside them, by the vector index's nearest "
                   "neighbours alone).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object.")
@click.option("--progress/--no-progress", default=None)
def eval_recommend(directories: tuple[Path, ...], suite: Path | None, baseline: bool, workdir: Path | None,
                   why: bool, library_size: int | None, similar: bool, as_json: bool,
                   progress: bool | None) -> None:  # fmt: skip
    """Measure recommendations on BEIR-layout collections. Every query with at least 4 relevant
    documents is a reader: the first half of its relevant documents (in sha1 order of
    "query:doc") is the library, the rest is held out; the recommender sees only the library and
    ranks every other document. Reports nDCG@10 (binary) and recall@100 averaged over readers."""
    from paperfeed.config import throwaway_sqlite
    from paperfeed.eval import EvalError, suite_dirs
    from paperfeed.eval.recommend import evaluate_recommend, summarize

    if similar and (why or library_size not in (None, 1)):
        raise click.UsageError("--similar measures libraries of one paper without explanations: "
                               "leave out --why and --library-size")  # fmt: skip
    try:
        dirs = suite_dirs(list(directories), suite)
    except EvalError as e:
        raise click.UsageError(str(e)) from None
    show = sys.stderr.isatty() if progress is None else progress
    results: dict[str, dict[str, Any]] = {}
    all_runs: dict[str, list[Any]] = {}
    for directory in dirs:
        try:
            keep = workdir / Path(directory).resolve().name if workdir is not None else None
            with throwaway_sqlite():  # its data directories are throw-away (or --workdir's own)
                coll, runs = evaluate_recommend(
                    directory, baseline=baseline, progress=show, keep=keep, why=why, library_size=library_size,
                    similar=similar,
                )
        except EvalError as e:
            raise click.ClickException(str(e)) from None
        out = runs[0].to_dict()
        if len(runs) > 1:  # the baselines, and with --similar the nearest neighbours alone
            out["baselines"] = {r.name: r.to_dict() for r in runs[1:]}
        name = coll.name if coll.name not in results else str(directory)
        results[name] = out
        all_runs[name] = runs
        if not as_json:
            _print(str(directory), runs)
    summary = summarize(all_runs) if len(dirs) > 1 or baseline else None
    if as_json:
        if len(dirs) == 1:
            click.echo(orjson.dumps(next(iter(results.values()))).decode())
        else:
            click.echo(orjson.dumps({"collections": results, "mean": summary}).decode())
        return
    if summary is not None and len(dirs) > 1:
        _print_summary(all_runs, summary)


def _print(directory: str, runs: list[Any]) -> None:
    from paperfeed.eval.recommend import BASELINES

    click.echo(f"{directory}: {runs[0].users} readers")
    click.echo(f"{'run':<18}{'nDCG@10':>10}{'recall@100':>12}")
    for r in runs:
        click.echo(f"{r.name:<18}{r.ndcg:>10.4f}{r.recall:>12.4f}")
    if runs[0].why is not None:
        click.echo(f"why terms found in the reader's request: {runs[0].why:.3f}")
    best = max((r.ndcg for r in runs[1:] if r.name in BASELINES), default=0.0)
    if best > 0:
        click.echo(f"{runs[0].name} / best baseline: {runs[0].ndcg / best:.3f}")
    click.echo("")


def _print_summary(all_runs: dict[str, list[Any]], summary: dict[str, Any]) -> None:
    colls = list(all_runs)
    names = list(dict.fromkeys(r.name for runs in all_runs.values() for r in runs))
    click.echo("nDCG@10")
    click.echo(f"{'run':<18}" + "".join(f"{c[:10]:>11}" for c in colls) + f"{'mean':>9}")
    for name in names:
        cells = []
        for c in colls:
            by = {r.name: r for r in all_runs[c]}
            cells.append(f"{by[name].ndcg:>11.4f}" if name in by else " " * 11)
        click.echo(f"{name:<18}" + "".join(cells) + f"{summary[name]['ndcg@10']:>9.4f}")
    ratios = summary.get("ratio_to_best_baseline")
    if ratios:
        click.echo(f"{'ratio to best':<18}" + "".join(f"{ratios.get(c, 0):>11.3f}" for c in colls)
                   + f"   min {summary['min_ratio']:.3f}")  # fmt: skip
