"""HTML pages: daily papers, search, paper, trending, votes and moderation."""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from paperfeed.latex import plain_text
from paperfeed.models import Paper
from paperfeed.store import Store
from paperfeed.store import accounts as acc
from paperfeed.store import harvest as harvest_store
from paperfeed.store import papers as feed
from paperfeed.store import votes as vt
from paperfeed.store.accounts import User
from paperfeed.web.citations import Cited, bibtex
from paperfeed.web.deps import current_user, get_store, rate_limit, verify_csrf
from paperfeed.web.ids import lookup_paper
from paperfeed.web.searching import SearchService
from paperfeed.web.templating import render

router = APIRouter(include_in_schema=False)

PER_PAGE = 50
SEARCH_PER_PAGE = 20
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_date(value: str | None) -> dt.date | None:
    """A YYYY-MM-DD date or None; raises ValueError with a readable message."""
    if value is None or value == "":
        return None
    if not _DATE_RE.match(value):
        raise ValueError(f"“{value[:40]}” is not a date; use YYYY-MM-DD, such as 2025-10-07.")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"“{value}” is not a real calendar date.") from None


def parse_page(value: str | None) -> int:
    try:
        page = int(value or 1)
    except ValueError:
        return 1
    return min(max(page, 1), 10_000)


def safe_next(value: str | None) -> str:
    """Only same-site paths, so a crafted link cannot bounce a user to another site."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or len(value) > 2000:
        return "/"
    if any(ord(c) < 32 for c in value):
        return "/"
    return value


def here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def period_range(day: dt.date, view: str) -> tuple[dt.date, dt.date]:
    if view == "week":
        start = day - dt.timedelta(days=day.weekday())
        return start, start + dt.timedelta(days=6)
    if view == "month":
        start = day.replace(day=1)
        nxt = (start + dt.timedelta(days=32)).replace(day=1)
        return start, nxt - dt.timedelta(days=1)
    return day, day


def period_label(start: dt.date, end: dt.date, view: str) -> str:
    if view == "week":
        return f"Week of {start:%b} {start.day}, {start.year} – {end:%b} {end.day}"
    if view == "month":
        return f"{start:%B %Y}"
    return f"{start:%A}, {start:%b} {start.day}, {start.year}"


def page_window(page: int, pages: int, around: int = 2) -> list[int | None]:
    """Page numbers to show: the first, the last and those near `page`; None marks a gap."""
    shown = sorted({1, pages, *range(max(1, page - around), min(pages, page + around) + 1)})
    out: list[int | None] = []
    for n in shown:
        if out and n - (out[-1] or 0) > 1:
            out.append(None)
        out.append(n)
    return out


def _daily_url(date: str | None, view: str, sort: str, page: int = 1) -> str:
    params: dict[str, Any] = {}
    if date:
        params["date"] = date
    if view != "day":
        params["view"] = view
    if sort != "votes":
        params["sort"] = sort
    if page > 1:
        params["page"] = page
    return "/" + (f"?{urlencode(params)}" if params else "")


@router.get("/", response_class=HTMLResponse)
def daily(
    request: Request,
    date: str | None = None,
    view: str = "day",
    sort: str = "votes",
    page: str | None = None,
    store: Store = Depends(get_store),
    user: User | None = Depends(current_user),
) -> Response:
    view = view if view in ("day", "week", "month") else "day"
    sort = sort if sort in ("votes", "newest") else "votes"
    pg = parse_page(page)
    ctx: dict[str, Any] = {"nav": "daily", "view": view, "sort": sort, "page": pg, "per_page": PER_PAGE,
                           "here": here(request), "items": [], "voted": set()}  # fmt: skip
    try:
        day = parse_date(date)
    except ValueError as exc:
        ctx.update(error=str(exc), label=None, prev_url=None, next_url=None,
                   view_urls={v: _daily_url(None, v, sort) for v in ("day", "week", "month")},
                   sort_urls={s: _daily_url(None, view, s) for s in ("votes", "newest")})  # fmt: skip
        return render(request, "daily.html", ctx, status_code=400)
    if day is None:
        latest = feed.latest_feed_date(store)
        day = dt.date.fromisoformat(latest) if latest else None
    if day is None:
        ctx.update(no_papers_at_all=True, label=None, prev_url=None, next_url=None,
                   view_urls={v: _daily_url(None, v, sort) for v in ("day", "week", "month")},
                   sort_urls={s: _daily_url(None, view, s) for s in ("votes", "newest")})  # fmt: skip
        return render(request, "daily.html", ctx)
    start, end = period_range(day, view)
    since, until = start.isoformat(), end.isoformat()
    prev_day = feed.prev_feed_date(store, since)
    next_day = feed.next_feed_date(store, until)
    total = feed.count_range(store, since, until)
    pages = max(1, math.ceil(total / PER_PAGE))
    items = feed.list_range(store, since, until, order=sort, limit=PER_PAGE, offset=(pg - 1) * PER_PAGE)
    voted = vt.user_voted(store, user.id, [p.rowid for p, _ in items]) if user else set()
    anchor = day.isoformat()

    def neighbour_label(d: str | None) -> str:
        if d is None:
            return ""
        s, e = period_range(dt.date.fromisoformat(d), view)
        return period_label(s, e, view) if view != "day" else f"{s:%b} {s.day}, {s.year}"

    ctx.update(
        label=period_label(start, end, view),
        date=anchor,
        items=items,
        voted=voted,
        total=total,
        pages=pages,
        prev_url=_daily_url(prev_day, view, sort) if prev_day else None,
        next_url=_daily_url(next_day, view, sort) if next_day else None,
        prev_label=neighbour_label(prev_day),
        next_label=neighbour_label(next_day),
        view_urls={v: _daily_url(anchor, v, sort) for v in ("day", "week", "month")},
        sort_urls={s: _daily_url(anchor, view, s) for s in ("votes", "newest")},
        export_qs=urlencode({"date": since} if view == "day" else {"since": since, "until": until}),
        prev_page_url=_daily_url(anchor, view, sort, pg - 1) if 1 < pg <= pages else None,
        next_page_url=_daily_url(anchor, view, sort, pg + 1) if pg < pages else None,
        page_links=[(n, _daily_url(anchor, view, sort, n) if n else None) for n in page_window(pg, pages)],
        last_page_url=_daily_url(anchor, view, sort, pages),
    )
    # past the last page is a wrong address, not an empty day
    return render(request, "daily.html", ctx, status_code=404 if total and pg > pages else 200)


def _search_service(request: Request) -> SearchService:
    return request.app.state.search


@router.get("/search", response_class=HTMLResponse)
def search_page(
    request: Request,
    q: str = "",
    since: str | None = None,
    until: str | None = None,
    category: str | None = None,
    author: str | None = None,
    page: str | None = None,
    store: Store = Depends(get_store),
    user: User | None = Depends(current_user),
) -> Response:
    q = q.strip()  # checked, with the other entry points, by search.query.check_query
    category = (category or "").strip()[:100] or None
    author = (author or "").strip()[:200] or None
    pg = parse_page(page)
    ctx: dict[str, Any] = {
        "nav": "search", "q": q, "q_top": q, "since": since, "until": until, "category": category,
        "author": author, "page": pg, "here": here(request), "votes": {}, "voted": set(),
        "filters_used": bool(since or until or category or author),
    }  # fmt: skip
    status = 200
    params = {k: v for k, v in {"q": q, "since": since, "until": until, "category": category,
                                "author": author}.items() if v}  # fmt: skip
    ctx["feed_url"] = "/feeds/search.atom?" + urlencode(params)
    ctx["unfiltered_url"] = "/search?" + urlencode({"q": q})
    ctx["export_qs"] = urlencode(params)
    try:
        s, u = parse_date(since), parse_date(until)
        if s and u and s > u:
            raise ValueError("The “From” date is after the “To” date.")
        if q or category or author:
            service = _search_service(request)
            window: dict[str, Any] = {
                "limit": SEARCH_PER_PAGE, "offset": (pg - 1) * SEARCH_PER_PAGE, "category": category,
                "author": author, "since": s.isoformat() if s else None, "until": u.isoformat() if u else None,
            }  # fmt: skip
            # filters alone (the author and category links of a card) list their papers
            result = service.search(store, q, **window) if q else service.listing(store, **window)
            rowids = [h.paper.rowid for h in result.hits]
            ctx["result"] = result
            ctx["votes"] = vt.vote_counts(store, rowids)
            ctx["voted"] = vt.user_voted(store, user.id, rowids) if user else set()
            base = {**params}
            ctx["prev_page_url"] = "/search?" + urlencode({**base, "page": pg - 1}) if pg > 1 else None
            ctx["next_page_url"] = (
                "/search?" + urlencode({**base, "page": pg + 1}) if result.has_more else None
            )
    except ValueError as exc:  # QueryError included
        ctx["error"] = str(exc)
        status = 400
    return render(request, "search.html", ctx, status_code=status)


def cited(store: Store, p: Paper) -> Cited:
    """`p` with the journal arXiv knows it by, if its record was harvested."""
    record = harvest_store.record_for_paper(store, p.rowid)
    return Cited(p, (record or {}).get("journal_ref") or None)


def _find_visible(store: Store, paper_id: str, user: User | None) -> tuple[Paper, bool]:
    p, alias = lookup_paper(store, paper_id)
    if p is None or (p.hidden and not (user and user.is_admin)):
        raise HTTPException(
            status_code=404, detail="There is no paper with this id (it may have been removed)."
        )
    return p, alias


def _visible_paper(store: Store, paper_id: str, user: User | None) -> Paper:
    return _find_visible(store, paper_id, user)[0]


@router.get("/papers/{paper_id}", response_class=HTMLResponse)
def paper_page(
    request: Request,
    paper_id: str,
    store: Store = Depends(get_store),
    user: User | None = Depends(current_user),
) -> Response:
    p, alias = _find_visible(store, paper_id, user)
    if alias:
        # one URL per paper for bookmarks and crawlers; the bare arXiv id is served as is
        return RedirectResponse(f"/papers/{p.id}", status_code=301)
    service = _search_service(request)
    similar: list[tuple[Paper, float]] = []
    note = "No similar papers found."
    try:
        similar = service.similar(store, p, limit=8)
    except Exception as exc:  # noqa: BLE001 - a missing vector must not take the page down
        note = f"Similar papers are not available right now ({type(exc).__name__})."
    if not similar and not service.status().get("dense"):
        note = "Similar papers appear once the dense search index is built (paperfeed index)."
    votes = vt.vote_counts(store, [p.rowid]).get(p.rowid, 0)
    voted = bool(user and vt.user_voted(store, user.id, [p.rowid]))
    arxiv = harvest_store.record_for_paper(store, p.rowid)
    ctx = {"p": p, "links": p.default_links(), "bibtex": bibtex([Cited(p, (arxiv or {}).get("journal_ref") or None)]), "similar": similar, "similar_note": note,
           "votes": votes, "voted": voted, "here": here(request), "arxiv": arxiv,
           "citation": citation_meta(p, arxiv)}  # fmt: skip
    return render(request, "paper.html", ctx)


def citation_meta(p: Paper, arxiv: dict | None) -> dict[str, Any]:
    """What the Highwire (Google Scholar, Zotero) and OpenGraph tags of a paper page say.

    The date is the publication date, else arXiv's first-version date; the day the
    paper entered this site's feed is not a publication date, so it is never used.
    """
    date = p.published or (arxiv or {}).get("created") or None
    words = " ".join(plain_text(p.abstract).split())
    description = words if len(words) <= 300 else words[:297].rsplit(" ", 1)[0] + "…"
    return {"date": (date or "")[:10].replace("-", "/") or None, "iso_date": (date or "")[:10] or None,
            "journal": (arxiv or {}).get("journal_ref") or None, "description": description}  # fmt: skip


@router.get("/papers/{paper_id}/bibtex")
def paper_bibtex(
    paper_id: str, store: Store = Depends(get_store), user: User | None = Depends(current_user)
) -> Response:
    p = _visible_paper(store, paper_id, user)
    return PlainTextResponse(
        bibtex([cited(store, p)]),
        media_type="application/x-bibtex; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{p.id}.bib"'},
    )


@router.get("/papers/{archive}/{number}", response_class=HTMLResponse)
def old_style_paper_page(
    request: Request,
    archive: str,
    number: str,
    store: Store = Depends(get_store),
    user: User | None = Depends(current_user),
) -> Response:
    """Old-style arXiv ids (hep-th/9901001) have a slash, so they take two path segments."""
    return paper_page(request, f"{archive}/{number}", store, user)


@router.post(
    "/papers/{paper_id}/vote",
    dependencies=[Depends(verify_csrf), Depends(rate_limit("vote", 60))],
)
def vote_form(
    request: Request,
    paper_id: str,
    action: str = Form("up"),
    next: str = Form("/"),
    store: Store = Depends(get_store),
    user: User | None = Depends(current_user),
) -> Response:
    target = safe_next(next)
    if user is None:
        return RedirectResponse("/login?" + urlencode({"next": target, "vote": paper_id}), status_code=303)
    p = _visible_paper(store, paper_id, user)
    if action == "undo":
        vt.unvote(store, user.id, p.rowid)
    elif action == "up":
        vt.vote(store, user.id, p.rowid)
    else:
        raise HTTPException(status_code=400, detail="Unknown vote action; use up or undo.")
    return RedirectResponse(target + ("" if "#" in target else f"#p-{p.id}"), status_code=303)


@router.post("/papers/{paper_id}/hide", dependencies=[Depends(verify_csrf)])
def hide_form(
    paper_id: str,
    action: str = Form("hide"),
    store: Store = Depends(get_store),
    user: User | None = Depends(current_user),
) -> Response:
    if user is None:
        raise HTTPException(status_code=401, detail="Log in to do this.")
    if not user.is_admin:
        raise HTTPException(status_code=403, detail="Only an admin can hide papers.")
    if action not in ("hide", "show"):
        raise HTTPException(status_code=400, detail="Unknown action; use hide or show.")
    p = store.get_paper(paper_id)
    if p is None:
        raise HTTPException(status_code=404, detail="There is no paper with this id.")
    acc.set_paper_hidden(store, paper_id, action == "hide", by_user=user.id)
    return RedirectResponse(f"/papers/{paper_id}", status_code=303)


@router.get("/trending", response_class=HTMLResponse)
def trending_page(
    request: Request,
    period: str = "week",
    page: str | None = None,
    store: Store = Depends(get_store),
    user: User | None = Depends(current_user),
) -> Response:
    period = period if period in vt.PERIODS else "week"
    pg = parse_page(page)
    per = 30
    items = vt.trending(store, period, limit=per + 1, offset=(pg - 1) * per)
    more = len(items) > per
    items = items[:per]
    voted = vt.user_voted(store, user.id, [p.rowid for p, _, _ in items]) if user else set()
    ctx = {
        "nav": "trending", "period": period, "items": items, "voted": voted, "offset": (pg - 1) * per,
        "here": here(request),
        "prev_page_url": f"/trending?period={period}&page={pg - 1}" if pg > 1 else None,
        "next_page_url": f"/trending?period={period}&page={pg + 1}" if more else None,
    }  # fmt: skip
    return render(request, "trending.html", ctx)
