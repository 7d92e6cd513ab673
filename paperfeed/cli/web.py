"""serve and users."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path

import click

from paperfeed.store import open_store

log = logging.getLogger(__name__)


def _sync_indexes(data_dir: Path) -> None:
    """Catch the search indexes up with the store before serving (once, not per worker)."""
    try:
        from paperfeed.index import sync
    except ImportError:
        log.info("search index package not installed; search uses the substring fallback")
        return
    t0 = time.perf_counter()
    try:
        with open_store(data_dir) as store:
            result = sync(store, data_dir, progress=False)
    except Exception:  # the site can serve (with fallback search) even if the catch-up fails
        log.exception("index catch-up failed; serving anyway")
        return
    log.info("index catch-up done in %.1fs: %s", time.perf_counter() - t0, result)


def _digest_loop(data_dir: Path, seconds: float, stop: threading.Event) -> None:
    """Run the digest job now, then every `seconds`, until `stop` is set.

    The first run is at start-up rather than one interval later, so a server
    restarted more often than its interval (a deploy, a crash loop) still sends.
    It lives in the `serve` process itself, never in a web worker (uvicorn spawns
    those afresh), so `--workers N` still has one scheduler; and the job's own
    lock and the outbox's UNIQUE (subscription, period) keep a second scheduler,
    or cron running `digest send` beside it, from sending anything twice.
    """
    try:
        from paperfeed.digest import run_scheduled
    except ImportError:
        log.warning("digest_interval_minutes is set but the digest package is not installed")
        return
    from paperfeed.config import Settings

    log.info("digest job scheduled every %gs (pid %d)", seconds, os.getpid())
    while not stop.is_set():
        try:
            # reloaded every run, so an edited config.toml (SMTP password...) needs no restart
            settings = Settings.load(data_dir)
            with open_store(data_dir) as store:
                run_scheduled(store, settings)
        except Exception:  # one failed run must not stop later ones
            log.exception("scheduled digest run failed")
        stop.wait(seconds)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes (they share nothing but the data directory).")
@click.option("--no-sync", is_flag=True, help="Skip the index catch-up at start-up.")
@click.option("--digest-every", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Run the digest job at start-up and then every SECONDS (0 = off); "
                   "overrides digest_interval_minutes.")  # fmt: skip
@click.pass_obj
def serve(obj, host: str, port: int, workers: int, no_sync: bool, digest_every: float | None) -> None:  # noqa: ANN001
    """Serve the site, the JSON API (/docs) and the feeds.

    With digest_interval_minutes (or --digest-every) set, this process also sends
    the digests: `paperfeed digest send` on a timer, so no cron is needed.
    """
    if digest_every is not None and 0 < digest_every < 0.1:
        raise click.BadParameter("use 0 (off) or at least 0.1 seconds", param_hint="--digest-every")
    import uvicorn

    data_dir: Path = obj.data_dir
    settings = obj.settings()
    # open once here so migrations run before workers race to apply them
    with open_store(data_dir) as store:
        log.info("serving %s (%d papers) on http://%s:%d", data_dir, store.count(), host, port)
    if not no_sync:
        _sync_indexes(data_dir)
    stop = threading.Event()
    interval = digest_every if digest_every is not None else settings.digest_interval_minutes * 60.0
    if interval > 0:
        threading.Thread(target=_digest_loop, args=(data_dir, interval, stop), daemon=True,
                         name="digest-scheduler").start()  # fmt: skip
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
