"""`paperfeed db`: migrate, check and copy the store (SQLite or PostgreSQL)."""

from __future__ import annotations

import sys

import click
import orjson

from paperfeed.config import database_url
from paperfeed.store import transfer
from paperfeed.store.engine import StoreUnavailable


@click.group()
def db() -> None:
    """The system of record: SQLite in the data directory, or PostgreSQL (database_url)."""


def _url(obj, given: str | None) -> str:  # noqa: ANN001
    return given if given is not None else database_url(obj.data_dir)


@db.command()
@click.option("--database-url", default=None, help="Default: PAPERFEED_DATABASE_URL / database_url (unset: SQLite).")
@click.pass_obj
def migrate(obj, database_url: str | None) -> None:  # noqa: ANN001
    """Apply the migrations not applied yet (under a lock: safe from several nodes at once)."""
    applied = transfer.migrate(obj.data_dir, _url(obj, database_url))
    click.echo("applied: " + (", ".join(applied) if applied else "nothing, the schema is up to date"))


@db.command()
@click.option("--database-url", default=None, help="Default: PAPERFEED_DATABASE_URL / database_url (unset: SQLite).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.pass_obj
def check(obj, database_url: str | None, as_json: bool) -> None:  # noqa: ANN001
    """Connectivity, schema version and row counts. Exit status 4 when the database is unreachable,
    1 when migrations are pending."""
    url = _url(obj, database_url)
    try:
        report = transfer.check(obj.data_dir, url)
    except StoreUnavailable as exc:
        if as_json:
            click.echo(orjson.dumps({"reachable": False, "error": str(exc)}).decode())
        else:
            click.echo(f"unreachable: {exc}", err=True)
        sys.exit(4)
    if as_json:
        click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(f"{report['engine']}: {report['database']} (reachable)")
        click.echo(f"schema: {report['schema_version']}"
                   + (f", pending: {', '.join(report['pending_migrations'])}" if report["pending_migrations"] else ""))  # fmt: skip
        for table, n in report["rows"].items():
            click.echo(f"  {table}: {n}")
    if report["pending_migrations"]:
        sys.exit(1)


@db.command()
@click.option("--to", "to_url", required=True, help="postgresql://... : an empty PostgreSQL database.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.pass_obj
def copy(obj, to_url: str, as_json: bool) -> None:  # noqa: ANN001
    """Copy the data directory's SQLite store into PostgreSQL and verify every table's row count.
    Stop writers (serve, harvest, digest) first; afterwards set database_url to the new database."""
    try:
        report = transfer.copy(obj.data_dir, to_url)
    except transfer.CopyError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        total = sum(report["rows"].values())
        click.echo(f"copied {total} rows in {len(report['rows'])} tables to {report['to']}; counts verified")
