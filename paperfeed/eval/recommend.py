"""Recommendation quality on BEIR-layout collections (`paperfeed eval recommend`).

The protocol (issue 13):
* a "user" is every query with at least 4 documents judged relevant (score >= 1);
* that query's relevant document ids are sorted by the hex digest of sha1(f"{query_id}:{doc_id}");
  the first ceil(n/2) are the user's library, the rest are held out;
* the recommender sees only the library, never the query text, and ranks every corpus document
  that is not in the library;
* nDCG@10 with binary gains (the held-out documents are relevant) and recall@100, averaged over
  users.

The collection goes through the product's path (ingest into a throw-away data directory, index,
then `recommend.train` / `recommend.recommend`), so the figures are what readers get. The
baselines (`--baseline`) run beside it on the raw corpus file: arxiv-sanity-lite's tf-idf + linear
SVM, and the centroid of plain sentence-transformers MiniLM vectors.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paperfeed.eval import Collection, EvalError, build, load_collection

MIN_RELEVANT = 4
DEPTH = 100
BASELINES = ("asl-svm", "minilm-centroid")


@dataclass(frozen=True)
class User:
    query_id: str
    library: tuple[str, ...]
    held_out: tuple[str, ...]


def relevant_needed(library_size: int | None = None) -> int:
    """How many relevant documents a query needs to be a reader: MIN_RELEVANT, and with a
    `library_size` one more than that, so that something is held out."""
    return MIN_RELEVANT if library_size is None else max(MIN_RELEVANT, library_size + 1)


def split_users(qrels: dict[str, dict[str, int]], library_size: int | None = None) -> list[User]:
    """The protocol's users: queries with >= 4 relevant documents, split by sha1 order. With
    `library_size` (the cold start), each library is the first `library_size` of them instead of
    half, and a query needs one more relevant document than that to be a user."""
    users = []
    need = relevant_needed(library_size)
    for qid, docs in qrels.items():
        rel = [d for d, s in docs.items() if s >= 1]
        if len(rel) < need:
            continue
        rel.sort(key=lambda d: hashlib.sha1(f"{qid}:{d}".encode()).hexdigest())
        n = math.ceil(len(rel) / 2) if library_size is None else library_size
        users.append(User(qid, tuple(rel[:n]), tuple(rel[n:])))
    return users


def ndcg_at(ranked: Sequence[str], relevant: set[str], k: int = 10) -> float:
    """Binary-gain nDCG@k."""
    dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(ranked[:k]) if d in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal if ideal else 0.0


def recall_at(ranked: Sequence[str], relevant: set[str], k: int = DEPTH) -> float:
    return len(set(ranked[:k]) & relevant) / len(relevant) if relevant else 0.0


@dataclass
class RecRun:
    name: str
    ndcg: float
    recall: float
    users: int
    seconds: float
    per_user: dict[str, float]
    why: float | None = None  # with --why: see `why_in_request`

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ndcg@10": round(self.ndcg, 4), "recall@100": round(self.recall, 4), "users": self.users}
        if self.why is not None:
            out["why@10"] = round(self.why, 4)
        return out


def score_rankings(name: str, users: list[User], rankings: dict[str, list[str]], seconds: float) -> RecRun:
    nd: dict[str, float] = {}
    rc: list[float] = []
    for u in users:
        ranked = rankings.get(u.query_id, [])
        held = set(u.held_out)
        nd[u.query_id] = ndcg_at(ranked, held)
        rc.append(recall_at(ranked, held))
    n = len(users)
    return RecRun(name, sum(nd.values()) / n if n else 0.0, sum(rc) / n if n else 0.0, n, seconds, nd)


def why_in_request(shown: Sequence[str], request: str) -> float:
    """The share of the "why" terms shown with a recommendation that the reader's request (the
    query, which the recommender never sees) contains: a term counts when one of its words does,
    after stemming. It asks whether the explanation names what the reader is after."""
    import Stemmer

    from paperfeed.search.rec_features import words

    stem = Stemmer.Stemmer("english").stemWords
    wanted = set(stem(words(request)))
    return sum(any(s in wanted for s in stem(t.split(" "))) for t in shown) / len(shown) if shown else 0.0


def product_rankings(coll: Collection, users: list[User], data_dir: Path, *, progress: bool = False,
                     why: dict[str, float] | None = None) -> dict[str, list[str]]:  # fmt: skip
    """Each user's top DEPTH documents by paperfeed's recommender, as collection doc ids. With
    `why` (a dict), it also gets each user's mean `why_in_request` over the top 10 explained."""
    from paperfeed.search import Searcher
    from paperfeed.search.recommend import ExplainMemo, RecommendError, explain_many, recommend, train
    from paperfeed.store import open_store

    out: dict[str, list[str]] = {}
    memo = ExplainMemo()
    with open_store(data_dir) as store:
        searcher = Searcher(data_dir, auto_sync=False)
        ext, back = _doc_rowids(coll, store)
        for u in _bar(users, progress, f"recommend {coll.name}"):
            lib = [ext[d] for d in u.library if d in ext]
            try:
                model = train(searcher, store, lib)
            except RecommendError:
                out[u.query_id] = []
                continue
            recs = recommend(model, searcher, store, exclude=lib, k=DEPTH, explain=False)
            out[u.query_id] = [back[r.rowid] for r in recs if r.rowid in back]
            if why is not None:
                (items,) = explain_many([(model, [r.rowid for r in recs[:10]])], searcher, store, memo)
                shares = [why_in_request(terms, coll.queries[u.query_id]) for _, terms in items if terms]
                why[u.query_id] = sum(shares) / len(shares) if shares else 0.0
    return out


def _doc_rowids(coll: Collection, store: Any) -> tuple[dict[str, int], dict[int, str]]:
    """The collection's doc ids -> the store's paper rowids, and back."""
    from paperfeed.eval import _source

    ext = dict(store.conn.execute(
        "SELECT ext_id, paper_rowid FROM paper_sources WHERE source = ? AND ext_id IS NOT NULL",
        (_source(coll),),
    ).fetchall())  # fmt: skip
    return ext, {r: e for e, r in ext.items()}


def similar_rankings(coll: Collection, users: list[User], data_dir: Path) -> dict[str, dict[str, list[str]]]:
    """For readers of one saved paper: the top DEPTH of "Similar papers" for it
    (`search.similar.similar_papers`), and of the vector index's nearest neighbours alone
    (`Searcher.similar`, what the page showed before), as run name -> user -> doc ids."""
    from paperfeed.search import Searcher
    from paperfeed.search.similar import similar_papers
    from paperfeed.store import open_store

    out: dict[str, dict[str, list[str]]] = {"similar-papers": {}, "nearest-vectors": {}}
    with open_store(data_dir) as store:
        searcher = Searcher(data_dir, auto_sync=False)
        ext, back = _doc_rowids(coll, store)
        for u in users:
            rowid = ext.get(u.library[0])
            if rowid is None:
                continue
            pairs = similar_papers(searcher, store, rowid, DEPTH)
            out["similar-papers"][u.query_id] = [back[r] for r, _ in pairs if r in back]
            hits = searcher.similar(rowid, DEPTH)
            out["nearest-vectors"][u.query_id] = [back[h.paper.rowid] for h in hits if h.paper.rowid in back]
    return out


PLAIN_VECTORS = "plain-minilm.npy"


def baseline_rankings(coll: Collection, users: list[User], cache: Path | None = None
                      ) -> dict[str, dict[str, list[str]]]:  # fmt: skip
    """The two baselines' rankings (name -> user -> doc ids), over the raw corpus file. With
    `cache` (a directory), the plain MiniLM vectors are kept there and reused."""
    from sklearn.svm import LinearSVC

    from paperfeed.eval.plain import read_corpus

    ids, texts = read_corpus(str(coll.corpus))
    index = {d: i for i, d in enumerate(ids)}
    tfidf = asl_vectorizer(len(texts)).fit_transform(texts)
    vecs = _plain_vectors(texts, cache)

    def svm(lib: np.ndarray) -> np.ndarray:
        y = np.zeros(len(ids))
        y[lib] = 1
        clf = LinearSVC(C=0.01, class_weight="balanced", max_iter=10_000, tol=1e-6)
        return clf.fit(tfidf, y).decision_function(tfidf)

    def centroid(lib: np.ndarray) -> np.ndarray:
        return vecs @ vecs[lib].mean(axis=0)

    methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {"asl-svm": svm, "minilm-centroid": centroid}
    out: dict[str, dict[str, list[str]]] = {name: {} for name in methods}
    for u in users:
        lib = np.array([index[d] for d in u.library if d in index], dtype=np.int64)
        for name, fn in methods.items():
            if not len(lib):
                out[name][u.query_id] = []
                continue
            scores = fn(lib).astype(np.float64)
            scores[lib] = -np.inf
            top = np.argsort(-scores, kind="stable")[:DEPTH]
            out[name][u.query_id] = [ids[i] for i in top]
    return out


def asl_vectorizer(n_docs: int) -> Any:
    """arxiv-sanity-lite's TfidfVectorizer, argument for argument (its compute.py; min_df there
    is 5 for its ~100k papers, scaled down here for small corpora as the shared README says)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(
        input="content", encoding="utf-8", decode_error="replace", strip_accents="unicode",
        lowercase=True, analyzer="word", stop_words="english",
        token_pattern=r"(?u)\b[a-zA-Z_][a-zA-Z0-9_]+\b", ngram_range=(1, 2), max_features=20_000,
        norm="l2", use_idf=True, smooth_idf=True, sublinear_tf=True,
        max_df=0.1, min_df=min(5, max(1, n_docs // 1000)),
    )  # fmt: skip


BUILT = "eval-built.ok"


def _plain_vectors(texts: list[str], cache: Path | None) -> np.ndarray:
    from paperfeed.bench.baseline import plain_encoder

    path = cache / PLAIN_VECTORS if cache is not None else None
    if path is not None and path.is_file():
        vecs = np.load(path)
        if vecs.shape[0] == len(texts):
            return vecs
    vecs = np.asarray(plain_encoder()(texts), dtype=np.float32)
    if path is not None:
        np.save(path, vecs)
    return vecs


def evaluate_recommend(root: Path, *, baseline: bool = False, progress: bool = False, keep: Path | None = None,
                       why: bool = False, library_size: int | None = None,
                       similar: bool = False) -> tuple[Collection, list[RecRun]]:  # fmt: skip
    """paperfeed's recommender on one collection (and, with `baseline`, the two baselines).
    With `keep`, the data directory is kept there, and one already built there is reused (the
    corpus is ingested and embedded once while the recommender is being worked on). With `why`,
    the product's run also gets `why` (`why_in_request` averaged over readers). `library_size`:
    see `split_users`. With `similar`, each library is one paper and the runs are "Similar
    papers" for it and the vector index's nearest neighbours (`similar_rankings`) instead."""
    coll = load_collection(root)
    if similar:
        library_size = 1
    users = split_users(coll.qrels, library_size)
    if not users:
        raise EvalError(f"{root}: no query has {relevant_needed(library_size)} or more relevant documents")
    with tempfile.TemporaryDirectory(prefix="paperfeed-evalrec-") as tmp:
        data_dir = keep or Path(tmp)
        if not (data_dir / BUILT).is_file():
            build(coll, data_dir, progress=progress)
            (data_dir / BUILT).write_text(str(coll.corpus))
        t0 = time.perf_counter()
        if similar:
            sims = similar_rankings(coll, users, data_dir)
            seconds = time.perf_counter() - t0
            runs = [score_rankings(name, users, ranked, seconds) for name, ranked in sims.items()]
        else:
            shares: dict[str, float] | None = {} if why else None
            ranked = product_rankings(coll, users, data_dir, progress=progress, why=shares)
            runs = [score_rankings("paperfeed", users, ranked, time.perf_counter() - t0)]
            if shares is not None:
                runs[0].why = sum(shares.values()) / len(users)
    if baseline:
        t0 = time.perf_counter()
        base = baseline_rankings(coll, users, keep)
        seconds = time.perf_counter() - t0
        runs += [score_rankings(name, users, base[name], seconds) for name in BASELINES]
    return coll, runs


def summarize(per_collection: dict[str, list[RecRun]]) -> dict[str, Any]:
    """Mean of each run over the collections and, when the baselines ran, each collection's ratio
    of the product's nDCG@10 (its first run) to the better baseline (the issue's target: >= 1.05
    everywhere)."""
    names = list(dict.fromkeys(r.name for runs in per_collection.values() for r in runs))
    out: dict[str, Any] = {}
    for name in names:
        rs = [r for runs in per_collection.values() for r in runs if r.name == name]
        out[name] = {
            "ndcg@10": round(sum(r.ndcg for r in rs) / len(rs), 4),
            "recall@100": round(sum(r.recall for r in rs) / len(rs), 4),
            "users": sum(r.users for r in rs),
        }
    ratios = {}
    for coll, runs in per_collection.items():
        by = {r.name: r for r in runs}
        best = max((by[b].ndcg for b in BASELINES if b in by), default=0.0)
        if best > 0:
            ratios[coll] = round(runs[0].ndcg / best, 4)  # the product's run comes first
    if ratios:
        out["ratio_to_best_baseline"] = ratios
        out["min_ratio"] = min(ratios.values())
    return out


def _bar(items: list[Any], progress: bool, desc: str) -> Any:
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="user")
