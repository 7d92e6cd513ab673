"""`paperfeed serve --harvest-every` harvests arXiv itself, in the serve process only, and new
papers reach the site's list and search without a restart."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from paperfeed.bench.oai_server import ArxivOaiServer, OaiRecord
from tests.digest_support import free_port
from tests.helpers import day, spawn_cli, wait_for

pytestmark = pytest.mark.slow  # runs `serve` with its harvest scheduler

TICK = 1.0


def _record(arxiv_id: str, title: str, datestamp: str) -> OaiRecord:
    return OaiRecord(arxiv_id, datestamp, created=datestamp, title=title, authors=[("Pasteur", "Louis")],
                     abstract=f"{title}: a study of fermentation, yeast and the chemistry of wine.\n")  # fmt: skip


def _titles(base: str, path: str) -> list[str]:
    try:
        r = httpx.get(base + path, timeout=30)
    except httpx.HTTPError:
        return []
    if r.status_code != 200:
        return []
    body = r.json()
    return [h["paper"]["title"] for h in body["hits"]] if "hits" in body else [p["title"] for p in body["papers"]]


def test_serve_harvests_on_a_timer_and_new_papers_reach_list_and_search(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with ArxivOaiServer([_record("2611.00001", "Zymurgy of Quantum Yeast", day(-1))]) as srv:
        env = {**os.environ, "PAPERFEED_ARXIV_OAI_URL": srv.url, "PAPERFEED_ARXIV_OAI_DELAY": "0"}
        proc = spawn_cli("serve", "--port", str(port), "--workers", "2", "--no-sync", "--harvest-every", str(TICK),
                         data=data, log=log, env=env)  # fmt: skip
        try:
            wait_for("the first harvest", lambda: "Zymurgy of Quantum Yeast" in _titles(base, "/api/search?q=zymurgy"),
                  proc, log, timeout=120)  # fmt: skip
            # a paper announced later arrives with a later scheduled run, no restart
            srv.records.append(_record("2611.00002", "Oenology of Entangled Grapes", day(0)))
            wait_for("the next harvest", lambda: "Oenology of Entangled Grapes" in _titles(base, "/api/search?q=oenology"),
                  proc, log, timeout=120)  # fmt: skip
            assert _titles(base, f"/api/papers?date={day(0)}") == ["Oenology of Entangled Grapes"]
            time.sleep(2 * TICK)
            assert proc.poll() is None
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        requests = srv.verb_requests()
    # incremental: every run after the first asks from the day the previous one reached
    assert requests[0]["from"] == day(-3) and all(r["from"] == day(0) for r in requests[1:])
    # one scheduler for the whole server, not one per worker
    assert log.read_text().count("harvest job scheduled every") == 1, log.read_text()[-3000:]
