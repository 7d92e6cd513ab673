"""The `paperfeed` command: its global options; the subcommands are in `paperfeed.cli.table`."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from paperfeed import __version__
from paperfeed.addresses import printable
from paperfeed.cli.options import data_option
from paperfeed.cli.table import LazyGroup
from paperfeed.config import ConfigError, Settings, resolve_data_dir
from paperfeed.store.engine import StoreUnavailable


@dataclass
class AppContext:
    data_dir: Path
    verbose: bool = False

    def settings(self) -> Settings:
        return Settings.load(self.data_dir)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@data_option
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
