"""The site's search service at shutdown: it waits for the index catch-up it started, and starts
none after `stop`, so no background thread reaches for a closed store pool or a stopped database
server. A real data directory, a real store pool (SQLite, and PostgreSQL in PG_TESTS) and the
real embedding model; no server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paperfeed.config import Settings
from paperfeed.web.deps import StorePool
from paperfeed.web.searching import SearchService
from tests.helpers import TOPIC_TITLES, run_cli

pytestmark = pytest.mark.slow  # loads the embedding model and embeds the papers

def test_stop_waits_for_the_catch_up_and_starts_no_other(tmp_path: Path) -> None:
    data = tmp_path / "data"
    src = tmp_path / "papers.jsonl"
    src.write_text("".join(json.dumps({"id": f"s{i}", "title": t, "abstract": t + ", measured."}) + "\n"
                           for i, t in enumerate(TITLES)))  # fmt: skip
    assert run_cli("ingest", str(src), "--no-index", "--no-progress", data=data).returncode == 0
    pool = StorePool(data, Settings.load(data).database_url or None)  # as the site opens it
    svc = SearchService(data, pool)
    try:
        svc.warm_in_background()
        svc.follow(0.05)
        assert svc.caught_up.wait(300)
        store = pool.acquire()
        try:
            assert svc.search(store, "measured", limit=50).total == len(TITLES)
            ids = [r[0] for r in store.conn.execute("SELECT id FROM papers ORDER BY rowid LIMIT 2")]
            # a change, its catch-up started, then stop: the catch-up is waited for, not abandoned
            assert store.set_hidden(ids[0], True)
            svc.catch_up_in_background(store)
            assert "index-follow" in {t.name for t in svc.background_threads()}
            svc.stop(timeout=300)
            assert not svc.background_threads()
            assert svc.search(store, "measured", limit=50).total == len(TITLES) - 1
            # a change after stop starts no catch-up, and the follower has ended
            assert store.set_hidden(ids[1], True)
            svc.catch_up_in_background(store)
            assert not svc.background_threads()
        finally:
            pool.release(store)
    finally:
        pool.close()


TITLES = TOPIC_TITLES
