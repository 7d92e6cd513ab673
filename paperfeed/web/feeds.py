"""Atom feeds: the daily list, trending, and any saved search.

Built with xml.etree so every title and abstract is escaped by the serializer,
never by string concatenation. Characters XML 1.0 forbids (most C0 controls)
are dropped, since a feed reader rejects the whole document over one of them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from email.utils import formatdate, parsedate_to_datetime
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response

from paperfeed.latex import plain_text
from paperfeed.models import Paper
from paperfeed.search import QueryError
from paperfeed.search.query import MAX_QUERY_CHARS
from paperfeed.store import Store
from paperfeed.store import papers as feed
from paperfeed.store import votes as vt
from paperfeed.web.api import ErrorOut
from paperfeed.web.deps import get_settings, get_store

router = APIRouter(prefix="/feeds", tags=["feeds"])

ATOM_NS = "http://www.w3.org/2005/Atom"
ATOM = "application/atom+xml; charset=utf-8"
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
DateQ = Annotated[dt.date | None, Query(description="YYYY-MM-DD")]

ET.register_namespace("", ATOM_NS)


def _clean(text: str | None) -> str:
    return _INVALID_XML.sub("", text or "")


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    e = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", {k: _clean(v) for k, v in attrs.items()})
    if text is not None:
        e.text = _clean(text)
    return e


def _when(p: Paper) -> str:
    for v in (p.updated_at, p.created_at):
        if v:
            return v
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _http_date(iso: str) -> str | None:
    try:
        when = dt.datetime.fromisoformat(iso)
    except ValueError:
        return None
    return formatdate((when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp(), usegmt=True)


def _not_modified(request: Request, etag: str, last_modified: str | None) -> bool:
    """RFC 9110: If-None-Match wins over If-Modified-Since; ETags compare weakly."""
    inm = request.headers.get("if-none-match")
    if inm is not None:
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return "*" in tags or etag.removeprefix("W/") in tags
    ims = request.headers.get("if-modified-since")
    if ims and last_modified:
        try:
            return parsedate_to_datetime(last_modified) <= parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
    return False


def cached(request: Request, body: bytes, media_type: str, updated: str | None) -> Response:
    """`body` with validators, or an empty 304 when the client's copy is current.

    Feed readers poll every few minutes; a 304 saves the whole document. The ETag is
    weak because the gzip layer may change the bytes on the wire.
    """
    etag = 'W/"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    headers = {"ETag": etag, "Cache-Control": "public, max-age=300"}
    last_modified = _http_date(updated) if updated else None
    if last_modified:
        headers["Last-Modified"] = last_modified
    if _not_modified(request, etag, last_modified):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def atom(
    request: Request, title: str, self_path: str, alternate_path: str, papers: Sequence[Paper], subtitle: str = ""
) -> Response:
    base = get_settings(request).base_url
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    _el(feed, "title", title)
    if subtitle:
        _el(feed, "subtitle", subtitle)
    _el(feed, "id", base + self_path)
    _el(feed, "link", rel="self", href=base + self_path, type="application/atom+xml")
    _el(feed, "link", rel="alternate", href=base + alternate_path, type="text/html")
    newest = max((_when(p) for p in papers), default=None)
    # an empty feed is stamped with the day, not the second, so its ETag holds between polls
    _el(feed, "updated", newest or dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT00:00:00Z"))
    _el(_el(feed, "author"), "name", "paperfeed")
    _el(feed, "generator", "paperfeed")
    _el(feed, "icon", base + "/favicon.ico")
    for p in papers:
        entry = _el(feed, "entry")
        _el(entry, "title", plain_text(p.title), type="text")
        url = f"{base}/papers/{p.id}"
        _el(entry, "id", url)
        _el(entry, "link", rel="alternate", href=url, type="text/html")
        links = p.default_links()
        if links.get("pdf"):
            _el(entry, "link", rel="related", href=links["pdf"], type="application/pdf", title="PDF")
        _el(entry, "updated", _when(p))
        if p.feed_date or p.published:
            _el(entry, "published", f"{p.feed_date or p.published}T00:00:00Z")
        # no author element rather than a made-up name: the feed's own author covers the entry
        for a in p.authors[:50]:
            _el(_el(entry, "author"), "name", a)
        for c in p.categories:
            _el(entry, "category", term=c)
        _el(entry, "summary", plain_text(p.abstract), type="text")
    body = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return cached(request, body, ATOM, newest)


@router.get("/daily.atom", response_class=Response, responses={200: {"content": {"application/atom+xml": {}}}, 422: {"model": ErrorOut, "description": "Invalid parameter"}})
def daily_feed(request: Request, date: DateQ = None, store: Store = Depends(get_store)) -> Response:
    """The papers of one day (default: the latest day with papers), most voted first."""
    day = date.isoformat() if date else feed.latest_feed_date(store)
    papers = [p for p, _ in feed.list_range(store, day, day, limit=200)] if day else []
    return atom(request, f"Daily Papers{' · ' + day if day else ''}", "/feeds/daily.atom" + (f"?date={day}" if date else ""),
                "/" + (f"?date={day}" if day else ""), papers)  # fmt: skip


@router.get("/trending.atom", response_class=Response, responses={200: {"content": {"application/atom+xml": {}}}, 422: {"model": ErrorOut, "description": "Invalid parameter"}})
def trending_feed(
    request: Request, period: Literal["day", "week", "month"] = "week", store: Store = Depends(get_store)
) -> Response:
    items = vt.trending(store, period, limit=50)
    return atom(request, f"Trending papers ({period})", f"/feeds/trending.atom?period={period}",
                f"/trending?period={period}", [p for p, _, _ in items])  # fmt: skip


@router.get(
    "/search.atom", response_class=Response,
    responses={200: {"content": {"application/atom+xml": {}}}, 400: {"model": ErrorOut, "description": "Bad query"},
               422: {"model": ErrorOut, "description": "Invalid parameter"}},
)  # fmt: skip
def search_feed(
    request: Request,
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS)],
    since: DateQ = None,
    until: DateQ = None,
    category: Annotated[str | None, Query(max_length=100)] = None,
    author: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    store: Store = Depends(get_store),
) -> Response:
    """A saved search as a feed: put this URL in a feed reader."""
    try:
        result = request.app.state.search.search(
            store, q, limit=limit, since=since.isoformat() if since else None,
            until=until.isoformat() if until else None, category=category or None, author=author or None,
        )
    except QueryError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    if since and until and since > until:
        raise HTTPException(status_code=400, detail="since is after until")
    params = {k: v for k, v in {"q": q, "since": since, "until": until, "category": category,
                                "author": author}.items() if v}  # fmt: skip
    qs = urlencode(params)
    return atom(request, f"Search: {q}", f"/feeds/search.atom?{qs}", f"/search?{qs}", [h.paper for h in result.hits],
                subtitle="Papers matching a saved paperfeed search")  # fmt: skip


_CATEGORY_RE = re.compile(r"^[A-Za-z-]{1,20}(?:\.[A-Za-z-]{1,20})?$")


@router.get(
    "/category/{category}.atom", response_class=Response,
    responses={200: {"content": {"application/atom+xml": {}}}, 404: {"model": ErrorOut, "description": "Not a category"}},
)  # fmt: skip
def category_feed(request: Request, category: str, store: Store = Depends(get_store)) -> Response:
    """The newest papers of one category, as arXiv writes it (cs.LG, hep-th), from the last 30 days."""
    if not _CATEGORY_RE.match(category):
        raise HTTPException(status_code=404, detail="Not a category name; use one such as cs.LG or hep-th.")
    papers = feed.list_category(store, category)
    return atom(request, f"Papers in {category}", f"/feeds/category/{category}.atom",
                "/search?" + urlencode({"category": category}), papers,
                subtitle=f"The newest papers in {category} on paperfeed")  # fmt: skip
