"""`paperfeed bench web`: server time of the daily and search pages, and a load run.

The server is the real `paperfeed serve` in a subprocess on 127.0.0.1; server
time is read from the Server-Timing header the site sets (time to the first
byte inside the app, so the client's own overhead is not counted). The load run
is an asyncio + httpx generator in this process: N clients, each with its own
connection, requesting a mix of pages back to back for a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import httpx
import orjson

QUERIES = ["effective rank", "weighting vectors", "importance reweighting", "quantization of vision transformers",
           "sample reweighting for language model pretraining", "neural architecture search"]  # fmt: skip
_TIMING = re.compile(r"app;dur=([0-9.]+)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def _server_ms(r: httpx.Response) -> float | None:
    m = _TIMING.search(r.headers.get("server-timing", ""))
    return float(m.group(1)) if m else None


def _prepare_demo(root: Path) -> Path:
    data = root / "data"
    cmd = [sys.executable, "-m", "paperfeed", "--data", str(data), "ingest", "--demo", "--no-index", "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise click.ClickException(f"demo ingest failed: {r.stderr[-2000:]}")
    return data


def _start_server(data: Path, port: int, workers: int, log_path: Path, database_url: str | None = None
                  ) -> subprocess.Popen:  # fmt: skip
    cmd = [sys.executable, "-m", "paperfeed", "--data", str(data), "serve", "--host", "127.0.0.1",
           "--port", str(port), "--workers", str(workers)]  # fmt: skip
    env = {**os.environ, "PAPERFEED_DATABASE_URL": database_url} if database_url is not None else None
    # the server's log goes to a file: an unread pipe would fill up and stall the server
    with log_path.open("w") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _wait_ready(base: str, proc: subprocess.Popen, log_path: Path, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise click.ClickException(f"server exited: {log_path.read_text()[-2000:]}")
        try:
            last = httpx.get(f"{base}/healthz", timeout=5).json()
            if last.get("index", {}).get("loaded"):
                return last
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise click.ClickException(f"server not ready after {timeout:.0f}s: {last}")


def _measure(client: httpx.Client, urls: list[str], n: int) -> dict[str, float]:
    server, wall = [], []
    for i in range(n):
        t0 = time.perf_counter()
        r = client.get(urls[i % len(urls)])
        wall.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise click.ClickException(f"{urls[i % len(urls)]} returned {r.status_code}")
        ms = _server_ms(r)
        if ms is not None:
            server.append(ms)
    return {
        "n": n,
        "server_p50_ms": round(_percentile(server, 50), 2),
        "server_p95_ms": round(_percentile(server, 95), 2),
        "wall_p50_ms": round(_percentile(wall, 50), 2),
        "wall_p95_ms": round(_percentile(wall, 95), 2),
    }


async def _load(base: str | list[str], urls: list[str], clients: int, seconds: float) -> dict[str, Any]:
    """`clients` clients, each on one server of `base` (round robin when there are several)."""
    bases = [base] if isinstance(base, str) else base
    ok = errors = 0
    codes: dict[int, int] = {}
    latencies: list[float] = []
    failures: list[str] = []
    stop_at = time.monotonic() + seconds

    async def worker(seed: int) -> None:
        nonlocal ok, errors
        rng = random.Random(seed)
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=bases[seed % len(bases)], timeout=30, limits=limits) as c:
            while time.monotonic() < stop_at:
                url = rng.choice(urls)
                t0 = time.perf_counter()
                try:
                    r = await c.get(url)
                except httpx.HTTPError as exc:
                    errors += 1
                    if len(failures) < 5:
                        failures.append(f"{url}: {type(exc).__name__}: {exc}")
                    continue
                latencies.append((time.perf_counter() - t0) * 1000)
                codes[r.status_code] = codes.get(r.status_code, 0) + 1
                if r.status_code == 200:
                    ok += 1
                else:
                    errors += 1
                    if len(failures) < 5:
                        failures.append(f"{url}: HTTP {r.status_code}")

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    elapsed = time.perf_counter() - t0
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "requests": ok + errors,
        "ok": ok,
        "errors": errors,
        "status_codes": {str(k): v for k, v in sorted(codes.items())},
        "requests_per_s": round((ok + errors) / elapsed, 1),
        "latency_p50_ms": round(_percentile(latencies, 50), 1),
        "latency_p95_ms": round(_percentile(latencies, 95), 1),
        "latency_max_ms": round(max(latencies, default=0), 1),
        "failures": failures,
    }


def bench_web(data_dir: Path, use_data: bool, n: int, clients: int, seconds: float, workers: int, as_json: bool,
              database_url: str | None = None) -> None:
    """Server time (p50/p95, warm) of the daily page and search pages, then N concurrent clients."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request would drown the figures
    if database_url:
        _bench_nodes(database_url, clients, seconds, workers, as_json)
        return
    tmp = Path(tempfile.mkdtemp(prefix="paperfeed-bench-web-"))
    log_path = tmp / "server.log"
    if use_data:
        data = Path(data_dir)
    else:
        click.echo("preparing the demo corpus (ingest; serve builds the index)...", err=True)
        data = _prepare_demo(tmp)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start_server(data, port, workers, log_path)
    try:
        health = _wait_ready(base, proc, log_path)
        with httpx.Client(base_url=base, timeout=30) as c:
            feed = c.get("/api/papers", params={"limit": 20}).json()
            paper_ids = [p["id"] for p in feed["papers"]] or ["none"]
            daily = ["/"]
            searches = [f"/search?q={q.replace(' ', '+')}" for q in QUERIES]
            # warm every worker: caches, the model's first batches, SQLite pages
            for _ in range(10 * workers):
                for u in daily + searches:
                    c.get(u)
            results: dict[str, Any] = {
                "corpus_papers": health.get("store", {}).get("papers"),
                "search_engine": health.get("index", {}).get("engine"),
                "dense_index": health.get("index", {}).get("dense"),
                "workers": workers,
                "daily_page": _measure(c, daily, n),
                "search_page": _measure(c, searches, n),
                "paper_page": _measure(c, [f"/papers/{i}" for i in paper_ids], n),
            }
            # every query new: no result or query-vector cache can help
            titles = [p["title"] for p in c.get("/api/papers", params={"limit": 500, "since": "1900-01-01"}).json()["papers"]]
            words = sorted({w.lower() for t in titles for w in re.findall(r"[A-Za-z]{4,}", t)}) or ["paper"]
            rng = random.Random(7)
            fresh = [f"/search?q={'+'.join(rng.sample(words, min(3, len(words))))}" for _ in range(n)]
            results["search_page_uncached"] = _measure(c, fresh, n)
        mix = daily * 4 + searches + [f"/papers/{i}" for i in paper_ids[:5]] + ["/trending", "/api/papers?limit=20",
               "/api/search?q=effective+rank&limit=10", "/feeds/daily.atom"]  # fmt: skip
        results["load"] = asyncio.run(_load(base, mix, clients, seconds))
    finally:
        _stop(proc)
        warnings = [line for line in log_path.read_text(errors="replace").splitlines() if "WARNING" in line]
        shutil.rmtree(tmp, ignore_errors=True)
    results["server_warnings"] = len(warnings)
    if warnings:
        click.echo(f"server logged {len(warnings)} warnings, the first: {warnings[0][:300]}", err=True)
    if as_json:
        click.echo(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(f"corpus: {results['corpus_papers']} papers, search engine: {results['search_engine']} "
                   f"(dense index: {results['dense_index']}), workers: {workers}")  # fmt: skip
        for name in ("daily_page", "search_page", "search_page_uncached", "paper_page"):
            r = results[name]
            click.echo(f"{name:20s} server p50 {r['server_p50_ms']:7.2f} ms  p95 {r['server_p95_ms']:7.2f} ms   "
                       f"(client wall p50 {r['wall_p50_ms']:.2f} / p95 {r['wall_p95_ms']:.2f} ms, n={r['n']})")  # fmt: skip
        ld = results["load"]
        click.echo(f"load: {ld['clients']} clients for {ld['seconds']} s: {ld['requests']} requests, "
                   f"{ld['requests_per_s']} req/s, errors {ld['errors']}, latency p50 {ld['latency_p50_ms']} ms "
                   f"p95 {ld['latency_p95_ms']} ms max {ld['latency_max_ms']} ms, codes {ld['status_codes']}")  # fmt: skip
        for f in ld["failures"]:
            click.echo(f"  failure: {f}")
    if results["load"]["errors"]:
        sys.exit(1)


def _mix(base: str) -> list[str]:
    with httpx.Client(base_url=base, timeout=30) as c:
        paper_ids = [p["id"] for p in c.get("/api/papers", params={"limit": 20}).json()["papers"]] or ["none"]
    searches = [f"/search?q={q.replace(' ', '+')}" for q in QUERIES]
    return ["/"] * 4 + searches + [f"/papers/{i}" for i in paper_ids[:5]] + ["/trending", "/api/papers?limit=20",
            "/api/search?q=effective+rank&limit=10", "/feeds/daily.atom"]  # fmt: skip


def _warm(base: str, urls: list[str], rounds: int) -> None:
    with httpx.Client(base_url=base, timeout=60) as c:
        for _ in range(rounds):
            for u in urls:
                c.get(u)


def _bench_nodes(database_url: str, clients: int, seconds: float, workers: int, as_json: bool) -> None:
    """The same load on one SQLite node, then on two nodes sharing PostgreSQL (each node its own
    data directory: a copy of the SQLite node's, so no node rebuilds the indexes), in one run.
    The two nodes together run as many worker processes as the SQLite node."""
    tmp = Path(tempfile.mkdtemp(prefix="paperfeed-bench-nodes-"))
    results: dict[str, Any] = {"clients": clients, "seconds": seconds}
    procs: list[subprocess.Popen] = []
    try:
        click.echo("preparing the demo corpus (ingest; serve builds the index)...", err=True)
        data = _prepare_demo(tmp)
        port = _free_port()
        lite = _start_server(data, port, workers, tmp / "sqlite.log", database_url="")
        procs.append(lite)
        base = f"http://127.0.0.1:{port}"
        health = _wait_ready(base, lite, tmp / "sqlite.log")
        urls = _mix(base)
        _warm(base, urls, 10 * workers)
        results["corpus_papers"] = health.get("store", {}).get("papers")
        results["sqlite_1_node"] = {"workers": workers, **asyncio.run(_load(base, urls, clients, seconds))}
        _stop(lite)
        procs.clear()
        click.echo("copying the store to PostgreSQL (db copy)...", err=True)
        r = subprocess.run([sys.executable, "-m", "paperfeed", "--data", str(data), "db", "copy", "--to", database_url],
                           capture_output=True, text=True, env={**os.environ, "PAPERFEED_DATABASE_URL": ""})  # fmt: skip
        if r.returncode != 0:
            raise click.ClickException(f"db copy failed: {r.stderr[-2000:]}")
        bases = []
        per_node = max(1, workers // 2)
        for name in ("node-a", "node-b"):
            node = tmp / name
            shutil.copytree(data, node, ignore=shutil.ignore_patterns("paperfeed.db*"))
            port = _free_port()
            procs.append(_start_server(node, port, per_node, tmp / f"{name}.log", database_url=database_url))
            bases.append(f"http://127.0.0.1:{port}")
        for b, p, name in zip(bases, procs, ("node-a", "node-b"), strict=True):
            _wait_ready(b, p, tmp / f"{name}.log")
            _warm(b, urls, 10 * per_node)
        results["postgres_2_nodes"] = {"workers_per_node": per_node,
                                       **asyncio.run(_load(bases, urls, clients, seconds))}  # fmt: skip
    finally:
        for p in procs:
            _stop(p)
        logs = [f for f in tmp.glob("*.log")]
        warnings = [line for f in logs for line in f.read_text(errors="replace").splitlines() if "WARNING" in line]
        shutil.rmtree(tmp, ignore_errors=True)
    results["server_warnings"] = len(warnings)
    if as_json:
        click.echo(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
    else:
        for name in ("sqlite_1_node", "postgres_2_nodes"):
            ld = results[name]
            click.echo(f"{name:17s} {ld['clients']} clients, {ld['seconds']} s: {ld['requests_per_s']} req/s, "
                       f"errors {ld['errors']}, p50 {ld['latency_p50_ms']} ms, p95 {ld['latency_p95_ms']} ms")  # fmt: skip
    if results["sqlite_1_node"]["errors"] or results["postgres_2_nodes"]["errors"]:
        sys.exit(1)
