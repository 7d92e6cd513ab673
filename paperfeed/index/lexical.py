"""The lexical index: field-weighted BM25 over title, abstract and authors, on tantivy.

Why tantivy, measured on this 2-core machine (under load from other jobs):

                        Cranfield nDCG@10   200k synthetic abstracts (150 words, 300 queries, top 100)
                        (same stemming)     build    query p50 / p95     add 1 paper     disk
    tantivy (fields)    0.372               52 s     1.1 / 9.0 ms        0.1 s commit    113 MB
    bm25s (one field)   0.360 (0.365 k1=1.5) 32 s    1.2 / 11.6 ms       full rebuild    in RAM
    SQLite FTS5 bm25()  0.362               13 s     203 / 373 ms        one INSERT      410 MB

- Quality: per-field BM25 (title and abstract each with its own length normalisation) beats one
  concatenated field; tantivy gives it for free, with boosts per field and per term.
- Latency: tantivy's block-max WAND prunes; FTS5 must score every matching row in SQL, which
  is already 0.2-0.4 s at 200k and would miss the 1M target (lexical p95 <= 20 ms) by far.
- Incremental updates: tantivy adds/deletes in segments with background merges; bm25s has no
  incremental API (adding a day's papers means re-indexing everything, in RAM).
- Disk/memory: tantivy's index is compressed and memory-mapped, nothing needs to sit in RAM.
- Features the rest of search builds on: positions (phrase queries, proximity), numeric range
  filters on fast fields, term-set intersection (used to filter the dense side's candidates).

Documents are keyed by the store's rowid (`rid`, a fast field). Filters (date range,
category, source, author) are indexed here too, so the dense side can intersect its
candidates with them without touching SQLite.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import re
import shutil
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import tantivy

from paperfeed.latex import plain_text
from paperfeed.models import Paper

log = logging.getLogger(__name__)

# Bump when the schema or analysers change: an index of another version is rebuilt.
SCHEMA_VERSION = 4  # 2: the "pairs" field; 3: one "text" field instead of title + abstract; 4: folded accents

# Accents are folded (tantivy's ASCII folding, `fold` for the pairs) and papers are indexed as
# they read (`paperfeed.latex.plain_text`): "Schr\\"odinger" in an arXiv abstract is the word
# "schrodinger", which "Schrödinger" and "Schrodinger" both find, and "{\\em x}" adds no word
# "em". The suite's collections are plain ASCII, so their figures do not move.

# One BM25 over title + abstract, not a sum of per-field BM25 scores. Summing fields scores a
# word twice when it is in both, gives short titles a length normalisation of their own, and has
# two saturation curves where BM25 has one; over the six collections of the suite it lost to
# bm25s's single field by 1-12% (npl 0.378 vs 0.428). Measured with `paperfeed eval --suite`.
AUTHORS_BOOST = 0.5
# Stemming conflates "effective rank" with "effective rankers" and "effects of ranking". An
# unstemmed copy of title + abstract ("exact") gives surface-form matches a bonus, and adjacent
# query words found next to each other in a paper a proximity bonus (as in the sequential
# dependence model), so "effective rank" prefers papers about effective rank.
# Adjacency is indexed, not computed at query time: each pair of neighbouring content words
# (stopwords skipped, at most 3 positions apart, so "angle of attack" gives angle_attack) is one
# term of the "pairs" field, as Lucene's shingles do. The bonus is then a plain term lookup that
# tantivy's block-max WAND can prune. Phrase queries on the exact field gave the same ranking
# but evaluated positions over the whole collection: at a million papers the lexical p95 went
# from about 20 ms to 65 ms, and 11-16 ms CPU even when rescoring only the top 300.
# In a keyword query of two or three words the words are usually one concept (a noun phrase
# typed into a search box), so adjacency counts more there than in a long question, where many
# neighbouring words are not a phrase ("laws obeyed constructing").
EXACT_BOOST = 0.3
PAIR_BOOST = 0.0  # in a question: measured on the suite, 1.0 cost 2-6% nDCG@10 on every collection
PAIR_BOOST_SHORT = 3.0
SHORT_QUERY_TERMS = 3
MAX_PAIRS = 16
RM3_MIN_DF = 1  # a floor of 2 or 3 was measured: no gain on Cranfield (-0.001)

# Lucene's classic English stopword list is removed at index time (small postings, and it is
# what tantivy ships). Queries drop a larger, general English function-word list (the usual
# NLTK one): question words such as "what", "which", "how" carry no topic in a search box.
_QUERY_STOPWORDS_TEXT = """i me my myself we our ours ourselves you your yours yourself yourselves he him his himself
    she her hers herself it its itself they them their theirs themselves what which who whom this
    that these those am is are was were be been being have has had having do does did doing a an
    the and but if or because as until while of at by for with about against between into through
    during before after above below to from up down in out on off over under again further then
    once here there when where why how all any both each few more most other some such no nor not
    only own same so than too very s t can will just don should now"""
QUERY_STOPWORDS: frozenset[str] = frozenset(_QUERY_STOPWORDS_TEXT.split())

MAX_TOKEN_LEN = 40  # longer "words" are base64 blobs, URLs or junk

# Fields
F_RID = "rid"
F_TEXT = "text"  # title + abstract, stemmed
F_AUTHORS = "authors"
F_CATEGORY = "category"
F_SOURCE = "source"
F_EXACT = "exact"  # title + abstract, lowercased, not stemmed, no stopwords removed
F_PAIRS = "pairs"  # adjacent content words of title, of abstract: "effective_rank"
F_DATE = "date"  # yyyymmdd as an integer: published date, else feed date

TOK_TEXT = "pf_en"  # lowercase, ASCII folding, Lucene stopwords, English (Porter2) stemming
TOK_NAME = "pf_name"  # lowercase, ASCII folding, no stemming: author names
TOK_EXACT = "pf_exact"  # lowercase, ASCII folding
TOK_RAW = "raw"  # exact values: categories, sources
TOK_PAIRS = "pf_pairs"  # whitespace: the pair terms are made in Python (see doc_pairs)


def _text_analyzer(stopwords: Iterable[str] | None) -> tantivy.TextAnalyzer:
    b = (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(MAX_TOKEN_LEN))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
    )
    b = (
        b.filter(tantivy.Filter.stopword("english"))
        if stopwords is None
        else b.filter(tantivy.Filter.custom_stopword(sorted(stopwords)))
    )
    return b.filter(tantivy.Filter.stemmer("english")).build()


def _name_analyzer() -> tantivy.TextAnalyzer:
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(MAX_TOKEN_LEN))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .build()
    )


def _exact_analyzer() -> tantivy.TextAnalyzer:
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(MAX_TOKEN_LEN))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .build()
    )


def _pairs_analyzer() -> tantivy.TextAnalyzer:
    return tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).build()


# Analysers are stateless; build them once per process.
INDEX_ANALYZER = _text_analyzer(None)
QUERY_ANALYZER = _text_analyzer(QUERY_STOPWORDS)  # a superset of the Lucene list
NAME_ANALYZER = _name_analyzer()
EXACT_ANALYZER = _exact_analyzer()
PAIRS_ANALYZER = _pairs_analyzer()


def analyze_query(text: str) -> list[str]:
    """Stemmed, stopword-free terms of `text`, as the index stores them."""
    return QUERY_ANALYZER.analyze(text)


def analyze_index(text: str) -> list[str]:
    """Terms as the index analyser produces them (Lucene stopwords only): used for phrases."""
    return INDEX_ANALYZER.analyze(text)


def analyze_name(text: str) -> list[str]:
    return NAME_ANALYZER.analyze(text)


def date_key(value: str | None) -> int | None:
    """'2024-05-07' -> 20240507; None for missing or malformed dates."""
    if not value or len(value) < 10:
        return None
    digits = value[:4] + value[5:7] + value[8:10]
    return int(digits) if digits.isdigit() else None


def _schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    # i64, not u64: tantivy-py turns Python ints into i64 terms, so deletes by term on a u64
    # field silently match nothing.
    sb.add_integer_field(F_RID, stored=True, indexed=True, fast=True)
    sb.add_text_field(F_TEXT, tokenizer_name=TOK_TEXT)
    sb.add_text_field(F_EXACT, tokenizer_name=TOK_EXACT)
    sb.add_text_field(F_PAIRS, tokenizer_name=TOK_PAIRS, index_option="freq")
    sb.add_text_field(F_AUTHORS, tokenizer_name=TOK_NAME)
    sb.add_text_field(F_CATEGORY, tokenizer_name=TOK_RAW, index_option="basic")
    sb.add_text_field(F_SOURCE, tokenizer_name=TOK_RAW, index_option="basic")
    sb.add_integer_field(F_DATE, indexed=True, fast=True)
    return sb.build()


@dataclass(frozen=True, slots=True)
class LexHits:
    rids: list[int]
    scores: list[float]
    total: int


class LexicalIndex:
    """One tantivy index under `directory`. Readers are cheap; the writer is opened per batch
    (tantivy allows one writer per index across processes, guarded by its own lock file, and the
    sync holds our own file lock around it)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.schema = _schema()
        self.index = tantivy.Index(self.schema, path=str(directory))
        self._register(self.index)
        self._searcher = self.index.searcher()

    @staticmethod
    def _register(index: tantivy.Index) -> None:
        # Tokenizers are not persisted by tantivy; every opener must register them.
        index.register_tokenizer(TOK_TEXT, INDEX_ANALYZER)
        index.register_tokenizer(TOK_NAME, NAME_ANALYZER)
        index.register_tokenizer(TOK_EXACT, EXACT_ANALYZER)
        index.register_tokenizer(TOK_PAIRS, PAIRS_ANALYZER)

    @classmethod
    def wipe(cls, directory: Path) -> None:
        shutil.rmtree(directory, ignore_errors=True)

    # ---- writing ------------------------------------------------------------

    @contextlib.contextmanager
    def writer(self) -> Iterator[_Writer]:
        w = self.index.writer(heap_size=64_000_000, num_threads=1)
        try:
            yield _Writer(w)
            w.commit()
        except BaseException:
            w.rollback()
            raise
        finally:
            # Releases tantivy's writer lock (consumes the writer).
            with contextlib.suppress(Exception):
                w.wait_merging_threads()
        self.reload()

    def reload(self) -> None:
        self.index.reload()
        self._searcher = self.index.searcher()

    # ---- reading ------------------------------------------------------------

    @property
    def searcher(self) -> tantivy.Searcher:
        return self._searcher

    def __len__(self) -> int:
        return self._searcher.num_docs

    def doc_freq(self, term: str) -> int:
        return self._searcher.doc_freq(F_TEXT, term)

    def has_category(self, value: str) -> bool:
        return self._searcher.doc_freq(F_CATEGORY, value) > 0

    def search(self, query: tantivy.Query, k: int, offset: int = 0, count: bool = True) -> LexHits:
        if k <= 0:
            res = self._searcher.search(query, 1, count=True)
            return LexHits([], [], res.count or 0)
        res = self._searcher.search(query, k, count=count, offset=offset)
        addrs = [a for _, a in res.hits]
        rids = [int(r) for r in self._searcher.fast_field_values(F_RID, addrs)] if addrs else []
        return LexHits(rids, [float(s) for s, _ in res.hits], int(res.count or 0) if count else len(rids))

    def rids_matching(self, query: tantivy.Query, limit: int) -> list[int]:
        return self.search(query, limit, count=False).rids

    def restrict(self, rids: Sequence[int], constraint: tantivy.Query) -> set[int]:
        """The subset of `rids` that match `constraint` (filters, required phrases)."""
        if not rids:
            return set()
        q = tantivy.Query.boolean_query(
            [
                (
                    tantivy.Occur.Must,
                    tantivy.Query.term_set_query(self.schema, F_RID, [int(r) for r in rids]),
                ),
                (tantivy.Occur.Must, constraint),
            ]
        )
        return set(self.rids_matching(q, len(rids)))

    # ---- query building -------------------------------------------------------

    def term_query(
        self,
        weighted_terms: dict[str, float],
        name_words: Sequence[str] = (),
        pairs: Sequence[tuple[str, str, int]] = (),
        exact_words: Sequence[str] = (),
    ) -> tantivy.Query | None:
        """A disjunction over title/abstract (and authors) of stemmed terms with weights, plus a
        proximity bonus for `pairs` (term, next term, distance) of adjacent query words."""
        subs: list[tuple[tantivy.Occur, tantivy.Query]] = []
        s = self.schema
        for term, w in weighted_terms.items():
            if w > 0:
                subs.append((tantivy.Occur.Should, _boost(tantivy.Query.term_query(s, F_TEXT, term), w)))
        for word in exact_words:
            subs.append(
                (tantivy.Occur.Should, _boost(tantivy.Query.term_query(s, F_EXACT, word), EXACT_BOOST))
            )
        subs += [(tantivy.Occur.Should, q) for q in self._pair_queries(pairs)]
        for word in dict.fromkeys(name_words):
            subs.append(
                (tantivy.Occur.Should, _boost(tantivy.Query.term_query(s, F_AUTHORS, word), AUTHORS_BOOST))
            )
        if not subs:
            return None
        return tantivy.Query.boolean_query(subs)

    def _pair_queries(self, pairs: Sequence[tuple[str, str, int]]) -> list[tantivy.Query]:
        # pairs come from the original query (n words give n-1 pairs), also in the RM3 pass
        pair_boost = PAIR_BOOST_SHORT if len(pairs) < SHORT_QUERY_TERMS else PAIR_BOOST
        if pair_boost <= 0:
            return []
        terms = dict.fromkeys(pair_term(t1, t2) for t1, t2, _ in pairs[:MAX_PAIRS])
        return [_boost(tantivy.Query.term_query(self.schema, F_PAIRS, t), pair_boost) for t in terms]

    def phrase_query(self, phrase: str) -> tantivy.Query | None:
        """The words exactly, in order, in the title or the abstract: matched on the unstemmed
        "exact" field, so a quoted "weighting vectors" does not match "weighted vector"."""
        words = EXACT_ANALYZER.analyze(phrase)
        if not words:
            return None
        if len(words) == 1:
            return tantivy.Query.term_query(self.schema, F_EXACT, words[0])
        return tantivy.Query.phrase_query(self.schema, F_EXACT, words)

    def exclusion_query(self, items: Sequence[str]) -> tantivy.Query | None:
        """Papers to leave out: a single word by its stem (-model also drops "models"), a
        multi-word item as an exact phrase."""
        subs = []
        for item in items:
            if len(EXACT_ANALYZER.analyze(item)) > 1:
                q = self.phrase_query(item)
                if q is not None:
                    subs.append((tantivy.Occur.Should, q))
                continue
            for term in analyze_index(item):
                subs.append((tantivy.Occur.Should, tantivy.Query.term_query(self.schema, F_TEXT, term)))
        return tantivy.Query.boolean_query(subs) if subs else None

    def date_range(self, lo: int | None, hi: int | None) -> tantivy.Query:
        return tantivy.Query.range_query(self.schema, F_DATE, tantivy.FieldType.Integer, lo, hi)

    def category_query(self, value: str) -> tantivy.Query:
        return tantivy.Query.term_query(self.schema, F_CATEGORY, value, index_option="basic")

    def source_query(self, value: str) -> tantivy.Query:
        return tantivy.Query.term_query(self.schema, F_SOURCE, value, index_option="basic")

    def author_query(self, name: str) -> tantivy.Query | None:
        """Every word of `name` in one paper's author list, in order when more than one word."""
        words = analyze_name(name)
        if not words:
            return None
        if len(words) == 1:
            return tantivy.Query.term_query(self.schema, F_AUTHORS, words[0])
        return tantivy.Query.phrase_query(self.schema, F_AUTHORS, words, slop=1)

    # ---- pseudo-relevance feedback --------------------------------------------

    def rm3_terms(
        self,
        query_terms: dict[str, float],
        feedback: Sequence[tuple[str, float]],
        *,
        n_terms: int = 30,
        original_weight: float = 0.5,
    ) -> dict[str, float]:
        """RM3 query expansion (Lavrenko & Croft's relevance model, interpolated with the query).

        `feedback` is (document text, weight) for the top documents of a first pass. The relevance
        model P(w|R) = sum_d P(w|d) P(d|q) is weighted by IDF before the top terms are kept:
        without it, expansion pulls in generic words every abstract uses ("result", "method").
        """
        if not feedback:
            return query_terms
        pw: collections.Counter[str] = collections.Counter()
        total_w = sum(w for _, w in feedback) or 1.0
        for text, w in feedback:
            terms = analyze_query(text)
            if not terms:
                continue
            tc = collections.Counter(terms)
            n = len(terms)
            for t, c in tc.items():
                pw[t] += (w / total_w) * c / n
        n_docs = max(self._searcher.num_docs, 1)
        for t in list(pw):
            df = max(self._searcher.doc_freq(F_TEXT, t), 1)
            if df < RM3_MIN_DF and t not in query_terms:
                # A word only one paper uses (a typo, a symbol) can only pull that paper back up.
                del pw[t]
                continue
            pw[t] *= math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
        top = [(t, v) for t, v in pw.most_common(n_terms) if v > 0]
        top_sum = sum(v for _, v in top) or 1.0
        q_sum = sum(query_terms.values()) or 1.0
        # Interpolate original_weight * P(w|q) + (1 - original_weight) * P(w|R), expressed on the
        # original query's scale (its terms keep their weights), so that the fixed bonuses added
        # by term_query (exact forms, proximity) keep their intended relative size.
        ratio = (1 - original_weight) / max(original_weight, 1e-6) * q_sum / top_sum
        out: dict[str, float] = collections.defaultdict(float)
        for t, v in query_terms.items():
            out[t] += v
        for t, v in top:
            out[t] += ratio * v
        return dict(out)


class _Writer:
    def __init__(self, w: tantivy.IndexWriter) -> None:
        self.w = w

    def upsert(self, papers: Iterable[Paper]) -> int:
        n = 0
        for p in papers:
            # Delete-then-add in one commit: tantivy applies a delete only to documents added
            # before it, so re-running a crashed batch converges to one copy per rowid.
            self.w.delete_documents_by_term(F_RID, p.rowid)
            self.w.add_document(_to_doc(p))
            n += 1
        return n

    def remove(self, rowids: Iterable[int]) -> None:
        for r in rowids:
            self.w.delete_documents_by_term(F_RID, int(r))

    def clear(self) -> None:
        self.w.delete_all_documents()


def _to_doc(p: Paper) -> tantivy.Document:
    d = tantivy.Document()
    d.add_integer(F_RID, p.rowid)
    title, abstract = plain_text(p.title), plain_text(p.abstract)
    d.add_text(F_TEXT, f"{title}\n{abstract}")
    d.add_text(F_EXACT, f"{title}\n{abstract}")
    d.add_text(F_PAIRS, f"{doc_pairs(title)} {doc_pairs(abstract)}")
    for a in p.authors:
        d.add_text(F_AUTHORS, a)
    for c in p.categories:
        d.add_text(F_CATEGORY, c)
    for s in p.sources:
        d.add_text(F_SOURCE, s)
    dk = date_key(p.published) or date_key(p.feed_date)
    if dk is not None:
        d.add_integer(F_DATE, dk)
    return d


def _boost(q: tantivy.Query, w: float) -> tantivy.Query:
    return q if w == 1.0 else tantivy.Query.boost_query(q, float(w))


# tantivy's simple tokenizer splits on anything that is not a letter or a digit
_WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)


def exact_words(text: str) -> list[str]:
    """Lower-cased, unstemmed content words of a query, for the exact field."""
    return list(dict.fromkeys(w for w in EXACT_ANALYZER.analyze(text) if w not in QUERY_STOPWORDS))


def pair_term(w1: str, w2: str) -> str:
    # "_" never occurs inside a word (_WORD_RE), so the joined term is unambiguous
    return f"{w1}_{w2}"


_FOLD_LETTERS = str.maketrans({"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d", "ð": "d",
                               "þ": "th", "ı": "i"})  # fmt: skip


def fold(word: str) -> str:
    """A lower-cased word without its accents ("schrödinger" -> "schrodinger"), as tantivy's ASCII
    folding makes the indexed words: for the pairs, which are made here, and the snippets."""
    if word.isascii():
        return word
    decomposed = unicodedata.normalize("NFKD", word.translate(_FOLD_LETTERS))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _adjacent(text: str) -> Iterator[tuple[str, str, int]]:
    """(word, next word, position gap) for neighbouring content words of `text`: lower-cased,
    folded, unstemmed, stopwords skipped but kept in the gap ("angle of attack" -> angle, attack,
    2)."""
    toks = []
    for pos, word in enumerate(_WORD_RE.findall(text)):
        w = fold(word.lower())
        if len(w) <= MAX_TOKEN_LEN and w not in QUERY_STOPWORDS:
            toks.append((pos, w))
    for (p1, t1), (p2, t2) in zip(toks, toks[1:], strict=False):
        if t1 != t2 and p2 - p1 <= 3:
            yield t1, t2, p2 - p1


def doc_pairs(text: str) -> str:
    """The pair terms of a text, space-separated, repeated as often as they occur (for tf)."""
    return " ".join(pair_term(t1, t2) for t1, t2, _ in _adjacent(text))


def query_pairs(text: str) -> list[tuple[str, str, int]]:
    """The distinct adjacent content-word pairs of a query, for the proximity bonus (the
    "pairs" field indexes the same pairs of every paper)."""
    return list(dict.fromkeys(_adjacent(text)))
