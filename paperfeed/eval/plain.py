"""The plain pipeline that paperfeed's search is measured against (`paperfeed eval --baseline`).

What a reader would stitch together by hand from the usual libraries, as `../shared/README.md`
describes it: bm25s BM25 (English stopwords, Snowball stemmer) over title + ". " + text; plain
sentence-transformers all-MiniLM-L6-v2 over the same text, cosine; reciprocal-rank fusion
(k = 60) and a min-max weighted sum (0.5 / 0.5) over the top 100 of each, with ranx. Nothing in
it is tuned, and it shares no code with paperfeed's own search.
"""

from __future__ import annotations

import numpy as np
import orjson

from paperfeed.bench.baseline import exact_topk, plain_encoder

DEPTH = 100
RUNS = ("plain-bm25", "plain-dense", "plain-rrf", "plain-wsum")

Run = dict[str, dict[str, float]]


def read_corpus(path: str) -> tuple[list[str], list[str]]:
    """(ids, texts) of a BEIR corpus.jsonl; lines that are not JSON objects are skipped."""
    ids: list[str] = []
    texts: list[str] = []
    with open(path, "rb") as f:
        for raw in f:
            try:
                obj = orjson.loads(raw)
                doc_id, title, text = str(obj["_id"]), obj.get("title") or "", obj.get("text") or ""
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                continue
            if not (title or text).strip():
                continue
            ids.append(doc_id)
            texts.append(f"{title}. {text}" if title else text)
    return ids, texts


def plain_runs(corpus: str, queries: dict[str, str]) -> dict[str, Run]:
    """The four runs of the plain pipeline for `queries` (id -> text) over `corpus`."""
    import bm25s
    import Stemmer
    from ranx import Run as RanxRun
    from ranx import fuse

    ids, texts = read_corpus(corpus)
    qids = list(queries)
    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False),
                    show_progress=False)  # fmt: skip
    q_tokens = bm25s.tokenize([queries[q] for q in qids], stopwords="en", stemmer=stemmer,
                              show_progress=False)  # fmt: skip
    k = min(DEPTH, len(ids))
    docs, scores = retriever.retrieve(q_tokens, k=k, show_progress=False, n_threads=1)
    # bm25s returns k documents, zero scores included, as the plain pipeline keeps them: in a
    # collection smaller than k they set the minimum of the min-max normalisation.
    bm25: Run = {
        q: {ids[int(d)]: float(s) for d, s in zip(docs[n], scores[n], strict=True)} for n, q in enumerate(qids)
    }
    encode = plain_encoder()
    doc_vecs = np.asarray(encode(texts), dtype=np.float32)
    q_vecs = np.asarray(encode([queries[q] for q in qids]), dtype=np.float32)
    top = exact_topk(doc_vecs, q_vecs, k)
    dense: Run = {
        q: {ids[int(d)]: float(doc_vecs[int(d)] @ q_vecs[n]) for d in top[n]} for n, q in enumerate(qids)
    }
    runs = [RanxRun(bm25, name="bm25"), RanxRun(dense, name="dense")]
    rrf = fuse(runs, method="rrf", params={"k": 60})
    wsum = fuse(runs, norm="min-max", method="wsum", params={"weights": [0.5, 0.5]})
    return dict(zip(RUNS, (bm25, dense, _top(rrf.to_dict()), _top(wsum.to_dict())), strict=True))


def _top(run: Run, k: int = DEPTH) -> Run:
    return {q: dict(sorted(d.items(), key=lambda kv: -kv[1])[:k]) for q, d in run.items()}

