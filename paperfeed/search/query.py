"""Query parsing and filter validation.

A query is free text with two optional operators, and never fails to parse:

- "quoted words" is a phrase: results must contain the words in that order;
- -word or -"some phrase" excludes papers containing it (NOT word does the same).

Operators are read only in a keyword query (at most KEYWORD_MAX_WORDS words). A pasted question
or abstract is text, not a program: its quotes and hyphens are words like the others, so a
quoted term inside a three-sentence request does not become a hard filter. Anything else (stray
or unbalanced quotes, AND/OR, parentheses, +, :, *) is tolerated: an unbalanced quote is ignored
and the words around it are searched as ordinary words. A very long query (a pasted abstract)
keeps its first MAX_TERMS distinct terms for the lexical side, with a note saying so; the
encoder sees each of its sentences (see `sentences`).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from paperfeed.index.lexical import (
    QUERY_STOPWORDS,
    analyze_index,
    analyze_name,
    analyze_query,
    exact_words,
    query_pairs,
)
from paperfeed.models import Paper


class QueryError(ValueError):
    """The query or a filter cannot be run; the message says why and what is valid.

    The CLI prints it, the web turns it into a 400. It never carries a traceback."""


MAX_QUERY_CHARS = 10_000  # longer input is cut, not refused
MAX_TERMS = 128  # distinct lexical terms kept from one query (a long abstract has ~120)
KEYWORD_MAX_WORDS = 12  # longer queries are natural language: no operators
MAX_SENTENCES = 8
MAX_PHRASES = 8
MAX_DENSE_CHARS = 2_000

MODES = ("best", "hybrid", "lexical", "dense")
MODE_ALIASES = {
    "default": "best",
    "rerank": "best",
    "bm25": "lexical",
    "semantic": "dense",
    "vector": "dense",
}

_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"'})
_PHRASE_RE = re.compile(r'(?:(?<=\s)|^)(-?)"([^"]*)"')
_WORD_RE = re.compile(r"(?:(?<=\s)|^)(-?)([^\s\"]+)")
_CONTENT_RE = re.compile(r"[^\W_]", re.UNICODE)
_SENTENCE_END_RE = re.compile(r"(?<=[.?!;])\s+")


def normalize_mode(mode: str | None) -> str:
    m = (mode or "best").strip().lower()
    m = MODE_ALIASES.get(m, m)
    if m not in MODES:
        raise QueryError(f"unknown mode {mode!r}: use one of {', '.join(MODES)} (best is the default)")
    return m


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    raw: str
    text: str  # what the dense encoder sees: the query without operators
    terms: dict[str, float]  # stemmed lexical terms -> weight (count in the query)
    phrases: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()  # words and phrases that must not appear
    name_words: tuple[str, ...] = ()  # lower-cased words, matched against author names
    pairs: tuple[tuple[str, str, int], ...] = ()  # adjacent words, for the proximity bonus
    exact: tuple[str, ...] = ()  # unstemmed words, for the exact-form bonus
    sentences: tuple[str, ...] = ()  # of a query of several sentences: each one, for the encoder
    notes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.terms and not self.phrases and not self.text.strip()

    def highlight_terms(self) -> set[str]:
        return set(self.terms)


def _clean(text: str) -> str:
    # NFKC folds full-width letters and ligatures; control characters (NUL included) become spaces.
    text = unicodedata.normalize("NFKC", text)
    return "".join(ch if ch.isprintable() or ch in "\t\n" else " " for ch in text).translate(_QUOTES)


def check_query(raw: str | None) -> str:
    """The query as the site takes it, checked once for every entry point (page, API, feed,
    export): stripped, and refused when empty, longer than MAX_QUERY_CHARS or holding a NUL
    (which no one types; the CLI's `parse_query` alone would only blank it)."""
    query = (raw or "").strip()
    if not query:
        raise QueryError("Type a few words to search for.")
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError(f"The query is too long (at most {MAX_QUERY_CHARS} characters).")
    if "\x00" in query:
        raise QueryError("The query contains a NUL character.")
    return query


def parse_query(raw: str | None) -> ParsedQuery:
    """Parse a search box's text. Raises QueryError only for an empty query."""
    if raw is None or not str(raw).strip():
        raise QueryError("empty query: type a few words to search for")
    notes: list[str] = []
    text = _clean(str(raw))
    if len(text) > MAX_QUERY_CHARS:
        text = text[:MAX_QUERY_CHARS]
        notes.append(f"query cut to its first {MAX_QUERY_CHARS:,} characters")
    if not _CONTENT_RE.search(text):
        raise QueryError("the query has no letters or digits: type a few words to search for")

    phrases: list[str] = []
    excluded: list[str] = []
    if len(text.split()) > KEYWORD_MAX_WORDS:
        # Natural language: quotes and a leading hyphen are punctuation here, not operators.
        text = re.sub(r'(?:(?<=\s)|^)[-"]+|"', " ", text).replace(" NOT ", " not ")

    def take_phrase(m: re.Match[str]) -> str:
        body = " ".join(m.group(2).split())
        if _CONTENT_RE.search(body):
            (excluded if m.group(1) else phrases).append(body)
        return " "

    rest = _PHRASE_RE.sub(take_phrase, text)
    if '"' in rest:
        notes.append("an unbalanced quote was ignored")
        rest = rest.replace('"', " ")
    words: list[str] = []
    tokens = _WORD_RE.findall(rest)
    i = 0
    while i < len(tokens):
        neg, word = tokens[i]
        if word == "NOT" and i + 1 < len(tokens):
            neg, word = "-", tokens[i + 1][1]
            i += 1
        i += 1
        if word in ("AND", "OR", "&&", "||"):
            continue
        word = word.lstrip("+")
        if not _CONTENT_RE.search(word):
            continue
        (excluded if neg else words).append(word)
    if len(phrases) > MAX_PHRASES:
        notes.append(f"only the first {MAX_PHRASES} phrases are required")
        words += phrases[MAX_PHRASES:]
        phrases = phrases[:MAX_PHRASES]

    if not phrases and not words:
        if excluded:
            raise QueryError("nothing to search for: add words to find, not only words to exclude (-word)")
        raise QueryError("the query has only operators: type a few words to search for")
    positive_text = " ".join([*phrases, *words])
    counts: Counter[str] = Counter()
    for chunk in (*phrases, *words):
        counts.update(analyze_query(chunk))
    if not counts and not phrases and _only_stopwords(words):
        raise QueryError(
            "the query has only common words (such as 'the', 'of', 'what'): add a word that names the topic"
        )
    if len(counts) > MAX_TERMS:
        # Keep the first distinct terms, in query order: a pasted abstract starts with its topic.
        kept = list(counts)[:MAX_TERMS]
        counts = Counter({t: counts[t] for t in kept})
        notes.append(f"only the first {MAX_TERMS} distinct words are matched exactly")
    name_words = tuple(dict.fromkeys(w for chunk in words[:MAX_TERMS] for w in analyze_name(chunk)))
    dense_text = " ".join(positive_text.split())[:MAX_DENSE_CHARS]
    return ParsedQuery(
        raw=str(raw),
        text=dense_text,
        terms={t: float(c) for t, c in counts.items()},
        phrases=tuple(dict.fromkeys(phrases)),
        excluded=tuple(dict.fromkeys(excluded)),
        name_words=name_words,
        pairs=tuple(p for chunk in (*phrases, " ".join(words)) for p in query_pairs(chunk[:MAX_DENSE_CHARS])),
        exact=tuple(exact_words(positive_text[:MAX_DENSE_CHARS]))[:MAX_TERMS],
        sentences=sentences(dense_text),
        notes=tuple(notes),
    )


def _only_stopwords(words: list[str]) -> bool:
    return all(t.lower() in QUERY_STOPWORDS for w in words for t in re.findall(r"[^\W_]+", w))


def sentences(text: str) -> tuple[str, ...]:
    """The sentences of a query that has several (of two words or more), else ().

    A request such as "I am interested in X. Papers on Y are also welcome. X, Y, Z." is several
    queries in one; the encoder, trained on single questions, averages them into one vague
    vector. Each sentence is encoded too and a paper's dense score is its best match (measured on
    the suite: dense nDCG@10 lisa 0.349 -> 0.394, adi 0.491 -> 0.512, med 0.787 -> 0.799, the
    others unchanged; fused, lisa 0.469 -> 0.510)."""
    parts = [p for p in _SENTENCE_END_RE.split(text) if len(p.split()) >= 2]
    return tuple(parts[:MAX_SENTENCES]) if len(parts) > 1 else ()


# ---- filters -----------------------------------------------------------------------

_CATEGORY_RE = re.compile(r"^[a-z][a-z\-]*(\.[A-Za-z][A-Za-z\-]*)?$")
_DATE_FORMS = "YYYY-MM-DD, YYYY-MM or YYYY"


def parse_date(value: str, name: str, *, end: bool) -> int:
    """'2024' / '2024-05' / '2024-05-07' -> yyyymmdd; an open end of a range rounds outward."""
    v = value.strip()
    try:
        if re.fullmatch(r"\d{4}", v):
            d = dt.date(int(v), 12, 31) if end else dt.date(int(v), 1, 1)
        elif re.fullmatch(r"\d{4}-\d{2}", v):
            y, m = int(v[:4]), int(v[5:7])
            first = dt.date(y, m, 1)
            d = (dt.date(y + (m == 12), m % 12 + 1, 1) - dt.timedelta(days=1)) if end else first
        else:
            d = dt.date.fromisoformat(v)
    except ValueError:
        raise QueryError(
            f"{name}: expected a date as {_DATE_FORMS} (e.g. 2024-05-07), got {value!r}"
        ) from None
    return d.year * 10000 + d.month * 100 + d.day


@dataclass(frozen=True, slots=True)
class Filters:
    """Validated filters. Dates filter on the paper's published date, else its feed date."""

    since: int | None = None  # yyyymmdd, inclusive
    until: int | None = None
    categories: tuple[str, ...] = ()  # any of
    author: str | None = None  # every word of the name, in one author
    sources: tuple[str, ...] = ()  # any of, full source names ("hf-page:000_...")
    raw: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def active(self) -> bool:
        return bool(self.since or self.until or self.categories or self.author or self.sources)

    def key(self) -> tuple:
        return (self.since, self.until, self.categories, self.author, self.sources)

    def admits(self, p: Paper) -> bool:
        """Whether paper `p` passes the category and author filters, read as the index reads them
        (an alert window filters papers in memory, and must agree with the search)."""
        if self.categories and not set(self.categories) & set(p.categories):
            return False
        if self.author:
            words = analyze_name(self.author)
            return any(_in_order(words, analyze_name(a)) for a in p.authors)
        return True

    @classmethod
    def parse(
        cls,
        *,
        since: str | None = None,
        until: str | None = None,
        category: str | Sequence[str] | None = None,
        author: str | None = None,
        source: str | Sequence[str] | None = None,
        known_sources: Iterable[str] | None = None,
    ) -> Filters:
        lo = parse_date(since, "since", end=False) if since and since.strip() else None
        hi = parse_date(until, "until", end=True) if until and until.strip() else None
        if lo and hi and lo > hi:
            raise QueryError(f"since ({since}) is after until ({until}): no paper can match")
        cats = _split(category)
        for c in cats:
            if not _CATEGORY_RE.match(c):
                raise QueryError(
                    f"category: expected an arXiv category such as cs.CL, stat.ML or hep-th "
                    f"(several separated by commas), got {c!r}"
                )
        auth = None
        if author is not None and author.strip():
            if not analyze_name(author):
                raise QueryError(f"author: expected a name or part of one, such as 'Hinton', got {author!r}")
            auth = " ".join(author.split())[:200]
        srcs = tuple(resolve_source(s, known_sources) for s in _split(source))
        raw = {k: str(v) for k, v in {"since": since, "until": until, "category": category,
                                       "author": author, "source": source}.items() if v}  # fmt: skip
        return cls(since=lo, until=hi, categories=cats, author=auth, sources=srcs, raw=raw)


def _in_order(words: Sequence[str], name: Sequence[str]) -> bool:
    """`words` appear in `name` in order, at most one word apart (the index's phrase slop 1)."""
    for start in range(len(name)):
        if name[start] != words[0]:
            continue
        pos, ok = start, True
        for w in words[1:]:
            nxt = next((i for i in range(pos + 1, min(pos + 3, len(name))) if name[i] == w), None)
            if nxt is None:
                ok = False
                break
            pos = nxt
        if ok:
            return True
    return False


def _split(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        out += [p.strip() for p in str(item).split(",") if p.strip()]
    return tuple(dict.fromkeys(out))


def resolve_source(value: str, known: Iterable[str] | None) -> str:
    """A source by its full name ('hf-page:000_8dc8...'), its name without the kind
    ('000_8dc8...'), or a unique prefix of either. Unknown names list the valid ones."""
    v = value.strip()
    if known is None:
        return v
    names = sorted(set(known))
    if v in names:
        return v
    cands = [n for n in names if n.split(":", 1)[-1] == v]
    if not cands:
        cands = [n for n in names if n.startswith(v) or n.split(":", 1)[-1].startswith(v)]
    if len(cands) == 1:
        return cands[0]
    shown = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")
    if not names:
        raise QueryError(f"source: no sources yet, so {v!r} cannot match; ingest some papers first")
    if len(cands) > 1:
        raise QueryError(
            f"source: {v!r} matches several sources ({', '.join(cands[:10])}); give the full name"
        )
    raise QueryError(f"source: unknown source {v!r}; expected one of: {shown}")


def phrase_terms(phrase: str) -> list[str]:
    return analyze_index(phrase)
