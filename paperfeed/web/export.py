"""Many papers at once for a reference manager: a day or date range, a search, a
category, or a hand-picked selection, as BibTeX or RIS."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response

from paperfeed.models import Paper
from paperfeed.search import QueryError
from paperfeed.search.query import MAX_QUERY_CHARS
from paperfeed.store import Store
from paperfeed.store import harvest as harvest_store
from paperfeed.store import papers as feed
from paperfeed.web.api import ErrorOut
from paperfeed.web.citations import Cited, bibtex, ris
from paperfeed.web.deps import get_store
from paperfeed.web.ids import lookup_paper

router = APIRouter(tags=["export"])

MAX_EXPORT = 500
FORMATS = {
    "bib": ("application/x-bibtex; charset=utf-8", bibtex),
    "ris": ("application/x-research-info-systems; charset=utf-8", ris),
}
DateQ = Annotated[dt.date | None, Query(description="YYYY-MM-DD")]
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _selection(store: Store, ids: str) -> list[Paper]:
    wanted = [i for i in re.split(r"[\s,]+", ids) if i]
    if len(wanted) > MAX_EXPORT:
        raise HTTPException(status_code=400, detail=f"At most {MAX_EXPORT} ids at once.")
    papers, unknown = [], []
    for ident in dict.fromkeys(wanted):
        p, _ = lookup_paper(store, ident)
        if p is None or p.hidden:
            unknown.append(ident)
        else:
            papers.append(p)
    if unknown:
        shown = ", ".join(i[:64] for i in unknown[:5])
        raise HTTPException(status_code=404, detail=f"No paper with the id(s): {shown}.")
    return papers


@router.get(
    "/export.{fmt}", response_class=Response, summary="Export papers as BibTeX or RIS",
    responses={200: {"content": {"application/x-bibtex": {}, "application/x-research-info-systems": {}}},
               400: {"model": ErrorOut, "description": "Nothing or too much to export"},
               404: {"model": ErrorOut, "description": "Unknown paper id"},
               422: {"model": ErrorOut, "description": "Invalid parameter"}},
)  # fmt: skip
def export(
    request: Request,
    fmt: Literal["bib", "ris"],
    ids: Annotated[
        str | None, Query(max_length=20_000, description="Paper or arXiv ids, comma-separated")
    ] = None,
    q: Annotated[str | None, Query(max_length=MAX_QUERY_CHARS, description="A search, as on /search")] = None,
    date: DateQ = None,
    since: DateQ = None,
    until: DateQ = None,
    category: Annotated[str | None, Query(max_length=100)] = None,
    author: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_EXPORT)] = 200,
    store: Store = Depends(get_store),
) -> Response:
    """One of: `ids` (a selection), `q` (a search, with its filters), `category` and/or `author`
    (their papers, newest first, within `date` or `since`/`until` if given), or `date` or
    `since`/`until` alone (the papers of those feed days)."""
    if date:
        since = until = date
    if since and until and since > until:
        raise HTTPException(status_code=400, detail="since is after until")
    window = {"limit": limit, "since": since.isoformat() if since else None, "category": category or None,
              "until": until.isoformat() if until else None, "author": author or None}  # fmt: skip
    if ids and ids.strip():
        papers, name = _selection(store, ids)[:limit], "selection"
    elif q and q.strip():
        try:
            result = request.app.state.search.search(store, q, **window)
        except QueryError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        papers, name = [h.paper for h in result.hits], f"search-{q}"
    elif (category and category.strip()) or (author and author.strip()):
        result = request.app.state.search.listing(store, **window)
        papers, name = [h.paper for h in result.hits], "-".join(x for x in (category, author) if x)
    elif since or until:
        lo, hi = (since or dt.date.min).isoformat(), (until or dt.date.max).isoformat()
        papers = [p for p, _ in feed.list_range(store, lo, hi, limit=limit)]
        name = lo if since == until else f"{since or 'start'}-{until or 'end'}"
    else:
        raise HTTPException(
            status_code=400, detail="Say what to export: ids, q, category or author, date, or since/until."
        )
    media_type, write = FORMATS[fmt]
    records = [harvest_store.record_for_paper(store, p.rowid) or {} for p in papers]
    body = write([Cited(p, r.get("journal_ref") or None) for p, r in zip(papers, records, strict=True)])
    filename = "paperfeed-" + (_SAFE_NAME.sub("-", name).strip("-")[:60] or "export") + f".{fmt}"
    return Response(
        body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )
