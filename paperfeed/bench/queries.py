"""Benchmark queries drawn from the synthetic corpus, the way people search a paper feed."""

from __future__ import annotations

import random
import re

from paperfeed.bench.synth import SyntheticCorpus

_WORD = re.compile(r"^[A-Za-z][A-Za-z-]{2,}$")
_STOP = {
    "the", "and", "for", "with", "from", "that", "this", "are", "our", "via", "its", "into", "can", "which",
    "their", "these", "than", "over", "under", "such", "also", "both", "not", "but", "has", "have", "was",
    "they", "we", "finally", "due", "using", "show", "shows", "here", "then", "thus", "however", "while",
}  # fmt: skip


def _content_words(text: str) -> list[str]:
    words = [w.strip(".,;:()[]{}\"'") for w in text.split()]
    return [w for w in words if _WORD.match(w) and w.lower() not in _STOP]


def make_queries(corpus: SyntheticCorpus, n: int, seed: int = 0) -> list[str]:
    """`n` queries: title fragments (known-item search), a topic's jargon term with a
    word, and two or three content words of an abstract (topical search).

    Title fragments come from titles sampled while `corpus.records()` ran.
    """
    rng = random.Random(seed + 99)
    m = corpus.model
    out: list[str] = []
    while len(out) < n:
        kind = rng.random()
        sub = rng.randrange(corpus.n_sub)
        group = m.groups[corpus.sub_group[sub]]
        if kind < 0.4:
            titles = corpus.title_sample or m.titles[group]
            words = _content_words(titles[rng.randrange(len(titles))])
            if len(words) < 2:
                continue
            k = rng.randint(2, min(5, len(words)))
            i = rng.randrange(len(words) - k + 1)
            q = " ".join(words[i : i + k])
        elif kind < 0.65:
            words = _content_words(m.sentences[group][rng.randrange(len(m.sentences[group]))])
            if not words:
                continue
            q = f"{rng.choice(corpus.sub_terms[sub])} {rng.choice(words)}"
        else:
            words = _content_words(m.sentences[group][rng.randrange(len(m.sentences[group]))])
            if len(words) < 3:
                continue
            q = " ".join(rng.sample(words, rng.randint(2, 3)))
        out.append(q.lower() if rng.random() < 0.7 else q)
    return out
