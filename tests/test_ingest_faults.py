"""Bad input and faults: rejections with file and line, hostile text, and SIGKILL mid-ingest."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from paperfeed.ingest import ingest_paths
from paperfeed.store import open_store
from paperfeed.store.engine import StoreUnavailable
from tests.helpers import ARXIV_SAMPLE, run_cli

pytestmark = pytest.mark.slow  # kills and faults ingest subprocesses


def _jsonl(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_malformed_lines_are_reported_and_valid_ones_kept(tmp_path: Path, data_dir: Path) -> None:
    good = lambda t: json.dumps({"title": t, "abstract": "fine"}).encode()  # noqa: E731
    f = _jsonl(tmp_path / "mixed.jsonl", [
        good("first good"),                                  # 1
        b'{"title": "broken", "abstract": ',                 # 2 broken JSON
        json.dumps({"abstract": "no title"}).encode(),       # 3 missing title
        json.dumps({"title": 42}).encode(),                  # 4 wrong type
        json.dumps({"title": "t", "authors": 7}).encode(),   # 5 wrong type
        b'{"title": "bad \xff\xfe bytes"}',                  # 6 invalid UTF-8
        json.dumps({"title": "nul \u0000 inside"}).encode(), # 7 NUL byte
        json.dumps({"title": "bad date", "date": "soon"}).encode(),  # 8
        good("second good"),                                 # 9
    ])  # fmt: skip
    r = run_cli("ingest", str(f), "--no-index", data=data_dir)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "added 2, updated 0, unchanged 0, rejected 7" in r.stdout
    for line, words in [(2, "broken JSON"), (3, "missing title"), (4, "title must be a string"),
                        (5, "authors must be"), (6, "invalid UTF-8"), (7, "NUL byte"), (8, "not a YYYY-MM-DD")]:
        assert f"{f}:{line}: " in r.stderr and words in r.stderr, (line, r.stderr)
    with open_store(data_dir) as store:
        assert sorted(p.title for p in store.list_papers()) == ["first good", "second good"]


def test_unreadable_inputs_get_one_line_errors(tmp_path: Path, data_dir: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    binary = tmp_path / "blob.jsonl"
    binary.write_bytes(bytes(range(256)) * 64)
    folder = tmp_path / "folder"
    folder.mkdir()
    missing = tmp_path / "missing.jsonl"
    r = run_cli("ingest", str(empty), str(binary), str(folder), str(missing), str(ARXIV_SAMPLE), "--no-index",
                data=data_dir)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("rejected:")]
    assert len(errors) == 4
    for path, words in [(empty, "empty file"), (binary, "binary file"), (folder, "is a directory"),
                        (missing, "no such file")]:
        assert any(str(path) in e and words in e for e in errors), (words, errors)
    assert "added 200," in r.stdout  # the good file in the same run is still ingested


def test_page_cut_short_keeps_the_complete_entries(tmp_path: Path, data_dir: Path) -> None:
    page = tmp_path / "page.txt"
    page.write_text("Daily Papers\nSep 2\nTitle One\nAbstract one.\nTitle Two\nAbstract two.\nDangling Title\n")
    with open_store(data_dir) as store:
        r = ingest_paths(store, [page], year=2025, progress=False)
        assert (r.added, r.rejected) == (2, 1)
        assert r.errors == [f"{page}:7: title without an abstract (page cut short?)"]


def test_page_with_an_undecodable_line_keeps_titles_with_their_abstracts(tmp_path: Path, data_dir: Path) -> None:
    page = tmp_path / "page.txt"
    page.write_bytes(b"Daily Papers\nSep 2\nTitle One\nAbstract one.\nTitle Two\nAbstract \xff\xfe two.\n"
                     b"Title Three\nAbstract three.\nTitle Four\nAbstract four.\n")  # fmt: skip
    with open_store(data_dir) as store:
        r = ingest_paths(store, [page], year=2025, progress=False)
        assert (r.added, r.rejected) == (3, 1)
        assert r.errors[0].startswith(f"{page}:6: invalid UTF-8")
        got = {p.title: p.abstract for p in store.list_papers()}
    assert got == {"Title One": "Abstract one.", "Title Three": "Abstract three.", "Title Four": "Abstract four."}


def test_csv_unterminated_quote_is_reported_and_later_rows_kept(tmp_path: Path, data_dir: Path) -> None:
    f = tmp_path / "list.csv"
    f.write_text('title,abstract\n'
                 'First,fine\n'
                 'Second,"never closed\n'
                 'Third,"quoted, with a comma"\n'
                 'Fourth,"spans\ntwo lines"\n'
                 'Fifth,last\n')  # fmt: skip
    with open_store(data_dir) as store:
        r = ingest_paths(store, [f], progress=False)
        assert r.errors == [f"{f}:3: unterminated quoted field"]
        got = {p.title: p.abstract for p in store.list_papers()}
    assert got == {"First": "fine", "Third": "quoted, with a comma", "Fourth": "spans\ntwo lines", "Fifth": "last"}
    # left open on the last record, the quote runs to the end of the file
    g = tmp_path / "tail.csv"
    g.write_text('title,abstract\nSixth,fine\nSeventh,"open\nEighth,plain\n')
    with open_store(data_dir) as store:
        r = ingest_paths(store, [g], progress=False)
        assert r.errors == [f"{g}:3: unterminated quoted field"] and r.added == 2


def test_hostile_text_is_stored_byte_for_byte(tmp_path: Path, data_dir: Path) -> None:
    hostile = [
        {"title": "<script>alert(1)</script> & <b>bold</b>", "abstract": '<img src=x onerror="alert(1)"> "q" \'s\''},
        {"title": "\u202eRTL override \u200f mark and emoji 🧪🚀", "abstract": "Zalgo: Z̸̢a̶l̷g̴o̵ — ﬁ ligature ＦＵＬＬ"},
        {"title": "Huge abstract", "abstract": "word " * 200_000 + "end"},  # ~1 MB
    ]
    f = _jsonl(tmp_path / "hostile.jsonl", [json.dumps(h).encode() for h in hostile])
    with open_store(data_dir) as store:
        r = ingest_paths(store, [f], progress=False)
        assert (r.added, r.rejected) == (3, 0)
        stored = {p.title: p.abstract for p in store.list_papers(limit=10)}
    for h in hostile:
        assert stored[h["title"]] == h["abstract"]
        assert stored[h["title"]].encode() == h["abstract"].encode()


def _synthetic_arxiv(path: Path, n: int) -> int:
    """n arXiv-format records varied from the sample, with some ids repeated later
    (updates) so a rerun has merges to get right, not only inserts."""
    base = [json.loads(line) for line in ARXIV_SAMPLE.read_text().splitlines()]
    ids = set()
    with path.open("w") as out:
        for i in range(n):
            rec = dict(base[i % len(base)])
            # every tenth record updates an earlier, original one
            j = i - 5001 if i % 10 == 9 and i >= 5001 else i
            rec["id"] = f"9{j:06d}.{j % 97:05d}"
            rec["title"] = f"{rec['title']} (variant {j})"
            if j != i:
                rec["abstract"] = rec["abstract"] + " Revised."
            out.write(json.dumps(rec) + "\n")
            ids.add(rec["id"])
    return len(ids)


def _snapshot(data: Path, database_url: str | None) -> list[tuple]:
    with open_store(data, database_url=database_url) as store:
        rows = store.conn.execute(
            "SELECT id, arxiv_id, title, abstract, authors, categories, published, feed_date, content_hash "
            "FROM papers ORDER BY id"
        ).fetchall()
        srcs = store.conn.execute("SELECT p.id, s.source FROM paper_sources s JOIN papers p ON p.rowid = s.paper_rowid "
                                  "ORDER BY 1, 2").fetchall()  # fmt: skip
    return [tuple(r) for r in rows + srcs]


def _count(data: Path) -> int:
    """Papers committed so far, read through the store as another process would (either engine)."""
    if not (data / "paperfeed.db").exists() and not os.environ.get("PAPERFEED_DATABASE_URL"):
        return 0
    try:
        with open_store(data, readonly=True) as store:
            return store.count()
    except (sqlite3.OperationalError, StoreUnavailable):
        return 0


def test_sigkill_mid_ingest_then_rerun_equals_clean_run(tmp_path: Path, other_database: str | None) -> None:
    src = tmp_path / "big.jsonl"
    distinct = _synthetic_arxiv(src, 60_000)
    assert distinct < 56_000
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    cmd = [sys.executable, "-m", "paperfeed", "--data", str(killed), "ingest", str(src), "--no-index"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    count = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            count = _count(killed)
            if count >= 10_000:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "ingest finished before it could be killed; make the input bigger"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert 10_000 <= count < distinct

    again = run_cli("ingest", str(src), "--no-index", data=killed)
    assert again.returncode == 0, again.stderr
    # the clean run into a second store: another data directory, and on PostgreSQL another database
    clean_env = {"PAPERFEED_DATABASE_URL": other_database} if other_database else None
    fresh = run_cli("ingest", str(src), "--no-index", data=clean, env=clean_env)
    assert fresh.returncode == 0, fresh.stderr
    assert f"added {distinct}, updated {60_000 - distinct}, " in fresh.stdout

    snap_killed = _snapshot(killed, None)
    snap_clean = _snapshot(clean, other_database)
    assert len(snap_killed) == len(snap_clean)
    assert snap_killed == snap_clean
    with open_store(killed) as store:
        assert store.conn.execute("SELECT COUNT(*) - COUNT(DISTINCT arxiv_id) FROM papers").fetchone()[0] == 0
    if other_database is None:
        conn = sqlite3.connect(killed / "paperfeed.db")
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()


def _spawned_children(pid: int) -> list[int]:
    """Children of `pid` started by multiprocessing's spawn (not its resource tracker)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"spawn_main" in cmdline:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_parse_worker_dies_with_a_killed_ingest(tmp_path: Path) -> None:
    """A worker that had queued its last, large chunk used to hang at exit for ever, its queue
    flushing into a pipe that nobody read any more."""
    from paperfeed.ingest.pipeline import MIN_BYTES

    abstract = "word " * 1600  # few, large records: the whole file fits in the worker's queue
    n = MIN_BYTES // len(abstract) + 10
    src = tmp_path / "big.jsonl"
    with src.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"title": f"Large record {i}", "abstract": abstract}) + "\n")
    cmd = [sys.executable, "-m", "paperfeed", "--data", str(tmp_path / "data"), "ingest", str(src), "--no-index"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (workers := _spawned_children(proc.pid)):
            assert proc.poll() is None and time.monotonic() < deadline, "no parse worker was started"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [w for w in workers if _alive(w)]
    for w in left:
        os.kill(w, signal.SIGKILL)
    assert not left, "the parse worker outlived its killed parent"
