"""Synthetic corpora for benchmarks, deterministic from a seed.

The texts come from word-trigram models of real abstracts and titles: the five
bundled seed pages and the arXiv OAI sample (a trimmed copy ships in
`data/arxiv_sample.jsonl.gz`, so no development data is needed at run time).
Generating every sentence from a Markov chain would cost minutes per million
papers, so each topic gets a pool of generated sentences and titles once, and
papers recombine pool entries; per-paper jargon terms (Zipfian, plus rare
one-off method names) make the vocabulary grow with the corpus the way a real
one does, which is what keeps lexical posting lists realistic at 1M papers.

Records are arXiv OAI snapshot lines (same fields as the real dump), so the
corpus goes through the product's own arXiv importer. Each record also carries
its topic ids, from which `synthetic_vectors` derives dense vectors clustered
like real embeddings (topic and subtopic centroids plus noise).
"""

from __future__ import annotations

import bisect
import datetime as dt
import gzip
import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import orjson

SAMPLE_FILE = "arxiv_sample.jsonl.gz"
_END = "</s>"
_START = "<s>"
# an abbreviation's full stop does not end a sentence
_NOT_END = {"e.g.", "i.e.", "et", "al.", "vs.", "cf.", "Fig.", "Eq.", "Ref.", "resp.", "etc.)"}
_SEED_CATEGORIES = [
    "cs.LG stat.ML", "cs.LG", "cs.CL cs.LG", "cs.CV cs.LG", "cs.LG cs.AI", "stat.ML cs.LG math.ST",
    "cs.IR cs.LG", "cs.CL", "cs.AI cs.LG", "math.OC cs.LG",
]  # fmt: skip
_SYLLABLES = [
    "ka", "lo", "vi", "zen", "tor", "ax", "mi", "ra", "quo", "sel", "dri", "fa", "nu", "bel", "gra",
    "phi", "tek", "sor", "vo", "lux", "mer", "den", "cy", "pro", "tra", "lin", "ver", "xo", "bra", "ne",
]  # fmt: skip
_SUFFIXES = ["", "", "", "Net", "Former", "-2", "-XL", "GAN", "BERT", "Flow", "++", "-v3", "Diff", "RL"]
_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@dataclass
class SourceDoc:
    group: str
    title: str
    abstract: str
    categories: str = ""
    authors_parsed: list = field(default_factory=list)


def _sample_path() -> Path:
    return Path(str(resources.files("paperfeed.bench") / "data" / SAMPLE_FILE))


def load_source_docs() -> list[SourceDoc]:
    """The real texts the models learn from: seed pages (one group per page) and the arXiv sample."""
    from paperfeed.demo import demo_paths
    from paperfeed.ingest import hfpage
    from paperfeed.models import Paper

    docs: list[SourceDoc] = []
    seen: set[str] = set()
    for path in demo_paths():
        for rec in hfpage.parse(path, year=2025):
            if isinstance(rec, Paper) and rec.abstract and rec.title not in seen:
                seen.add(rec.title)
                docs.append(SourceDoc(f"seed:{path.stem[:3]}", rec.title, rec.abstract))
    with gzip.open(_sample_path(), "rb") as f:
        raw = [orjson.loads(line) for line in f if line.strip()]
    archives = Counter(r["categories"].split()[0].split(".")[0] for r in raw)
    for r in raw:
        archive = r["categories"].split()[0].split(".")[0]
        # archives with a handful of papers cannot carry a topic model of their own
        group = f"arxiv:{archive}" if archives[archive] >= 8 else "arxiv:misc"
        docs.append(SourceDoc(group, r["title"], r["abstract"], r["categories"], r["authors_parsed"]))
    return docs


def _sentences(text: str) -> list[list[str]]:
    out, cur = [], []
    for tok in text.split():
        cur.append(tok)
        if tok[-1] in ".?!" and tok not in _NOT_END and len(tok) > 2:
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


class _Chain:
    """Word-trigram counts with bigram backoff, sampled by cumulative weights."""

    def __init__(self) -> None:
        self.tri: dict[tuple[str, str], Counter] = defaultdict(Counter)
        self.bi: dict[str, Counter] = defaultdict(Counter)

    def add(self, tokens: list[str]) -> None:
        seq = [_START, _START, *tokens, _END]
        for a, b, c in zip(seq, seq[1:], seq[2:], strict=False):
            self.tri[(a, b)][c] += 1
            self.bi[b][c] += 1

    def freeze(self) -> None:
        def table(counter: Counter) -> tuple[list[str], list[int]]:
            toks = list(counter)
            cum, total = [], 0
            for t in toks:
                total += counter[t]
                cum.append(total)
            return toks, cum

        self.tri_t = {k: table(v) for k, v in self.tri.items()}
        self.bi_t = {k: table(v) for k, v in self.bi.items()}
        self.tri_n = {k: len(v) for k, v in self.tri.items()}


def _draw(rng: random.Random, table: tuple[list[str], list[int]]) -> str:
    toks, cum = table
    return toks[bisect.bisect_right(cum, rng.random() * cum[-1])]


def _generate(rng: random.Random, local: _Chain, glob: _Chain, max_len: int, mix: float) -> list[str]:
    """One sentence. `mix` is how often a step uses the all-topics model, and a
    context with a single continuation backs off to bigrams, so the chain
    recombines phrases instead of replaying a training sentence verbatim."""
    a, b = _START, _START
    out: list[str] = []
    retries = 20
    while len(out) < max_len:
        use_global = rng.random() < mix
        chain = glob if use_global else local
        table = chain.tri_t.get((a, b))
        if table is None or (chain.tri_n[(a, b)] == 1 and rng.random() < 0.5 and len(out) > 1):
            table = glob.bi_t.get(b) or glob.tri_t[(_START, _START)]
        c = _draw(rng, table)
        if c == _END:
            if len(out) >= 4 or retries <= 0:
                break
            # too short to be a sentence: restart rather than loop on a dead end
            retries -= 1
            a, b, out = _START, _START, []
            continue
        out.append(c)
        a, b = b, c
    return out


class TextModel:
    """Per-topic sentence and title pools generated from trigram models of the source texts."""

    def __init__(self, seed: int = 0, sentences_per_topic: int = 1500, titles_per_topic: int = 300) -> None:
        rng = random.Random(seed)
        docs = load_source_docs()
        self.groups = sorted({d.group for d in docs})
        g_abs, g_tit = _Chain(), _Chain()
        local_abs = {g: _Chain() for g in self.groups}
        local_tit = {g: _Chain() for g in self.groups}
        self.categories: dict[str, list[str]] = defaultdict(list)
        self.group_weight: dict[str, int] = Counter()
        firsts: Counter = Counter()
        lasts: Counter = Counter()
        for d in docs:
            self.group_weight[d.group] += 1
            for s in _sentences(d.abstract):
                g_abs.add(s)
                local_abs[d.group].add(s)
            g_tit.add(d.title.split())
            local_tit[d.group].add(d.title.split())
            if d.categories:
                self.categories[d.group].append(d.categories)
            for a in d.authors_parsed:
                if len(a) >= 2 and a[0] and a[1]:
                    lasts[a[0]] += 1
                    firsts[a[1]] += 1
        for g in self.groups:
            if not self.categories[g]:
                self.categories[g] = list(_SEED_CATEGORIES)
        for c in (g_abs, g_tit, *local_abs.values(), *local_tit.values()):
            c.freeze()
        self.sentences = {
            g: [" ".join(_generate(rng, local_abs[g], g_abs, 60, 0.2)) for _ in range(sentences_per_topic)]
            for g in self.groups
        }
        self.title_chains, self.title_global = local_tit, g_tit
        self.titles = {
            g: [" ".join(_generate(rng, local_tit[g], g_tit, 18, 0.3)) for _ in range(titles_per_topic)]
            for g in self.groups
        }
        self.firsts = sorted(firsts)
        self.lasts = sorted(lasts)
        self.source_docs = docs


def _jargon(rng: random.Random) -> str:
    n = rng.choice((2, 2, 3, 3, 4))
    word = "".join(rng.choice(_SYLLABLES) for _ in range(n))
    style = rng.random()
    if style < 0.3:
        word = word.upper()[: rng.randint(3, 6)]
    elif style < 0.8:
        word = word.capitalize()
    return word + rng.choice(_SUFFIXES)


def _zipf_cdf(n: int, s: float, offset: float = 1.0) -> np.ndarray:
    w = 1.0 / (np.arange(n, dtype=np.float64) + offset) ** s
    c = np.cumsum(w)
    return c / c[-1]


class SyntheticCorpus:
    """N synthetic papers as arXiv OAI records, the same for the same (n, seed).

    `subtopic[i]` and `topic[i]` give each record's cluster, for synthetic vectors.
    """

    def __init__(self, n: int, seed: int = 0, model: TextModel | None = None) -> None:
        self.n = n
        self.seed = seed
        self.model = model or TextModel(seed)
        m = self.model
        rng = random.Random(seed + 1)
        nprng = np.random.default_rng(seed + 2)
        self.n_sub = max(32, min(4000, n // 250))
        gw = np.array([m.group_weight[g] for g in m.groups], dtype=np.float64)
        # every subtopic belongs to one source topic, in proportion to its real size
        self.sub_group = nprng.choice(len(m.groups), size=self.n_sub, p=gw / gw.sum())
        self.sub_group[: len(m.groups)] = np.arange(len(m.groups))  # every topic has a subtopic
        n_jargon = max(500, int(40 * np.sqrt(n)))
        self.jargon = list(dict.fromkeys(_jargon(rng) for _ in range(n_jargon * 2)))[:n_jargon]
        jcdf = _zipf_cdf(len(self.jargon), 1.0, 2.0)
        self.sub_terms = [
            [self.jargon[int(np.searchsorted(jcdf, nprng.random()))] for _ in range(rng.randint(3, 6))]
            for _ in range(self.n_sub)
        ]
        self._sub_cdf = _zipf_cdf(self.n_sub, 0.7, 10.0)
        self.n_authors = max(2000, n // 2)
        self._author_cdf = _zipf_cdf(self.n_authors, 0.9, 3.0)
        years = np.arange(1995, 2026)
        yw = np.exp(0.11 * (years - 1995))  # arXiv submissions grow ~11% a year
        self._years, self._year_p = years, yw / yw.sum()
        self.subtopic = np.empty(n, dtype=np.int32)
        # every k-th generated title, for known-item queries
        self._title_every = max(1, n // 4000)
        self.title_sample: list[str] = []

    def author_name(self, rank: int) -> list[str]:
        m = self.model
        first = m.firsts[(rank * 7919) % len(m.firsts)]
        last = m.lasts[(rank * 104729 + rank // len(m.firsts)) % len(m.lasts)]
        if rank >= len(m.firsts) * len(m.lasts) // 4:
            last = f"{last}-{_SYLLABLES[rank % 30].capitalize()}{_SYLLABLES[(rank // 30) % 30]}"
        return [last, first, ""]

    def records(self, chunk: int = 4096) -> Iterator[dict]:
        """Yield the N records in order; fills `self.subtopic` as it goes."""
        m = self.model
        self.title_sample = []
        rng = random.Random(self.seed + 3)
        nprng = np.random.default_rng(self.seed + 4)
        month_counter: Counter = Counter()
        novel = 0
        # The snapshot lists papers by id, i.e. by submission date; so do we (it matters
        # to the importer: date and id indexes grow at the end instead of at random).
        years = nprng.choice(self._years, size=self.n, p=self._year_p)
        days = np.sort(
            np.fromiter((dt.date(int(y), 1, 1).toordinal() for y in years), dtype=np.int64, count=self.n)
            + nprng.integers(0, 365, size=self.n)
        )
        del years
        # a few retries keep titles distinct like real ones (arXiv repeats well under 1%)
        seen_titles: set[int] = set()
        for start in range(0, self.n, chunk):
            k = min(chunk, self.n - start)
            subs = np.searchsorted(self._sub_cdf, nprng.random(k))
            subs = np.minimum(subs, self.n_sub - 1)
            self.subtopic[start : start + k] = subs
            n_auth = np.minimum(1 + nprng.geometric(0.28, size=k), 25)
            auth = np.searchsorted(self._author_cdf, nprng.random(int(n_auth.sum())))
            secs = nprng.integers(0, 86400, size=k)
            ai = 0
            for j in range(k):
                i_global = start + j
                sub = int(subs[j])
                group = m.groups[self.sub_group[sub]]
                pool = m.sentences[group]
                sents = [
                    pool[rng.randrange(len(pool))]
                    if rng.random() > 0.12
                    else m.sentences[m.groups[rng.randrange(len(m.groups))]][rng.randrange(len(pool))]
                    for _ in range(rng.randint(3, 9))
                ]
                terms = self.sub_terms[sub]
                for _ in range(rng.randint(1, 3)):
                    si = rng.randrange(len(sents))
                    words = sents[si].split()
                    wi = rng.randrange(len(words))
                    tail = words[wi][-1] if words[wi][-1] in ".,;:" else ""
                    words[wi] = terms[rng.randrange(len(terms))] + tail
                    sents[si] = " ".join(words)
                if rng.random() < 0.2:
                    novel += 1
                    sents.append(f"We call the resulting method {_jargon(rng)}{novel}.")
                # a fresh title per paper: real titles are nearly all distinct, and
                # repeated ones would send the importer down its rare dedup-by-title path
                for _attempt in range(4):
                    title = " ".join(_generate(rng, m.title_chains[group], m.title_global, 18, 0.3))
                    if rng.random() < 0.35:
                        title = f"{terms[rng.randrange(len(terms))]}: {title}"
                    h = hash(title.casefold())
                    if h not in seen_titles:
                        break
                seen_titles.add(h)
                if i_global % self._title_every == 0:
                    self.title_sample.append(title)
                day = dt.date.fromordinal(int(days[i_global]))
                yymm = f"{day.year % 100:02d}{day.month:02d}"
                month_counter[yymm] += 1
                arxiv_id = f"{yymm}.{month_counter[yymm]:05d}"
                s = int(secs[j])
                created = (
                    f"{_DAYS[day.weekday()]}, {day.day} {_MONTHS[day.month - 1]} {day.year} "
                    f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d} GMT"
                )
                na = int(n_auth[j])
                parsed = [self.author_name(int(r)) for r in auth[ai : ai + na]]
                ai += na
                cats = m.categories[group]
                yield {
                    "id": arxiv_id,
                    "submitter": f"{parsed[0][1]} {parsed[0][0]}",
                    "authors": ", ".join(f"{a[1]} {a[0]}" for a in parsed),
                    "title": title,
                    "comments": f"{rng.randint(4, 40)} pages, {rng.randint(1, 12)} figures",
                    "journal-ref": None,
                    "doi": f"10.{1000 + sub % 9000}/synth.{arxiv_id}" if rng.random() < 0.35 else None,
                    "report-no": None,
                    "categories": cats[rng.randrange(len(cats))],
                    "license": None,
                    "abstract": "  " + " ".join(sents) + "\n",
                    "versions": [{"version": "v1", "created": created}],
                    "update_date": day.isoformat(),
                    "authors_parsed": parsed,
                }

    def topic_of(self, i: int) -> int:
        return int(self.sub_group[self.subtopic[i]])


def write_arxiv_jsonl(path: Path, n: int, seed: int = 0, progress: bool = False) -> SyntheticCorpus:
    """Write N synthetic arXiv OAI lines to `path`; returns the corpus (with its topic ids)."""
    corpus = SyntheticCorpus(n, seed)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="rec", desc="generate", unit_scale=True)
    with open(path, "wb", buffering=1 << 20) as f:
        for i, rec in enumerate(corpus.records()):
            f.write(orjson.dumps(rec))
            f.write(b"\n")
            if bar is not None and i % 10000 == 9999:
                bar.update(10000)
    if bar is not None:
        bar.update(n - bar.n)
        bar.close()
    return corpus


def _centroids(corpus: SyntheticCorpus, dim: int) -> tuple[np.ndarray, np.ndarray]:
    cached = getattr(corpus, "_centroids", None)
    if cached is not None and cached[0].shape[1] == dim:
        return cached
    rng = np.random.default_rng(corpus.seed + 10)
    topic_c = rng.standard_normal((len(corpus.model.groups), dim)).astype(np.float32)
    sub_c = rng.standard_normal((corpus.n_sub, dim)).astype(np.float32)
    topic_c /= np.linalg.norm(topic_c, axis=1, keepdims=True)
    sub_c /= np.linalg.norm(sub_c, axis=1, keepdims=True)
    corpus._centroids = (topic_c, sub_c)  # type: ignore[attr-defined]
    return topic_c, sub_c


def _mix(corpus: SyntheticCorpus, subs: np.ndarray, noise: np.ndarray, noise_w: float, dim: int) -> np.ndarray:
    topic_c, sub_c = _centroids(corpus, dim)
    noise = noise / np.linalg.norm(noise, axis=1, keepdims=True)
    v = 0.45 * topic_c[corpus.sub_group[subs]] + 0.55 * sub_c[subs] + noise_w * noise
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def synthetic_vectors(corpus: SyntheticCorpus, start: int, stop: int, dim: int = 384) -> np.ndarray:
    """Unit vectors for records [start, stop) (after `records()` has run), clustered like
    sentence embeddings.

    A paper's vector is its topic centroid + subtopic centroid + per-paper noise,
    weighted so that same-subtopic papers have cosine ~0.5, same-topic ~0.2 and
    unrelated ~0, close to what all-MiniLM-L6-v2 gives on related abstracts.
    """
    rng = np.random.default_rng((corpus.seed, 11, start, stop))
    noise = rng.standard_normal((stop - start, dim), dtype=np.float32)
    return _mix(corpus, corpus.subtopic[start:stop], noise, 0.72, dim)


def query_vectors(corpus: SyntheticCorpus, n: int, seed: int = 0, dim: int = 384) -> np.ndarray:
    """Query vectors: drawn like papers' (same subtopic distribution), a little noisier."""
    rng = np.random.default_rng((corpus.seed, 12, seed))
    subs = corpus.subtopic[rng.integers(0, corpus.n, size=n)]
    noise = rng.standard_normal((n, dim), dtype=np.float32)
    return _mix(corpus, subs, noise, 0.9, dim)
