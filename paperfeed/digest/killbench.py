"""`paperfeed bench mail-kills`: how many mails go out twice when the send job is
SIGKILLed at a random moment and then run again.

The one window exactly-once cannot close (paperfeed.digest.sending): the server said
250 and the process died before recording it. This measures how often a kill
lands there. Each round resets the same composed digests to 'pending', forks a
`send_digests` (4 SMTP connections by default), SIGKILLs it after a random delay
spread over the time a whole send takes, runs the send again to completion, and
counts the Message-IDs the sink received more than once. The sink is aiosmtpd in
its own process, so only the sender dies.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import click
import orjson


def _send(data_dir: str, port: int, connections: int) -> None:
    """A forked child: the whole send job, as `digest send --connections N` runs it."""
    from paperfeed.config import Settings
    from paperfeed.digest import send_digests
    from paperfeed.store import open_store

    settings = Settings.load(Path(data_dir))
    settings.smtp_host, settings.smtp_port, settings.smtp_tls = "127.0.0.1", port, "none"
    with open_store(Path(data_dir)) as store:
        send_digests(store, settings, connections=connections)
    os._exit(0)


def _reset(data: Path) -> int:
    """Every digest back to 'pending' (the Message-IDs stay): one more round of the same send."""
    from paperfeed.store import open_store

    with open_store(data) as store, store.write() as c:
        return c.execute(
            "UPDATE outbox SET status='pending', attempts=0, next_attempt_at='1970-01-01T00:00:00Z', "
            "sent_at=NULL WHERE kind != 'confirm'"
        ).rowcount


def _left_sending(data: Path) -> int:
    from paperfeed.store import open_store

    with open_store(data) as store:
        return store.conn.execute("SELECT COUNT(*) FROM outbox WHERE status='sending'").fetchone()[0]


def run_kills(kills: int, mails: int, connections: int, sink_delay_ms: float, seed: int,
              progress: bool = False) -> dict:  # fmt: skip
    from paperfeed.digest.bench import Sink, _add_votes_and_subscriptions, _fill_store
    from paperfeed.store import open_store

    rng = random.Random(seed)
    root = Path(tempfile.mkdtemp(prefix="paperfeed-bench-kills-"))
    data, log = root / "data", root / "received.log"
    log.touch()
    sink = Sink(sink_delay_ms / 1000, log)  # its own process: only the sender is killed
    # Children fork from a single-threaded server that has imported the send path: they start
    # in milliseconds, and no lock held by another thread of this process is copied into them.
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["paperfeed.digest.killbench", "paperfeed.digest", "paperfeed.store"])
    port = sink.port
    try:
        _fill_store(data, 402)
        _add_votes_and_subscriptions(data, mails, new_window=400)
        from paperfeed.config import Settings
        from paperfeed.digest import send_digests

        with open_store(data) as store:
            send_digests(store, Settings.load(data), limit=0)  # compose once, send nothing
        # calibrate: how long an uninterrupted send of these mails takes
        durations = []
        for _ in range(3):
            _reset(data)
            t0 = time.perf_counter()
            child = ctx.Process(target=_send, args=(str(data), port, connections))
            child.start()
            child.join()
            durations.append(time.perf_counter() - t0)
        full = sorted(durations)[1]
        offset = log.stat().st_size
        duplicates = lost = in_window = killed_mid_send = 0
        worst = 0
        for k in range(kills):
            n_rows = _reset(data)
            child = ctx.Process(target=_send, args=(str(data), port, connections))
            child.start()
            time.sleep(rng.uniform(0, full))
            if child.is_alive():
                os.kill(child.pid, signal.SIGKILL)
                killed_mid_send += 1
            child.join()
            in_window += _left_sending(data)
            rerun = ctx.Process(target=_send, args=(str(data), port, connections))
            rerun.start()
            rerun.join()
            with log.open() as f:
                f.seek(offset)
                got = Counter(line.strip() for line in f)
                offset = f.tell()
            twice = sum(n - 1 for n in got.values() if n > 1)
            duplicates += twice
            worst = max(worst, twice)
            lost += max(0, n_rows - len(got))
            if progress and (k + 1) % 50 == 0:
                click.echo(f"{k + 1} kills: {duplicates} mails sent twice", err=True)
        return {
            "kills": kills, "killed_mid_send": killed_mid_send, "mails_per_round": n_rows,
            "connections": connections, "sink_delay_ms": sink_delay_ms, "send_s": round(full, 3),
            "sent_twice": duplicates, "sent_twice_per_1000_kills": round(1000 * duplicates / max(kills, 1), 1),
            "most_in_one_round": worst, "left_sending_per_kill": round(in_window / max(kills, 1), 2),
            "lost": lost,
        }  # fmt: skip
    finally:
        sink.stop()
        shutil.rmtree(root, ignore_errors=True)


def bench_mail_kills(kills: int, mails: int, connections: int, sink_delay_ms: float, seed: int,
                     as_json: bool) -> None:  # fmt: skip
    """Mails sent twice per 1,000 SIGKILLs of the send job (each followed by a rerun)."""
    result = run_kills(kills, mails, connections, sink_delay_ms, seed, progress=sys.stderr.isatty())
    if as_json:
        click.echo(orjson.dumps(result).decode())
        return
    for k, v in result.items():
        click.echo(f"{k:>28}: {v}")
