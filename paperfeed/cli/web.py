"""serve and users."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import click

from paperfeed.config import Settings, is_configured, served_base_url
from paperfeed.store import open_store

log = logging.getLogger(__name__)


def _sync_indexes(data_dir: Path) -> None:
    """Catch the search indexes up with the store before serving (once, not per worker)."""
    from paperfeed.index import sync  # imported here: tantivy and numpy only when serving

    t0 = time.perf_counter()
    try:
        with open_store(data_dir) as store:
            result = sync(store, data_dir, progress=False)
    except Exception:  # the site can serve (with fallback search) even if the catch-up fails
        log.exception("index catch-up failed; serving anyway")
        return
    log.info("index catch-up done in %.1fs: %s", time.perf_counter() - t0, result)


def _run_every(what: str, seconds: float, stop: threading.Event, job: Callable[[], None]) -> None:
    """Run `job` now, then every `seconds`, until `stop` is set.

    The first run is at start-up rather than one interval later, so a server
    restarted more often than its interval (a deploy, a crash loop) still runs it.
    It lives in the `serve` process itself, never in a web worker (uvicorn spawns
    those afresh), so `--workers N` still has one scheduler; each job's own lock
    keeps a second scheduler, or cron running the same command beside it, harmless.
    """
    log.info("%s job scheduled every %gs (pid %d)", what, seconds, os.getpid())
    while not stop.is_set():
        try:
            job()
        except Exception:  # one failed run must not stop later ones
            log.exception("scheduled %s run failed", what)
        stop.wait(seconds)


def _digest_loop(data_dir: Path, seconds: float, stop: threading.Event) -> None:
    """The digest job on a timer; the outbox's UNIQUE (subscription, period) keeps it from
    sending anything twice."""
    from paperfeed.digest import run_scheduled

    def job() -> None:
        # reloaded every run, so an edited config.toml (SMTP password...) needs no restart
        settings = Settings.load(data_dir)
        with open_store(data_dir) as store:
            run_scheduled(store, settings)

    _run_every("digest", seconds, stop, job)


def _harvest_loop(data_dir: Path, seconds: float, stop: threading.Event) -> None:
    """`paperfeed harvest arxiv` on a timer; the indexes are caught up after each run, so new
    papers reach search, the daily page and the next digest without a restart."""
    from paperfeed.cli.harvest import run_harvest
    from paperfeed.ingest.harvest import HarvestLocked
    from paperfeed.ingest.oai import BadInput

    def job() -> None:
        try:
            report = run_harvest(data_dir, Settings.load(data_dir), progress=False)
        except HarvestLocked as e:  # cron, or an operator, is harvesting right now
            log.info("scheduled harvest skipped: %s", e)
            return
        except BadInput as e:
            log.error("scheduled harvest: %s", e)
            return
        for s in report.sets:
            if s.error:
                log.error("scheduled harvest of %s failed (it resumes next run): %s", s.set_spec, s.error)
        log.info("harvest run: added %d, revised %d, deleted %d, unchanged %d in %.1fs",
                 report.total("added"), report.total("revised"), report.total("deleted"), report.total("unchanged"),
                 report.seconds)  # fmt: skip

    _run_every("harvest", seconds, stop, job)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes (they share nothing but the data directory).")
@click.option("--no-sync", is_flag=True, help="Skip the index catch-up at start-up.")
@click.option("--digest-every", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Run the digest job at start-up and then every SECONDS (0 = off); "
                   "overrides digest_interval_minutes.")  # fmt: skip
@click.option("--harvest-every", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Harvest arXiv at start-up and then every SECONDS (0 = off); "
                   "overrides harvest_interval_minutes.")  # fmt: skip
@click.pass_obj
def serve(obj, host: str, port: int, workers: int, no_sync: bool, digest_every: float | None,  # noqa: ANN001
          harvest_every: float | None) -> None:  # fmt: skip
    """Serve the site, the JSON API (/docs) and the feeds.

    With digest_interval_minutes (or --digest-every) set, this process also sends
    the digests: `paperfeed digest send` on a timer, so no cron is needed. With
    harvest_interval_minutes (or --harvest-every) set, it also runs `paperfeed
    harvest arxiv` on a timer.
    """
    for value, hint in ((digest_every, "--digest-every"), (harvest_every, "--harvest-every")):
        if value is not None and 0 < value < 0.1:
            raise click.BadParameter("use 0 (off) or at least 0.1 seconds", param_hint=hint)
    import uvicorn

    data_dir: Path = obj.data_dir
    if not is_configured("base_url", data_dir):
        # absolute links (canonical, feed ids, API urls, mail) must point at this server, not
        # at a default port; set through the environment so workers and schedulers see it too
        os.environ["PAPERFEED_BASE_URL"] = served_base_url(host, port)
        click.echo(f"PAPERFEED_BASE_URL is not set: links in pages, feeds and mail use "
                   f"{os.environ['PAPERFEED_BASE_URL']} (set it to the public address)", err=True)  # fmt: skip
    settings = obj.settings()
    # open once here so migrations run before workers race to apply them
    with open_store(data_dir) as store:
        log.info("serving %s (%d papers) on http://%s:%d", data_dir, store.count(), host, port)
    if not no_sync:
        _sync_indexes(data_dir)
    stop = threading.Event()
    for loop, every, minutes in ((_digest_loop, digest_every, settings.digest_interval_minutes),
                                 (_harvest_loop, harvest_every, settings.harvest_interval_minutes)):  # fmt: skip
        interval = every if every is not None else minutes * 60.0
        if interval > 0:
            threading.Thread(target=loop, args=(data_dir, interval, stop), daemon=True,
                             name=loop.__name__.strip("_").replace("_loop", "-scheduler")).start()  # fmt: skip
    os.environ["PAPERFEED_DATA"] = str(data_dir)
    try:
        uvicorn.run(
            "paperfeed.web.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info" if obj.verbose else "warning",
            access_log=obj.verbose,
            proxy_headers=bool(settings.forwarded_allow_ips),
            forwarded_allow_ips=settings.forwarded_allow_ips or None,
        )
    finally:
        stop.set()


@click.group()
def users() -> None:
    """Manage accounts."""


@users.command("create")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (first line).")
@click.option("--admin", is_flag=True, help="Give the account the admin role (may hide papers).")
@click.pass_obj
def users_create(obj, email: str, password_stdin: bool, admin: bool) -> None:  # noqa: ANN001
    """Create an account (or, with --admin, make an existing one admin)."""
    from paperfeed.store import accounts as acc

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with open_store(obj.data_dir) as store:
        existing = acc.get_user_by_email(store, email)
        if existing is not None and admin:
            acc.set_admin(store, existing.id, True)
            click.echo(f"{existing.email} is now an admin")
            return
        try:
            user = acc.create_user(store, email, password, is_admin=admin)
        except acc.AccountError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"created {user.email}{' (admin)' if user.is_admin else ''}")


@users.command("list")
@click.pass_obj
def users_list(obj) -> None:  # noqa: ANN001
    """List accounts."""
    from paperfeed.addresses import printable
    from paperfeed.store import accounts as acc

    with open_store(obj.data_dir) as store:
        for u in acc.list_users(store):
            # escaped: an address stored before validation got strict may hold ESC sequences
            click.echo(f"{u.id}\t{printable(u.email)}\t{'admin' if u.is_admin else 'user'}\t{u.created_at}")


@users.command("verify")
@click.argument("email")
@click.pass_obj
def users_verify(obj, email: str) -> None:  # noqa: ANN001
    """Mark an account's address as proven (what the mailed link does), e.g. for an
    account the operator created for someone."""
    from paperfeed.addresses import printable
    from paperfeed.store import accounts as acc

    with open_store(obj.data_dir) as store:
        user = acc.get_user_by_email(store, email)
        if user is None:
            raise click.ClickException(f"no account for {printable(email)}")
        acc.mark_email_verified(store, user.id)
    click.echo(f"{user.email} is verified")
