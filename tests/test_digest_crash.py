"""Exactly once across crashes: SIGKILL `paperfeed digest send` in the middle of an
SMTP transaction, run it again, and every subscriber has exactly one mail."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from paperfeed.digest import send_digests
from paperfeed.store import open_store
from paperfeed.store import outbox as ob
from tests.digest_support import SmtpSink, kill_during_message, smtp_env, subscribe_readers

pytestmark = pytest.mark.slow  # SIGKILLs send jobs in subprocesses

SUBSCRIBERS = 16


def _start_send(data: Path, env: dict[str, str], connections: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "paperfeed", "--data", str(data), "digest", "send", "--connections", str(connections)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("connections", [1, 4])
def test_sigkill_mid_send_then_rerun_gives_exactly_one_mail_each(tmp_path: Path, connections: int) -> None:
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
        with open_store(data) as store:
            emails = subscribe_readers(store, settings, SUBSCRIBERS)
            # the confirmation mails are moot (confirmed by the operator); nothing else is queued
            assert ob.counts(store) == {"cancelled": SUBSCRIBERS}

        sink.handler.delay = 0.5
        in_flight_at_kills = 0
        # two runs killed while the server is still deciding on some mails (with
        # the default parallel connections, several are in flight at once)
        for kill_at in (4, 9):
            proc = _start_send(data, env, connections)
            kill_during_message(proc, sink, kill_at)
            with open_store(data) as store:
                c = ob.counts(store)
            assert c.get("sending", 0) >= 1, c  # the mails in flight
            assert c.get("sent", 0) == len(sink.received), c  # a mail is 'sent' only once the server took it
            assert sum(c.get(k, 0) for k in ("sent", "sending", "pending")) == SUBSCRIBERS
            in_flight_at_kills += c["sending"]

        sink.handler.delay = 0.0
        third = _start_send(data, env, connections)
        out, err = third.communicate(timeout=120)
        assert third.returncode == 0, err
        assert "composed 0" in out  # nothing composed twice

        per_rcpt = Counter(r for m in sink.received for r in m.rcpt_tos)
        assert per_rcpt == Counter({e: 1 for e in emails})
        with open_store(data) as store:
            rows = [r for r in ob.list_rows(store) if r.kind == "alert"]
            assert len(rows) == SUBSCRIBERS and {r.status for r in rows} == {"sent"}
            # each row in flight at a kill was attempted exactly once more, with the same Message-ID
            assert sum(r.attempts for r in rows) == SUBSCRIBERS + in_flight_at_kills
            delivered = {m.msg["Message-ID"]: m.rcpt_tos[0] for m in sink.received}
            assert {r.message_id: r.recipient for r in rows} == delivered
        started = Counter(sink.handler.started)
        assert set(started) == set(delivered)
        assert sum(started.values()) <= SUBSCRIBERS + in_flight_at_kills
        # a fourth run in the same period sends nothing
        with open_store(data) as store:
            r = send_digests(store, settings)
        assert (r.composed, r.sent) == (0, 0) and len(sink.received) == SUBSCRIBERS
    finally:
        sink.stop()


def test_kill_bench_loses_nothing_and_duplicates_at_most_the_mails_in_flight() -> None:
    """`paperfeed bench mail-kills` in miniature: every kill is followed by a rerun, each
    mail arrives at least once, and a kill resends at most one mail per connection (the
    ones whose 250 was on its way back)."""
    from paperfeed.digest.killbench import run_kills

    r = run_kills(kills=4, mails=8, connections=2, sink_delay_ms=0.0, seed=3)
    assert r["kills"] == 4 and r["mails_per_round"] == 8
    assert r["lost"] == 0
    assert r["sent_twice"] <= r["killed_mid_send"] * 2 and r["most_in_one_round"] <= 2
