"""Live arXiv harvesting against a loopback OAI-PMH server that answers as arXiv's does:
the real `paperfeed` command in subprocesses, real SQLite, real HTTP on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from paperfeed.bench.oai_server import ArxivOaiServer, Fault, OaiRecord, retry_after
from paperfeed.ingest import harvest as hv
from paperfeed.ingest.oai import OaiClient
from paperfeed.store import accounts as acc
from paperfeed.store import harvest as hs
from paperfeed.store import open_store
from paperfeed.store import votes as vt
from paperfeed.store.engine import StoreUnavailable
from tests.digest_support import free_port
from tests.helpers import day, run_cli

TEX_TITLE = "On the $\\mathcal{O}(n \\log n)$ Complexity of\n  Sparse Attention in Transformers {#%d}"
TEX_ABSTRACT = (
    "  We show that sparse attention with $k$ neighbours costs $\\mathcal{O}(nk)$ time &\n"
    "memory, where $n<m$ is the sequence length. Experiments on \\emph{long-range arena}\n"
    "confirm the bound (record %d).\n"
)


def make_records(n: int, *, start: int = 0, datestamp: str | None = None) -> list[OaiRecord]:
    return [
        OaiRecord(
            arxiv_id=f"2611.{i:05d}", datestamp=datestamp or day(-1 - i % 2), created=day(-3),
            title=TEX_TITLE % i, abstract=TEX_ABSTRACT % i,
            authors=[("Noether", "Emmy"), ("de Bruijn", "Nicolaas Govert"), ("Lovelace", f"Ada{i}")],
            categories="cs.LG stat.ML" if i % 3 else "cs.CL", comments="12 pages, 3 figures",
            doi=f"10.1000/test.{i}" if i % 4 == 0 else None, sets=["cs"] if i % 5 else ["cs", "stat"],
        )  # fmt: skip
        for i in range(start, start + n)
    ]


def harvest(data: Path, url: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_cli("harvest", "arxiv", "--url", url, "--delay", "0", "--no-index", "--no-progress", *args,
                   data=data, env=env)  # fmt: skip


def stats(data: Path, env: dict | None = None) -> dict:
    r = run_cli("stats", "--json", data=data, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def papers(data: Path, env: dict | None = None) -> list[dict]:
    r = run_cli("papers", "--json", "--limit", "100000", data=data, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def status(data: Path, env: dict | None = None) -> dict:
    r = run_cli("harvest", "status", "--json", data=data, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture
def server():
    with ArxivOaiServer(make_records(25), page_size=10) as srv:
        yield srv


def test_harvest_follows_tokens_and_stores_arxiv_records(server: ArxivOaiServer, data_dir: Path) -> None:
    server.records.append(OaiRecord("2611.99999", day(-1), deleted=True))  # unknown here: changes nothing
    r = harvest(data_dir, server.url, "--json", env={"PAPERFEED_CONTACT_EMAIL": "ops@example.org"})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["added"], out["revised"], out["deleted"], out["unchanged"]) == (25, 0, 0, 1), out
    assert out["sets"][0]["pages"] == 3 and out["sets"][0]["from"] == day(-3)

    # the first run asks for the last 3 days of the default set, then follows the tokens alone
    reqs = server.verb_requests()
    assert reqs[0] == {"verb": "ListRecords", "metadataPrefix": "arXiv", "set": "cs", "from": day(-3)}
    assert [set(p) for p in reqs[1:]] == [{"verb", "resumptionToken"}] * 2
    ua = server.requests[0][2]["User-Agent"]
    assert ua.startswith("paperfeed/") and "ops@example.org" in ua

    by_id = {p["arxiv_id"]: p for p in papers(data_dir)}
    assert len(by_id) == 25
    p = by_id["2611.00004"]
    # multi-line TeX titles and abstracts are joined into one line, TeX kept as written
    assert p["title"] == "On the $\\mathcal{O}(n \\log n)$ Complexity of Sparse Attention in Transformers {#4}"
    assert p["abstract"].startswith("We show that sparse attention with $k$ neighbours costs $\\mathcal{O}(nk)$ time & memory, where $n<m$")
    assert p["authors"] == ["Emmy Noether", "Nicolaas Govert de Bruijn", "Ada4 Lovelace"]
    assert p["categories"] == ["cs.LG", "stat.ML"] and p["doi"] == "10.1000/test.4"
    # published is the day of version 1; a fresh paper enters the feed on its datestamp
    assert p["published"] == day(-3) and p["feed_date"] == day(-1)
    assert p["links"]["arxiv"] == "https://arxiv.org/abs/2611.00004"

    st = status(data_dir)
    [cs] = st["sets"]
    assert cs["set_spec"] == "cs" and cs["status"] == "ok" and cs["harvested_until"] == day(0)
    assert (cs["added"], cs["run_token"]) == (25, None)


def test_incremental_runs_and_same_window_twice_change_nothing(server: ArxivOaiServer, data_dir: Path) -> None:
    assert harvest(data_dir, server.url).returncode == 0
    before = stats(data_dir), papers(data_dir)
    # the next run starts at the day the last one reached (inclusive), and finds nothing new
    r = harvest(data_dir, server.url, "--json")
    assert r.returncode == 0, r.stderr
    assert server.verb_requests()[-1]["from"] == day(0)
    assert json.loads(r.stdout)["records"] == 0
    # the same window again: every record is unchanged, and so is the store
    r = harvest(data_dir, server.url, "--from", day(-3), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["added"], out["revised"], out["unchanged"]) == (0, 0, 25)
    assert (stats(data_dir), papers(data_dir)) == before
    # a past window does not move the set's datestamp back
    assert harvest(data_dir, server.url, "--from", day(-9), "--until", day(-8)).returncode == 0
    assert status(data_dir)["sets"][0]["harvested_until"] == day(0)


def test_revised_record_updates_in_place_and_deleted_hides(server: ArxivOaiServer, data_dir: Path) -> None:
    assert harvest(data_dir, server.url).returncode == 0
    with open_store(data_dir) as store:
        voter = acc.create_user(store, "reader@example.org", "password-123")
        gone = store.get_paper(next(p["id"] for p in papers(data_dir) if p["arxiv_id"] == "2611.00007"))
        vt.vote(store, voter.id, gone.rowid)
        admin_hidden = next(p["id"] for p in papers(data_dir) if p["arxiv_id"] == "2611.00008")
        store.set_hidden(admin_hidden, True)
    old = {p["arxiv_id"]: p for p in papers(data_dir)}["2611.00003"]

    # the next day arXiv lists a new version of one paper and deletes another
    rev = next(r for r in server.records if r.arxiv_id == "2611.00003")
    rev.title, rev.updated, rev.datestamp = "A Revised Title:\n  Tighter Bounds", day(0), day(0)
    rev.categories = "cs.LG cs.DS"
    server.records = [r for r in server.records if r.arxiv_id not in ("2611.00007", "2611.00008")]
    server.records += [OaiRecord("2611.00007", day(0), deleted=True), OaiRecord("2611.00008", day(0), deleted=True)]
    r = harvest(data_dir, server.url, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["added"], out["revised"], out["deleted"]) == (0, 1, 1), out

    now = {p["arxiv_id"]: p for p in papers(data_dir)}
    assert len(now) == 23 and "2611.00007" not in now and "2611.00008" not in now
    new = now["2611.00003"]
    assert new["id"] == old["id"] and new["title"] == "A Revised Title: Tighter Bounds"
    assert new["categories"] == ["cs.LG", "cs.DS"]
    assert new["feed_date"] == old["feed_date"]  # a revision does not move a paper to another day
    assert stats(data_dir)["papers"] == 25  # hidden, not removed
    with open_store(data_dir) as store:
        assert store.conn.execute("SELECT COUNT(*) FROM votes WHERE paper_rowid = ?", (gone.rowid,)).fetchone()[0] == 1
        rec = hs.record_for_paper(store, store.get_paper(old["id"]).rowid)
        assert rec["updated"] == day(0) and rec["created"] == day(-3)

    # arXiv lists the deleted papers again: the one it had hidden is shown again, the admin's stays hidden
    server.records = [r for r in server.records if r.arxiv_id not in ("2611.00007", "2611.00008")]
    server.records += make_records(2, start=7, datestamp=day(0))
    r = harvest(data_dir, server.url, "--json")
    assert json.loads(r.stdout)["revised"] == 1
    shown = {p["arxiv_id"] for p in papers(data_dir)}
    assert "2611.00007" in shown and "2611.00008" not in shown


def test_503_retry_after_and_polite_delay(server: ArxivOaiServer, data_dir: Path) -> None:
    server.faults += retry_after(1)
    server.faults.append(Fault(status=500, body=b"oops", content_type="text/plain",
                               when=lambda p: "resumptionToken" in p))  # fmt: skip
    r = run_cli("harvest", "arxiv", "--url", server.url, "--delay", "0.3", "--no-index", "--no-progress", "--json",
                data=data_dir)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["added"] == 25
    times = [t for t, p, _ in server.requests if p.get("verb") == "ListRecords"]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(times) == 5  # 503, page 1, 500, page 2, page 3
    assert gaps[0] >= 1.0  # Retry-After honoured
    assert min(gaps) >= 0.3  # never faster than the polite delay
    assert "HTTP 503; retrying in 1.0s" in r.stderr


def test_transient_failure_past_the_retry_budget_fails_and_resumes(server: ArxivOaiServer, data_dir: Path) -> None:
    server.faults += [Fault(status=502, body=b"bad gateway", content_type="text/plain",
                            when=lambda p: "resumptionToken" in p) for _ in range(4)]  # fmt: skip
    r = harvest(data_dir, server.url, "--retry-for", "2")
    assert r.returncode == 1
    assert "kept failing (HTTP 502)" in r.stderr
    assert stats(data_dir)["papers"] == 10  # the first page is kept
    [cs] = status(data_dir)["sets"]
    assert cs["status"] == "failed" and "HTTP 502" in cs["last_error"] and cs["run_token"]
    server.faults.clear()
    r = harvest(data_dir, server.url, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)["sets"][0]
    assert out["resumed"] and out["added"] == 25
    assert status(data_dir)["sets"][0]["last_error"] is None


def test_malformed_page_loses_nothing_and_the_next_run_resumes(server: ArxivOaiServer, tmp_path: Path,
                                                                other_database: str | None) -> None:  # fmt: skip
    # the clean run in a second store: another data directory, on PostgreSQL another database
    clean, clean_env = tmp_path / "clean", ({"PAPERFEED_DATABASE_URL": other_database} if other_database else None)
    assert harvest(clean, server.url, env=clean_env).returncode == 0
    data = tmp_path / "data"
    server.faults.append(Fault(malformed=True, when=lambda p: "resumptionToken" in p))
    r = harvest(data, server.url)
    assert r.returncode == 1
    assert "malformed XML" in r.stderr and "Traceback" not in r.stderr
    assert stats(data)["papers"] == 10
    n = len(server.verb_requests())
    r = harvest(data, server.url)
    assert r.returncode == 0, r.stderr
    assert "resumptionToken" in server.verb_requests()[n]  # continued from the page that failed
    assert papers(data) == papers(clean, clean_env) and stats(data) == stats(clean, clean_env)


def test_expired_token_restarts_from_the_stored_datestamp(server: ArxivOaiServer, data_dir: Path) -> None:
    server.faults.append(Fault(malformed=True, when=lambda p: "resumptionToken" in p))
    assert harvest(data_dir, server.url).returncode == 1
    server.expire_tokens()
    r = harvest(data_dir, server.url, "--json")
    assert r.returncode == 0, r.stderr
    reqs = server.verb_requests()
    assert reqs[-4]["resumptionToken"] and reqs[-3]["from"] == day(-3)  # refused, then the window again
    assert json.loads(r.stdout)["added"] == 25 and stats(data_dir)["papers"] == 25


def test_no_records_is_success(data_dir: Path) -> None:
    with ArxivOaiServer([]) as srv:
        r = harvest(data_dir, srv.url, "--set", "math")
    assert r.returncode == 0, r.stderr
    assert "added 0" in r.stdout
    assert status(data_dir)["sets"][0]["harvested_until"] == day(0)


@pytest.mark.parametrize(("args", "message"), [
    (("--set", "nonsense"), "set 'nonsense' is not known"),
    (("--from", day(2)), "is in the future"),
    (("--from", "2026-13-01"), "must be a date YYYY-MM-DD"),
    (("--from", day(-1), "--until", day(-5)), "is before --from"),
    (("--url", "URL/nothing"), "HTTP 404: is this an OAI-PMH base URL?"),
    (("--url", "URL/html"), "HTML page, not OAI-PMH XML"),
    (("--url", f"http://127.0.0.1:{free_port()}/oai"), "cannot reach"),
    (("--url", "ftp://example.org/oai"), "not an http(s) URL"),
])  # fmt: skip
def test_bad_input_is_refused_and_stores_nothing(server: ArxivOaiServer, data_dir: Path, args: tuple,
                                                message: str) -> None:  # fmt: skip
    server.faults.append(Fault(body=b"<!DOCTYPE html><html><body>Welcome</body></html>", content_type="text/html",
                               path="/html"))  # fmt: skip
    args = tuple(a.replace("URL", server.url.removesuffix("/oai")) for a in args)
    base = () if "--url" in args else ("--url", server.url)
    r = run_cli("harvest", "arxiv", *base, "--delay", "0", "--no-index", "--retry-for", "1", *args, data=data_dir)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr and "Traceback" not in r.stderr
    assert stats(data_dir)["papers"] == 0 and status(data_dir)["sets"] == []


def test_second_harvest_exits_while_one_runs(server: ArxivOaiServer, data_dir: Path) -> None:
    with hv.harvest_lock(data_dir):
        r = harvest(data_dir, server.url)
    assert r.returncode == 3
    assert f"another harvest is running in {data_dir} (pid {os.getpid()})" in r.stderr
    assert harvest(data_dir, server.url).returncode == 0


def test_settings_choose_url_and_sets(server: ArxivOaiServer, data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / "config.toml").write_text(f'arxiv_sets = ["stat", "physics:astro-ph"]\narxiv_oai_delay = 0\n'
                                          f'arxiv_oai_url = "{server.url}"\n')  # fmt: skip
    server.records.append(OaiRecord("astro-ph/0601001", day(-1), sets=["physics:astro-ph"], title="Dark matter",
                                    created=day(-2), categories="astro-ph.CO"))  # fmt: skip
    r = run_cli("harvest", "arxiv", "--no-index", "--json", data=data_dir)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [(s["set"], s["added"]) for s in out["sets"]] == [("stat", 5), ("physics:astro-ph", 1)]
    r = run_cli("harvest", "arxiv", "--no-index", "--retry-for", "1", data=data_dir,
                env={"PAPERFEED_ARXIV_OAI_URL": "http://127.0.0.1:9/oai",
                     "PAPERFEED_ARXIV_SETS": "cs"})  # fmt: skip
    assert r.returncode == 2 and "cannot reach http://127.0.0.1:9/oai" in r.stderr


def test_latex_in_author_names_is_typeset_as_in_the_snapshot(data_dir: Path) -> None:
    # arXiv's OAI records write names in LaTeX; the snapshot's authors_parsed has them typeset,
    # and the two must name the same person (follows, author search, exports)
    rec = dataclasses.replace(make_records(1)[0], authors=[("Bal\\'azs", "Csaba"), ("Vina\\v{r}", "Tom\\'a\\v{s}")])
    with ArxivOaiServer([rec], page_size=10) as srv:
        r = harvest(data_dir, srv.url, "--from", day(-5))
        assert r.returncode == 0, r.stderr
    (paper,) = papers(data_dir)
    assert paper["authors"] == ["Csaba Balázs", "Tomáš Vinař"]


def test_add_one_paper_by_id(server: ArxivOaiServer, data_dir: Path) -> None:
    r = run_cli("add", "arxiv:2611.00012v2", "--url", server.url, "--no-index", "--json", data=data_dir)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "added" and out["paper"]["arxiv_id"] == "2611.00012"
    assert server.verb_requests("GetRecord")[0]["identifier"] == "oai:arXiv.org:2611.00012"
    r = run_cli("add", "arxiv:2611.00012", "--url", server.url, "--no-index", data=data_dir)
    assert r.returncode == 0 and r.stdout.startswith("unchanged:")
    r = run_cli("add", "arxiv:not-an-id", "--url", server.url, data=data_dir)
    assert r.returncode == 2 and "is not an arXiv identifier" in r.stderr
    r = run_cli("add", "arxiv:2611.54321", "--url", server.url, data=data_dir)
    assert r.returncode == 2 and "arXiv has no paper 2611.54321" in r.stderr
    assert stats(data_dir)["papers"] == 1


def test_oai_client_parses_paging_attributes(server: ArxivOaiServer) -> None:
    with OaiClient(server.url, user_agent="t", delay=0) as client:
        pages = list(client.list_records(metadata_prefix="arXiv", set_spec="cs"))
    assert [(len(p.records), p.cursor, p.complete_list_size, bool(p.token)) for p in pages] == [
        (10, 0, 25, True), (10, 10, 25, True), (5, 20, 25, False)]


def _db_pages(data: Path) -> int:
    """Pages committed so far, read through the store as another process would (either engine)."""
    if not (data / "paperfeed.db").exists() and not os.environ.get("PAPERFEED_DATABASE_URL"):
        return 0
    try:
        with open_store(data, readonly=True) as store:
            row = store.conn.execute("SELECT pages FROM harvest_sets").fetchone()
    except (sqlite3.Error, StoreUnavailable):  # SQLite: no file or no table yet
        return 0
    return row[0] if row else 0


def test_sigkill_mid_harvest_then_rerun_equals_an_uninterrupted_run(tmp_path: Path,
                                                                   other_database: str | None) -> None:  # fmt: skip
    records = make_records(120)
    records[30].updated, records[30].datestamp = day(0), day(0)
    records.insert(60, OaiRecord("2611.00005", day(0), deleted=True))  # deletes a paper of an earlier page
    with ArxivOaiServer(records, page_size=6) as srv:
        # the uninterrupted run in a second store: another data directory, on PostgreSQL another database
        clean, clean_env = tmp_path / "clean", ({"PAPERFEED_DATABASE_URL": other_database} if other_database else None)
        assert harvest(clean, srv.url, env=clean_env).returncode == 0
        data = tmp_path / "data"
        for kill_after in (3, 9, 15):
            proc = subprocess.Popen(
                [sys.executable, "-m", "paperfeed", "--data", str(data), "harvest", "arxiv", "--url", srv.url,
                 "--delay", "0.05", "--no-index", "--no-progress"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            deadline = time.monotonic() + 60
            while _db_pages(data) < kill_after and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert _db_pages(data) < 21, "the harvest finished before it could be killed"
        r = harvest(data, srv.url, "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["sets"][0]["resumed"]
    assert stats(data) == stats(clean, clean_env)
    assert papers(data) == papers(clean, clean_env)
    assert status(data)["sets"][0]["harvested_until"] == status(clean, clean_env)["sets"][0]["harvested_until"]


def test_xml_with_entities_is_refused(server: ArxivOaiServer, data_dir: Path) -> None:
    bomb = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>\n'
            b'<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><responseDate>&lol2;</responseDate></OAI-PMH>')
    server.faults.append(Fault(body=bomb))
    r = harvest(data_dir, server.url)
    assert r.returncode == 1 and "refused for safety" in r.stderr, r.stderr
    assert stats(data_dir)["papers"] == 0


def test_a_record_that_cannot_be_used_is_reported_and_the_rest_kept(server: ArxivOaiServer, data_dir: Path) -> None:
    server.records[4].title = "  \n "
    r = harvest(data_dir, server.url, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["added"], out["rejected"]) == (24, 1)
    assert "rejected: 2611.00004: empty title" in r.stderr


@pytest.mark.parametrize(("env", "message"), [
    ({"PAPERFEED_ARXIV_OAI_DELAY": "soon"}, "PAPERFEED_ARXIV_OAI_DELAY must be a number"),
    ({"PAPERFEED_ARXIV_OAI_DELAY": "-1"}, "PAPERFEED_ARXIV_OAI_DELAY must be a number of seconds >= 0"),
    ({"PAPERFEED_ARXIV_OAI_URL": "oaipmh.arxiv.org/oai"}, "PAPERFEED_ARXIV_OAI_URL must be an http(s) URL"),
    ({"PAPERFEED_HARVEST_INTERVAL_MINUTES": "hourly"}, "PAPERFEED_HARVEST_INTERVAL_MINUTES must be a whole number"),
])  # fmt: skip
def test_bad_harvest_settings_are_named(data_dir: Path, env: dict, message: str) -> None:
    r = run_cli("harvest", "arxiv", "--no-index", data=data_dir, env=env)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_status_in_words(server: ArxivOaiServer, data_dir: Path) -> None:
    r = run_cli("harvest", "status", data=data_dir)
    assert r.returncode == 0 and "no harvest has run yet" in r.stdout
    assert harvest(data_dir, server.url).returncode == 0
    r = run_cli("harvest", "status", data=data_dir)
    assert f"arxiv cs: harvested until {day(0)}; last run ok" in r.stdout and "added 25" in r.stdout


def test_bench_harvest_json(tmp_path: Path) -> None:
    r = run_cli("bench", "harvest", "--records", "300", "--page-size", "100", "--json", "--workdir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.splitlines()[-1])
    assert out["records"] == out["added"] == 300 and out["pages"] == 3 and out["waited_s"] == 0
    assert out["records_per_s"] > 0 and out["peak_rss_mb"] > 0


def test_a_refusal_mid_run_is_a_failure_to_resume_not_bad_input(server: ArxivOaiServer, data_dir: Path) -> None:
    server.faults.append(Fault(status=404, body=b"<html>gone</html>", content_type="text/html",
                               when=lambda p: "resumptionToken" in p))  # fmt: skip
    r = harvest(data_dir, server.url)
    assert r.returncode == 1 and "HTTP 404" in r.stderr
    [cs] = status(data_dir)["sets"]
    assert cs["status"] == "failed" and "HTTP 404" in cs["last_error"] and stats(data_dir)["papers"] == 10
    assert harvest(data_dir, server.url).returncode == 0 and stats(data_dir)["papers"] == 25
