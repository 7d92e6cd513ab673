"""Ingestion from the real sources: seed pages, the arXiv snapshot, BEIR, JSONL, CSV."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from paperfeed.cli.main import cli
from paperfeed.cli.table import COMMANDS, load
from paperfeed.ingest import detect_format, ingest_paths
from paperfeed.store import open_store
from tests.helpers import ARXIV_SAMPLE, CRANFIELD, run_cli


def test_seed_pages_give_402_papers_twice(data_dir: Path, seed_paths: list[Path]) -> None:
    with open_store(data_dir) as store:
        first = ingest_paths(store, seed_paths, progress=False)
        assert first.rejected == 0
        assert first.added == 402
        assert first.added + first.updated + first.unchanged == 473
        assert store.count() == 402
        second = ingest_paths(store, seed_paths, progress=False)
        assert (second.added, second.updated, second.unchanged) == (0, 0, 473)
        assert store.count() == 402


def test_seed_page_dates_sources_and_positions(data_dir: Path, seed_paths: list[Path]) -> None:
    with open_store(data_dir) as store:
        ingest_paths(store, seed_paths, year=2025, progress=False, today="2025-12-01")
        days = dict(store.feed_dates())
        # pages 000-002 carry "Sep 2", "Jul 16", "Oct 7"; 003-004 have no date
        assert {"2025-09-02", "2025-07-16", "2025-10-07"} <= set(days)
        # the page can be reproduced in order from the recorded positions
        page = store.list_papers(source="hf-page:003_f1e3cf539ae2437f", order="source", limit=500)
        assert len(page) == 119
        assert page[0].title == "Practical applications of metric space magnitude and weighting vectors"
        assert page[1].title.startswith("Small Vectors, Big Effects")
        # "Subscribe" glued to the first title is not part of the title
        assert not any(p.title.startswith("Subscribe") for p in page)
        all_ = store.list_papers(limit=1000)
        multi = [p for p in all_ if len(p.sources) > 1]
        assert multi, "papers repeated across pages must be merged, keeping every source"
        dyn = next(p for p in all_ if p.title.startswith("Dynamic Loss-Based Sample Reweighting"))
        assert {"hf-page:000_8dc835357653a6ba", "hf-page:004_bc376bc51438aa2c"} <= set(dyn.sources)
        # its feed date is the earliest page date it appeared on
        page_dates = {"hf-page:000_8dc835357653a6ba": "2025-09-02", "hf-page:001_15a39429d674aaf0": "2025-07-16",
                      "hf-page:002_2de9d8276f5bb2b3": "2025-10-07"}
        for p in multi:
            dated = [page_dates[s] for s in p.sources if s in page_dates]
            assert p.feed_date == (min(dated) if dated else "2025-12-01"), p.sources


def test_arxiv_sample_gives_200_papers_with_metadata(data_dir: Path) -> None:
    with open_store(data_dir) as store:
        report = ingest_paths(store, [ARXIV_SAMPLE], progress=False)
        assert (report.added, report.rejected) == (200, 0)
        papers = store.list_papers(limit=500)
        assert len(papers) == 200
        assert all(p.authors and p.categories and p.published and p.arxiv_id for p in papers)
        first = store.get_by_rowids([1])[0]
    raw = json.loads(ARXIV_SAMPLE.read_text().splitlines()[0])
    assert first.arxiv_id == raw["id"]
    assert first.categories == raw["categories"].split()
    last, given = raw["authors_parsed"][0][0], raw["authors_parsed"][0][1]
    assert first.authors[0] == f"{given} {last}"
    assert len(first.authors) == len(raw["authors_parsed"])
    assert first.published == "2007-04-02"  # from versions[0].created "Mon, 2 Apr 2007 ..."
    assert "\n" not in first.title
    assert first.default_links()["pdf"].endswith(raw["id"])


def test_arxiv_record_merges_into_page_paper_by_title(data_dir: Path, tmp_path: Path) -> None:
    page = tmp_path / "page.txt"
    page.write_text("Daily Papers\nOct 7\nA Study of Things\nWe study things.\n")
    snap = tmp_path / "snap.jsonl"
    snap.write_text(json.dumps({
        "id": "2401.00001", "title": "A  study of\n things.", "abstract": "We study things, fully.",
        "authors_parsed": [["Doe", "Jane", ""]], "categories": "cs.IR",
        "versions": [{"version": "v1", "created": "Tue, 2 Jan 2024 10:00:00 GMT"}],
    }) + "\n")
    with open_store(data_dir) as store:
        ingest_paths(store, [page], year=2024, progress=False)
        r = ingest_paths(store, [snap], progress=False)
        assert (r.added, r.updated) == (0, 1)
        assert store.count() == 1
        p = store.list_papers()[0]
        assert p.arxiv_id == "2401.00001" and p.authors == ["Jane Doe"]
        assert p.abstract == "We study things, fully."  # arXiv metadata is trusted over a scraped page
        assert set(p.sources) == {"hf-page:page", "arxiv"}
        # ingesting the page again does not undo the richer record
        r2 = ingest_paths(store, [page], year=2024, progress=False)
        assert r2.unchanged == 1 and store.get_paper(p.id).abstract == "We study things, fully."


def test_beir_corpus_keeps_ids_and_same_titled_documents(data_dir: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "coll" / "corpus.jsonl"
    corpus.parent.mkdir()
    rows = [{"_id": "d1", "title": "same", "text": "one"}, {"_id": "d2", "title": "same", "text": "two"},
            {"_id": 3, "title": "", "text": "a document with no title at all"}]
    corpus.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert detect_format(corpus) == "beir"
    with open_store(data_dir) as store:
        r = ingest_paths(store, [corpus], progress=False)
        assert r.added == 3 and r.rejected == 0
        papers = store.list_papers(limit=10, order="oldest")
        assert [p.ext_ids["beir:coll"] for p in papers] == ["d1", "d2", "3"]
        assert papers[2].title.startswith("a document with")
        assert ingest_paths(store, [corpus], progress=False).unchanged == 3


def test_cranfield_corpus_ingests_whole(data_dir: Path) -> None:
    with open_store(data_dir) as store:
        r = ingest_paths(store, [CRANFIELD / "corpus.jsonl"], progress=False)
        # two of its documents are empty: reported with their line, the other 1,398 kept
        assert r.rejected == 2 and store.count() == 1398
        assert [e.rsplit(":", 2)[1] for e in r.errors] == ["471", "995"]


def test_jsonl_and_csv(data_dir: Path, tmp_path: Path) -> None:
    jl = tmp_path / "list.jsonl"
    jl.write_text(json.dumps({"title": "T1", "abstract": "A1", "authors": ["X Y", "Z W"], "date": "2024-05-06",
                              "categories": "cs.LG; stat.ML"}) + "\n")
    cs = tmp_path / "list.csv"
    cs.write_text('title,abstract,authors,date\n"T2, with comma","A2\nspanning lines","P Q; R S",2024-05-07\n')
    assert detect_format(jl) == "jsonl" and detect_format(cs) == "csv"
    with open_store(data_dir) as store:
        r = ingest_paths(store, [jl, cs], progress=False)
        assert (r.added, r.rejected) == (2, 0)
        by_title = {p.title: p for p in store.list_papers()}
        assert by_title["T1"].authors == ["X Y", "Z W"] and by_title["T1"].categories == ["cs.LG", "stat.ML"]
        assert by_title["T1"].published == "2024-05-06" == by_title["T1"].feed_date
        assert by_title["T2, with comma"].abstract == "A2\nspanning lines"
        assert by_title["T2, with comma"].authors == ["P Q", "R S"]


def test_cli_summary_papers_and_stats(data_dir: Path) -> None:
    r = run_cli("ingest", str(ARXIV_SAMPLE), "--no-index", data=data_dir)
    assert r.returncode == 0, r.stderr
    assert "added 200, updated 0, unchanged 0, rejected 0" in r.stdout
    r = run_cli("stats", "--json", data=data_dir)
    assert json.loads(r.stdout)["papers"] == 200
    r = run_cli("papers", "--date", "2007-04-02", "--json", data=data_dir)
    rows = json.loads(r.stdout)
    assert rows and all(p["feed_date"] == "2007-04-02" for p in rows)
    r = run_cli("papers", "--limit", "3", data=data_dir)
    assert len(r.stdout.strip().splitlines()) == 3
    r = run_cli("papers", "--date", "yesterday", data=data_dir)
    assert r.returncode == 2 and "YYYY-MM-DD" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.sqlite_only("reads the SQLite file")
def test_data_dir_from_environment(tmp_path: Path) -> None:
    d = tmp_path / "envdata"
    r = run_cli("ingest", "--demo", "--no-index", env={"PAPERFEED_DATA": str(d)})
    assert r.returncode == 0, r.stderr
    assert (d / "paperfeed.db").is_file()
    with open_store(d) as store:
        assert store.count() == 402
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("name", ["", "ingest", "papers", "stats"])
def test_help_lists_every_command_and_option(name: str) -> None:
    r = run_cli(*([name] if name else []), "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"Usage: paperfeed {name}".rstrip())
    command = load(name) if name else cli
    for option in (p for p in command.params if isinstance(p, click.Option)):
        assert any(o in r.stdout for o in option.opts), option.opts
    if not name:
        for sub in (n for n in COMMANDS if " " not in n):
            assert f"\n  {sub} " in r.stdout, sub


def test_page_files_detected(seed_paths: list[Path]) -> None:
    assert len(seed_paths) == 5
    assert all(detect_format(p) == "hf-page" for p in seed_paths)
