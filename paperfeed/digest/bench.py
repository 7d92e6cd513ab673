"""`paperfeed bench mail`: compose and send N digests to a local SMTP sink.

Each scenario gets a fresh data directory, N active subscriptions (half trending
digests, half saved-search alerts whose window is the last day's papers), and an
aiosmtpd sink in its own process on 127.0.0.1. The send itself runs in a fresh
process too, so its peak RSS is the send's and not the set-up's.
"""

from __future__ import annotations

import multiprocessing as mp
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import orjson

from paperfeed.procstat import peak_mb

# With a log file (argv[2]), each accepted Message-ID is written to it before the 250:
# the moment the mail counts as delivered (`bench mail-kills` counts duplicates there).
SINK_CODE = r"""
import asyncio, email, socket, sys
from aiosmtpd.controller import Controller
DELAY = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
LOG = open(sys.argv[2], "a", buffering=1) if len(sys.argv) > 2 else None
class H:
    n = 0
    async def handle_DATA(self, server, session, envelope):
        if DELAY:
            await asyncio.sleep(DELAY)  # a remote relay's round trip and queueing
        H.n += 1
        if LOG:
            LOG.write(email.message_from_bytes(envelope.content)["Message-ID"] + "\n")
        return "250 OK"
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
c = Controller(H(), hostname="127.0.0.1", port=port, ready_timeout=10)
c.start()
print(port, flush=True)
sys.stdin.read()
c.stop()
print(H.n, flush=True)
"""

QUERIES = [
    "language models", "reinforcement learning", "diffusion", "vision transformer", "importance reweighting",
    "effective rank", "weighting vectors", "graph neural network", "quantization", "robustness",
    "retrieval", "benchmark", "contrastive learning", "pruning", "distillation", "optimization",
]  # fmt: skip


class Sink:
    def __init__(self, delay_s: float = 0.0, log: Path | None = None) -> None:
        args = [sys.executable, "-c", SINK_CODE, str(delay_s), *([str(log)] if log else [])]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def stop(self) -> int:
        out, _ = self.proc.communicate(timeout=60)
        return int(out.strip() or 0)


def _vocabulary() -> list[str]:
    from paperfeed.demo import demo_paths

    words: list[str] = []
    for p in demo_paths():
        words += re.findall(r"[A-Za-z]{3,}", p.read_text(encoding="utf-8"))
    return words


def _fill_store(data_dir: Path, n_papers: int, seed: int = 7) -> None:
    from paperfeed.demo import demo_paths
    from paperfeed.ingest import ingest_paths
    from paperfeed.models import Paper
    from paperfeed.store import open_store

    rng = random.Random(seed)
    words = _vocabulary()
    with open_store(data_dir) as store:
        ingest_paths(store, demo_paths())
        made = store.count()
        batch: list[Paper] = []
        i = 0
        while made + len(batch) < n_papers:
            i += 1
            title = " ".join(rng.choices(words, k=rng.randint(5, 12))).capitalize()
            abstract = " ".join(rng.choices(words, k=rng.randint(80, 200))) + "."
            authors = [f"{rng.choice(words).title()} {rng.choice(words).title()}" for _ in range(rng.randint(1, 6))]
            batch.append(Paper(title=f"{title} {i}", abstract=abstract, authors=authors, categories=["cs.LG"],
                               feed_date=f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                               sources=["bench"], ext_ids={"bench": str(i)}))  # fmt: skip
            if len(batch) == 5000:
                store.upsert_papers(batch)
                made += len(batch)
                batch = []
        if batch:
            store.upsert_papers(batch)


def _queries(store, rng: random.Random) -> list[str]:  # noqa: ANN001
    """Saved searches as people type them: a fixed list of topics plus two-word
    phrases from the seed titles (several hundred distinct ones)."""
    out = list(QUERIES)
    titles = [r[0] for r in store.conn.execute("SELECT title FROM papers WHERE rowid <= 402")]
    for t in titles:
        words = [w.lower() for w in re.findall(r"[A-Za-z]{4,}", t)]
        if len(words) >= 2:
            i = rng.randrange(len(words) - 1)
            out.append(f"{words[i]} {words[i + 1]}")
    return list(dict.fromkeys(out))


def _add_votes_and_subscriptions(data_dir: Path, n_subs: int, new_window: int, seed: int = 11) -> None:
    """Voters for the trending digest, and N active subscriptions, written in bulk
    (set-up only: the double opt-in path is what the tests exercise)."""
    from paperfeed.store import accounts as acc
    from paperfeed.store import open_store
    from paperfeed.store import votes as vt

    rng = random.Random(seed)
    with open_store(data_dir) as store:
        papers = store.list_papers(limit=200)
        users = [acc.create_user(store, f"voter{i}@bench.example", "bench-password") for i in range(10)]
        for p in rng.sample(papers, min(40, len(papers))):
            for u in rng.sample(users, rng.randint(1, len(users))):
                vt.vote(store, u.id, p.rowid)
        watermark = max(0, store.max_seq() - new_window)
        queries = _queries(store, rng)
        now = "2025-01-01T00:00:00Z"
        rows = []
        for i in range(n_subs):
            email = f"reader{i}@bench.example"
            if i % 2 == 0:
                rows.append((email, email, "trending", "daily", "", "{}", "active", 0, now, now, now))
            else:
                rows.append((email, email, "alert", "daily", rng.choice(queries), "{}", "active", watermark,
                             now, now, now))  # fmt: skip
        with store.write() as c:
            c.executemany(
                "INSERT INTO subscriptions (email, email_key, kind, period, query, filters, status, watermark_seq, "
                "created_at, confirmed_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )


def _child(data_dir: str, port: int, connections: int, out: mp.Queue) -> None:
    from paperfeed.config import Settings
    from paperfeed.digest import send_digests
    from paperfeed.store import open_store

    settings = Settings.load(Path(data_dir))
    settings.smtp_host, settings.smtp_port, settings.smtp_tls = "127.0.0.1", port, "none"
    with open_store(Path(data_dir)) as store:
        t0 = time.perf_counter()
        composed = send_digests(store, settings, limit=0)  # compose everything, send nothing
        t1 = time.perf_counter()
        sent = send_digests(store, settings, connections=connections)
        t2 = time.perf_counter()
    out.put({
        "composed": composed.composed, "empty": composed.empty, "sent": sent.sent,
        "failed": sent.failed + sent.retry, "compose_s": t1 - t0, "send_s": t2 - t1,
        # VmHWM: ru_maxrss would carry the parent's peak over the spawn's exec (procstat)
        "peak_rss_mb": peak_mb(),
    })  # fmt: skip


def run_scenario(n_mails: int, n_papers: int, new_window: int, connections: int = 4, sink_delay_ms: float = 0.0) -> dict:
    root = Path(tempfile.mkdtemp(prefix="paperfeed-bench-mail-"))
    data = root / "data"
    try:
        t = time.perf_counter()
        _fill_store(data, n_papers)
        _add_votes_and_subscriptions(data, n_mails, new_window)
        setup_s = time.perf_counter() - t
        sink = Sink(sink_delay_ms / 1000)
        try:
            ctx = mp.get_context("spawn")
            q: mp.Queue = ctx.Queue()
            proc = ctx.Process(target=_child, args=(str(data), sink.port, connections, q))
            proc.start()
            result = q.get(timeout=3600)
            proc.join()
        finally:
            received = sink.stop()
        from paperfeed.store import open_store

        with open_store(data) as store:
            papers = store.count()
            outbox_bytes = store.conn.execute("SELECT COALESCE(SUM(LENGTH(message)), 0) FROM outbox").fetchone()[0]
        total = result["compose_s"] + result["send_s"]
        result.update({
            "papers": papers, "subscriptions": n_mails, "connections": connections, "sink_delay_ms": sink_delay_ms, "received_by_sink": received, "setup_s": round(setup_s, 1),
            "total_s": round(total, 2), "mails_per_s": round(result["sent"] / total, 1) if total else 0.0,
            "send_only_mails_per_s": round(result["sent"] / result["send_s"], 1) if result["send_s"] else 0.0,
            "outbox_mb": round(outbox_bytes / 1e6, 1),
            "compose_s": round(result["compose_s"], 2), "send_s": round(result["send_s"], 2),
            "peak_rss_mb": round(result["peak_rss_mb"], 1),
        })  # fmt: skip
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bench_mail(mails: int, paper_counts: str, new_window: int, connections: int, sink_delay_ms: float,
               as_json: bool) -> None:  # fmt: skip
    """Compose and send N digests to a local aiosmtpd sink: mails/s, peak RSS, and
    how mail time changes with the size of the store."""
    try:
        sizes = [int(x) for x in paper_counts.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter("expected numbers such as 402,100000", param_hint="--papers") from None
    if mails < 1 or not sizes or min(sizes) < 1:
        raise click.BadParameter("--mails and --papers must be positive")
    results = []
    for n in sizes:
        if not as_json:
            click.echo(f"store of ~{n:,} papers, {mails:,} subscriptions ...", err=True)
        results.append(run_scenario(mails, n, new_window, connections, sink_delay_ms))
    if as_json:
        sys.stdout.write(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    click.echo(f"{'papers':>8} {'composed':>8} {'sent':>6} {'sink':>6} {'compose s':>9} {'send s':>7} "
               f"{'mails/s':>8} {'send/s':>7} {'peak RSS MB':>11} {'outbox MB':>9}")  # fmt: skip
    for r in results:
        click.echo(f"{r['papers']:>8,} {r['composed']:>8,} {r['sent']:>6,} {r['received_by_sink']:>6,} "
                   f"{r['compose_s']:>9} {r['send_s']:>7} {r['mails_per_s']:>8} {r['send_only_mails_per_s']:>7} "
                   f"{r['peak_rss_mb']:>11} {r['outbox_mb']:>9}")  # fmt: skip
