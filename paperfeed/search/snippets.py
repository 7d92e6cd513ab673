"""Highlighted snippets: the part of an abstract that best matches the query.

Output is safe HTML: every character of the paper's text is escaped, and the only markup is
<mark>...</mark> around words whose stem is a query term, so the web can render it as is. The
text is first given its text-mode LaTeX as readers expect it (`paperfeed.latex.plain_text`:
"{\\em Erd\\H{o}s}" reads "Erdős"), as the pages show titles and abstracts.
Words are matched by stem (the same Snowball English stemmer as the index), so "weighting"
in the query highlights "weighted" and "weights".
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

import Stemmer

from paperfeed.index.lexical import fold
from paperfeed.latex import plain_text

_STEMMER = Stemmer.Stemmer("english")
_TOKEN_RE = re.compile(r"[^\W_]+", re.UNICODE)
WINDOW_WORDS = 42
MAX_CHARS = 400


_CACHE: dict[str, str] = {}
_CACHE_MAX = 200_000


def _stems(words: list[str]) -> list[str]:
    # Abstracts repeat a small vocabulary; a word -> stem cache makes snippets ~3x cheaper than
    # stemming every token (the snippet is the largest cost of a warm search after the encoder).
    cache = _CACHE
    missing = [w for w in set(words) if w not in cache]
    if missing:
        if len(cache) > _CACHE_MAX:
            cache.clear()
        for w, st in zip(missing, _STEMMER.stemWords([fold(w.lower()) for w in missing]), strict=True):
            cache[w] = st
    return [cache[w] for w in words]


def highlight(text: str, terms: Iterable[str]) -> str:
    """All of `text`, escaped, with matching words marked (titles)."""
    terms = set(terms)
    text = plain_text(text)
    spans = list(_TOKEN_RE.finditer(text))
    if not spans or not terms:
        return html.escape(text)
    stems = _stems([m.group(0) for m in spans])
    return _render(text, spans, stems, terms, 0, len(spans), 0, len(text))


def snippet(
    text: str, terms: Iterable[str], *, window: int = WINDOW_WORDS, max_chars: int = MAX_CHARS
) -> str:
    """The window of about `window` words with the most distinct query terms, escaped and marked."""
    terms = set(terms)
    text = plain_text(text)
    spans = list(_TOKEN_RE.finditer(text))
    if not spans:
        return html.escape(text[:max_chars])
    stems = _stems([m.group(0) for m in spans]) if terms else [""] * len(spans)
    hit = [s in terms for s in stems]
    best_start = 0
    if any(hit):
        # Slide a window over word positions; score = distinct terms + a little for repeats.
        best_score = -1.0
        for start in range(0, max(1, len(spans) - window + 1)):
            if start and not hit[start] and not hit[start - 1]:
                continue  # only windows that start at (or right after) a match can be better
            seen = {stems[i] for i in range(start, min(len(spans), start + window)) if hit[i]}
            reps = sum(hit[start : start + window])
            score = len(seen) + 0.1 * reps
            if score > best_score:
                best_score, best_start = score, start
        # Start a few words before the first match so it reads in context.
        best_start = max(0, best_start - 3) if best_start > 0 else 0
    end = min(len(spans), best_start + window)
    # Extend to the sentence start when that is close: snippets that begin mid-sentence read worse.
    c0 = spans[best_start].start() if best_start > 0 else 0
    c1 = spans[end - 1].end() if end < len(spans) else len(text)
    if c1 - c0 > max_chars:
        # Very long tokens: cut by characters, at a word boundary.
        while end - 1 > best_start and spans[end - 1].end() - c0 > max_chars:
            end -= 1
        c1 = spans[end - 1].end()
    out = _render(text, spans, stems, terms, best_start, end, c0, c1)
    prefix = "… " if c0 > 0 else ""
    suffix = " …" if c1 < len(text.rstrip()) else ""
    return prefix + out + suffix


def _render(
    text: str,
    spans: list[re.Match[str]],
    stems: list[str],
    terms: set[str],
    i0: int,
    i1: int,
    c0: int,
    c1: int,
) -> str:
    parts: list[str] = []
    pos = c0
    for i in range(i0, i1):
        m = spans[i]
        if stems[i] in terms:
            parts.append(html.escape(text[pos : m.start()]))
            parts.append("<mark>" + html.escape(m.group(0)) + "</mark>")
            pos = m.end()
    parts.append(html.escape(text[pos:c1]))
    return "".join(parts)
