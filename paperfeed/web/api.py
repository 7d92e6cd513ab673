"""The JSON API (documented at /docs) and /healthz."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from paperfeed.index.sync import problems as index_problems
from paperfeed.models import Paper
from paperfeed.search import QueryError
from paperfeed.search.query import MAX_QUERY_CHARS
from paperfeed.store import Store
from paperfeed.store import papers as feed
from paperfeed.store import votes as vt
from paperfeed.web.deps import get_settings, get_store, load_user
from paperfeed.web.ids import lookup_paper

router = APIRouter(prefix="/api", tags=["papers"])
health_router = APIRouter(tags=["health"])

PaperId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        description="The paper's public id, or its arXiv id (2210.02885, 2210.02885v2)",
    ),
]
DateQ = Annotated[dt.date | None, Query(description="YYYY-MM-DD")]


class ErrorOut(BaseModel):
    detail: str = Field(description="What went wrong, in words")


class PaperOut(BaseModel):
    id: str
    title: str
    abstract: str
    authors: list[str]
    categories: list[str]
    arxiv_id: str | None = None
    doi: str | None = None
    published: str | None = Field(None, description="Publication date, YYYY-MM-DD")
    feed_date: str | None = Field(None, description="Day the paper appeared in the feed, YYYY-MM-DD")
    sources: list[str]
    links: dict[str, str] = Field(description="arxiv, pdf, doi, ... URLs where known")
    votes: int = 0
    url: str = Field(description="The paper's page on this site")


class PaperList(BaseModel):
    date: str | None = Field(description="The day listed (the latest day with papers when not asked)")
    total: int
    limit: int
    offset: int
    papers: list[PaperOut]


class SearchHitOut(BaseModel):
    paper: PaperOut
    score: float
    snippet: str = Field(description="HTML: abstract excerpt, text escaped, matches in <mark>")


class SearchOut(BaseModel):
    query: str
    total: int | None = Field(description="Number of matches, when the engine knows it")
    limit: int
    offset: int
    engine: str = Field(description="hybrid, or fallback while the index is not ready")
    hits: list[SearchHitOut]


class TrendingItemOut(BaseModel):
    paper: PaperOut
    votes: int = Field(description="Votes within the period")
    score: float = Field(description="votes / (age_hours + 2) ** 1.8")


class TrendingOut(BaseModel):
    period: Literal["day", "week", "month"]
    items: list[TrendingItemOut]


class SimilarItemOut(BaseModel):
    paper: PaperOut
    score: float


class SimilarOut(BaseModel):
    paper_id: str
    items: list[SimilarItemOut]


ERRORS = {
    400: {"model": ErrorOut, "description": "Bad query"},
    404: {"model": ErrorOut, "description": "Not found"},
    422: {"model": ErrorOut, "description": "Invalid parameter"},
}


def paper_out(request: Request, p: Paper, votes: int = 0) -> PaperOut:
    base = get_settings(request).base_url
    return PaperOut(
        id=p.id, title=p.title, abstract=p.abstract, authors=list(p.authors), categories=list(p.categories),
        arxiv_id=p.arxiv_id, doi=p.doi, published=p.published, feed_date=p.feed_date, sources=list(p.sources),
        links=p.default_links(), votes=votes, url=f"{base}/papers/{p.id}",
    )  # fmt: skip


def _iso(d: dt.date | None) -> str | None:
    return d.isoformat() if d else None


def _check_range(since: dt.date | None, until: dt.date | None) -> None:
    if since and until and since > until:
        raise HTTPException(status_code=400, detail="since is after until")


@router.get("/papers", response_model=PaperList, responses=ERRORS, summary="Papers of a day or a date range")
def api_papers(
    request: Request,
    date: DateQ = None,
    since: DateQ = None,
    until: DateQ = None,
    sort: Literal["votes", "newest"] = "votes",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    store: Store = Depends(get_store),
) -> PaperList:
    """`date` lists one day (default: the latest day with papers); `since`/`until` list a range instead."""
    _check_range(since, until)
    if since or until:
        lo, hi, shown = _iso(since) or "0000-01-01", _iso(until) or "9999-12-31", None
    else:
        shown = _iso(date) or feed.latest_feed_date(store)
        if shown is None:
            return PaperList(date=None, total=0, limit=limit, offset=offset, papers=[])
        lo = hi = shown
    total = feed.count_range(store, lo, hi)
    items = feed.list_range(store, lo, hi, order=sort, limit=limit, offset=offset)
    return PaperList(date=shown, total=total, limit=limit, offset=offset,
                     papers=[paper_out(request, p, n) for p, n in items])  # fmt: skip


def _get_visible(store: Store, paper_id: str) -> Paper:
    p, _ = lookup_paper(store, paper_id)
    if p is None or p.hidden:
        raise HTTPException(status_code=404, detail=f"no paper with id {paper_id!r}")
    return p


@router.get("/papers/{paper_id}", response_model=PaperOut, responses=ERRORS, summary="One paper")
def api_paper(request: Request, paper_id: PaperId, store: Store = Depends(get_store)) -> PaperOut:
    p = _get_visible(store, paper_id)
    return paper_out(request, p, vt.vote_counts(store, [p.rowid]).get(p.rowid, 0))


@router.get(
    "/papers/{paper_id}/similar", response_model=SimilarOut, responses=ERRORS,
    summary="Papers like this one, by vectors and words",
)  # fmt: skip
def api_similar(
    request: Request,
    paper_id: PaperId,
    k: Annotated[int, Query(ge=1, le=50)] = 10,
    store: Store = Depends(get_store),
) -> SimilarOut:
    p = _get_visible(store, paper_id)
    sims = request.app.state.search.similar(store, p, limit=k)
    counts = vt.vote_counts(store, [s.rowid for s, _ in sims])
    return SimilarOut(paper_id=p.id, items=[SimilarItemOut(paper=paper_out(request, s, counts.get(s.rowid, 0)),
                                                           score=score) for s, score in sims])  # fmt: skip


@router.get(
    "/papers/{archive}/{number}", response_model=PaperOut, responses=ERRORS,
    summary="One paper by an old-style arXiv id (hep-th/9901001)",
)  # fmt: skip
def api_paper_old_style(
    request: Request,
    archive: Annotated[str, Path(max_length=40, description="arXiv archive, such as hep-th")],
    number: Annotated[str, Path(max_length=20, description="Seven digits, optionally a version: 9901001v2")],
    store: Store = Depends(get_store),
) -> PaperOut:
    return api_paper(request, f"{archive}/{number}", store)


@router.get("/search", response_model=SearchOut, responses=ERRORS, summary="Search papers (hybrid pipeline)")
def api_search(
    request: Request,
    q: Annotated[
        str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="Words, a question or a pasted abstract")
    ],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
    since: DateQ = None,
    until: DateQ = None,
    category: Annotated[str | None, Query(max_length=100)] = None,
    author: Annotated[str | None, Query(max_length=200)] = None,
    store: Store = Depends(get_store),
) -> SearchOut:
    _check_range(since, until)
    try:
        result = request.app.state.search.search(
            store, q, limit=limit, offset=offset, since=_iso(since), until=_iso(until),
            category=category or None, author=author or None,
        )  # fmt: skip
    except QueryError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    counts = vt.vote_counts(store, [h.paper.rowid for h in result.hits])
    return SearchOut(
        query=result.query, total=result.total, limit=limit, offset=offset, engine=result.engine,
        hits=[SearchHitOut(paper=paper_out(request, h.paper, counts.get(h.paper.rowid, 0)), score=h.score,
                           snippet=str(h.snippet)) for h in result.hits],
    )  # fmt: skip


@router.get("/trending", response_model=TrendingOut, responses=ERRORS, summary="Trending papers")
def api_trending(
    request: Request,
    period: Literal["day", "week", "month"] = "week",
    limit: Annotated[int, Query(ge=1, le=200)] = 30,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    store: Store = Depends(get_store),
) -> TrendingOut:
    """Papers ranked by votes in the period decayed with age: votes / (age_hours + 2) ** 1.8."""
    items = vt.trending(store, period, limit=limit, offset=offset)
    return TrendingOut(period=period, items=[TrendingItemOut(paper=paper_out(request, p, n), votes=n, score=s)
                                             for p, n, s in items])  # fmt: skip


class HealthOut(BaseModel):
    status: Literal["ok", "degraded", "down"]
    store: dict
    index: dict
    errors: dict | None = Field(None, description="Admins only: error texts")
    problems: list[str] | None = Field(None, description="Admins only: index damage and its fix")


@health_router.get("/healthz", response_model=HealthOut, responses={503: {"model": HealthOut}})
def healthz(request: Request) -> JSONResponse:
    """Whether the store answers and the search index is loaded and whole (503 when the store
    is down). Error texts and file names are shown to admins only."""
    store_info: dict = {"ok": False}
    errors: dict[str, str] = {}
    try:
        pool = request.app.state.pool
        store = pool.acquire()
        try:
            store_info = {"ok": True, "papers": store.count(include_hidden=False), "max_seq": store.max_seq()}
        finally:
            pool.release(store)
    except Exception as exc:  # noqa: BLE001 - health must report, not raise
        errors["store"] = f"{type(exc).__name__}: {exc}"
    index = request.app.state.search.status()
    if "error" in index:
        errors["index"] = index.pop("error")
    # lost or unreadable vectors do not stop the searcher loaded before the damage, so the
    # files on disk are checked on every call (counts and headers only)
    problems = index_problems(request.app.state.data_dir)
    index["whole"] = not problems
    if not store_info["ok"]:
        status, code = "down", 503
    elif index.get("ready") and not problems:
        status, code = "ok", 200
    else:
        status, code = "degraded", 200
    body = {"status": status, "store": store_info, "index": index}
    if (errors or problems) and _is_admin(request):
        body["errors"] = errors
        body["problems"] = problems
    return JSONResponse(body, status_code=code)


def _is_admin(request: Request) -> bool:
    try:
        user = load_user(request)
    except Exception:  # noqa: BLE001 - with the store down nobody can be recognised
        return False
    return user is not None and user.is_admin
