"""`paperfeed bench ingest`: arXiv-snapshot import throughput and memory.

The import runs as `paperfeed ingest` in a child process, so its peak RSS is
the importer's alone: the generator, this process's imports and any earlier
phase do not count towards it.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
import psutil

from paperfeed.bench.synth import write_arxiv_jsonl
from paperfeed.procstat import dir_bytes, peak_mb


def _poll_rss(pid: int, peak: list[float], stop: threading.Event) -> None:
    """Peak memory of the child and its descendants (the parser process): the largest sampled
    sum of their RSS, or the largest single high-water mark (VmHWM) if that is higher.

    Not ru_maxrss: Linux carries it over exec from the forking parent, so the child would
    report this bench process's own size."""
    try:
        proc = psutil.Process(pid)
        while not stop.wait(0.05):
            procs = [proc, *proc.children(recursive=True)]
            total = sum(p.memory_info().rss for p in procs if p.is_running()) / 2**20
            peak[0] = max(peak[0], total, *(peak_mb(p.pid) for p in procs))
    except psutil.Error:
        return


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    """Run `cmd` in a child process; its output, wall time, peak RSS and CPU time."""
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
    peak = [0.0]
    stop = threading.Event()
    poller = threading.Thread(target=_poll_rss, args=(proc.pid, peak, stop), daemon=True)
    poller.start()
    out, err = proc.communicate()
    wall = time.monotonic() - started
    stop.set()
    poller.join()
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU of the child and its parser process: on a busy machine wall time
    # stretches, CPU time much less, so it tells contention from slowness
    cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    return {"stdout": out, "stderr": err, "returncode": proc.returncode, "wall_s": wall, "peak_rss_mb": peak[0],
            "cpu_s": cpu}  # fmt: skip


def run_ingest_child(data_dir: Path, path: Path, fmt: str = "arxiv", index: bool = False,
                     database_url: str = "") -> dict:  # fmt: skip
    """Run `paperfeed ingest` on `path` in a child process; return its report, wall time and peak RSS."""
    cmd = [sys.executable, "-m", "paperfeed", "--data", str(data_dir), "ingest", str(path),
           "--format", fmt, "--json", "--no-progress"]  # fmt: skip
    if not index:
        cmd.append("--no-index")
    # "" is SQLite in the data directory, whatever the environment says
    run = run_measured(cmd, {"PAPERFEED_DATABASE_URL": database_url})
    if run["returncode"] not in (0, 1):
        raise RuntimeError(f"ingest failed (exit {run['returncode']}): {run['stderr'].decode(errors='replace')[-2000:]}")
    report = orjson.loads(run["stdout"].splitlines()[-1])
    return {"report": report, "wall_s": run["wall_s"], "peak_rss_mb": run["peak_rss_mb"], "cpu_s": run["cpu_s"]}


def bench_ingest(
    records: int = 1_000_000,
    file: Path | None = None,
    seed: int = 0,
    workdir: Path | None = None,
    progress: bool = False,
    database_url: str = "",
) -> dict:
    """Generate (or take) an arXiv-format file and time its import into a fresh data dir.

    With `database_url` (an empty PostgreSQL database) the import goes there, and the same file
    is then imported into SQLite too, for the comparison in the same run."""
    with tempfile.TemporaryDirectory(prefix="paperfeed-bench-", dir=workdir) as tmp:
        tmp_path = Path(tmp)
        gen_s = 0.0
        if file is None:
            file = tmp_path / "arxiv-synthetic.jsonl"
            t0 = time.monotonic()
            write_arxiv_jsonl(file, records, seed, progress=progress)
            gen_s = time.monotonic() - t0
        data_dir = tmp_path / "data"
        run = run_ingest_child(data_dir, file, database_url=database_url)
        rep = run["report"]
        sqlite = None
        if database_url:
            lite = run_ingest_child(tmp_path / "sqlite", file)
            m = lite["report"]["added"] + lite["report"]["updated"] + lite["report"]["unchanged"]
            sqlite = {"records_per_s": round(m / lite["report"]["seconds"]) if lite["report"]["seconds"] else None,
                      "peak_rss_mb": round(lite["peak_rss_mb"], 1), "cpu_s": round(lite["cpu_s"], 2)}  # fmt: skip
        n = rep["added"] + rep["updated"] + rep["unchanged"] + rep["rejected"]
        return {
            "records": n,
            "file_bytes": file.stat().st_size,
            "generate_s": round(gen_s, 2),
            "added": rep["added"],
            "rejected": rep["rejected"],
            "ingest_s": rep["seconds"],
            "wall_s": round(run["wall_s"], 2),
            # the importer's own clock: file open to last commit, without interpreter start-up
            "records_per_s": round(n / rep["seconds"]) if rep["seconds"] else None,
            "wall_records_per_s": round(n / run["wall_s"]) if run["wall_s"] else None,
            "peak_rss_mb": round(run["peak_rss_mb"], 1),
            "cpu_s": round(run["cpu_s"], 2),
            "records_per_cpu_s": round(n / run["cpu_s"]) if run["cpu_s"] else None,
            "db_bytes": dir_bytes(data_dir),
            "cpu_count": os.cpu_count(),
            "loadavg_1m": round(os.getloadavg()[0], 2),
            "engine": "postgres" if database_url else "sqlite",
            **({"sqlite_same_file": sqlite} if sqlite else {}),
        }
