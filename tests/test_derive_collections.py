"""bench/derive_collections.py: known-item and inverse-cloze collections derived from a BEIR
suite, written in the layout `paperfeed eval` reads (checked with its own loader)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from paperfeed.eval import load_collection

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "derive_collections.py"


def _suite(root: Path) -> Path:
    """One collection of 80 documents: titles, and texts of four sentences."""
    coll = root / "suite" / "tiny"
    (coll / "qrels").mkdir(parents=True)
    with (coll / "corpus.jsonl").open("w") as f:
        for i in range(80):
            text = " ".join(f"Sentence {s} of document {i} says something about topic {i % 7} in many words." for s in range(4))
            f.write(json.dumps({"_id": f"d{i}", "title": f"Study number {i} of topic {i % 7}", "text": text}) + "\n")
    (coll / "queries.jsonl").write_text(json.dumps({"_id": "1", "text": "topic"}) + "\n")
    (coll / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\t1\n")
    return root / "suite"


def _derive(suite: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(suite), str(out), "--queries", "30"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_known_item_and_inverse_cloze_collections(tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    proc = _derive(suite, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    original = {json.loads(line)["_id"]: json.loads(line) for line in (suite / "tiny" / "corpus.jsonl").open()}

    ki = load_collection(tmp_path / "out" / "tiny-ki")
    docs = {json.loads(line)["_id"]: json.loads(line) for line in ki.corpus.open()}
    assert len(ki.queries) == 30 and not ki.errors
    for qid, text in ki.queries.items():
        (doc_id,) = ki.qrels[qid]
        assert text == original[doc_id]["title"]  # the query is the title ...
        assert docs[doc_id]["title"] == "" and docs[doc_id]["text"] == original[doc_id]["text"]  # ... taken away

    looked_up = load_collection(tmp_path / "out" / "tiny-title")
    assert (looked_up.root / "corpus.jsonl").read_bytes().count(b"\n") == 80
    for qid, text in looked_up.queries.items():
        (doc_id,) = looked_up.qrels[qid]
        assert text == original[doc_id]["title"]

    ict = load_collection(tmp_path / "out" / "tiny-ict")
    docs = {json.loads(line)["_id"]: json.loads(line) for line in ict.corpus.open()}
    assert len(ict.queries) == 30 and len(docs) == 80
    for qid, text in ict.queries.items():
        (doc_id,) = ict.qrels[qid]
        assert text.startswith("Sentence 1 of document") and text in original[doc_id]["text"]
        assert text not in docs[doc_id]["text"] and docs[doc_id]["title"] == original[doc_id]["title"]

    # the same collections on every run
    again = _derive(suite, tmp_path / "again")
    assert again.returncode == 0, again.stderr
    for name in ("tiny-ki", "tiny-title", "tiny-ict"):
        for part in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
            assert (tmp_path / "out" / name / part).read_bytes() == (tmp_path / "again" / name / part).read_bytes()


def test_bad_lines_and_arguments_get_a_clear_message(tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    corpus = suite / "tiny" / "corpus.jsonl"
    corpus.write_text(corpus.read_text() + "{not json\n" + json.dumps({"_id": 5, "text": "x"}) + "\n")
    proc = _derive(suite, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert f"{corpus}:81: not JSON" in proc.stderr and f"{corpus}:82: not a document" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(load_collection(tmp_path / "out" / "tiny-ict").queries) == 30  # the good lines kept
    missing = _derive(tmp_path / "nowhere", tmp_path / "out2")
    assert missing.returncode == 2 and "is not a folder" in missing.stderr and "Traceback" not in missing.stderr
    zero = subprocess.run([sys.executable, str(SCRIPT), str(suite), str(tmp_path / "out3"), "--queries", "0"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert zero.returncode == 2 and "--queries must be 1 or more" in zero.stderr
