"""The "why" terms of a recommendation (paperfeed.search.recommend.why_terms) and the measure of
them in `paperfeed eval recommend --why` (why_in_request): pure functions, no index needed."""

from __future__ import annotations

import numpy as np

from paperfeed.eval.recommend import why_in_request
from paperfeed.search.rec_features import N_FEATURES, term_column, terms
from paperfeed.search.recommend import SHARED_TERMS, Recommender, Wording, why_terms


def _model(weights: dict[str, float]) -> Recommender:
    cols = np.array([term_column(t) for t in weights], np.int32)
    order = np.argsort(cols)
    return Recommender(
        positives=np.array([1], np.int64), pos_dense=np.zeros((1, 4), np.float32),
        neg_dense=np.zeros((0, 4), np.float32), lex_index=cols[order],
        lex_weight=np.array(list(weights.values()), np.float32)[order],
        dense_weight=np.zeros(4, np.float32), bias=0.0, seq=0,
    )  # fmt: skip


def _idf(rare: dict[str, float]) -> np.ndarray:
    idf = np.ones(N_FEATURES, np.float32)
    for t, v in rare.items():
        idf[term_column(t)] = v
    return idf


def test_the_terms_the_model_favours_come_first_not_the_rarest():
    model = _model({"vortex": 0.9, "wing": 0.5, "particularly": -0.2, "drag": 0.3})
    idf = _idf({"particularly": 9.0, "offers": 8.0, "vortex": 2.0})
    shared = {"vortex", "wing", "particularly", "offers", "drag"}
    # "particularly" is the rarest word of the two papers but the model weighs it against
    assert why_terms(model, shared, term_column, idf) == ("vortex", "wing", "drag")


def test_a_pair_takes_the_place_of_its_own_word():
    model = _model({"rank": 0.8, "low rank": 0.6, "adaptation": 0.4, "low": 0.1})
    shared = set(terms("low rank adaptation")) | {"rank"}
    got = why_terms(model, shared, term_column, _idf({}))
    assert got == ("low rank", "adaptation")  # not "rank" and "low rank", nor "low" on its own


def test_at_most_shared_terms_are_named():
    words = [f"topic{i}" for i in range(SHARED_TERMS + 3)]
    model = _model({w: 1.0 - i / 10 for i, w in enumerate(words)})
    assert why_terms(model, set(words), term_column, _idf({})) == tuple(words[:SHARED_TERMS])


def test_with_no_term_in_favour_the_rarest_shared_words_are_named():
    model = _model({"common": -0.1})
    idf = _idf({"vortex": 5.0, "wing": 3.0, "vortex wing": 9.0})
    got = why_terms(model, {"common", "vortex", "wing", "vortex wing"}, term_column, idf)
    assert got == ("vortex", "wing", "common")  # words only, rarest first
    assert why_terms(model, set(), term_column, idf) == ()


def test_a_term_is_shown_as_written_and_never_as_a_fragment():
    w = Wording("Sparse Fine-Tuning of low-rank adapters: the rank of the update, matrix and flow")
    assert w.form("fine tuning") == "fine-tuning"
    assert w.form("low rank") == "low-rank"
    assert w.form("fine") is None  # only inside "fine-tuning"
    assert w.form("sparse fine") is None  # splits "fine-tuning"
    assert w.form("rank update") == "rank of the update"  # common words between are kept
    assert w.form("update matrix") is None  # a comma between: not one phrase
    assert w.form("adapters rank") is None  # a colon between
    assert w.form("rank") == "rank" and w.form("absent") is None
    model = _model({"fine": 0.9, "sparse fine": 0.8, "fine tuning": 0.7, "update": 0.6, "rank": 0.5})
    shared = {"fine", "sparse fine", "fine tuning", "update", "rank"}
    assert why_terms(model, shared, term_column, _idf({}), w.form) == ("fine-tuning", "update", "rank")


def test_why_in_request_counts_terms_by_stemmed_words():
    request = "Papers on the stability of sailing yachts when heeling"
    assert why_in_request(["yacht", "keel"], request) == 0.5  # "yachts" -> "yacht"
    assert why_in_request(["heeling angle", "rudder"], request) == 0.5  # a pair counts by any word
    assert why_in_request(["sails"], request) == 1.0  # "sailing" and "sails" share the stem
    assert why_in_request([], request) == 0.0
