"""A server prepares the corpus features ("Similar papers" and the recommender) at start-up, off
the request path: a real uvicorn server on 127.0.0.1, its /healthz read over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from paperfeed.store import accounts as acc
from paperfeed.store import library as lib
from paperfeed.store import open_store
from tests.helpers import TOPIC_TITLES, run_cli
from tests.webserver import start_server

pytestmark = pytest.mark.slow  # the server loads the embedding model and indexes the papers

TITLES = TOPIC_TITLES


def _data(tmp_path: Path, *, saved: bool) -> Path:
    data = tmp_path / "data"
    src = tmp_path / "papers.jsonl"
    src.write_text("".join(json.dumps({"id": f"w{i}", "title": t, "abstract": t + ", measured."}) + "\n"
                           for i, t in enumerate(TITLES)))  # fmt: skip
    r = run_cli("ingest", str(src), "--no-index", "--no-progress", data=data)
    assert r.returncode == 0, r.stderr
    if saved:
        with open_store(data) as store:
            user = acc.create_user(store, "reader@example.org", "correct horse 1")
            rowid = store.conn.execute("SELECT rowid FROM papers WHERE title = ?", (TITLES[0],)).fetchone()[0]
            assert lib.save(store, user.id, [rowid]) == 1
    return data


def _for_you_papers(data: Path) -> object:
    srv = start_server(data)
    try:
        assert srv.server.config.app.state.search.caught_up.wait(300)  # type: ignore[union-attr]
        health = httpx.get(srv.url + "/healthz", timeout=30).json()
        assert health["index"]["ready"], health
        return health["index"]["for_you_papers"]
    finally:
        srv.stop()


def test_features_are_ready_before_the_first_for_you_when_a_library_exists(tmp_path: Path) -> None:
    assert _for_you_papers(_data(tmp_path, saved=True)) == len(TITLES)


def test_features_are_ready_without_any_library_for_similar_papers(tmp_path: Path) -> None:
    assert _for_you_papers(_data(tmp_path, saved=False)) == len(TITLES)
