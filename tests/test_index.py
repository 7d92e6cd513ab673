"""The indexes follow the store: catch-up by seq, crash healing, no re-embedding, hiding, rebuild."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paperfeed.index import rebuild, status, sync
from paperfeed.index.sync import IndexState, index_dir
from paperfeed.ingest import ingest_paths
from paperfeed.search import open_searcher
from paperfeed.store import open_store


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _papers(n: int, start: int = 0, topic: str = "turbulent boundary layers") -> list[dict]:
    return [
        {
            "title": f"Paper {i} on {topic}",
            "abstract": f"We study {topic} in setting number {i}. The zeta{i} method is introduced.",
            "authors": [f"Author {i}", "Ada Lovelace"],
            "categories": ["physics.flu-dyn"],
            "published": f"2024-01-{(i % 28) + 1:02d}",
        }
        for i in range(start, start + n)
    ]


@pytest.fixture
def store_dir(tmp_path: Path):
    data = tmp_path / "data"
    store = open_store(data)
    yield data, store, tmp_path
    store.close()


def test_lexical_catch_up_is_incremental_and_idempotent(store_dir):
    data, store, tmp = store_dir
    ingest_paths(store, [_write_jsonl(tmp / "a.jsonl", _papers(20))])
    r1 = sync(store, data, vectors=False)
    assert r1.lexical_indexed == 20
    assert sync(store, data, vectors=False).lexical_indexed == 0  # nothing new
    ingest_paths(store, [_write_jsonl(tmp / "b.jsonl", _papers(5, start=20))])
    assert sync(store, data, vectors=False).lexical_indexed == 5
    s = open_searcher(data, store, auto_sync=False)
    assert len(s.lexical) == 25
    assert s.rank("zeta22", mode="lexical").rids == [store.conn.execute(
        "SELECT rowid FROM papers WHERE title = 'Paper 22 on turbulent boundary layers'").fetchone()[0]]  # fmt: skip


def test_crash_between_index_commit_and_state_replays_without_duplicates(store_dir):
    data, store, tmp = store_dir
    ingest_paths(store, [_write_jsonl(tmp / "a.jsonl", _papers(30))])
    sync(store, data, vectors=False)
    # Simulate a crash after the tantivy commit but before the seq was recorded.
    st = IndexState(index_dir(data))
    st.set(lex_seq=0)
    st.close()
    assert sync(store, data, vectors=False).lexical_indexed == 30
    s = open_searcher(data, store, auto_sync=False)
    assert len(s.lexical) == 30  # replayed, not duplicated
    assert len(s.rank("zeta7", mode="lexical").rids) == 1


def test_search_heals_a_store_commit_the_index_never_saw(store_dir):
    data, store, tmp = store_dir
    ingest_paths(store, [_write_jsonl(tmp / "a.jsonl", _papers(10))])
    sync(store, data, vectors=False)
    s = open_searcher(data, store)
    # Papers committed to the store without an index update (a crash, or ingest --no-index).
    ingest_paths(store, [_write_jsonl(tmp / "b.jsonl", _papers(3, start=100, topic="hypersonic flutter"))])
    res = s.search("hypersonic flutter", store=store, mode="lexical", limit=10)
    assert len(res.hits) == 3
    assert status(store, data)["lexical_pending"] == 0


def test_hidden_papers_leave_the_index_and_come_back(store_dir):
    data, store, tmp = store_dir
    ingest_paths(store, [_write_jsonl(tmp / "a.jsonl", _papers(10))])
    s = open_searcher(data, store)
    target = store.list_papers(limit=100)[0]
    word = f"zeta{target.title.split()[1]}"
    assert s.search(word, store=store, mode="lexical").hits
    assert store.set_hidden(target.id, True)
    assert s.search(word, store=store, mode="lexical").hits == []
    assert store.set_hidden(target.id, False)
    assert [h.paper.id for h in s.search(word, store=store, mode="lexical").hits] == [target.id]


def test_replaced_store_rebuilds_the_index(tmp_path: Path, other_database: str | None,
                                          monkeypatch: pytest.MonkeyPatch):  # fmt: skip
    data = tmp_path / "data"
    with open_store(data) as store:
        ingest_paths(store, [_write_jsonl(tmp_path / "a.jsonl", _papers(8))])
        sync(store, data, vectors=False)
    if other_database:  # PostgreSQL: the node is pointed at another database
        monkeypatch.setenv("PAPERFEED_DATABASE_URL", other_database)
    else:  # SQLite: the file is replaced
        (data / "paperfeed.db").unlink()
        for extra in data.glob("paperfeed.db-*"):
            extra.unlink()
    with open_store(data) as store:
        ingest_paths(store, [_write_jsonl(tmp_path / "b.jsonl", _papers(2, start=50, topic="shock waves"))])
        report = sync(store, data, vectors=False)
        assert "lexical" in report.rebuilt
        s = open_searcher(data, store, auto_sync=False)
        assert len(s.lexical) == 2  # nothing left over from the old database
        assert s.search("turbulent", store=store, mode="lexical").hits == []


def test_vectors_are_computed_once_per_text(store_dir):
    data, store, tmp = store_dir
    rows = _papers(12)
    ingest_paths(store, [_write_jsonl(tmp / "a.jsonl", rows)])
    r1 = sync(store, data)
    assert r1.embedded == 12
    # Same papers again from another file: a new source bumps seq, but the text is unchanged.
    ingest_paths(store, [_write_jsonl(tmp / "again.jsonl", rows)], source_name="mirror")
    r2 = sync(store, data)
    assert r2.embedded == 0
    assert r2.lexical_indexed == 12 and r2.embed_skipped == 12
    # A changed abstract is re-embedded, only that one.
    changed = dict(rows[3], abstract="A completely different abstract about laminar separation bubbles.")
    ingest_paths(store, [_write_jsonl(tmp / "changed.jsonl", [changed])])
    assert sync(store, data).embedded == 1
    s = open_searcher(data, store)
    res = s.search("laminar separation bubbles", store=store, mode="dense", limit=1)
    assert res.hits[0].paper.title == changed["title"]


def test_rebuild_recreates_everything(store_dir):
    data, store, tmp = store_dir
    ingest_paths(store, [_write_jsonl(tmp / "a.jsonl", _papers(6))])
    sync(store, data)
    report = rebuild(store, data, progress=False)
    assert report.lexical_indexed == 6 and report.embedded == 6
    assert {"lexical", "vectors"} <= set(report.rebuilt)
    st = status(store, data)
    assert st["lexical_pending"] == 0 and st["vectors_pending"] == 0 and st["embedded"] == 6


def test_index_cli_status_and_rebuild(store_dir):
    from click.testing import CliRunner

    from paperfeed.cli.main import cli

    data, store, tmp = store_dir
    ingest_paths(store, [_write_jsonl(tmp / "a.jsonl", _papers(4))])
    runner = CliRunner()
    r = runner.invoke(cli, ["--data", str(data), "index", "--status", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["lexical_pending"] == 4
    r = runner.invoke(cli, ["--data", str(data), "index", "--rebuild", "--no-vectors", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["lexical_indexed"] == 4


def test_adjacent_query_words_rank_a_paper_higher(store_dir):
    # Both papers have both words once and the same length; only one has them side by side
    # (across a stopword: "angle of attack"). The indexed word pairs must put it first.
    data, store, tmp = store_dir
    rows = [
        {"title": "Wing study", "abstract": "The attack on the problem uses a new angle and wind tunnel data."},
        {"title": "Wing study", "abstract": "The problem at high angle of attack uses new wind tunnel data."},
    ]
    rows[1]["title"] = "Wing study two"
    rows[0]["title"] = "Wing study one"
    ingest_paths(store, [_write_jsonl(tmp / "p.jsonl", rows)])
    sync(store, data, vectors=False)
    s = open_searcher(data, store, auto_sync=False)
    for query in ("angle of attack", "angle attack"):
        hits = s.search(query, store=store, mode="lexical").hits
        assert [h.paper.title for h in hits] == ["Wing study two", "Wing study one"], query
        assert hits[0].score > hits[1].score


def test_index_of_an_older_schema_is_rebuilt(store_dir):
    # An index written by an older release (another tantivy schema, older version in the state):
    # opening a searcher must not fail; its catch-up rebuilds the index from the store.
    import shutil

    import tantivy

    from paperfeed.index.sync import LEXICAL_DIR

    data, store, tmp = store_dir
    ingest_paths(store, [_write_jsonl(tmp / "a.jsonl", _papers(5))])
    sync(store, data, vectors=False)
    lex_dir = index_dir(data) / LEXICAL_DIR
    shutil.rmtree(lex_dir)
    lex_dir.mkdir()
    sb = tantivy.SchemaBuilder()
    sb.add_integer_field("rid", stored=True, indexed=True, fast=True)
    sb.add_text_field("title")
    old = tantivy.Index(sb.build(), path=str(lex_dir))
    w = old.writer(heap_size=15_000_000, num_threads=1)
    w.add_document(tantivy.Document(rid=1, title="stale"))
    w.commit()
    w.wait_merging_threads()
    st = IndexState(index_dir(data))
    st.set(schema=1)
    st.close()
    s = open_searcher(data, store)
    assert len(s.search("turbulent boundary", store=store, mode="lexical").hits) == 5
    assert IndexState(index_dir(data)).get_int("schema") > 1


def test_vectors_keep_the_backend_that_built_them(store_dir, monkeypatch: pytest.MonkeyPatch):
    # A new default backend (an upgrade, or a CPU with other features) must not silently
    # re-embed every paper, and queries must use the backend the vectors were made with.
    from paperfeed.embed import resolve_name

    data, store, tmp = store_dir
    ingest_paths(store, [_write_jsonl(tmp / "a.jsonl", _papers(6))])
    monkeypatch.setenv("PAPERFEED_EMBEDDER", "static")
    assert sync(store, data).embedded == 6
    monkeypatch.delenv("PAPERFEED_EMBEDDER")
    assert resolve_name("default") != "static"
    ingest_paths(store, [_write_jsonl(tmp / "b.jsonl", _papers(2, start=10))])
    report = sync(store, data)
    assert report.embedded == 2 and "vectors" not in report.rebuilt
    s = open_searcher(data, store)
    assert s.embedder.name == "static"
    assert len(s.search("turbulent boundary layers", store=store, mode="dense").hits) == 8
    # asking for another backend explicitly does re-embed everything
    monkeypatch.setenv("PAPERFEED_EMBEDDER", "minilm-onnx-int8")
    report = sync(store, data)
    assert report.embedded == 8 and "vectors" in report.rebuilt


def _damage_meta(data: Path) -> None:
    meta = index_dir(data) / "vectors" / "meta.json"
    meta.write_text(meta.read_text()[:17])


def test_damaged_vectors_stop_sync_show_in_status_and_rebuild_repairs(store_dir):
    from paperfeed.index.damage import IndexDamaged
    from paperfeed.index.sync import problems

    data, store, tmp = store_dir
    ingest_paths(store, [_write_jsonl(tmp / "a.jsonl", _papers(8))])
    sync(store, data)
    assert status(store, data)["problems"] == [] and problems(data) == []
    vec_files = sorted(p.name for p in (index_dir(data) / "vectors").iterdir())
    _damage_meta(data)

    ingest_paths(store, [_write_jsonl(tmp / "b.jsonl", _papers(2, start=8))])
    with pytest.raises(IndexDamaged, match="index --rebuild"):
        sync(store, data)
    # the old vectors are still on disk, and the damage is reported, not an index that looks whole
    assert sorted(p.name for p in (index_dir(data) / "vectors").iterdir()) == vec_files
    [problem] = status(store, data)["problems"]
    assert "meta.json" in problem and "index --rebuild" in problem

    report = rebuild(store, data, progress=False)
    assert report.embedded == 10
    st = status(store, data)
    assert st["problems"] == [] and st["embedded"] == 10 and st["vectors_pending"] == 0


def test_lost_vectors_are_found_by_counting(store_dir):
    """Every file reads, but the vectors of recorded papers are gone (an older generation put
    back): the catch-up must not record progress over the hole."""
    from paperfeed.index.damage import IndexDamaged
    from paperfeed.index.sync import VECTORS_DIR, embedder_for, open_vectors, problems

    data, store, tmp = store_dir
    ingest_paths(store, [_write_jsonl(tmp / "a.jsonl", _papers(6))])
    sync(store, data)
    vec = open_vectors(index_dir(data) / VECTORS_DIR, embedder_for(data))
    vec.remove(vec.ids()[:2])
    vec.save()
    [problem] = problems(data)
    assert "6 papers are recorded as embedded, 4 vectors are stored" in problem
    ingest_paths(store, [_write_jsonl(tmp / "b.jsonl", _papers(1, start=6))])
    with pytest.raises(IndexDamaged, match="2 of the 6 papers"):
        sync(store, data)
    rebuild(store, data, progress=False)
    assert problems(data) == [] and status(store, data)["embedded"] == 7


def test_index_cli_names_the_fix_and_rebuild_repairs_a_garbage_state_file(store_dir):
    from tests.helpers import run_cli

    data, store, tmp = store_dir
    ingest_paths(store, [_write_jsonl(tmp / "a.jsonl", _papers(3))])
    sync(store, data, vectors=False)
    state = index_dir(data) / "state.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)
    state.write_bytes(b"this is not a database" * 100)
    r = run_cli("index", "--no-vectors", data=data)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "state.sqlite" in r.stderr and "index --rebuild" in r.stderr
    r = run_cli("index", "--status", "--json", data=data)
    assert r.returncode == 0 and "index --rebuild" in json.loads(r.stdout)["problems"][0]
    r = run_cli("index", "--rebuild", "--no-vectors", "--json", data=data)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["lexical_indexed"] == 3


def test_any_damage_under_index_is_named_and_rebuild_recovers(store_dir):
    """A corrupt tantivy segment and a truncated codes file: `index` and `search` name the
    fix instead of a traceback, `index --status` lists the damage, `--rebuild` repairs it."""
    from tests.helpers import run_cli

    data, store, tmp = store_dir
    ingest_paths(store, [_write_jsonl(tmp / "a.jsonl", _papers(5))])
    sync(store, data)
    root = index_dir(data)
    for seg in (root / "lexical").glob("*.term"):
        seg.write_bytes(seg.read_bytes()[:10])
    [codes] = (root / "vectors").glob("codes-*.npy")
    codes.write_bytes(codes.read_bytes()[:-100])
    for args in (["index", "--no-vectors"], ["search", "turbulent"]):
        r = run_cli(*args, data=data)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert "lexical is damaged" in r.stderr and "index --rebuild" in r.stderr, r.stderr
    found = status(store, data)["problems"]
    assert any("lexical" in p for p in found) and any("codes-" in p for p in found)
    assert rebuild(store, data, progress=False).embedded == 5
    assert status(store, data)["problems"] == []
    assert [h.paper.title for h in open_searcher(data, store).search("zeta3", store=store, limit=1).hits] \
        == ["Paper 3 on turbulent boundary layers"]
