"""subscribe, subscriptions, digest: the email commands."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from paperfeed.cli.options import json_option
from paperfeed.store import open_store


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.command()
@click.argument("email")
@click.option("--trending", type=click.Choice(["daily", "weekly"]), help="The trending digest, daily or weekly.")
@click.option("--query", help="A saved search: mail the new papers that match it.")
@click.option("--every", type=click.Choice(["daily", "weekly"]), default="daily", show_default=True,
              help="How often an alert is sent.")  # fmt: skip
@click.option("--category", help="Alerts: only papers in this category.")
@click.option("--author", help="Alerts: only papers with an author containing this.")
@click.option("--source", help="Alerts: only papers from this source.")
@click.option("--no-send", is_flag=True, help="Only queue the confirmation mail; `digest send` sends it.")
@click.pass_obj
def subscribe(obj, email, trending, query, every, category, author, source, no_send) -> None:  # noqa: ANN001
    """Subscribe EMAIL to the trending digest (--trending) or a saved-search alert (--query).

    Double opt-in: a confirmation mail goes out and nothing else is sent until
    its link is clicked (or an operator runs `paperfeed subscriptions confirm`).
    """
    from paperfeed.digest import SubscriptionError, flush_outbox
    from paperfeed.digest import subscribe as do_subscribe

    if trending and query is not None:
        raise click.UsageError("give either --trending or --query, not both")
    if not trending and query is None:
        raise click.UsageError("give --trending daily|weekly or --query TEXT")
    settings = obj.settings()
    with open_store(obj.data_dir) as store:
        try:
            result = do_subscribe(
                store, settings, email, trending=trending, query=query, every=every,
                filters={"category": category, "author": author, "source": source} if query is not None else None,
            )  # fmt: skip
        except SubscriptionError as exc:
            raise _fail(exc) from None
        click.echo(f"subscription {result.subscription.id} ({result.subscription.status}): {result.message}")
        if result.confirm_queued and not no_send:
            report = flush_outbox(store, settings)
            if report.errors or report.retry:
                click.echo(
                    "the mail server did not take the confirmation mail yet; "
                    "`paperfeed digest send` will retry it", err=True,
                )  # fmt: skip


@click.group()
def subscriptions() -> None:
    """List and confirm subscriptions."""


@subscriptions.command("list")
@json_option("One JSON array, for scripts.")
@click.option("--email", help="Only this address.")
@click.option("--status", type=click.Choice(["pending", "active", "unsubscribed"]), help="Only this status.")
@click.pass_obj
def list_cmd(obj, as_json, email, status) -> None:  # noqa: ANN001
    """Every subscription with its status."""
    from paperfeed.store.subscriptions import list_subscriptions

    with open_store(obj.data_dir) as store:
        rows = list_subscriptions(store, email=email, status=status)
    if as_json:
        sys.stdout.write(orjson.dumps([r.to_dict() for r in rows], option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if not rows:
        click.echo("no subscriptions")
        return
    for r in rows:
        click.echo(f"{r.id:>6}  {r.status:<12}  {r.email}  {r.describe()}")


@subscriptions.command("confirm")
@click.argument("email")
@click.pass_obj
def confirm_cmd(obj, email) -> None:  # noqa: ANN001
    """Confirm every pending subscription of EMAIL, as its confirmation link would."""
    from paperfeed.digest import SubscriptionError, confirm_email

    with open_store(obj.data_dir) as store:
        try:
            done = confirm_email(store, email)
        except SubscriptionError as exc:
            raise _fail(exc) from None
    if not done:
        raise click.ClickException(f"no pending subscription for {email}")
    for s in done:
        click.echo(f"confirmed {s.id}: {s.describe()}")


@subscriptions.command("unsubscribe")
@click.argument("email")
@click.pass_obj
def unsubscribe_cmd(obj, email) -> None:  # noqa: ANN001
    """Stop every subscription of EMAIL (for unsubscribe requests that arrive by mail,
    through the List-Unsubscribe mailto address)."""
    from paperfeed.digest import SubscriptionError
    from paperfeed.digest.validate import clean_email
    from paperfeed.store import subscriptions as subs

    try:
        addr = clean_email(email)
    except SubscriptionError as exc:
        raise _fail(exc) from None
    with open_store(obj.data_dir) as store:
        live = [s for s in subs.list_subscriptions(store, email=addr) if s.status != "unsubscribed"]
        for s in live:
            subs.unsubscribe(store, s.id, subs.now_iso())
    if not live:
        click.echo(f"{addr} has no active or pending subscription")
    for s in live:
        click.echo(f"unsubscribed {s.id}: {s.describe()}")


@click.group()
def digest() -> None:
    """Compose and send digests and alerts."""


@digest.command("send")
@click.option("--period", type=click.Choice(["daily", "weekly"]),
              help="Compose only this period's digests (default: both). Mails already in the outbox "
                   "(confirmations, retries) are sent either way.")  # fmt: skip
@click.option("--dry-run", "dry_run", type=click.Path(file_okay=False, path_type=Path),
              help="Write the mails to this folder as .eml files; send and record nothing.")  # fmt: skip
@click.option("--connections", type=click.IntRange(1, 32), default=4, show_default=True,
              help="SMTP connections to send over in parallel.")  # fmt: skip
@json_option("Print the summary as JSON.")
@click.pass_obj
def send_cmd(obj, period, dry_run, connections, as_json) -> None:  # noqa: ANN001
    """Compose the digests due for this period and send everything due.

    Safe from cron at any frequency: each subscription gets one mail per period,
    failed sends are retried with backoff on later runs, and a run that finds
    another one in progress does nothing. Exit status 1 when the mail server
    could not be reached.
    """
    from paperfeed.digest import send_digests

    settings = obj.settings()
    with open_store(obj.data_dir) as store:
        report = send_digests(store, settings, period=period, dry_run=dry_run, connections=connections)
    if as_json:
        sys.stdout.write(orjson.dumps(report.to_dict()).decode() + "\n")
    elif report.locked:
        click.echo("another digest send is running; nothing done")
    elif dry_run is not None:
        click.echo(f"wrote {len(report.written)} mails to {dry_run} (nothing sent or recorded)")
    else:
        click.echo(
            f"composed {report.composed}, sent {report.sent}, deferred {report.retry}, failed {report.failed}, "
            f"nothing new for {report.empty}, waiting to retry {report.waiting}"
        )
    if report.errors:
        for e in dict.fromkeys(report.errors):
            click.echo(f"error: {e}", err=True)
        sys.exit(1)
