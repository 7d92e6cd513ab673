"""`paperfeed bench`: the synthetic corpora and the JSON the benchmarks print, at tiny sizes.

The figures themselves are measured with the commands, never here; these tests
check that the generators are deterministic and import cleanly, and that the
benchmark output has the promised shape with numbers that make sense.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pytest

from paperfeed.bench.synth import SyntheticCorpus, TextModel, query_vectors, synthetic_vectors
from paperfeed.ingest import arxiv
from paperfeed.models import Paper, title_key
from tests.helpers import run_cli

pytestmark = pytest.mark.slow  # runs the benchmarks end to end


@pytest.fixture(scope="module")
def model() -> TextModel:
    return TextModel(seed=0, sentences_per_topic=200, titles_per_topic=50)


def test_corpus_is_deterministic_and_seed_dependent(model: TextModel) -> None:
    a = list(SyntheticCorpus(200, seed=5, model=model).records())
    b = list(SyntheticCorpus(200, seed=5, model=model).records())
    c = list(SyntheticCorpus(200, seed=6, model=model).records())
    assert a == b
    assert [r["title"] for r in a] != [r["title"] for r in c]


def test_records_are_valid_arxiv_lines_with_plausible_fields(model: TextModel) -> None:
    corpus = SyntheticCorpus(1000, seed=1, model=model)
    recs = list(corpus.records())
    assert len({r["id"] for r in recs}) == len(recs)
    # titles are (nearly) all distinct, as in arXiv
    assert len({title_key(r["title"]) for r in recs}) >= 0.99 * len(recs)
    papers = []
    for r in recs:
        # the same path the importer takes, from the serialised line
        p = arxiv.to_paper(orjson.loads(orjson.dumps(r)))
        assert isinstance(p, Paper)
        papers.append(p)
    years = [int(p.published[:4]) for p in papers]
    assert min(years) >= 1995 and max(years) <= 2025
    # submissions grow over the years
    assert sum(y >= 2015 for y in years) > sum(y < 2005 for y in years)
    assert all(1 <= len(p.authors) <= 25 for p in papers)
    assert all(p.categories for p in papers)
    words = [len(p.abstract.split()) for p in papers]
    assert 40 < np.mean(words) < 400
    # Zipfian authors: the most prolific author has many papers, most have one or two
    from collections import Counter

    counts = Counter(a for p in papers for a in p.authors)
    assert counts.most_common(1)[0][1] >= 10
    assert np.median(list(counts.values())) <= 2


def test_synthetic_vectors_cluster_by_subtopic(model: TextModel) -> None:
    corpus = SyntheticCorpus(2000, seed=2, model=model)
    for _ in corpus.records():
        pass
    v = synthetic_vectors(corpus, 0, 2000)
    assert v.shape == (2000, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    sims = v @ v.T
    same = corpus.subtopic[:, None] == corpus.subtopic[None, :]
    np.fill_diagonal(same, False)
    other = ~same
    np.fill_diagonal(other, False)
    assert sims[same].mean() > sims[other].mean() + 0.2
    q = query_vectors(corpus, 50)
    assert q.shape == (50, 384)
    assert np.allclose(synthetic_vectors(corpus, 10, 20), synthetic_vectors(corpus, 10, 20))


def test_make_arxiv_script_writes_lines_the_importer_accepts(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "synth.jsonl"
    script = Path(__file__).resolve().parent.parent / "bench" / "make_arxiv_synthetic.py"
    proc = subprocess.run([sys.executable, str(script), "--records", "150", "--seed", "3", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = out.read_bytes().splitlines()
    assert len(lines) == 150
    data = tmp_path / "data"
    res = run_cli("ingest", str(out), "--no-index", "--json", data=data)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["added"] == 150


def test_bench_ingest_json(tmp_path: Path) -> None:
    res = run_cli("bench", "ingest", "--records", "400", "--json", "--workdir", str(tmp_path))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["records"] == 400 and out["added"] == 400 and out["rejected"] == 0
    assert out["records_per_s"] > 0 and out["wall_s"] > 0
    # the importer's own peak memory: a Python process, far from the 500 MB budget at this size
    assert 20 < out["peak_rss_mb"] < 500
    assert out["db_bytes"] > out["file_bytes"] / 4
    # the throw-away data dir is gone
    assert not any(tmp_path.iterdir())


def test_bench_recommend_json_has_every_latency(tmp_path: Path) -> None:
    res = run_cli("bench", "recommend", "--papers", "1000", "--readers", "3", "--subscribers", "0",
                  "--cold-subscribers", "0", "--json", "--workdir", str(tmp_path))  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["papers"] == 1000 and out["features_saved"] is True
    for key in ("retrain_ms", "for_you_ms", "for_you_month_ms", "similar_ms"):
        assert out[key]["n"] == 3, key
        assert 0 < out[key]["p50"] <= out[key]["p95"], key
    assert set(out["targets"]) >= {"for_you_met", "retrain_met"}
    assert not any(tmp_path.iterdir())


def test_bench_json_shape_with_baseline(tmp_path: Path) -> None:
    res = run_cli(
        "bench", "--papers", "300", "--json", "--baseline", "--queries", "20", "--embed-docs", "40",
        "--real-vectors-below", "0", "--workdir", str(tmp_path), timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["papers"] == 300
    assert out["synthetic_vectors"] is True
    for key in ("ingest_rps", "embed_dps", "baseline_embed_dps", "lexical_build_s", "vector_build_s",
                "peak_rss_mb", "index_bytes"):  # fmt: skip
        assert out[key] > 0, key
    for mode in ("lexical", "dense", "hybrid", "default"):
        ms = out["search_ms"][mode]
        assert ms["n"] == 20, mode
        assert 0 < ms["p50"] <= ms["p95"] <= ms["p99"], mode
    assert 0.0 <= out["ann_recall_at_10"] <= 1.0
    # at 300 papers any sane index finds nearly all true neighbours
    assert out["ann_recall_at_10"] >= 0.9
    base = out["baseline"]
    assert base["lexical_build_s"] > 0
    for mode in ("lexical", "dense", "hybrid"):
        assert base["search_ms"][mode]["n"] == 20
    # the fast embedder and the plain model agree on what the texts mean
    assert out["embed_cosine_vs_plain"]["mean"] > 0.9
    assert not any(tmp_path.iterdir())


def test_bench_search_skips_title_fragments_search_refuses(tmp_path: Path) -> None:
    """`bench search` on a data dir of its own: titles made of common words only ("Of the and
    the") give fragments that search refuses with a message; they are skipped, not a crash."""
    data = tmp_path / "data"
    papers = tmp_path / "papers.jsonl"
    lines = [{"id": f"x{i}", "title": "Of the and the", "abstract": f"Nothing to see {i}."} for i in range(30)]
    lines.append({"id": "q1", "title": "Quasar spectra at high redshift", "abstract": "Quasars and their spectra."})
    papers.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    assert run_cli("ingest", str(papers), data=data).returncode == 0
    res = run_cli("bench", "search", "--no-demo", "--queries", "40", "--modes", "lexical,best", "--json", data=data)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["papers"] == 31 and 10 <= out["queries"] <= 40
    assert set(out["search_ms"]) == {"lexical", "best"} and out["search_ms"]["best"]["p95"] > 0
