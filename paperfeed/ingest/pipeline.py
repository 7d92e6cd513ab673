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
import threading
import time
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


PARENT_CHECK_SECONDS = 0.5


def _die_with(parent: int) -> None:
    """Exit as soon as `parent` is gone (we are re-parented): nobody will read the queue.

    Checking only when the queue is full was not enough: a worker that had queued its last
    chunk hung at exit, its queue's feeder thread blocked writing into a pipe nobody read.
    A thread polling getppid() covers every state, unlike PR_SET_PDEATHSIG, which fires
    when the parent *thread* that started us ends, and exists on Linux only.
    """
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(PARENT_CHECK_SECONDS)


def _worker(q: mp.Queue, path: str, fmt: str, kwargs: dict, parent: int) -> None:
    from paperfeed.ingest import _PARSERS  # imported in the child: spawn starts clean

    threading.Thread(target=_die_with, args=(parent,), name="parent-watch", daemon=True).start()
    put = q.put  # blocks while the queue is full; _die_with ends us if the reader is gone

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
