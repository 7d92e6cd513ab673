"""`paperfeed eval` on a small slice of Cranfield, through the real CLI (ingest + index + search)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.slow  # embeds an evaluation collection

CRANFIELD = Path(__file__).resolve().parent.parent.parent / "shared" / "ir" / "cranfield"
METRIC_KEYS = {"ndcg@10", "map@100", "recall@100", "mrr@10", "queries"}


def _slice(dest: Path, n_docs: int = 160, broken: bool = False) -> Path:
    """The first n_docs documents and the queries all of whose judged documents are among them."""
    docs = CRANFIELD.joinpath("corpus.jsonl").read_text().splitlines()[:n_docs]
    keep = {json.loads(line)["_id"] for line in docs}
    lines = CRANFIELD.joinpath("qrels", "test.tsv").read_text().splitlines()
    by_q: dict[str, list[str]] = {}
    for line in lines[1:]:
        q, d, _ = line.split("\t")
        by_q.setdefault(q, []).append(line)
    qrels = [ln for q, ls in by_q.items() if all(ln.split("\t")[1] in keep for ln in ls) for ln in ls]
    qids = {ln.split("\t")[0] for ln in qrels}
    queries = [
        ln
        for ln in CRANFIELD.joinpath("queries.jsonl").read_text().splitlines()
        if json.loads(ln)["_id"] in qids
    ]
    (dest / "qrels").mkdir(parents=True)
    if broken:
        docs = docs[:5] + ['{"_id": "x1", "title": "broken', "not json at all"] + docs[5:]
    (dest / "corpus.jsonl").write_text("\n".join(docs) + "\n")
    (dest / "queries.jsonl").write_text("\n".join(queries) + "\n")
    (dest / "qrels" / "test.tsv").write_text("\n".join([lines[0], *qrels]) + "\n")
    return dest


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not CRANFIELD.is_dir():
        pytest.skip("shared/ir/cranfield is not available")
    return _slice(tmp_path_factory.mktemp("cran") / "cranfield-slice")


def _eval(*args: str) -> tuple[int, str, str]:
    from paperfeed.cli.main import cli

    r = CliRunner().invoke(cli, ["eval", *args])
    return r.exit_code, r.stdout, r.output  # output: stdout and stderr together


def test_eval_json_lexical_is_one_object_with_the_metrics(small: Path):
    code, out, _ = _eval(str(small), "--mode", "lexical", "--json")
    assert code == 0, out
    obj = json.loads(out)  # exactly one JSON document
    assert set(obj) >= METRIC_KEYS
    assert obj["queries"] >= 5
    for k in ("ndcg@10", "map@100", "recall@100", "mrr@10"):
        assert 0.0 <= obj[k] <= 1.0
    assert obj["ndcg@10"] > 0.25  # BM25 on this slice is far above chance
    assert obj["recall@100"] > obj["ndcg@10"] / 2


def test_eval_compare_adds_a_paired_test(small: Path):
    code, out, _ = _eval(str(small), "--compare", "lexical,best", "--json")
    assert code == 0, out
    obj = json.loads(out)
    cmp = obj["compare"]["ndcg@10"]
    assert {"p_ttest", "p_wilcoxon", "delta", "wins", "losses"} <= set(cmp)
    assert 0.0 <= cmp["p_ttest"] <= 1.0
    assert set(obj["modes"]) == {"lexical", "best"}
    assert obj["modes"]["best"]["ndcg@10"] >= obj["modes"]["lexical"]["ndcg@10"] - 0.02


def test_eval_reports_broken_corpus_lines_like_ingest(tmp_path: Path):
    if not CRANFIELD.is_dir():
        pytest.skip("shared/ir/cranfield is not available")
    coll = _slice(tmp_path / "broken", n_docs=60, broken=True)
    code, out, _ = _eval(str(coll), "--mode", "lexical", "--json")
    assert code == 0, out
    obj = json.loads(out)
    assert obj["rejected"] == 2
    assert any(":6:" in e and "JSON" in e for e in obj["errors"])  # file:line: message


def test_eval_on_a_directory_that_is_not_beir(tmp_path: Path):
    code, _, both = _eval(str(tmp_path), "--json")
    assert code == 1
    assert "corpus.jsonl" in both and "Traceback" not in both


def test_eval_suite_with_the_plain_baseline(small: Path, tmp_path: Path):
    """Two collections (a folder given with --suite), the plain pipeline beside the product, and
    a summary with the ratio to the plain weighted sum per collection and a paired test."""
    suite = tmp_path / "suite"
    suite.mkdir()
    _slice(suite / "first", n_docs=120)
    _slice(suite / "second", n_docs=160)
    (suite / "not-a-collection").mkdir()
    code, out, _ = _eval("--suite", str(suite), "--mode", "lexical", "--baseline", "--json")
    assert code == 0, out
    obj = json.loads(out)
    assert set(obj["collections"]) == {"first", "second"}
    for coll in obj["collections"].values():
        assert {"lexical", "plain-bm25", "plain-dense", "plain-rrf", "plain-wsum"} == set(coll["modes"])
    summary = obj["summary"]
    assert summary["plain-wsum"]["ratio"] == {"first": 1.0, "second": 1.0}
    lexical = summary["lexical"]
    for name in ("first", "second"):
        ratio = lexical["ndcg@10"][name] / summary["plain-wsum"]["ndcg@10"][name]
        assert lexical["ratio"][name] == pytest.approx(ratio, abs=2e-3)
        assert 0.0 <= lexical["vs_reference"][name]["p_ttest"] <= 1.0
    assert lexical["mean_ratio"] == pytest.approx(sum(lexical["ratio"].values()) / 2, abs=1e-3)
    # our BM25 and bm25s are the same model: they agree closely on the same slice
    for name in ("first", "second"):
        assert abs(lexical["ndcg@10"][name] - summary["plain-bm25"]["ndcg@10"][name]) < 0.08


def test_eval_without_a_collection_is_a_usage_error(tmp_path: Path):
    code, _, output = _eval()
    assert code == 2 and "--suite" in output
    code, _, output = _eval("--suite", str(tmp_path))
    assert code == 2 and "no collections" in output
