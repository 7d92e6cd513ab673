"""Parse in a second process while this one writes to the store.

On a 2-core machine a full arXiv import is half parsing (JSON, names, dates) and
half SQLite writing; overlapping the two nearly doubles records/s. The queue is
bounded, so memory stays flat however large the file is.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import queue
from collections.abc import Iterator
from pathlib import Path

from paperfeed.ingest.records import Rejection
from paperfeed.models import Paper, title_key

CHUNK = 2000
# Papers cross the process boundary as plain tuples: pickling slotted dataclasses
# field by field costs as much as parsing them.
_FIELDS = ("title", "abstract", "authors", "categories", "arxiv_id", "doi", "published", "feed_date",
           "sources", "ext_ids", "positions", "links")


assert tuple(f.name for f in dataclasses.fields(Paper))[: len(_FIELDS)] == _FIELDS


def _pack(rec: Paper | Rejection) -> tuple | Rejection:
    if isinstance(rec, Rejection):
        return rec
    # The title key and content hash are pure functions of the record: computing
    # them here moves a fifth of the writer's work onto the otherwise idle core.
    return (*(getattr(rec, f) for f in _FIELDS), title_key(rec.title), rec.compute_hash())


def _unpack(item: tuple | Rejection) -> Paper | Rejection:
    if isinstance(item, Rejection):
        return item
    # _FIELDS are Paper's leading fields, in order (checked at import below)
    p = Paper(*item[: len(_FIELDS)])
    p.key, p.content_hash = item[-2], item[-1]
    return p
MAX_QUEUED_CHUNKS = 8
# Below this size the cost of starting a process outweighs the overlap.
MIN_BYTES = 16 << 20


def _worker(q: mp.Queue, path: str, fmt: str, kwargs: dict, parent: int) -> None:
    from paperfeed.ingest import _PARSERS  # imported in the child: spawn starts clean

    def put(item: object) -> None:
        while True:
            try:
                q.put(item, timeout=1)
                return
            except queue.Full:
                # If the writer was killed, nobody will drain the queue: stop too.
                if os.getppid() != parent:
                    os._exit(0)

    try:
        chunk: list = []
        for rec in _PARSERS[fmt](Path(path), **kwargs):
            chunk.append(_pack(rec))
            if len(chunk) >= CHUNK:
                put(chunk)
                chunk = []
        if chunk:
            put(chunk)
        put(None)
    except BaseException as e:  # reported by the parent as one line
        put(("error", f"{path}: {type(e).__name__}: {e}"))


def parse_in_worker(path: Path, fmt: str, kwargs: dict) -> Iterator[Paper | Rejection]:
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue(MAX_QUEUED_CHUNKS)
    proc = ctx.Process(target=_worker, args=(q, str(path), fmt, kwargs, os.getpid()), daemon=True)
    proc.start()
    try:
        while True:
            try:
                item = q.get(timeout=5)
            except queue.Empty:
                if not proc.is_alive():
                    yield Rejection(str(path), 0, "parser process died unexpectedly; rerun the ingest")
                    return
                continue
            if item is None:
                return
            if isinstance(item, tuple):
                yield Rejection(str(path), 0, item[1])
                return
            for packed in item:
                yield _unpack(packed)
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join(timeout=5)
