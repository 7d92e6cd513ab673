"""The `paperfeed` command. Subcommands are imported only when used, so that
`paperfeed papers` starts in milliseconds and never loads the embedding model."""

from __future__ import annotations

import importlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from paperfeed import __version__
from paperfeed.addresses import printable
from paperfeed.config import ConfigError, Settings, resolve_data_dir
from paperfeed.store.engine import StoreUnavailable

# name -> "module:attribute"; each concern owns its own CLI module
COMMANDS: dict[str, str] = {
    "ingest": "paperfeed.cli.ingest:ingest",
    "papers": "paperfeed.cli.ingest:papers",
    "stats": "paperfeed.cli.ingest:stats",
    "search": "paperfeed.cli.search:search",
    "index": "paperfeed.cli.search:index",
    "eval": "paperfeed.cli.search:eval",
    "serve": "paperfeed.cli.web:serve",
    "users": "paperfeed.cli.web:users",
    "subscribe": "paperfeed.cli.digest:subscribe",
    "subscriptions": "paperfeed.cli.digest:subscriptions",
    "digest": "paperfeed.cli.digest:digest",
    "bench": "paperfeed.cli.bench:bench",
    "models": "paperfeed.cli.models:models",
    "harvest": "paperfeed.cli.harvest:harvest",
    "add": "paperfeed.cli.harvest:add",
    "db": "paperfeed.cli.db:db",
}

HELP = {
    "ingest": "Import papers from files (seed pages, arXiv snapshot, BEIR, JSONL, CSV).",
    "papers": "List papers, by feed date.",
    "stats": "Counts of what is stored.",
    "search": "Search papers (hybrid lexical + dense, reranked).",
    "index": "Bring the search indexes up to date with the store, or rebuild them.",
    "eval": "Measure retrieval quality on a BEIR-layout collection.",
    "serve": "Serve the site and the JSON API.",
    "users": "Manage accounts (create an admin, ...).",
    "subscribe": "Subscribe an address to the trending digest or a saved-search alert.",
    "subscriptions": "List and confirm subscriptions.",
    "digest": "Compose and send digests and alerts.",
    "bench": "Benchmarks: ingest, search, embedding, at any corpus size.",
    "models": "Prepare the offline embedding models.",
    "harvest": "Fetch new, revised and deleted papers from arXiv (OAI-PMH); status of past runs.",
    "add": "Add one paper by id (arxiv:2210.02885).",
    "db": "The database: migrate, check, copy a SQLite store to PostgreSQL.",
}


@dataclass
class AppContext:
    data_dir: Path
    verbose: bool = False

    def settings(self) -> Settings:
        return Settings.load(self.data_dir)


def load_lazy(name: str, target: str, help_text: str, label: str | None = None) -> click.Command:
    """Import the command at "module:attr" when it is run, so `paperfeed papers` never imports
    torch. A command that fails to import is a bug and fails loudly (tests import every one)."""
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        return load_lazy(name, target, HELP.get(name, ""))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Listing help must not import every subcommand (and torch with it).
        rows = [(name, HELP.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data directory (env PAPERFEED_DATA; default ./paperfeed-data).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.version_option(__version__, prog_name="paperfeed")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, verbose: bool) -> None:
    """paperfeed: a self-hosted research-paper discovery service.

    All state lives in one data directory. Start with `paperfeed ingest FILE...`,
    then `paperfeed serve`.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(EscapeHidden())
    ctx.obj = AppContext(data_dir=resolve_data_dir(data_dir), verbose=verbose)


class EscapeHidden(logging.Filter):
    """Writes control and format characters in log messages as escapes: a sign-up address
    or a query holding ESC sequences, NUL or a right-to-left override otherwise reaches the
    operator's terminal raw, and a line break in one forges a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        shown = printable(message)
        if shown != message:
            record.msg, record.args = shown, None
        return True


def main() -> None:
    try:
        cli(prog_name="paperfeed")
    except ConfigError as exc:
        # a bad setting is the user's to fix: say which, not where in our code it was read
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    except StoreUnavailable as exc:
        # the database server is down or unreachable: nothing was changed, a rerun later works
        click.echo(f"Error: {exc}. Nothing was done; run the command again once it is back.", err=True)
        sys.exit(4)
    except Exception as exc:
        # imported only now: the index package loads tantivy, which most commands never need
        from paperfeed.index.damage import IndexDamaged

        if not isinstance(exc, IndexDamaged):
            raise
        # any command that reads the index (index, search, ingest) names the one fix
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
