"""BEIR `corpus.jsonl`: {"_id", "title", "text", "metadata"} per line.

The collection's `_id` is kept as the paper's external id, so relevance
judgements (qrels) can be mapped back, and two documents that share a title
stay two documents: the collection says they are distinct.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from paperfeed.ingest.files import json_lines
from paperfeed.ingest.records import Rejection, check_list, check_text
from paperfeed.models import Paper


def source_name(path: Path) -> str:
    # corpus.jsonl is named by its collection folder: .../cranfield/corpus.jsonl -> beir:cranfield
    name = path.parent.name if path.name == "corpus.jsonl" else path.stem
    return f"beir:{name or 'corpus'}"


def looks_like_beir(obj: dict) -> bool:
    return "_id" in obj and "text" in obj


def _fallback_title(text: str) -> str:
    # Many BEIR corpora have empty titles; a paper needs one to be listed.
    words = text.split()
    head = " ".join(words[:12])
    return head + ("…" if len(words) > 12 else "")


def to_paper(obj: dict, source: str) -> Paper:
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    doc_id = obj.get("_id")
    if isinstance(doc_id, int):
        doc_id = str(doc_id)
    if not isinstance(doc_id, str) or not doc_id.strip():
        raise ValueError("missing _id")
    text = check_text("text", obj.get("text"))
    title = check_text("title", obj.get("title"))
    if not title.strip():
        title = _fallback_title(text)
        if not title:
            raise ValueError("document has neither title nor text")
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return Paper(
        title=title,
        abstract=text,
        authors=check_list("authors", meta.get("authors")) if meta.get("authors") else [],
        sources=[source],
        ext_ids={source: doc_id},
    )


def parse(path: Path, *, source: str | None = None, **_: object) -> Iterator[Paper | Rejection]:
    source = source or source_name(path)
    return json_lines(path, lambda obj: to_paper(obj, source))
