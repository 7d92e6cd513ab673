"""Every command in one table, imported only when run, so `paperfeed papers` starts in
milliseconds and never loads the embedding model.

A subcommand of a group is named "group sub". Adding a command is one line here.
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

import click


class Entry(NamedTuple):
    target: str  # "module:function"
    help: str


COMMANDS: dict[str, Entry] = {
    "ingest": Entry("paperfeed.cli.ingest:ingest", "Import papers from files (seed pages, arXiv snapshot, BEIR, JSONL, CSV)."),
    "papers": Entry("paperfeed.cli.ingest:papers", "List papers, by feed date."),
    "stats": Entry("paperfeed.cli.ingest:stats", "Counts of what is stored."),
    "search": Entry("paperfeed.cli.search:search", "Search papers (hybrid lexical + dense, reranked)."),
    "index": Entry("paperfeed.cli.search:index", "Bring the search indexes up to date with the store, or rebuild them."),
    "eval": Entry("paperfeed.cli.search:eval_", "Measure retrieval quality on a BEIR-layout collection."),
    "serve": Entry("paperfeed.cli.web:serve", "Serve the site and the JSON API."),
    "users": Entry("paperfeed.cli.web:users", "Manage accounts (create an admin, ...)."),
    "subscribe": Entry("paperfeed.cli.digest:subscribe", "Subscribe an address to the trending digest or a saved-search alert."),
    "subscriptions": Entry("paperfeed.cli.digest:subscriptions", "List and confirm subscriptions."),
    "digest": Entry("paperfeed.cli.digest:digest", "Compose and send digests and alerts."),
    "models": Entry("paperfeed.cli.models:models", "Prepare the offline embedding models."),
    "harvest": Entry("paperfeed.cli.harvest:harvest", "Fetch new, revised and deleted papers from arXiv (OAI-PMH); status of past runs."),
    "add": Entry("paperfeed.cli.harvest:add", "Add one paper by id (arxiv:2210.02885)."),
    "db": Entry("paperfeed.cli.db:db", "The database: migrate, check, copy a SQLite store to PostgreSQL."),
    "bench": Entry("paperfeed.cli.bench:bench", "Benchmarks: ingest, search, embedding, at any corpus size."),
    "bench ingest": Entry("paperfeed.cli.bench:bench_ingest", "Time ingesting the arXiv snapshot format."),
    "bench harvest": Entry("paperfeed.cli.bench:bench_harvest", "Time `harvest arxiv` replaying a harvest from a loopback server."),
    "bench search": Entry("paperfeed.cli.search:bench_search", "Search quality and latency benchmarks."),
    "bench web": Entry("paperfeed.cli.bench:bench_web", "HTTP load benchmark of the site and API."),
    "bench mail": Entry("paperfeed.cli.bench:bench_mail", "Digest composition and sending benchmark."),
    "bench mail-kills": Entry("paperfeed.cli.bench:bench_mail_kills", "Mails sent twice per 1,000 SIGKILLs of the digest send job."),
    "bench embed": Entry("paperfeed.cli.bench:bench_embed", "Embedding docs/s, product embedder vs plain sentence-transformers."),
    "bench recommend": Entry("paperfeed.cli.bench:bench_recommend", "\"For you\" latency with a cached model, and the retrain after a save."),
    "bench lighthouse": Entry("paperfeed.cli.bench:bench_lighthouse", "Lighthouse scores of the site's pages in headless Chromium."),
}  # fmt: skip


def load(name: str) -> click.Command:
    """The command named `name` ("bench mail"). One that fails to import is a bug and fails
    loudly (tests import every one)."""
    module, attr = COMMANDS[name].target.split(":")
    return getattr(importlib.import_module(module), attr)


class LazyGroup(click.Group):
    """A group whose subcommands are the table's entries "<its name> <sub>" (the root's: those
    without a space), imported only when run."""

    def __init__(self, *args: object, table_prefix: str = "", **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.table_prefix = table_prefix

    def _names(self) -> dict[str, str]:
        prefix = f"{self.table_prefix} " if self.table_prefix else ""
        return {full[len(prefix):]: full for full in COMMANDS
                if full.startswith(prefix) and " " not in full[len(prefix):]}  # fmt: skip

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self._names())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        full = self._names().get(name)
        return load(full) if full is not None else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Listing help must not import every subcommand (and torch with it).
        names = self._names()
        with formatter.section("Commands"):
            formatter.write_dl([(n, COMMANDS[names[n]].help) for n in sorted(names)])
