"""`paperfeed bench harvest`: a large arXiv harvest replayed from a loopback OAI-PMH server.

The records are the synthetic arXiv corpus of `bench ingest`, served in arXiv's OAI-PMH format
(1,000 records a page, as arXiv pages ListRecords) by a server in this process; the harvest runs
as `paperfeed harvest arxiv` in a child process, so its peak RSS is the harvester's alone. The
polite delay is 0 and the figure is records per second of the harvester's own clock, without
interpreter start-up or index catch-up: what parsing and applying cost.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

from paperfeed.bench.ingest import run_measured
from paperfeed.bench.oai_server import ArxivOaiServer, OaiRecord
from paperfeed.bench.synth import SyntheticCorpus
from paperfeed.procstat import dir_bytes


def synthetic_records(n: int, seed: int = 0) -> Iterator[OaiRecord]:
    for rec in SyntheticCorpus(n, seed).records():
        created = rec["update_date"]
        yield OaiRecord(
            arxiv_id=rec["id"], datestamp=created, created=created, title=rec["title"], abstract=rec["abstract"],
            authors=[(a[0], a[1]) for a in rec["authors_parsed"]], categories=rec["categories"],
            comments=rec["comments"], doi=rec["doi"], sets=[rec["categories"].split(".")[0].split()[0]],
        )  # fmt: skip


def bench_harvest(records: int = 100_000, seed: int = 0, page_size: int = 1000, workdir: Path | None = None) -> dict:
    t0 = time.monotonic()
    server = ArxivOaiServer(synthetic_records(records, seed), page_size=page_size)
    server.prerender()
    gen_s = time.monotonic() - t0
    with tempfile.TemporaryDirectory(prefix="paperfeed-bench-", dir=workdir) as tmp, server:
        data_dir = Path(tmp) / "data"
        cmd = [sys.executable, "-m", "paperfeed", "--data", str(data_dir), "harvest", "arxiv", "--url", server.url,
               "--set", "", "--from", "1990-01-01", "--delay", "0", "--no-index", "--no-progress", "--json"]  # fmt: skip
        run = run_measured(cmd)
        if run["returncode"] != 0:
            raise RuntimeError(f"harvest failed (exit {run['returncode']}): "
                               f"{run['stderr'].decode(errors='replace')[-2000:]}")  # fmt: skip
        rep = orjson.loads(run["stdout"].splitlines()[-1])
        busy = rep["seconds"] - rep["waited"]
        return {
            "records": rep["records"],
            "added": rep["added"],
            "rejected": rep["rejected"],
            "pages": rep["sets"][0]["pages"],
            "requests": rep["requests"],
            "generate_s": round(gen_s, 2),
            "harvest_s": rep["seconds"],
            "waited_s": rep["waited"],
            "wall_s": round(run["wall_s"], 2),
            # the harvester's own clock less the polite delay and Retry-After waits
            "records_per_s": round(rep["records"] / busy) if busy > 0 else None,
            "peak_rss_mb": round(run["peak_rss_mb"], 1),
            "cpu_s": round(run["cpu_s"], 2),
            # CPU time stretches far less than wall time when other jobs share the machine
            "records_per_cpu_s": round(rep["records"] / run["cpu_s"]) if run["cpu_s"] else None,
            "db_bytes": dir_bytes(data_dir),
            "cpu_count": os.cpu_count(),
            "loadavg_1m": round(os.getloadavg()[0], 2),
        }
