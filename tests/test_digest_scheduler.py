"""`paperfeed serve` sends the digests itself on a timer: the real command with
two web workers, against a real SMTP server that is down at first."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import httpx
import pytest

from paperfeed.config import Settings
from paperfeed.digest import subscribe
from paperfeed.digest.subscribing import confirm_email
from paperfeed.models import Paper
from paperfeed.store import open_store
from paperfeed.store import outbox as ob
from tests.digest_support import SmtpSink, _mail_template, free_port, smtp_env
from tests.helpers import spawn_cli, wait_for

pytestmark = pytest.mark.slow  # runs `serve` with its digest scheduler

TICK = 0.5  # seconds between scheduled runs


def _alert_for(data: Path, settings: Settings, email: str, tag: str) -> int:
    """A confirmed alert for `email`, then a paper that only it matches, stored after it."""
    with open_store(data) as store:
        sub = subscribe(store, settings, email, query=f"zymurgy {tag}", every="daily").subscription
        confirm_email(store, email)
        store.upsert_papers([Paper(title=f"Zymurgy {tag} at scale", abstract=f"Brewing {tag} zymurgy.",
                                   sources=["jsonl:sched"], ext_ids={"jsonl:sched": tag})])  # fmt: skip
        return sub.id


def _digest_rows(data: Path, sub_id: int) -> list[ob.OutboxRow]:
    with open_store(data) as store:
        return [r for r in ob.list_rows(store, subscription_id=sub_id, limit=100) if r.kind != "confirm"]


def test_serve_scheduler_sends_each_digest_once_and_survives_smtp_down(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(_mail_template(), data)
    sink = SmtpSink()  # its port is chosen, but nothing listens there yet: the mail server is down
    port = free_port()
    env = {**os.environ, **smtp_env(sink, f"http://127.0.0.1:{port}")}
    settings = Settings.load(data)
    settings.smtp_port = sink.port
    first = _alert_for(data, settings, "first@example.org", "alpha")
    log = tmp_path / "serve.log"
    proc = spawn_cli("serve", "--port", str(port), "--workers", "2", "--no-sync", "--digest-every", str(TICK),
                     data=data, log=log, env=env)  # fmt: skip
    try:
        # SMTP down: the run composes the digest, fails to connect, schedules a retry, and serve lives on
        # finished: a claimed row is 'sending' with its attempt counted until the attempt's outcome is stored
        [row] = wait_for("a failed attempt", lambda: [r for r in _digest_rows(data, first)
                                                      if r.attempts >= 1 and r.status != "sending"], proc, log)  # fmt: skip
        assert row.status == "pending" and "connection" in (row.last_error or ""), row
        assert row.next_attempt_at > row.updated_at  # backed off, not hammered every tick
        time.sleep(3 * TICK)
        assert [r.attempts for r in _digest_rows(data, first)] == [1]
        r = wait_for("the site", lambda: _get(f"http://127.0.0.1:{port}/healthz"), proc, log)
        assert r.status_code == 200

        # the server comes back and the backoff elapses: the next tick delivers it
        sink.start()
        with open_store(data) as store:
            store.conn.execute("UPDATE outbox SET next_attempt_at = '2000-01-01T00:00:00Z' WHERE id = ?", (row.id,))
        [mail] = sink.wait_to("first@example.org", timeout=60)
        assert "Zymurgy alpha at scale" in mail.msg.get_body(("plain",)).get_content()

        # a subscription confirmed later gets its digest on a later tick; the first is not sent again
        second = _alert_for(data, settings, "second@example.org", "beta")
        sink.wait_to("second@example.org", timeout=60)
        time.sleep(4 * TICK)
        assert len(sink.to("first@example.org")) == 1 and len(sink.to("second@example.org")) == 1
        assert [(r.status, r.attempts) for r in _digest_rows(data, first)] == [("sent", 2)]
        assert [(r.status, r.attempts) for r in _digest_rows(data, second)] == [("sent", 1)]
        assert proc.poll() is None
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        if sink.controller.loop.is_running():
            sink.stop()
    # one scheduler for the whole server, not one per worker
    assert log.read_text().count("digest job scheduled every") == 1, log.read_text()[-3000:]


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return None
