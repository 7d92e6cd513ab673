"""Derive new test collections, with other kinds of queries, from the corpora of a BEIR suite.

The suite's queries are all long natural-language requests with many relevant documents each.
A search engine tuned on them alone could lose on the other kinds users type, and on collections
it has never seen. This writes two kinds of collection, each a BEIR folder that `paperfeed eval`
reads like any other, with exactly one relevant document per query:

- `<name>-ki` (known item): the query is a document's title; the document keeps only its text,
  as if the user remembered the title of a paper whose abstract is all the engine has. For the
  corpora that have titles.
- `<name>-title` (look-up): the query is a document's title as it stands, the corpus
  unchanged: someone pasting the title of a paper they want. For the corpora that have titles.
- `<name>-ict` (inverse cloze): the query is the second sentence of a document, taken out of
  it; the document keeps its title and the other sentences. For documents of three sentences
  or more, in corpora with punctuation.

Up to --queries documents per corpus are picked with a fixed seed, so the collections are the
same on every machine:

    python bench/derive_collections.py ../shared/ir /tmp/derived
    paperfeed eval --suite /tmp/derived --all-modes --baseline
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson

_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")
MIN_TEXT_WORDS = 20  # a known item's text: enough to be findable without its title
MIN_SENTENCE_WORDS = 8  # an inverse-cloze query: a sentence, not a fragment
MIN_QUERIES = 30  # fewer, and a collection's figure is mostly noise


def _docs(corpus: Path) -> Iterator[dict]:
    """The documents of a corpus.jsonl; a line that is not one (bad JSON, no string `_id`, a
    title or text that is not a string) is named on stderr and left out."""
    with corpus.open("rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                d = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                print(f"{corpus}:{n}: not JSON ({exc}), left out", file=sys.stderr)
                continue
            if not (isinstance(d, dict) and isinstance(d.get("_id"), str)
                    and all(isinstance(d.get(k) or "", str) for k in ("title", "text"))):  # fmt: skip
                print(f"{corpus}:{n}: not a document (a string _id, title and text), left out", file=sys.stderr)
                continue
            yield d


def _write(out: Path, docs: list[dict], queries: list[tuple[str, str]]) -> None:
    """A BEIR folder: `docs` as they are, one query per (text, relevant document id)."""
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with (out / "corpus.jsonl").open("wb") as f:
        for d in docs:
            f.write(orjson.dumps({"_id": d["_id"], "title": d.get("title") or "", "text": d.get("text") or ""}) + b"\n")
    with (out / "queries.jsonl").open("wb") as f, (out / "qrels" / "test.tsv").open("w") as q:
        q.write("query-id\tcorpus-id\tscore\n")
        for n, (text, doc_id) in enumerate(queries):
            f.write(orjson.dumps({"_id": f"q{n}", "text": text}) + b"\n")
            q.write(f"q{n}\t{doc_id}\t1\n")


def known_item(docs: list[dict], n: int, seed: int) -> tuple[list[dict], list[tuple[str, str]]] | None:
    """Titles as queries, over the texts alone; None when the corpus has no titles."""
    usable = [d for d in docs if (d.get("title") or "").strip() and len((d.get("text") or "").split()) > MIN_TEXT_WORDS]
    if len(usable) < max(2 * n // 3, MIN_QUERIES):
        return None
    picked = random.Random(seed).sample(sorted(d["_id"] for d in usable), min(n, len(usable)))
    by_id = {d["_id"]: d for d in usable}
    corpus = [{"_id": d["_id"], "title": "", "text": d["text"]} for d in usable]
    return corpus, [(" ".join(by_id[i]["title"].split()), i) for i in picked]


def title_lookup(docs: list[dict], n: int, seed: int) -> tuple[list[dict], list[tuple[str, str]]] | None:
    """Titles as queries over the corpus as it is; None when the corpus has no titles."""
    titled = sorted(d["_id"] for d in docs if (d.get("title") or "").strip())
    if len(titled) < max(2 * n // 3, MIN_QUERIES):
        return None
    by_id = {d["_id"]: d for d in docs}
    picked = random.Random(seed).sample(titled, min(n, len(titled)))
    return docs, [(" ".join(by_id[i]["title"].split()), i) for i in picked]


def inverse_cloze(docs: list[dict], n: int, seed: int) -> tuple[list[dict], list[tuple[str, str]]] | None:
    """Second sentences as queries, each taken out of its document."""
    sentences = {d["_id"]: _SENTENCE_END.split((d.get("text") or "").strip()) for d in docs}
    usable = sorted(i for i, s in sentences.items() if len(s) >= 3 and len(s[1].split()) >= MIN_SENTENCE_WORDS)
    if len(usable) // 2 < MIN_QUERIES:
        return None
    picked = set(random.Random(seed).sample(usable, min(n, len(usable) // 2)))
    corpus = []
    for d in docs:
        s = sentences[d["_id"]]
        text = " ".join(s[:1] + s[2:]) if d["_id"] in picked else d.get("text") or ""
        corpus.append({"_id": d["_id"], "title": d.get("title") or "", "text": text})
    return corpus, [(sentences[i][1], i) for i in sorted(picked, key=usable.index)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("suite", type=Path, help="a folder of BEIR collections (e.g. ../shared/ir)")
    ap.add_argument("out", type=Path, help="where the derived collections are written")
    ap.add_argument("--queries", type=int, default=150, help="queries per derived collection (1 or more)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    if not args.suite.is_dir():
        ap.error(f"{args.suite} is not a folder")
    if args.queries < 1:
        ap.error("--queries must be 1 or more")
    for root in sorted(p for p in args.suite.iterdir() if (p / "corpus.jsonl").is_file()):
        docs = list(_docs(root / "corpus.jsonl"))
        for kind, derive in (("ki", known_item), ("title", title_lookup), ("ict", inverse_cloze)):
            made = derive(docs, args.queries, args.seed)
            if made is None:
                continue
            _write(args.out / f"{root.name}-{kind}", *made)
            print(f"{root.name}-{kind}: {len(made[0])} documents, {len(made[1])} queries")


if __name__ == "__main__":
    main()
