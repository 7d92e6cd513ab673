"""A reader's library out and in: the JSON and BibTeX exports, and reading an uploaded file
(the parsing and matching are paperfeed.ingest.library_import)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from fastapi import HTTPException, UploadFile

from paperfeed.store import Store
from paperfeed.store import library as lib
from paperfeed.web.citations import Cited, bibtex

MAX_UPLOAD = 8 * 1024 * 1024  # also the body cap of the import routes (paperfeed.web.app.BODY_LIMITS)


def export_json(store: Store, user_id: int, tag_id: int | None = None) -> bytes:
    """The whole library (or one tag) with every tag, "not interested" and followed author: the
    reader's data in a form another tool can read back."""
    tags = lib.list_tags(store, user_id)
    names = {t.id: t.name for t in tags}
    rows = lib.list_saved(store, user_id, tag_id, limit=lib.MAX_LIBRARY)
    marks = lib.marks(store, user_id, [p.rowid for p, _ in rows])
    papers = [{**p.to_dict(), "saved_at": when, "tags": [names[t] for t in marks.tags.get(p.rowid, ())]}
              for p, when in rows]  # fmt: skip
    body: dict[str, Any] = {
        "format": "paperfeed-library", "version": 1,
        "exported_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tag": names.get(tag_id) if tag_id is not None else None,
        "tags": [{"name": t.name, "papers": t.count} for t in tags],
        "papers": papers,
    }  # fmt: skip
    if tag_id is None:
        body["not_interested"] = [
            p.to_dict() for p in lib.list_negatives(store, user_id, limit=lib.MAX_LIBRARY)
        ]
        body["following"] = [{"name": f.name, "coauthor": f.coauthor or None, "category": f.category or None}
                             for f in lib.list_follows(store, user_id)]  # fmt: skip
    return orjson.dumps(body, option=orjson.OPT_INDENT_2)


def export_bibtex(store: Store, user_id: int, tag_id: int | None = None) -> str:
    rows = lib.list_saved(store, user_id, tag_id, limit=lib.MAX_LIBRARY)
    return bibtex([Cited(p) for p, _ in rows])


def read_upload(file: UploadFile) -> bytes:
    # the body cap (paperfeed.web.app.BODY_LIMITS) stops a larger upload before it is parsed
    data = file.file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise HTTPException(
            status_code=413, detail=f"The file is too large (at most {MAX_UPLOAD // 1024 // 1024} MiB)."
        )
    return data
