"""The recommender (paperfeed.search.recommend) and its measurement (`paperfeed eval recommend`),
on a small BEIR-layout collection written here and indexed through the real ingest + index path."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from paperfeed.eval import build, load_collection
from paperfeed.eval.recommend import ndcg_at, recall_at, split_users
from paperfeed.index.sync import embed_text
from paperfeed.search import Searcher
from paperfeed.search.rec_features import terms, words
from paperfeed.search.recommend import ModelCache, RecommendError, recommend, train
from paperfeed.store import open_store

pytestmark = pytest.mark.slow  # embeds a corpus
# the indexed corpus is built once for the module: with --engine postgres, one database for the module
PG_SCOPE = "module"

TOPICS = {
    "sail": [
        "Sailing yachts in strong wind: keel design and heeling stability of racing sailboats",
        "Hull shapes of racing sailboats and the drag of the keel at high heeling angles",
        "Sail trim for yachts beating upwind in gusty wind, and the stability of the hull",
        "Spinnaker handling on offshore sailing yachts in heavy wind and waves",
        "Rudder and keel interaction on sailboats: lift, drag and stability when heeling",
        "Weather routing for offshore sailing yacht races across the ocean",
    ],
    "bake": [
        "Sourdough bread baking: starter fermentation, hydration and oven spring of the loaf",
        "Yeast fermentation and gluten development in bread dough kneading",
        "Baking croissants: laminated butter dough, proofing and oven temperature",
        "Rye bread with sourdough starter: acidity, fermentation time and crumb",
        "Oven steam and crust colour when baking crusty bread loaves",
        "Whole wheat flour hydration and dough strength for home bread baking",
    ],
    "bees": [
        "Honey bee colonies: hive health, varroa mites and winter survival of bees",
        "Pollination by wild bees and honey bees in apple orchards",
        "Beekeeping practice: queen rearing, swarming and hive inspection",
        "Varroa mite treatment in honey bee hives and colony losses",
        "Foraging behaviour of bumble bees on flowering meadows",
        "Pesticide exposure of honey bees and pollinator decline",
    ],
}


LONG = " ".join(
    f"Move {i}: the engine's evaluation of the Sicilian, the Ruy Lopez and the Queen's Gambit line shifts."
    for i in range(40)
)


def _write_collection(dest: Path) -> Path:
    (dest / "qrels").mkdir(parents=True)
    docs, qrels = [], ["query-id\tcorpus-id\tscore"]
    for topic, texts in TOPICS.items():
        for i, text in enumerate(texts):
            doc_id = f"{topic}{i}"
            title, _, rest = text.partition(":")
            docs.append(json.dumps({"_id": doc_id, "title": title, "text": rest or text}))
            qrels.append(f"q-{topic}\t{doc_id}\t1")
    # a near copy of bees3, judged for nothing: what "not interested" in bees3 must push down
    docs.append(json.dumps({"_id": "dup3", "title": "Varroa mite treatments in honey bee hives",
                            "text": "and colony losses of honey bees"}))
    # a long text (past the model's window), judged for nothing: its features are its passages'
    docs.append(json.dumps({"_id": "long0", "title": "Opening theory in correspondence chess", "text": LONG}))
    qrels.append("q-few\tbees0\t1")  # three relevant documents: not a reader
    qrels.append("q-few\tbees1\t1")
    qrels.append("q-few\tbees2\t2")
    queries = [json.dumps({"_id": f"q-{t}", "text": t}) for t in TOPICS] + [json.dumps({"_id": "q-few", "text": "x"})]
    (dest / "corpus.jsonl").write_text("\n".join(docs) + "\n")
    (dest / "queries.jsonl").write_text("\n".join(queries) + "\n")
    (dest / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n")
    return dest


@pytest.fixture(scope="module")
def coll_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_collection(tmp_path_factory.mktemp("rec") / "topics")


@pytest.fixture(scope="module")
def indexed(coll_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("recdata") / "data"
    build(load_collection(coll_dir), data)
    return data


def _rowids(data: Path) -> dict[str, int]:
    with open_store(data) as store:
        return dict(store.conn.execute("SELECT ext_id, paper_rowid FROM paper_sources WHERE ext_id IS NOT NULL"))


def _topic(doc_id: str) -> str:
    return "bees" if doc_id == "dup3" else doc_id.rstrip("0123456789")


# -- the protocol ---------------------------------------------------------------------------------


def test_split_follows_the_sha1_order_and_keeps_readers_with_four_relevant(coll_dir: Path):
    import hashlib

    users = {u.query_id: u for u in split_users(load_collection(coll_dir).qrels)}
    assert set(users) == {"q-sail", "q-bake", "q-bees"}  # q-few has 3 relevant documents
    u = users["q-sail"]
    ranked = sorted((f"sail{i}" for i in range(6)), key=lambda d: hashlib.sha1(f"q-sail:{d}".encode()).hexdigest())
    assert list(u.library) == ranked[:3] and list(u.held_out) == ranked[3:]


def test_split_rounds_the_library_up_and_ignores_score_zero():
    qrels = {"q": {"a": 1, "b": 1, "c": 2, "d": 1, "e": 1, "z": 0}, "r": {"a": 1, "b": 0, "c": 1, "d": 1}}
    (u,) = split_users(qrels)
    assert u.query_id == "q" and len(u.library) == math.ceil(5 / 2) and len(u.held_out) == 2
    assert "z" not in u.library + u.held_out


def test_a_library_size_takes_the_first_n_and_needs_one_more_relevant():
    import hashlib

    qrels = {"q": dict.fromkeys("abcdef", 1), "r": dict.fromkeys("abcd", 1)}
    users = {u.query_id: u for u in split_users(qrels, library_size=1)}
    assert set(users) == {"q", "r"}
    ranked = sorted("abcdef", key=lambda d: hashlib.sha1(f"q:{d}".encode()).hexdigest())
    assert list(users["q"].library) == ranked[:1] and list(users["q"].held_out) == ranked[1:]
    assert [u.query_id for u in split_users(qrels, library_size=4)] == ["q"]  # r would hold nothing out
    assert split_users(qrels, library_size=6) == []


def test_binary_ndcg_and_recall():
    assert ndcg_at(["a", "b"], {"a", "b"}) == pytest.approx(1.0)
    assert ndcg_at(["x", "a"], {"a"}) == pytest.approx(1 / math.log2(3))
    assert ndcg_at(["x"] * 10 + ["a"], {"a"}) == 0.0  # past the tenth place
    assert recall_at(["a", "x", "b"], {"a", "b", "c", "d"}) == 0.5


# -- the recommender ---------------------------------------------------------------------------------


def test_cold_start_from_one_saved_paper(indexed: Path):
    ids = _rowids(indexed)
    with open_store(indexed) as store:
        s = Searcher(indexed, auto_sync=False)
        model = train(s, store, [ids["bake0"]])
        recs = recommend(model, s, store, exclude=[ids["bake0"]], k=5)
    back = {r: e for e, r in ids.items()}
    top = [back[r.rowid] for r in recs]
    assert len(top) == 5 and ids["bake0"] not in [r.rowid for r in recs]
    assert sum(d.startswith("bake") for d in top) >= 4, top


def test_one_saved_paper_ranks_mostly_by_its_vector(indexed: Path):
    # score = svm / sd + 8 x cos / sd (both standardised over the background): unless the SVM ran
    # against the cosine, the score's correlation with the cosine is at least 8 / sqrt(65) = 0.992;
    # the SVM alone gives 0.98 here
    from paperfeed.search.rec_features import corpus_features

    ids = _rowids(indexed)
    with open_store(indexed) as store:
        s = Searcher(indexed, auto_sync=False)
        recs = recommend(train(s, store, [ids["bake0"]]), s, store, exclude=[ids["bake0"]], k=100, explain=False)
        feats = corpus_features(s, store)
    _, rows = feats.rows_of([r.rowid for r in recs])
    _, saved = feats.rows_of([ids["bake0"]])
    cos = feats.vectors(rows) @ feats.vectors(saved)[0]
    assert len(recs) == len(ids) - 1
    assert np.corrcoef([r.score for r in recs], cos)[0, 1] > 0.99


def test_the_centroid_blend_weighs_eight_over_p_squared():
    from paperfeed.search.recommend import DENSE_SCALE, PROTOTYPE_WEIGHT, _with_prototype

    rng = np.random.default_rng(0)
    n, d = 400, 8
    dense_back = rng.normal(size=(n, d)).astype(np.float32) * np.float32(DENSE_SCALE)
    svm_back = rng.normal(size=n) * 3.0
    lex, dense, bias = rng.normal(size=5), rng.normal(size=d), 0.7
    for p in (1, 2, 4):
        pos = rng.normal(size=(p, d)).astype(np.float32)
        pos /= np.linalg.norm(pos, axis=1, keepdims=True)
        lex2, dense2, bias2 = _with_prototype(lex, dense, bias, svm_back, dense_back, pos)
        sd = svm_back.std()
        assert lex2 == pytest.approx(lex / sd) and bias2 == pytest.approx(bias / sd)
        added = dense2 - dense / sd  # the centroid's part, along the centroid
        centroid = pos.mean(axis=0)
        assert abs(added @ centroid) == pytest.approx(np.linalg.norm(added) * np.linalg.norm(centroid), rel=1e-5)
        share = ((dense_back / DENSE_SCALE) @ added).std() / (svm_back / sd).std()
        assert share == pytest.approx(PROTOTYPE_WEIGHT / p**2, rel=1e-4)
    # a background the SVM cannot tell apart: the model stays as trained
    assert _with_prototype(lex, dense, bias, np.zeros(n), dense_back, pos)[1] is dense


def test_similar_papers_of_a_paper_are_its_topic_best_first(indexed: Path):
    from paperfeed.search.similar import similar_papers

    ids = _rowids(indexed)
    back = {r: e for e, r in ids.items()}
    with open_store(indexed) as store:
        s = Searcher(indexed, auto_sync=False)
        pairs = similar_papers(s, store, ids["sail0"], 5)
        assert similar_papers(s, store, 10**9, 5) == []  # a paper the index does not have
        assert similar_papers(s, store, ids["sail0"], 0) == []
        everything = similar_papers(s, store, ids["sail0"], 100)
    assert [back[r][:4] for r, _ in pairs] == ["sail"] * 5
    scores = [sc for _, sc in everything]
    assert scores == sorted(scores, reverse=True) and len(everything) == len(ids) - 1
    assert ids["sail0"] not in [r for r, _ in everything]


def test_why_points_at_a_saved_paper_and_shared_words(indexed: Path):
    ids = _rowids(indexed)
    saved = [ids["sail0"], ids["bees0"]]
    with open_store(indexed) as store:
        s = Searcher(indexed, auto_sync=False)
        recs = recommend(train(s, store, saved), s, store, exclude=saved, k=6)
        texts = {p.rowid: set(terms(embed_text(p))) for p in store.get_by_rowids(list(ids.values()))}
    back = {r: e for e, r in ids.items()}
    assert recs
    for r in recs:
        assert r.nearest_rowid in saved
        assert _topic(back[r.rowid]) == _topic(back[r.nearest_rowid])  # sailing explained by sailing
        assert r.shared_terms, r
        for term in r.shared_terms:  # a word or a pair of adjacent words of both papers
            key = " ".join(words(term))  # as shown: "low-rank" is the pair "low rank"
            assert key in texts[r.rowid] and key in texts[r.nearest_rowid]
    assert any(" " in t for r in recs for t in r.shared_terms)  # "honey bees", "sailing yachts"


def test_exclude_and_candidates_are_respected(indexed: Path):
    ids = _rowids(indexed)
    with open_store(indexed) as store:
        s = Searcher(indexed, auto_sync=False)
        model = train(s, store, [ids["bees0"], ids["bees1"]])
        window = [ids[f"bees{i}"] for i in range(6)] + [ids["sail1"]]
        excluded = {ids["bees0"], ids["bees1"], ids["bees2"]}
        recs = recommend(model, s, store, candidates=window, exclude=excluded, k=50)
    got = [r.rowid for r in recs]
    assert set(got) == set(window) - excluded
    assert got[-1] == ids["sail1"]  # the off-topic paper comes last
    assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)


def test_a_negative_pushes_its_near_duplicate_down(indexed: Path):
    ids = _rowids(indexed)
    saved = [ids["bees0"], ids["bees1"], ids["bees2"]]
    others = [ids["bees4"], ids["bees5"]]
    with open_store(indexed) as store:
        s = Searcher(indexed, auto_sync=False)
        before = [r.rowid for r in recommend(train(s, store, saved), s, store, exclude=saved, k=30)]
        model = train(s, store, saved, negatives=[ids["bees3"]])
        after = [r.rowid for r in recommend(model, s, store, exclude=saved + [ids["bees3"]], k=30)]
    assert before.index(ids["dup3"]) <= 2  # a close match at first
    assert after.index(ids["dup3"]) > max(after.index(o) for o in others)  # below the other bee papers
    assert after.index(ids["dup3"]) > before.index(ids["dup3"])


def test_a_long_paper_is_seen_through_the_mean_of_its_passages(indexed: Path):
    import numpy as np

    from paperfeed.index.sync import PASSAGE_SLOTS
    from paperfeed.search.rec_features import corpus_features

    row = _rowids(indexed)["long0"]
    with open_store(indexed) as store:
        s = Searcher(indexed, auto_sync=False)
        feats = corpus_features(s, store)
        pids = s.passages.ids()
        mine = pids[pids // PASSAGE_SLOTS == row]
        assert len(mine) >= 2  # 40 sentences of 15 words: several windows
        mean = s.passages.get(mine).mean(axis=0)
        _, (r,) = feats.rows_of([row])
        got = feats.vectors(np.array([r]))[0]
        assert feats.dense.dtype == np.int8 and got.dtype == np.float32  # a quarter of the memory, read as float32
        assert np.allclose(got, mean / np.linalg.norm(mean), atol=1e-3)
        assert not np.allclose(got, s.vectors.get(np.array([row]))[0], atol=1e-2)
        short = _rowids(indexed)["sail0"]
        _, (r2,) = feats.rows_of([short])
        assert np.allclose(feats.vectors(np.array([r2]))[0], s.vectors.get(np.array([short]))[0], atol=1e-3)
        # the dense part of a score, as computed for a window and for the whole corpus
        m = np.random.default_rng(0).standard_normal((feats.dim, 3)).astype(np.float32)
        rows = np.array([r2, r])
        assert np.allclose(feats.dense_dot(m, rows), feats.vectors(rows) @ m, atol=1e-5)
        assert np.allclose(feats.dense_dot(m)[rows], feats.vectors(rows) @ m, atol=1e-5)


def test_window_scoring_weighs_only_the_window(coll_dir: Path, tmp_path: Path):
    """A day/week/month window is scored from its own rows' tf-idf: the corpus-wide matrix is
    built only when most of the corpus is scored at once, and the scores are the same."""
    from paperfeed.search.rec_features import corpus_features, weigh

    data = tmp_path / "data"
    build(load_collection(coll_dir), data)  # its own corpus: the module's may have the matrix already
    ids = _rowids(data)
    saved = [ids["bees0"], ids["bees1"]]
    window = [ids["bees2"], ids["bees3"], ids["sail0"], ids["bake0"]]
    with open_store(data) as store:
        s = Searcher(data, auto_sync=False)
        feats = corpus_features(s, store)
        assert len(window) < len(feats) // 4  # the window path, not the whole-corpus one
        _, rows = feats.rows_of(window)
        assert (feats.tfidf_rows(rows) != weigh(feats.counts, feats.idf())[rows]).nnz == 0
        held = feats.nbytes()
        model = train(s, store, saved)
        by_window = [(r.rowid, r.score) for r in recommend(model, s, store, candidates=window, exclude=saved)]
        assert corpus_features(s, store).nbytes() == held  # training and the window built nothing more
        whole = [r.rowid for r in recommend(model, s, store, exclude=saved, k=50)]
        assert corpus_features(s, store).nbytes() > held  # the whole corpus: the matrix, kept
        again = [(r.rowid, r.score) for r in recommend(model, s, store, candidates=window, exclude=saved)]
    assert {r for r, _ in by_window[:2]} == {ids["bees2"], ids["bees3"]}  # the bee papers first
    assert [r for r, _ in again] == [r for r, _ in by_window]
    assert [v for _, v in again] == pytest.approx([v for _, v in by_window], abs=1e-6)
    assert [r for r in whole if r in set(window)] == [r for r, _ in by_window]


def test_term_counts_are_uint16_and_capped():
    from paperfeed.search.rec_features import COUNT_MAX, term_column, term_counts

    m = term_counts(["keel " * 70_000 + "hull hull", "sourdough"])
    assert m.dtype == np.uint16
    assert m[0, term_column("keel")] == COUNT_MAX  # not wrapped around
    assert m[0, term_column("hull")] == 2 and m[1, term_column("sourdough")] == 1


def test_no_indexed_positive_is_a_clear_error(indexed: Path):
    with open_store(indexed) as store, pytest.raises(RecommendError):
        train(Searcher(indexed, auto_sync=False), store, [10_000_000])


def test_model_cache_retrains_when_the_library_version_changes(indexed: Path):
    ids = _rowids(indexed)
    cache = ModelCache(size=2)
    with open_store(indexed) as store:
        s = Searcher(indexed, auto_sync=False)
        m1 = cache.get_or_train((1, None, "v1"), s, store, [ids["sail0"]], [])
        assert cache.get_or_train((1, None, "v1"), s, store, [ids["sail0"]], []) is m1
        m2 = cache.get_or_train((1, None, "v2"), s, store, [ids["sail0"], ids["sail1"]], [])
        assert m2 is not m1 and len(m2) == 2
        cache.get_or_train((2, "tag", "v1"), s, store, [ids["bake0"]], [])
        assert len(cache) == 2  # LRU: the oldest went
        assert cache.get_or_train((1, None, "v1"), s, store, [ids["sail0"]], []) is not m1


# -- the command ---------------------------------------------------------------------------------------


def test_eval_recommend_json_has_the_protocol_keys(coll_dir: Path):
    from paperfeed.cli.main import cli

    r = CliRunner().invoke(cli, ["eval", "recommend", str(coll_dir), "--json"])
    assert r.exit_code == 0, r.output
    obj = json.loads(r.stdout)
    assert set(obj) == {"ndcg@10", "recall@100", "users"}
    assert obj["users"] == 3
    assert obj["ndcg@10"] > 0.8 and obj["recall@100"] == 1.0


def test_eval_recommend_why_measures_the_explanations_against_the_requests(coll_dir: Path):
    from paperfeed.cli.main import cli

    r = CliRunner().invoke(cli, ["eval", "recommend", str(coll_dir), "--why", "--json"])
    assert r.exit_code == 0, r.output
    obj = json.loads(r.stdout)
    assert set(obj) == {"ndcg@10", "recall@100", "users", "why@10"}
    # the requests are the topic words ("sail", "bake", "bees"), which the explanations of a
    # library of one topic name: "sailing" and "bees" stem to them
    assert 0.3 < obj["why@10"] <= 1.0
    text = CliRunner().invoke(cli, ["eval", "recommend", str(coll_dir), "--why"]).output
    assert "why terms found in the reader's request" in text


def test_eval_recommend_library_size_measures_the_cold_start(coll_dir: Path):
    from paperfeed.cli.main import cli

    r = CliRunner().invoke(cli, ["eval", "recommend", str(coll_dir), "--library-size", "1", "--json"])
    assert r.exit_code == 0, r.output
    obj = json.loads(r.stdout)
    assert set(obj) == {"ndcg@10", "recall@100", "users"}
    assert obj["users"] == 3  # q-few still has too few relevant documents
    assert obj["ndcg@10"] > 0.7  # one saved paper of a topic finds the other five
    r = CliRunner().invoke(cli, ["eval", "recommend", str(coll_dir), "--library-size", "6", "--json"])
    assert r.exit_code != 0 and "7 or more relevant documents" in r.output
    r = CliRunner().invoke(cli, ["eval", "recommend", str(coll_dir), "--library-size", "0"])
    assert r.exit_code == 2 and "--library-size" in r.output


def test_eval_recommend_similar_measures_similar_papers_beside_the_nearest_vectors(coll_dir: Path):
    from paperfeed.cli.main import cli

    r = CliRunner().invoke(cli, ["eval", "recommend", str(coll_dir), "--similar", "--json"])
    assert r.exit_code == 0, r.output
    obj = json.loads(r.stdout)
    assert set(obj) == {"ndcg@10", "recall@100", "users", "baselines"}
    assert set(obj["baselines"]) == {"nearest-vectors"}
    assert obj["users"] == 3 and obj["ndcg@10"] > 0.7
    text = CliRunner().invoke(cli, ["eval", "recommend", str(coll_dir), "--similar"]).output
    assert "similar-papers" in text and "nearest-vectors" in text
    for extra in (["--why"], ["--library-size", "3"]):  # options --similar has no use for: said, not ignored
        r = CliRunner().invoke(cli, ["eval", "recommend", str(coll_dir), "--similar", *extra])
        assert r.exit_code == 2 and "leave out --why and --library-size" in r.output


def test_eval_recommend_on_a_directory_that_is_not_beir(tmp_path: Path):
    from paperfeed.cli.main import cli

    r = CliRunner().invoke(cli, ["eval", "recommend", str(tmp_path), "--json"])
    assert r.exit_code != 0 and "corpus.jsonl" in r.output


def test_rank_for_many_agrees_with_recommend(indexed: Path):
    from paperfeed.search.recommend import rank_for_many

    ids = _rowids(indexed)
    libs = [[ids["sail0"]], [ids["bake1"], ids["bake2"]], [ids["bees4"]]]
    window = sorted(ids.values())
    with open_store(indexed) as store:
        s = Searcher(indexed, auto_sync=False)
        models = [train(s, store, lib) for lib in libs]
        many = rank_for_many(models, s, store, window, exclude=libs, k=4, chunk=2)
        single = [recommend(m, s, store, candidates=window, exclude=lib, k=4, explain=False)
                  for m, lib in zip(models, libs, strict=True)]  # fmt: skip
    assert len(many) == 3
    for got, want, lib in zip(many, single, libs, strict=True):
        assert [r for r, _ in got] == [w.rowid for w in want]
        assert [sc for _, sc in got] == pytest.approx([w.score for w in want], rel=1e-4)
        assert not set(lib) & {r for r, _ in got}


def test_the_svm_solver_finds_linearsvc_s_optimum():
    """fit_linear_svm solves LinearSVC's objective (squared hinge, primal, intercept as a
    regularised feature, per-sample weights): same coefficients, so the same ranking."""
    import numpy as np
    import scipy.sparse as sp
    from sklearn.svm import LinearSVC

    from paperfeed.search.recommend import fit_linear_svm

    rng = np.random.default_rng(3)
    n, k, d = 600, 40, 16
    lex = sp.random(n, k, density=0.1, format="csr", random_state=4, dtype=np.float64)
    dense = rng.normal(size=(n, d)).astype(np.float32)
    y = (dense[:, 0] + lex[:, 0].toarray().ravel() + 0.3 * rng.normal(size=n) > 1.2).astype(np.int8)
    weight = np.where(y == 1, 3.0, 1.0)
    weight[:20] *= 5.0
    ref = LinearSVC(C=0.1, dual=False, tol=1e-6, max_iter=1000)
    ref.fit(sp.hstack([lex, sp.csr_matrix(dense)], format="csr"), y, sample_weight=weight)
    coef, bias = fit_linear_svm(lex, dense, y, 0.1 * weight, tol=1e-6)
    assert coef == pytest.approx(ref.coef_.ravel(), abs=1e-4)
    assert bias == pytest.approx(float(ref.intercept_[0]), abs=1e-4)


def test_the_arxiv_sanity_baseline_uses_its_own_vectorizer():
    """The baseline is arxiv-sanity-lite's compute.py: English stopwords, tokens that start with a
    letter, and no term in more than a tenth of the papers (max_df 0.1)."""
    from paperfeed.eval.recommend import asl_vectorizer

    texts = [f"the common paper{i} 42abc" for i in range(10)] + [f"quasar{i % 10} survey{i}" for i in range(40)]
    vocab = set(asl_vectorizer(len(texts)).fit(texts).vocabulary_)
    assert {"paper0", "quasar0", "quasar0 survey0"} <= vocab
    assert "common" not in vocab  # in 20% of the texts ("quasar0" is in 8%)
    assert "the" not in vocab and "42abc" not in vocab and "common paper0" in vocab
