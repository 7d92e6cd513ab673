"""ingest, papers, stats."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
import orjson

from paperfeed.cli.options import json_option, progress_option, show_progress
from paperfeed.demo import demo_paths
from paperfeed.ingest import FORMATS, ingest_paths
from paperfeed.store import open_store

log = logging.getLogger(__name__)


def sync_indexes(store, data_dir: Path, progress: bool | None) -> None:  # noqa: ANN001
    """Bring the search indexes up to date."""
    from paperfeed.index import sync  # imported here: `paperfeed papers` never loads the index stack

    sync(store, data_dir, progress=show_progress(progress))


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Input format (detected when omitted).")
@click.option("--year", type=int, help="Year for page dates such as 'Oct 7' (default: this year).")
@click.option("--source", help="Name the source (default: from the file name).")
@click.option("--demo", is_flag=True, help="Ingest the bundled demo corpus (five Daily Papers pages).")
@click.option("--no-index", is_flag=True, help="Only store; leave the search indexes to catch up later.")
@json_option("Print the summary as JSON.")
@progress_option
@click.pass_obj
def ingest(obj, paths, fmt, year, source, demo, no_index, as_json, progress) -> None:  # noqa: ANN001
    """Import papers from PATHS.

    Formats: saved Daily Papers pages (hf-page), the arXiv OAI metadata snapshot
    (arxiv), BEIR corpus.jsonl (beir), and plain JSON lines or CSV with title,
    abstract, authors and date columns. Rejected records are reported with file
    and line; valid ones are kept. Exit status 1 when anything was rejected.
    """
    paths = list(paths) + (demo_paths() if demo else [])
    if not paths:
        raise click.UsageError("give one or more PATHS, or --demo")
    if year is not None and not 1900 <= year <= 2200:
        raise click.BadParameter("expected a year such as 2025", param_hint="--year")
    with open_store(obj.data_dir) as store:
        report = ingest_paths(store, paths, fmt, year=year, progress=progress, source_name=source)
        if not no_index:
            sync_indexes(store, obj.data_dir, progress)
    if as_json:
        click.echo(orjson.dumps(report.to_dict()).decode())
    else:
        for err in report.errors:
            click.echo(f"rejected: {err}", err=True)
        if report.rejected > len(report.errors):
            click.echo(f"... and {report.rejected - len(report.errors)} more rejections", err=True)
        rate = report.records / report.seconds if report.seconds else 0
        click.echo(
            f"added {report.added}, updated {report.updated}, unchanged {report.unchanged}, "
            f"rejected {report.rejected} ({report.seconds:.1f}s, {rate:,.0f} records/s)"
        )
    sys.exit(1 if report.rejected else 0)


@click.command()
@click.option("--date", "feed_date", help="Feed date YYYY-MM-DD (default: all, newest first).")
@click.option("--source", help="Only papers from this source, in page order (e.g. hf-page:000_8dc835357653a6ba).")
@click.option("--limit", type=click.IntRange(1, 100000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@json_option("One JSON array of papers.")
@click.pass_obj
def papers(obj, feed_date, source, limit, offset, as_json) -> None:  # noqa: ANN001
    """List papers by feed date (newest first), or a source page in its order."""
    if feed_date:
        import datetime as dt

        try:
            dt.date.fromisoformat(feed_date)
        except ValueError as e:
            raise click.BadParameter("expected YYYY-MM-DD", param_hint="--date") from e
    with open_store(obj.data_dir) as store:
        rows = store.list_papers(
            feed_date=feed_date, source=source, order="source" if source else "newest", limit=limit, offset=offset
        )
    if as_json:
        click.echo(orjson.dumps([p.to_dict() for p in rows]).decode())
        return
    for p in rows:
        authors = ", ".join(p.authors[:3]) + (" et al." if len(p.authors) > 3 else "")
        click.echo(f"{p.feed_date or '----------'}  {p.id}  {p.title}" + (f"  ({authors})" if authors else ""))


@click.command()
@json_option("Print one JSON object, e.g. {\"papers\": 402, ...}.")
@click.pass_obj
def stats(obj, as_json) -> None:  # noqa: ANN001
    """How many papers, days and sources are stored."""
    with open_store(obj.data_dir) as store:
        out = {
            "papers": store.count(),
            "visible": store.count(include_hidden=False),
            "days": len(store.feed_dates(limit=1_000_000)),
            "sources": dict(store.sources()),
            "max_seq": store.max_seq(),
        }
    if as_json:
        click.echo(orjson.dumps(out).decode())
    else:
        for k, v in out.items():
            click.echo(f"{k}: {v}")
