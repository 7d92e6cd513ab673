"""harvest (arxiv, status) and add."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import orjson

from paperfeed.cli.ingest import sync_indexes
from paperfeed.cli.options import json_option, progress_option
from paperfeed.config import Settings
from paperfeed.ingest import harvest as hv
from paperfeed.ingest.harvest import make_client
from paperfeed.ingest.oai import DEFAULT_RETRY_SECONDS, BadInput, HarvestError
from paperfeed.store import harvest as hs
from paperfeed.store import open_store

log = logging.getLogger(__name__)
# one line per request at INFO would drown the harvest's own progress lines
logging.getLogger("httpx").setLevel(logging.WARNING)


def run_harvest(data_dir: Path, settings: Settings, *, url: str | None = None, sets: list[str] | None = None,
                from_: str | None = None, until: str | None = None, delay: float | None = None,
                retry_seconds: float = DEFAULT_RETRY_SECONDS, index: bool = True,
                progress: bool | None = None) -> hv.HarvestReport:  # fmt: skip
    """Harvest under the lock, then bring the indexes up to date. Raises HarvestLocked, or
    BadInput for input that cannot work (before anything is stored)."""
    sets = sets or settings.harvest_sets()
    with hv.harvest_lock(data_dir), make_client(settings, url, delay, retry_seconds) as client, \
            open_store(data_dir) as store, hv.shared_harvest_lock(store):  # fmt: skip
        report = hv.harvest_arxiv(store, client, sets, from_=from_, until=until, progress=progress)
        if index and (report.total("added") or report.total("revised") or report.total("deleted")):
            sync_indexes(store, data_dir, progress)
    return report


# most specific first: both are HarvestErrors
_EXIT_CODES = ((hv.HarvestLocked, 3), (BadInput, 2), (HarvestError, 1))


@contextlib.contextmanager
def _exit_on_error() -> Iterator[None]:
    """A harvest error as one line and an exit status: 3 another harvest runs, 2 input that
    cannot work (nothing stored), 1 a failure the next run recovers from."""
    try:
        yield
    except HarvestError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(next(code for cls, code in _EXIT_CODES if isinstance(e, cls)))


@click.group()
def harvest() -> None:
    """Fetch new and revised papers from live sources (arXiv's OAI-PMH interface)."""


@harvest.command("arxiv")
@click.option("--url", help="OAI-PMH base URL (default: arxiv_oai_url, i.e. https://oaipmh.arxiv.org/oai).")
@click.option("--set", "sets", multiple=True, metavar="SET",
              help="arXiv set, repeatable: cs, math, stat, physics:astro-ph... ('' = all of arXiv; "
                   "default: arxiv_sets, i.e. cs).")
@click.option("--from", "from_", metavar="YYYY-MM-DD",
              help="First datestamp to ask for (default: the day the last run reached, or 3 days ago).")
@click.option("--until", metavar="YYYY-MM-DD", help="Last datestamp to ask for (default: open).")
@click.option("--delay", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Seconds between requests (default: arxiv_oai_delay, 3 as arXiv asks).")
@click.option("--retry-for", type=click.FloatRange(min=0), default=DEFAULT_RETRY_SECONDS, show_default=True,
              metavar="SECONDS", help="Give up after waiting this long in retries of failed requests.")
@click.option("--no-index", is_flag=True, help="Only store; leave the search indexes to catch up later.")
@json_option("Print the summary as JSON.")
@progress_option
@click.pass_obj
def harvest_arxiv_cmd(obj, url, sets, from_, until, delay, retry_for, no_index, as_json, progress) -> None:  # noqa: ANN001
    """Harvest new, revised and deleted arXiv papers over OAI-PMH.

    Each set continues from the last day it fully harvested, so running this from cron
    at any frequency is safe; a second harvest started while one runs exits with status 3.
    Exit status 0 when every set completed, 1 when one failed (it resumes next run),
    2 for input that cannot work (nothing stored).
    """
    settings: Settings = obj.settings()
    with _exit_on_error():
        report = run_harvest(obj.data_dir, settings, url=url, sets=list(sets), from_=from_, until=until,
                             delay=delay, retry_seconds=retry_for, index=not no_index, progress=progress)  # fmt: skip
    if as_json:
        click.echo(orjson.dumps(report.to_dict()).decode())
    for err in report.errors:
        click.echo(f"rejected: {err}", err=True)
    for s in report.sets:
        if s.error:
            click.echo(f"Error: set {s.set_spec or 'all'}: {s.error}", err=True)
        elif not as_json:
            click.echo(f"{s.set_spec or 'all'} {s.from_}..{s.until or 'now'}: added {s.added}, revised {s.revised}, "
                       f"deleted {s.deleted}, unchanged {s.unchanged}, rejected {s.rejected} "
                       f"({s.pages} pages{', resumed' if s.resumed else ''})")  # fmt: skip
    if not report.ok:
        sys.exit(2 if all(s.bad_input for s in report.sets if s.error) else 1)


@harvest.command("status")
@json_option("One JSON object: {\"sets\": [...], \"last_run\": ...}.")
@click.pass_obj
def harvest_status(obj, as_json) -> None:  # noqa: ANN001
    """The last run, the day each set has reached, its counts and its last error."""
    with open_store(obj.data_dir) as store:
        states = hs.list_states(store)
    last = max(states, key=lambda s: s.updated_at, default=None)
    out = {
        "last_run": None if last is None else {
            "set": last.set_spec, "status": last.status, "started_at": last.started_at,
            "finished_at": last.finished_at, "error": last.last_error,
        },
        "sets": [s.to_dict() for s in states],
    }  # fmt: skip
    if as_json:
        click.echo(orjson.dumps(out).decode())
        return
    if not states:
        click.echo("no harvest has run yet")
        return
    for s in states:
        click.echo(f"{s.source} {s.set_spec or 'all'}: harvested until {s.harvested_until or '-'}; last run "
                   f"{s.status} {s.started_at or '-'} .. {s.finished_at or '-'}: added {s.added}, revised {s.revised}, "
                   f"deleted {s.deleted}, unchanged {s.unchanged}"
                   + (f", resumes at record {s.run_cursor}" if s.run_token else ""))  # fmt: skip
        if s.last_error:
            click.echo(f"  last error: {s.last_error}")


@click.command()
@click.argument("ident", metavar="arxiv:ID")
@click.option("--url", help="OAI-PMH base URL (default: arxiv_oai_url).")
@click.option("--no-index", is_flag=True, help="Only store; leave the search indexes to catch up later.")
@json_option("Print the stored paper as JSON.")
@click.pass_obj
def add(obj, ident: str, url: str | None, no_index: bool, as_json: bool) -> None:  # noqa: ANN001
    """Add (or refresh) one paper by id: arxiv:2210.02885, fetched with OAI-PMH GetRecord."""
    settings: Settings = obj.settings()
    with _exit_on_error(), make_client(settings, url, delay=0, retry_seconds=60) as client, \
            open_store(obj.data_dir) as store:  # fmt: skip
        paper, status = hv.add_by_id(store, client, ident)
        if not no_index:
            sync_indexes(store, obj.data_dir, False)
    if as_json:
        click.echo(orjson.dumps({"status": status, "paper": paper.to_dict()}).decode())
    else:
        click.echo(f"{status}: {paper.id}  arxiv:{paper.arxiv_id}  {paper.title}")
