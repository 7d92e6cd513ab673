"""The Searcher: warm indexes + model, and the retrieval pipelines.

Modes (each one is a stage of the next, so every stage can be measured with `paperfeed eval`):

- lexical: BM25 (tantivy) over title + abstract as one field, plus author names.
- dense:   all-MiniLM-L6-v2 cosine nearest neighbours; a query of several sentences is also
           encoded sentence by sentence, and a paper scores its best match.
- hybrid:  both, fused by a min-max weighted sum (see fusion.py).
- best:    hybrid, then pseudo-relevance feedback on both sides from the hybrid top 10 -
           RM3 query expansion for BM25 and Rocchio (weighted centroid) for the query vector -
           a second fusion, and that fused with the first pass. The default.

Every choice here was taken on the six collections of the suite together (`paperfeed eval
--suite ../shared/ir --baseline`), never on one. Feedback is what wins and loses most by
collection: the last session's settings (uniform weights, no interpolation) gained 5% on
Cranfield and lost 4-6% on adi, time and lisa. Feedback documents are now weighted by a softmax
of their fused score (temperature 5), and the feedback ranking is averaged with the first pass,
which holds every collection at or above the first pass within noise (mean +2%).

Measured and rejected: ColBERT-style MaxSim over MiniLM token vectors (the model was not trained
for late interaction), title vectors, a cluster-hypothesis score smoothing, z-score and RRF
fusion, a linear fusion of ten normalised scores and ranks learned by pairwise logistic
regression (leave-one-collection-out: mean +1.7%, no better than the hand-built pipeline).
Also rejected: query words weighted by (idf / max idf) ** a on top of BM25 (a = 0.5: the numpy
replica said +1.1%, the product measured mean 1.037 against 1.038 without, adi +0.010, npl and
lisa -0.006/-0.007: a trade between collections, not a gain), and mean-centred MiniLM vectors.

The feedback pass reads its two lists to FB_CANDIDATES = 300, the first pass stays at 100
(prod harness on the suite's built data directories, nDCG@10 / ratio to the plain pipeline, best
mode, 100 -> 300): adi 0.546 = , cranfield 0.4276 -> 0.4281, lisa 0.5065 -> 0.5164, med 0.8143 = ,
npl 0.4965 -> 0.5009, time 0.7319 -> 0.7308; mean ratio 1.038 -> 1.043. Feedback depth 200 / 400
/ 500: 1.040 / 1.043 / 1.042; with it, FB_FIRST_PASS 0.4 / 0.6: 1.038 / 1.039. Hybrid is
unchanged (1.031). The hint came from normalising the hybrid lists over only their top 30 / 50
(1.016 / 1.024): shallower is worse, a paper a list ranks past its depth counts 0 there. A deeper first pass (CANDIDATES 150 / 200 / 300) also
gave best 1.041 / 1.044 / 1.043 but cost hybrid lisa up to 0.009 (0.515 -> 0.506 at 200).
Cost: warm best-mode p95 on the seed corpus 17.1 -> 17.2 ms (`paperfeed bench search --demo`),
p50 over 80 lisa / npl queries +1 ms (load 2.5 from other jobs).
`paperfeed eval --suite ../shared/ir --all-modes --baseline` (ratios to the plain weighted sum
measured in the same run): best mean ratio 1.034 -> 1.039 (npl 1.016 -> 1.025, lisa 1.079 -> 1.100).

Measured and rejected in the same session (best mode mean ratio 1.038, hybrid 1.031 before):
- adi hybrid below plain: no systematic cause. On the same lists, our lexical + plain dense
  0.551, plain lexical + our dense 0.544, ours + ours 0.543, plain + plain 0.554; our dense
  scores span what plain's do (adi query 1: 0.013-0.517 vs 0.014-0.514); the gap is three
  queries whose relevant paper sits at rank 10-11. Min-max without the 0 floor of a short list:
  best 1.036 (adi 0.541); the floor for the lexical list only: hybrid adi 0.537.
- lisa lexical below bm25s (0.458 vs 0.476): no bug; a bm25s replica puts it on tantivy's fixed
  k1 = 1.2 (lisa 0.471), the NLTK query stopwords (0.473) and the exact-form bonus. EXACT_BOOST 0:
  lexical lisa 0.466, npl 0.439 but adi 0.483; best 1.032 (adi 0.536, npl 0.488); 0.15: 1.033.
  Request phrasing as query stopwords (would, pleased, interested, receive, ...): best 1.037.
- The recommender (recommend.train) as feedback: trained on the best top k, its scores over the
  candidates fused with weight w: k 3 / 5 / 10 at w 0.2: 1.039 / 1.037 / 1.036; k 5, w 0.4:
  1.037 (med 0.822, npl 0.486); an SVM on the pool only (top k against the rest): 1.036-1.037.
- A query-adaptive lexical weight (hybrid, leave-one-collection-out over a grid): 0.5 + b log(terms
  / 10) picks b = 0 on every fold (1.031); by top-10 agreement of the two lists 1.033 at best
  (the weight moves by 0.02: noise); by which list's top is more peaked, 1.029.

Measured and rejected later (prod harness, best-mode mean ratio 1.043 before, hybrid 1.031):
- query words weighted by how much the query vector moves without them (1 - cosine): a 0.5 /
  1.0 power gave 1.016 / 0.986 (lisa 0.516 -> 0.462);
- proximity inside questions at a small weight, PAIR_BOOST 0.1 / 0.25: 1.039 / 1.035;
- the moved query vector plus the encoding of the query followed by the feedback titles: 1.037;
- a second feedback round on the final ranking: 1.033 (lisa 0.489);
- the query vector plus the mean of its sentences' vectors, or a paper's dense score as half its
  whole-query cosine and half its best sentence cosine: 1.039 / 1.036 (lisa down);
- our own BM25 on sparse matrices (bm25s-style) in place of tantivy's, same analyser: k1 1.2
  without the exact-form bonus 1.033, k1 1.5 1.027, k1 1.2 with the bonus 1.044 (lexical npl
  0.427 -> 0.436, lisa 0.458 either way): tantivy's fixed k1 is not what holds lisa back.

Measured and rejected in session 8 (same harness, best-mode mean ratio 1.043 before):
- BM25 b (own sparse BM25, k1 1.2 with the exact-form bonus): b 0.5 / 0.65 / 0.85 / 1.0 gave
  1.043 / 1.040 / 1.034 / 1.026 (b 0.5: npl +0.009, lisa -0.009, adi -0.002): 0.75 stays;
- a second query vector of the question's content words only (stopwords dropped), merged by
  best cosine or averaged with the whole question's: 1.039 / 1.036;
- filling in the scores a list lacks before min-max (the exact cosine of a lexical-only paper,
  the exact BM25 of a dense-only one): 1.036 (lisa 0.516 -> 0.497); the cosine only 1.028, the
  BM25 only 1.033. A paper's absence from a list's top is itself evidence worth keeping;
- the weight of the feedback ranking set by how much the first-pass lexical and dense top 10
  agree (0.3 + 0.4 x overlap, and three other lines): 1.040-1.041;
- gradient-boosted trees (scikit-learn HistGradientBoosting, classifier and regressor) over 20
  features of every candidate (the four lists' normalised scores and reciprocal ranks, the
  final score, both cosines, query-word coverage, length, query size), trained leave-one-
  collection-out: 1.017 / 0.997 alone (lisa 1.007, time 0.998), 1.036-1.042 averaged with the
  final score. The collections disagree about what a feature means; the hand-built pipeline
  generalises better than a model fitted to five of them;
- a vector per sentence of every paper (title and each abstract sentence, 83k sentences over
  the suite), a paper's cosine mixed with its best sentence's: weight 0.15 / 0.3 / 0.5 gave
  best 1.040 / 1.043 / 1.036 (hybrid 1.034 / 1.038 / 1.036, adi up to 0.997, time down to
  1.044): no gain where it counts, for about seven times the vectors to store;
- the feedback constants once more, one at a time: FB_VEC_BETA 0.35 / 0.7 1.036 / 1.042,
  FB_ORIGINAL 0.4 / 0.6 1.040 / 1.039, FB_TERMS 20 / 50 1.042 / 1.042, FB_DOCS 7 1.041,
  FB_VEC_DOCS 8 1.042: the kept values sit at the top of every axis.

Measured and rejected in session 9 (same harness, best-mode mean ratio 1.043 before):
- a linear adapter on the MiniLM query vector (q + qA, trained with a softmax over each
  collection's documents on five collections' judgments, scored on the sixth): dense alone, the
  best of seven settings gave mean +2.3% with npl -3.2% and cranfield -0.3%; the others -1% to
  +1.7%. Like the learned rankers, what it learns on five collections does not carry to a sixth;
- Bo1 (divergence from randomness) expansion terms in place of the idf-weighted RM3: 1.042; the
  two averaged 1.041; 15 terms 1.037 (adi up to 0.993, lisa down 0.007-0.015);
- Rocchio with a negative centroid of the first pass's ranks 20-40, weight 0.1 / 0.25: 1.039 /
  1.040;
- the lexical weight per collection, as an oracle would set it: 0.5 is best on every collection
  or within 0.001 of it (0.3 / 0.4 / 0.6 / 0.7: 1.010 / 1.028 / 1.031 / 1.012), so a
  collection-adaptive weight has nothing to gain;
- the min-max sum plus lambda x reciprocal-rank fusion, lambda 0.3 / 1.0: 1.036 / 1.030.

Measured and rejected in session 10 (same harness, best-mode mean ratio 1.043 before): the final
ranking's top 100 re-scored with a Dirichlet query likelihood (mu 300) and fused by min-max at
weight 0.1 / 0.2: 1.040 / 1.036 (adi 0.976 / 0.991, lisa down to 0.507 at 0.2). A second lexical
model with its own length normalisation adds nothing to BM25 + the dense list here.

Queries of other kinds (one sentence, one relevant paper) on collections derived from the
suite's corpora (`bench/derive_collections.py`, README "Other kinds of queries"): best mode is
level with the plain pipeline there (mean ratio 0.993, hybrid 0.991), and feedback neither
helps nor hurts. Its margin on the suite comes from what long requests give it to work with.

Required phrases, exclusions and filters become one tantivy "constraint" query. The lexical side
applies it directly; the dense side intersects its candidates with it (term-set query on rowids),
or, when the constraint is selective, searches only the allowed rowids.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tantivy

from paperfeed.index.handle import IndexHandle
from paperfeed.index.lexical import LexicalIndex
from paperfeed.index.sync import passage_owner
from paperfeed.latex import plain_text
from paperfeed.models import Paper
from paperfeed.search import snippets
from paperfeed.search.fusion import fuse, max_merge, minmax, softmax_weights
from paperfeed.search.query import Filters, ParsedQuery, QueryError, normalize_mode, parse_query
from paperfeed.store import Store

if TYPE_CHECKING:  # imported by open_vectors only when a vector index exists
    from paperfeed.index.vectors import VectorIndex

log = logging.getLogger(__name__)

# Candidates per retriever. 100 is the depth the metrics look at; deeper pages fetch more.
CANDIDATES = 100
MAX_DEPTH = 1000
# Fusion weight of the lexical side.
LEXICAL_WEIGHT = 0.5
# Pseudo-relevance feedback (measured on the suite, see the module docstring).
FB_DOCS = 10  # RM3 feedback documents
FB_TERMS = 30  # RM3 expansion terms
FB_ORIGINAL = 0.5  # weight of the original query in RM3
FB_VEC_DOCS = 5  # Rocchio feedback documents
FB_VEC_BETA = 0.5  # Rocchio weight of the feedback centroid
FB_TEMPERATURE = 5.0  # softmax temperature over min-max normalised fused scores
FB_FIRST_PASS = 0.5  # weight of the first-pass ranking in the final fusion
# Candidates per retriever in the feedback pass. The expanded query and the moved query vector
# find relevant papers deeper than the first pass does, and a paper one list ranks 150th should
# not count as absent (0) there: 300 measured best mode mean 1.038 -> 1.043, no collection down
# (module docstring). The first pass stays at CANDIDATES: deeper there cost hybrid lisa 0.02.
FB_CANDIDATES = 300
# Relevance floor. When no paper contains any query word, dense hits alone must reach this
# cosine. Calibrated on the suite: nonsense probes ("xyzzyqwv", "foo bar baz", "lorem ipsum",
# "qqq www eee", a line of Cyrillic) reach 0.30-0.53 against its 20k documents, and no judged
# query of the suite lacks a lexical match, so the floor removes nothing there.
DENSE_ONLY_FLOOR = 0.55
# Dense search under a constraint: search allowed ids directly when at most this many match,
# else over-fetch and intersect.
ALLOWED_MAX = 20_000
OVERFETCH = 5


@dataclass(slots=True)
class Hit:
    paper: Paper
    score: float
    snippet: str  # safe HTML: escaped text with <mark> around matched words
    title_html: str = ""  # the title, escaped, with matched words marked
    rank: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = self.paper.to_dict()
        d.update(score=round(self.score, 6), snippet=self.snippet, title_html=self.title_html, rank=self.rank)
        return d


@dataclass(slots=True)
class SearchResults:
    hits: list[Hit]
    total: int  # candidates ranked (lexical mode: every matching paper)
    query: str = ""
    mode: str = "best"
    limit: int = 10
    offset: int = 0
    notes: list[str] = field(default_factory=list)
    took_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "mode": self.mode,
            "total": self.total,
            "limit": self.limit,
            "offset": self.offset,
            "notes": self.notes,
            "took_ms": round(self.took_ms, 2),
            "hits": [h.to_dict() for h in self.hits],
        }


@dataclass(slots=True)
class Ranking:
    rids: list[int]
    scores: list[float]
    total: int


class Searcher:
    """Ranks with the indexes of one `IndexHandle` (which opens and refreshes them) and the
    embedder. Thread-safe for searching.

    `search(...)` first has the handle check (one indexed SQL read) whether the store has changed
    since the indexes were last seen; if so it catches up (or, when another process is already
    syncing, reloads what that process has committed), so a search never misses a committed paper
    for long and never returns one the store does not have (hits are read back from the store).
    """

    def __init__(self, data_dir: Path, *, embedder: Any = None, auto_sync: bool = True) -> None:
        self._cache_lock = threading.Lock()  # the LRU caches are shared by request threads
        self._qcache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._rcache: OrderedDict[tuple, Ranking] = OrderedDict()
        self.index = IndexHandle(data_dir, embedder=embedder, auto_sync=auto_sync, on_reopen=self._forget)
        self.data_dir = self.index.data_dir

    @classmethod
    def open(cls, data_dir: Path, store: Store | None = None, **kw: Any) -> Searcher:
        s = cls(data_dir, **kw)
        if store is not None:
            s.refresh(store)
        return s

    def _forget(self, embedder_changed: bool) -> None:
        # rankings are of the indexes as they were; query vectors, of the embedder
        with self._cache_lock:
            if embedder_changed:
                self._qcache.clear()
            self._rcache.clear()

    # ---- the indexes (opened and refreshed by the handle) -------------------------

    @property
    def lexical(self) -> LexicalIndex | None:
        return self.index.lexical

    @property
    def vectors(self) -> VectorIndex | None:
        return self.index.vectors

    @property
    def passages(self) -> VectorIndex | None:
        return self.index.passages

    @property
    def embedder(self) -> Any:
        return self.index.embedder

    @property
    def _seen(self) -> tuple[int, int]:
        return self.index.seen

    def ready(self) -> bool:
        return self.index.ready()

    def refresh(self, store: Store, *, wait: bool = False) -> None:
        """Catch the indexes up with `store` if it changed since we last looked."""
        self.index.refresh(store, wait=wait)

    # ---- public API ---------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        store: Store,
        mode: str = "best",
        limit: int = 10,
        offset: int = 0,
        since: str | None = None,
        until: str | None = None,
        category: str | None = None,
        author: str | None = None,
        source: str | None = None,
        filters: Filters | None = None,
        with_snippets: bool = True,
    ) -> SearchResults:
        t0 = time.perf_counter()
        mode = normalize_mode(mode)
        limit = _int_in(limit, "limit", 1, 200)
        offset = _int_in(offset, "offset", 0, MAX_DEPTH)
        pq = parse_query(query)
        if filters is None:
            known = None
            if source:
                known = [s for s, _ in store.sources()]
            filters = Filters.parse(
                since=since, until=until, category=category, author=author, source=source, known_sources=known
            )
        self.refresh(store)
        ranking = self.rank(pq, mode=mode, filters=filters, depth=offset + limit, store=store)
        page_ids = ranking.rids[offset : offset + limit]
        page_scores = dict(zip(ranking.rids, ranking.scores, strict=True))
        papers = [p for p in store.get_by_rowids(page_ids) if not p.hidden]
        terms = pq.highlight_terms()
        hits = []
        for i, p in enumerate(papers):
            hits.append(
                Hit(
                    paper=p,
                    score=page_scores[p.rowid],
                    snippet=snippets.snippet(p.abstract, terms) if with_snippets else "",
                    title_html=snippets.highlight(p.title, terms) if with_snippets else "",
                    rank=offset + i + 1,
                )
            )
        return SearchResults(
            hits=hits,
            total=ranking.total,
            query=pq.raw,
            mode=mode,
            limit=limit,
            offset=offset,
            notes=list(pq.notes),
            took_ms=(time.perf_counter() - t0) * 1000,
        )

    def similar(self, rowid: int, limit: int = 10, *, store: Store | None = None) -> list[Hit]:
        """Nearest papers to paper `rowid` by its stored vector (the paper itself left out)."""
        if store is not None:
            self.refresh(store)
        k = _int_in(limit, "limit", 1, 100)
        vec = self.vectors
        if vec is None or not vec.has([rowid])[0]:
            return []
        v = np.asarray(vec.get([rowid]), dtype=np.float32).reshape(-1)
        ids, scores = vec.search(v, k + 1)
        pairs = [(int(i), float(s)) for i, s in zip(ids, scores, strict=True) if int(i) != rowid][:k]
        if store is None:
            return [Hit(paper=Paper(title="", rowid=i), score=s, snippet="") for i, s in pairs]
        by_id = {p.rowid: p for p in store.get_by_rowids([i for i, _ in pairs]) if not p.hidden}
        import html

        return [
            Hit(paper=by_id[i], score=s, snippet=html.escape(by_id[i].abstract[:300]), rank=n + 1)
            for n, (i, s) in enumerate(pairs)
            if i in by_id
        ]

    # ---- ranking (no store access except feedback texts) ------------------------------

    def rank(
        self,
        pq: ParsedQuery | str,
        *,
        mode: str = "best",
        filters: Filters | None = None,
        depth: int = CANDIDATES,
        store: Store | None = None,
    ) -> Ranking:
        """Ranked rowids and scores for a query: what eval measures and search pages through."""
        if isinstance(pq, str):
            pq = parse_query(pq)
        if self.lexical is None:
            raise QueryError("the search index is being rebuilt (`paperfeed index`): try again shortly")
        mode = normalize_mode(mode)
        filters = filters or Filters()
        k = max(CANDIDATES, min(depth, MAX_DEPTH))
        key = (pq.raw, mode, filters.key(), k, self._seen)
        with self._cache_lock:
            hit = self._rcache.get(key)
            if hit is not None:
                self._rcache.move_to_end(key)
        if hit is not None:
            return self._named_first(hit, pq, filters, store)
        constraint = self._constraint(pq, filters)
        if mode == "lexical":
            out = self._lexical(pq.terms, pq, constraint, k, count=True)
        elif mode == "dense":
            rids, scores = self._dense_query(self._qvec(pq.text), pq, constraint, k)
            if self._lexical(pq.terms, pq, constraint, 1, count=True).total == 0:
                rids, scores = _above_floor(rids, scores)
            out = Ranking(rids, scores, len(rids))
        else:
            out = self._hybrid(pq, constraint, k, feedback=(mode == "best"), store=store)
        with self._cache_lock:
            self._rcache[key] = out
            if len(self._rcache) > 256:
                self._rcache.popitem(last=False)
        return self._named_first(out, pq, filters, store)

    def _named_first(
        self, out: Ranking, pq: ParsedQuery, filters: Filters, store: Store | None
    ) -> Ranking:
        """A query that is a paper's title, arXiv id or DOI, as typed or pasted, asks for that
        paper: it goes first, whatever the scores say (a shorter title sharing most of its words
        can outscore it: "three dimensional viscous wakes" for "three dimensional effects in
        viscous wakes"; an id matches no word at all). The suite's requests are never a title,
        so its figures do not move."""
        named = store.rowids_named(pq.raw) if store is not None else []
        constraint = self._constraint(pq, filters) if named else None
        if named and constraint is not None and self.lexical is not None:
            allowed = self.lexical.restrict(named, constraint)
            named = [r for r in named if r in allowed]
        if not named:
            return out
        top = (out.scores[0] if out.scores else 0.0) + 1.0
        rest = [(r, s) for r, s in zip(out.rids, out.scores, strict=True) if r not in named]
        found = len(set(named) - set(out.rids))
        return Ranking(named + [r for r, _ in rest], [top] * len(named) + [s for _, s in rest], out.total + found)

    def _qvec(self, text: str) -> np.ndarray:
        with self._cache_lock:
            v = self._qcache.get(text)
        if v is None:
            v = np.asarray(self.embedder.encode_query(text), dtype=np.float32).reshape(-1)
            with self._cache_lock:
                self._qcache[text] = v
                if len(self._qcache) > 512:
                    self._qcache.popitem(last=False)
        return v

    def _constraint(self, pq: ParsedQuery, f: Filters) -> tantivy.Query | None:
        lex = self.lexical
        assert lex is not None
        must: list[tuple[tantivy.Occur, tantivy.Query]] = []
        for ph in pq.phrases:
            q = lex.phrase_query(ph)
            if q is not None:
                must.append((tantivy.Occur.Must, q))
        if pq.excluded:
            q = lex.exclusion_query(pq.excluded)
            if q is not None:
                must.append((tantivy.Occur.MustNot, q))
        if f.since is not None or f.until is not None:
            must.append((tantivy.Occur.Must, lex.date_range(f.since, f.until)))
        if f.categories:
            must.append((tantivy.Occur.Must, _any([lex.category_query(c) for c in f.categories])))
        if f.sources:
            must.append((tantivy.Occur.Must, _any([lex.source_query(s) for s in f.sources])))
        if f.author:
            q = lex.author_query(f.author)
            if q is not None:
                must.append((tantivy.Occur.Must, q))
        if not must:
            return None
        if all(o == tantivy.Occur.MustNot for o, _ in must):
            must.append((tantivy.Occur.Must, tantivy.Query.all_query()))
        return tantivy.Query.const_score_query(tantivy.Query.boolean_query(must), 0.0)

    def _lexical(
        self,
        terms: dict[str, float],
        pq: ParsedQuery,
        constraint: tantivy.Query | None,
        k: int,
        *,
        count: bool = False,
    ) -> Ranking:
        lex = self.lexical
        assert lex is not None
        scoring = lex.term_query(terms, pq.name_words, pq.pairs, pq.exact)
        if scoring is None:
            if constraint is None:
                return Ranking([], [], 0)
            q = constraint  # only phrases/filters with no scorable words: list what matches
        elif constraint is None:
            q = scoring
        else:
            q = tantivy.Query.boolean_query([(tantivy.Occur.Must, scoring), (tantivy.Occur.Must, constraint)])
        # Counting every match disables tantivy's top-k pruning; only lexical mode reports it.
        res = lex.search(q, k, count=count)
        return Ranking(res.rids, res.scores, res.total)

    def _dense(
        self, qv: np.ndarray, constraint: tantivy.Query | None, k: int
    ) -> tuple[list[int], list[float]]:
        """Papers by the cosine of their best vector: the whole text's, or a passage's."""
        whole = self._dense_whole(qv, constraint, k)
        pv = self.passages
        if pv is None or len(pv) == 0:
            return whole
        ids, scores = pv.search(qv, k)
        owners = [passage_owner(i) for i in ids]
        keep = self.lexical.restrict(owners, constraint) if constraint is not None and self.lexical is not None else None
        pairs = [(o, float(s)) for o, s in zip(owners, scores, strict=True) if keep is None or o in keep]
        ids, scores = max_merge([whole, ([o for o, _ in pairs], [s for _, s in pairs])])
        return ids[:k], scores[:k]

    def _dense_whole(
        self, qv: np.ndarray, constraint: tantivy.Query | None, k: int
    ) -> tuple[list[int], list[float]]:
        vec = self.vectors
        if vec is None or len(vec) == 0:
            return [], []
        if constraint is None:
            ids, scores = vec.search(qv, k)
            return [int(i) for i in ids], [float(s) for s in scores]
        lex = self.lexical
        assert lex is not None
        n_allowed = lex.search(constraint, 0).total
        if n_allowed == 0:
            return [], []
        if n_allowed <= ALLOWED_MAX:
            allowed = np.asarray(lex.rids_matching(constraint, n_allowed), dtype=np.int64)
            ids, scores = vec.search(qv, k, allowed=allowed)
            return [int(i) for i in ids], [float(s) for s in scores]
        ids, scores = vec.search(qv, k * OVERFETCH)
        keep = lex.restrict([int(i) for i in ids], constraint)
        pairs = [(int(i), float(s)) for i, s in zip(ids, scores, strict=True) if int(i) in keep][:k]
        return [i for i, _ in pairs], [s for _, s in pairs]

    def _dense_query(
        self, qv: np.ndarray, pq: ParsedQuery, constraint: tantivy.Query | None, k: int
    ) -> tuple[list[int], list[float]]:
        """Dense ranking for the query vector `qv` and, for a query of several sentences, for
        each sentence: a paper keeps its best cosine."""
        first = self._dense(qv, constraint, k)
        if not pq.sentences:
            return first
        lists = [first] + [self._dense(self._qvec(t), constraint, k) for t in pq.sentences]
        ids, scores = max_merge(lists)
        return ids[:k], scores[:k]

    def _hybrid(
        self, pq: ParsedQuery, constraint: tantivy.Query | None, k: int, *, feedback: bool, store: Store | None
    ) -> Ranking:
        lex0 = self._lexical(pq.terms, pq, constraint, k, count=True)
        qv = self._qvec(pq.text)
        d_ids, d_scores = self._dense_query(qv, pq, constraint, k)
        if lex0.total == 0:
            ids, scores = _above_floor(d_ids, d_scores)
            return Ranking(ids, scores, len(ids))
        ids, scores = fuse((lex0.rids, lex0.scores), (d_ids, d_scores), LEXICAL_WEIGHT, k)
        ids, scores = ids[:k], scores[:k]
        total = _matching(lex0, d_ids, d_scores, k)
        if not feedback or not pq.terms:
            return Ranking(ids, scores, total)
        n_fb = max(FB_DOCS, FB_VEC_DOCS)
        fb_ids = ids[:n_fb]
        # Weights from the fused scores relative to the whole candidate list: a clear leader
        # takes most of the weight, a flat top shares it.
        fb_w = softmax_weights(minmax(scores)[:n_fb], FB_TEMPERATURE)
        lex = self.lexical
        assert lex is not None
        # RM3 on the lexical side, from the fused top documents' text. The index keeps no text
        # (the store is the system of record), so it is read back from the store: 10 rows by key.
        texts = _texts(store, fb_ids[:FB_DOCS])
        fb_pairs = [
            (texts[r], w) for r, w in zip(fb_ids[:FB_DOCS], fb_w[:FB_DOCS], strict=True) if r in texts
        ]
        terms2 = lex.rm3_terms(pq.terms, fb_pairs, n_terms=FB_TERMS, original_weight=FB_ORIGINAL)
        # Both feedback lists are read deeper than the first pass (FB_CANDIDATES).
        k_fb = max(k, FB_CANDIDATES)
        lex1 = self._lexical(terms2, pq, constraint, k_fb)
        # Rocchio on the dense side: move the query towards the weighted feedback centroid.
        vec = self.vectors
        if vec is not None and d_ids:
            vids = fb_ids[:FB_VEC_DOCS]
            have = vec.has(vids)
            w_by_id = dict(zip(fb_ids, fb_w, strict=True))
            vids = [r for r, h in zip(vids, have, strict=True) if h]
            q2 = qv
            if vids:
                w = np.asarray([w_by_id[r] for r in vids], np.float32)
                w /= max(float(w.sum()), 1e-9)
                cen = (np.asarray(vec.get(vids), dtype=np.float32) * w[:, None]).sum(0)
                q2 = qv + FB_VEC_BETA * cen
                q2 /= max(float(np.linalg.norm(q2)), 1e-9)
            # re-read at the feedback depth even unmoved, so both lists are normalised alike
            d_ids, d_scores = self._dense_query(q2, pq, constraint, k_fb)
        ids2, scores2 = fuse((lex1.rids, lex1.scores), (d_ids, d_scores), LEXICAL_WEIGHT, k_fb)
        ids, scores = fuse((ids2[:k_fb], scores2[:k_fb]), (ids, scores), 1.0 - FB_FIRST_PASS)
        return Ranking(ids[:k], scores[:k], total)


def _above_floor(ids: list[int], scores: list[float]) -> tuple[list[int], list[float]]:
    keep = [(i, s) for i, s in zip(ids, scores, strict=True) if s >= DENSE_ONLY_FLOOR]
    return [i for i, _ in keep], [s for _, s in keep]


def _matching(lex: Ranking, dense_ids: list[int], dense_scores: list[float], k: int) -> int:
    """How many papers match: those containing a query word, plus those close in meaning alone
    (a cosine at the relevance floor). Exact when every word match is among the lexical
    candidates; beyond that, the word matches alone."""
    if lex.total > k:
        return lex.total
    lexical = set(lex.rids)
    return lex.total + sum(
        1 for r, s in zip(dense_ids, dense_scores, strict=True) if s >= DENSE_ONLY_FLOOR and r not in lexical
    )


def _texts(store: Store | None, rids: list[int]) -> dict[int, str]:
    """The feedback papers' text as the index reads it (plain_text: no LaTeX commands)."""
    if store is None:
        return {}
    return {p.rowid: plain_text(f"{p.title} {p.abstract}") for p in store.get_by_rowids(rids)}


def _any(queries: list[tantivy.Query]) -> tantivy.Query:
    if len(queries) == 1:
        return queries[0]
    return tantivy.Query.boolean_query([(tantivy.Occur.Should, q) for q in queries])


def _int_in(value: Any, name: str, lo: int, hi: int) -> int:
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise QueryError(f"{name}: expected a whole number from {lo} to {hi}, got {value!r}") from None
    if not lo <= v <= hi:
        raise QueryError(f"{name}: expected a whole number from {lo} to {hi}, got {v}")
    return v
