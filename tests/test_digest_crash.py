"""Exactly once across crashes: SIGKILL `paperfeed digest send` in the middle of an
SMTP transaction, run it again, and every subscriber has exactly one mail."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from digest_support import SmtpSink, smtp_env

from paperfeed.digest import send_digests, subscribe
from paperfeed.digest.jobs import confirm_email
from paperfeed.models import Paper
from paperfeed.store import open_store
from paperfeed.store import outbox as ob

SUBSCRIBERS = 10


def _start_send(data: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "paperfeed", "--data", str(data), "digest", "send"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_during_message(proc: subprocess.Popen, sink: SmtpSink, n: int) -> None:
    """SIGKILL while the server is still deciding on the n-th message of all time:
    the row is 'sending' and the server has not said 250."""
    sink.wait_started(n, timeout=60)
    time.sleep(0.1)  # well inside the server's delay
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_mid_send_then_rerun_gives_exactly_one_mail_each(tmp_path: Path) -> None:
    sink = SmtpSink().start()
    try:
        env = smtp_env(sink)
        data = tmp_path / "data"
        from paperfeed.config import Settings

        os.environ.update(env)
        try:
            settings = Settings.load(data)
        finally:
            for k in env:
                os.environ.pop(k, None)
        emails = [f"reader{i}@example.org" for i in range(SUBSCRIBERS)]
        with open_store(data) as store:
            for e in emails:
                subscribe(store, settings, e, query="graph colouring")
                confirm_email(store, e)
            store.upsert_papers([Paper(title=f"Graph colouring part {i}", abstract="graph colouring",
                                       sources=["x"], ext_ids={"x": str(i)}) for i in range(3)])  # fmt: skip
            # the confirmation mails are moot (confirmed by the operator); nothing else is queued
            assert ob.counts(store) == {"cancelled": SUBSCRIBERS}

        sink.handler.delay = 0.5
        first = _start_send(data, env)
        _kill_during_message(first, sink, 4)
        with open_store(data) as store:
            c = ob.counts(store)
        # everything was composed before sending; three went out, one was in flight
        assert c.get("sent") == 3 and c.get("sending") == 1 and c.get("pending") == SUBSCRIBERS - 4, c
        assert len(sink.received) == 3

        second = _start_send(data, env)
        _kill_during_message(second, sink, 7)
        assert len(sink.received) == 5  # the leftover 'sending' row went first, then one more

        sink.handler.delay = 0.0
        third = _start_send(data, env)
        out, err = third.communicate(timeout=120)
        assert third.returncode == 0, err
        assert "composed 0" in out  # nothing composed twice

        per_rcpt = Counter(r for m in sink.received for r in m.rcpt_tos)
        assert per_rcpt == Counter({e: 1 for e in emails})
        with open_store(data) as store:
            rows = [r for r in ob.list_rows(store) if r.kind == "alert"]
            assert len(rows) == SUBSCRIBERS and {r.status for r in rows} == {"sent"}
            # the two rows in flight at a kill were attempted twice, with the same Message-ID
            assert sorted(r.attempts for r in rows) == [1] * (SUBSCRIBERS - 2) + [2, 2]
            delivered = {m.msg["Message-ID"]: m.rcpt_tos[0] for m in sink.received}
            assert {r.message_id: r.recipient for r in rows} == delivered
        started = Counter(sink.handler.started)
        assert sorted(started.values()) == [1] * (SUBSCRIBERS - 2) + [2, 2]
        # a fourth run in the same period sends nothing
        with open_store(data) as store:
            r = send_digests(store, settings)
        assert (r.composed, r.sent) == (0, 0) and len(sink.received) == SUBSCRIBERS
    finally:
        sink.stop()
