"""Several nodes, each with its own data directory, sharing one PostgreSQL database (issue 14).

These run on PostgreSQL whatever --engine says: they are about what only a shared server gives.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from paperfeed.config import Settings
from paperfeed.models import Paper
from paperfeed.store import open_store
from paperfeed.store import outbox as ob
from paperfeed.store.pg import PostgresEngine
from tests.digest_support import SmtpSink, kill_during_message, smtp_env, subscribe_readers
from tests.helpers import run_cli
from tests.pgcluster import Cluster
from tests.webserver import start_server

pytestmark = pytest.mark.slow  # two serve nodes, digest senders killed mid-run

SUBSCRIBERS = 40


def _jsonl(path: Path, titles: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": t, "title": t, "abstract": f"{t}, an abstract about it.",
                                        "authors": ["A. Author"], "date": "2026-11-20"}) + "\n"
                            for t in titles))  # fmt: skip
    return path


def test_a_paper_ingested_on_one_node_is_found_on_another(tmp_path: Path, pg_url: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("PAPERFEED_DATABASE_URL", pg_url)
    monkeypatch.setenv("PAPERFEED_INDEX_REFRESH_SECONDS", "1")
    node_a, node_b = tmp_path / "a", tmp_path / "b"
    r = run_cli("ingest", str(_jsonl(tmp_path / "first.jsonl", ["Graph colouring of sparse graphs",
                                                                 "Effective rank of matrices"])),
                "--no-progress", data=node_a)  # fmt: skip
    assert r.returncode == 0, r.stderr
    b = start_server(node_b)
    try:
        b.server.config.app.state.search.caught_up.wait(300)  # type: ignore[union-attr]
        with httpx.Client(base_url=b.url, timeout=60) as c:
            first = c.get("/api/search", params={"q": "effective rank"}).json()
            assert first["engine"] == "hybrid" and first["hits"], first
            r = run_cli("ingest", str(_jsonl(tmp_path / "later.jsonl", ["Quasicrystal tomography with zyxwvut"])),
                        "--no-index", "--no-progress", data=node_a)  # fmt: skip
            assert r.returncode == 0, r.stderr
            # node B learns of it from the store alone, no restart and no request needed to start it
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if b.server.config.app.state.search._indexed_seq >= 3:  # type: ignore[union-attr]
                    break
                time.sleep(0.2)
            found = c.get("/api/search", params={"q": "zyxwvut quasicrystal"}).json()
        assert found["engine"] == "hybrid"
        assert [h["paper"]["title"] for h in found["hits"]][:1] == ["Quasicrystal tomography with zyxwvut"]
        assert not (node_b / "paperfeed.db").exists()  # the store is the server's, not node B's
    finally:
        b.stop()


def _setup_subscribers(data: Path, env: dict[str, str]) -> tuple[Settings, list[str]]:
    os.environ.update(env)
    settings = Settings.load(data)
    with open_store(data) as store:
        emails = subscribe_readers(store, settings, SUBSCRIBERS)
    return settings, emails


def _send(data: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "paperfeed", "--data", str(data), "digest", "send"],
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def mail(pg_url: str, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    sink = SmtpSink().start()
    # the nodes share the signing key too, so a link mailed by one works on the other
    env = {**smtp_env(sink), "PAPERFEED_DATABASE_URL": pg_url, "PAPERFEED_SECRET_KEY": "shared-test-key"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    yield sink, env
    sink.stop()


def test_two_senders_on_two_nodes_mail_each_subscriber_once(tmp_path: Path, mail) -> None:  # noqa: ANN001
    sink, env = mail
    _, emails = _setup_subscribers(tmp_path / "a", env)
    sink.handler.delay = 0.05  # so that the two runs overlap
    procs = [_send(tmp_path / "a", env), _send(tmp_path / "b", env)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert "locked" not in out.lower(), out  # nobody waited for a lock: rows are claimed one by one
    assert Counter(r for m in sink.received for r in m.rcpt_tos) == Counter({e: 1 for e in emails})
    sent = [int(re.search(r"sent (\d+)", out).group(1)) for out, _ in outs]  # type: ignore[union-attr]
    assert sum(sent) == SUBSCRIBERS
    print("mails sent by each node:", sent)
    with open_store(tmp_path / "a") as store:
        rows = [r for r in ob.list_rows(store) if r.kind == "alert"]
    assert len(rows) == SUBSCRIBERS and {r.status for r in rows} == {"sent"}
    assert {r.attempts for r in rows} == {1}


def test_sigkill_of_a_sender_then_a_rerun_on_another_node_loses_nothing(tmp_path: Path, mail) -> None:  # noqa: ANN001
    sink, env = mail
    _, emails = _setup_subscribers(tmp_path / "a", env)
    sink.handler.delay = 0.5
    proc = _send(tmp_path / "a", env)
    kill_during_message(proc, sink, 5)
    with open_store(tmp_path / "a") as store:
        c = ob.counts(store)
    assert c.get("sending", 0) >= 1 and c.get("sent", 0) == len(sink.received), c
    sink.handler.delay = 0.0
    rerun = _send(tmp_path / "b", env)  # another node picks up what the dead sender left
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert Counter(r for m in sink.received for r in m.rcpt_tos) == Counter({e: 1 for e in emails})
    with open_store(tmp_path / "b") as store:
        rows = [r for r in ob.list_rows(store) if r.kind == "alert"]
    assert len(rows) == SUBSCRIBERS and {r.status for r in rows} == {"sent"}


def test_unreachable_database_gives_503_and_a_clear_cli_message_then_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = Cluster()  # a server of its own, to stop and start
    own.start()
    try:
        url = own.url()
        monkeypatch.setenv("PAPERFEED_DATABASE_URL", url)
        data = tmp_path / "data"
        with open_store(data) as store:
            store.upsert_papers([Paper(title="A paper that stays", abstract="x", feed_date="2026-11-20")])
        srv = start_server(data, warm_search=False)
        try:
            with httpx.Client(base_url=srv.url, timeout=60) as c:
                assert c.get("/").status_code == 200
                own.halt()
                page = c.get("/")
                assert page.status_code == 503 and "database is unreachable" in page.text
                assert c.get("/api/papers").status_code == 503
                r = run_cli("stats", data=data)
                assert r.returncode == 4 and "cannot be reached" in r.stderr and "Traceback" not in r.stderr
                r = run_cli("db", "check", data=data)
                assert r.returncode == 4 and "unreachable" in r.stderr
                own.start()
                deadline = time.monotonic() + 60
                status = 0
                while time.monotonic() < deadline and status != 200:
                    status = c.get("/").status_code
                    time.sleep(0.2)
                assert status == 200  # the same process serves again
                assert "A paper that stays" in c.get("/").text
        finally:
            srv.stop()
    finally:
        PostgresEngine.close_pools()
        own.stop()


def test_db_copy_moves_a_sqlite_store_and_db_check_reports_it(tmp_path: Path, pg_url: str) -> None:
    data = tmp_path / "data"
    r = run_cli("ingest", "--demo", "--no-index", "--no-progress", data=data, env={"PAPERFEED_DATABASE_URL": ""})
    assert r.returncode == 0, r.stderr
    lite = json.loads(run_cli("db", "check", "--json", data=data, env={"PAPERFEED_DATABASE_URL": ""}).stdout)
    assert lite["engine"] == "sqlite" and lite["rows"]["papers"] > 100 and not lite["pending_migrations"]
    r = run_cli("db", "copy", "--to", pg_url, "--json", data=data, env={"PAPERFEED_DATABASE_URL": ""})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rows"] == lite["rows"]
    pg = json.loads(run_cli("db", "check", "--json", data=data, env={"PAPERFEED_DATABASE_URL": pg_url}).stdout)
    assert pg["engine"] == "postgres" and pg["rows"] == lite["rows"]
    assert pg["schema_version"] == lite["schema_version"]
    # the copy is a working store: the next paper gets a fresh key, and a second copy is refused
    r = run_cli("ingest", str(_jsonl(tmp_path / "x.jsonl", ["One more paper after the move"])), "--no-index",
                "--no-progress", data=tmp_path / "node", env={"PAPERFEED_DATABASE_URL": pg_url})  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = run_cli("db", "copy", "--to", pg_url, data=data, env={"PAPERFEED_DATABASE_URL": ""})
    assert r.returncode != 0 and "already holds data" in r.stderr
    r = run_cli("db", "migrate", data=data, env={"PAPERFEED_DATABASE_URL": pg_url})
    assert r.returncode == 0 and "up to date" in r.stdout
