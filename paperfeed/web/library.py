"""The reader's library and "For you" on the site: the pages, and the forms behind the save /
tag / not-interested buttons, tags, followed authors, the For-you mail, import and export.
The per-tag feed is paperfeed.web.library_feed, the JSON API paperfeed.web.library_api.

Every form is a plain POST with the CSRF token, so all of it works without script. Every tag
id that arrives in a request is looked up together with the signed-in user
(paperfeed.store.library), so another user's tag answers exactly as a tag that does not exist.
"""

from __future__ import annotations

import math
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadData, URLSafeSerializer

from paperfeed.digest import foryou as foryou_mail
from paperfeed.digest.validate import SubscriptionError
from paperfeed.ingest.library_import import ImportReport, import_library
from paperfeed.models import Paper
from paperfeed.search.foryou import WINDOWS, ForYou, for_you
from paperfeed.store import Store
from paperfeed.store import accounts as acc
from paperfeed.store import library as lib
from paperfeed.store import votes as vt
from paperfeed.web.deps import (
    MaybeUser,
    Recommenders,
    SearcherDep,
    SignedIn,
    StoreDep,
    rate_limit,
    verify_csrf,
)
from paperfeed.web.ids import lookup_paper
from paperfeed.web.library_feed import feed_url
from paperfeed.web.library_io import export_bibtex, export_json, read_upload
from paperfeed.web.pages import here, page_window, parse_page, safe_next
from paperfeed.web.retrain import retrain_on_change
from paperfeed.web.templating import render

# a change to the library trains its models in the background (paperfeed.web.retrain)
router = APIRouter(include_in_schema=False, dependencies=[Depends(retrain_on_change)])

PER_PAGE = 50
FOR_YOU_ITEMS = 30  # like trending; the "why" of each item costs a few ms (search.recommend)
WINDOW_LABELS = {"today": "Today", "week": "This week", "month": "This month"}
FORM = [Depends(verify_csrf), Depends(rate_limit("library", 240))]


# ---- shared helpers (the JSON API uses them too) ------------------------------------


def find_paper(store: Store, paper_id: str, *, visible: bool = True) -> Paper:
    p, _ = lookup_paper(store, paper_id or "")
    if p is None or (visible and p.hidden):
        raise HTTPException(status_code=404, detail="There is no paper with this id.")
    return p


def own_tag(store: Store, user_id: int, tag_id: int | None) -> lib.Tag | None:
    """The user's tag, or 404 for an unknown id and another user's id alike."""
    if tag_id is None:
        return None
    tag = lib.get_tag(store, user_id, tag_id)
    if tag is None:
        raise HTTPException(status_code=404, detail="There is no such tag.")
    return tag


def parse_tag_id(value: str | None) -> int | None:
    if value is None or value.strip() == "":
        return None
    if not value.strip().isdigit() or len(value.strip()) > 18:
        raise HTTPException(status_code=404, detail="There is no such tag.")
    return int(value)


def _attachment(body: bytes | str, media_type: str, name: str) -> Response:
    return Response(
        body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


def _flash_signer(request: Request) -> URLSafeSerializer:
    return URLSafeSerializer(request.app.state.settings.secret_key, salt="paperfeed.library-flash.v1")


def read_flash(request: Request) -> str | None:
    """The message a form left for the page it redirected to. It is signed, so a crafted link
    cannot make the site show words of someone else's choosing."""
    token = request.query_params.get("flash", "")
    if not token or len(token) > 2000:
        return None
    try:
        text = _flash_signer(request).loads(token)
    except BadData:
        return None
    return text if isinstance(text, str) else None


def _back(
    request: Request, next_: str, paper: Paper | None = None, flash: str | None = None
) -> RedirectResponse:
    target, hash_, fragment = safe_next(next_).partition("#")
    if flash:
        target += ("&" if "?" in target else "?") + urlencode(
            {"flash": _flash_signer(request).dumps(flash[:300])}
        )
    if hash_:
        target += f"#{fragment}"
    elif paper is not None:
        target += f"#p-{paper.id}"
    return RedirectResponse(target, status_code=303)


# ---- the buttons on paper cards ------------------------------------------------------


@router.post("/library/save", dependencies=FORM)
def save_form(request: Request,
    store: StoreDep, user: MaybeUser, paper_id: str = Form(""), tag_id: str = Form(""), new_tag: str = Form(""),
    next: str = Form("/library"),
) -> Response:  # fmt: skip
    if user is None:
        return RedirectResponse("/login?" + urlencode({"next": safe_next(next)}), status_code=303)
    p = find_paper(store, paper_id)
    tags = [t.id for t in [own_tag(store, user.id, parse_tag_id(tag_id))] if t]
    try:
        if new_tag.strip():
            tags.append(lib.create_tag(store, user.id, new_tag).id)
        lib.save(store, user.id, [p.rowid], tags)
    except lib.LibraryError as exc:
        return _back(request, next, p, str(exc))
    return _back(request, next, p)


@router.post("/library/unsave", dependencies=FORM)
def unsave_form(
    request: Request, store: StoreDep, user: SignedIn, paper_id: str = Form(""), next: str = Form("/library")
) -> Response:
    p = find_paper(store, paper_id, visible=False)
    lib.unsave(store, user.id, p.rowid)
    return _back(request, next, p)


@router.post("/library/untag", dependencies=FORM)
def untag_form(request: Request, store: StoreDep, user: SignedIn, paper_id: str = Form(""), tag_id: str = Form(""),
               next: str = Form("/library")) -> Response:  # fmt: skip
    p = find_paper(store, paper_id, visible=False)
    tag = own_tag(store, user.id, parse_tag_id(tag_id))
    if tag is not None:
        lib.untag(store, user.id, p.rowid, tag.id)
    return _back(request, next, p)


@router.post("/library/not-interested", dependencies=FORM)
def not_interested_form(request: Request, store: StoreDep, user: SignedIn, paper_id: str = Form(""), action: str = Form("on"),
                        next: str = Form("/for-you")) -> Response:  # fmt: skip
    if action not in ("on", "off"):
        raise HTTPException(status_code=400, detail="Unknown action; use on or off.")
    p = find_paper(store, paper_id, visible=action == "on")
    lib.set_not_interested(store, user.id, p.rowid, action == "on")
    return _back(request, next, p)


# ---- tags ------------------------------------------------------------------------------


@router.post("/library/tags", dependencies=FORM)
def create_tag_form(request: Request, store: StoreDep, user: SignedIn, name: str = Form("")) -> Response:
    try:
        tag = lib.create_tag(store, user.id, name)
    except lib.LibraryError as exc:
        return _back(request, "/library", flash=str(exc))
    return _back(request, f"/library?tag={tag.id}", flash=f"Tag “{tag.name}” is ready: save papers into it.")


@router.post("/library/tags/{tag_id}/rename", dependencies=FORM)
def rename_tag_form(
    request: Request, store: StoreDep, user: SignedIn, tag_id: int, name: str = Form("")
) -> Response:
    own_tag(store, user.id, tag_id)
    try:
        lib.rename_tag(store, user.id, tag_id, name)
    except lib.LibraryError as exc:
        return _back(request, f"/library?tag={tag_id}", flash=str(exc))
    return _back(request, f"/library?tag={tag_id}", flash="Tag renamed.")


@router.post("/library/tags/{tag_id}/delete", dependencies=FORM)
def delete_tag_form(request: Request, store: StoreDep, user: SignedIn, tag_id: int) -> Response:
    tag = own_tag(store, user.id, tag_id)
    lib.delete_tag(store, user.id, tag_id)
    return _back(
        request,
        "/library",
        flash=f"Tag “{tag.name if tag else ''}” deleted; its papers stay in your library.",
    )


@router.post("/library/tags/{tag_id}/feed", dependencies=FORM)
def regenerate_feed_form(request: Request, store: StoreDep, user: SignedIn, tag_id: int) -> Response:
    own_tag(store, user.id, tag_id)
    lib.regenerate_feed(store, user.id, tag_id)
    return _back(
        request, f"/library?tag={tag_id}", flash="New feed address made: the old one no longer works."
    )


# ---- followed authors ------------------------------------------------------------------


@router.post("/library/follows", dependencies=FORM)
def follow_form(request: Request, store: StoreDep, user: SignedIn, name: str = Form(""), coauthor: str = Form(""),
                category: str = Form(""), next: str = Form("/library?view=following")) -> Response:  # fmt: skip
    try:
        f = lib.follow_author(store, user.id, name, coauthor=coauthor, category=category)
    except lib.LibraryError as exc:
        return _back(request, next, flash=str(exc))
    return _back(request, next, flash=f"Following {f.describe()}: their new papers appear in For you.")


@router.post("/library/follows/{follow_id}/delete", dependencies=FORM)
def unfollow_form(request: Request, store: StoreDep, user: SignedIn, follow_id: int) -> Response:
    lib.unfollow_author(store, user.id, follow_id)
    return _back(request, "/library?view=following", flash="No longer following.")


# ---- the For-you mail ------------------------------------------------------------------


@router.post("/for-you/mail", dependencies=FORM)
def foryou_mail_form(request: Request, store: StoreDep, user: SignedIn, action: str = Form("on"), period: str = Form("daily"),
                     size: str = Form("10"), tag_id: str = Form("")) -> Response:  # fmt: skip
    if action == "off":
        foryou_mail.disable(store, user)
        return _back(request, "/for-you", flash="No more For-you mails.")
    tag = own_tag(store, user.id, parse_tag_id(tag_id))
    try:
        sub = foryou_mail.enable(
            store, user, period, int(size) if size.isdigit() else -1, tag.id if tag else None
        )
    except SubscriptionError as exc:
        return _back(request, "/for-you", flash=str(exc))
    return _back(
        request, "/for-you", flash=f"You will get the top {size} by mail, {sub.period}, to {sub.email}."
    )


# ---- import and export -------------------------------------------------------------------


@router.post(
    "/library/import", dependencies=[Depends(verify_csrf), Depends(rate_limit("library-import", 20))]
)
def import_form(
    request: Request,
    store: StoreDep,
    user: SignedIn,
    file: Annotated[UploadFile | None, File()] = None,
    tag_id: str = Form(""),
    add_papers: str = Form(""),
) -> Response:
    data = read_upload(file) if file is not None else b""
    if not data:
        return _back(request, "/library?view=import", flash="Choose a file to import.")
    tag = own_tag(store, user.id, parse_tag_id(tag_id))
    report = import_library(store, user.id, data, (file.filename if file else "") or "",
                            tag_id=tag.id if tag else None, add_papers=bool(add_papers))  # fmt: skip
    if report.count("added"):
        request.app.state.search.catch_up_in_background(store)  # index the new papers
    return _library_page(request, store, user, view="import", report=report)


@router.get("/library/export.{fmt}")
def export_library(store: StoreDep, user: SignedIn, fmt: str, tag: str | None = None) -> Response:
    t = own_tag(store, user.id, parse_tag_id(tag))
    name = "paperfeed-library" + (f"-tag-{t.id}" if t else "")
    if fmt == "bib":
        return _attachment(export_bibtex(store, user.id, t.id if t else None), "application/x-bibtex; charset=utf-8",
                           f"{name}.bib")  # fmt: skip
    if fmt == "json":
        return _attachment(
            export_json(store, user.id, t.id if t else None), "application/json", f"{name}.json"
        )
    raise HTTPException(status_code=404, detail="Export as .bib or .json.")


# ---- pages -------------------------------------------------------------------------------


def _library_page(request: Request, store: Store, user: acc.User, *, tag_id: int | None = None, view: str = "papers",
                  page: int = 1, report: ImportReport | None = None) -> Response:  # fmt: skip
    tag = own_tag(store, user.id, tag_id)
    settings = request.app.state.settings
    total = lib.count_saved(store, user.id, tag_id)
    pages = max(1, math.ceil(total / PER_PAGE))
    base = "/library" + (f"?tag={tag_id}" if tag_id is not None else "")

    def page_url(n: int) -> str:
        return base + (("&" if "?" in base else "?") + f"page={n}" if n > 1 else "")

    ctx: dict[str, Any] = {
        "nav": "library", "view": view, "tag": tag, "tags": lib.list_tags(store, user.id), "total": total,
        "saved_total": lib.count_saved(store, user.id), "page": page, "pages": pages, "per_page": PER_PAGE,
        "items": lib.list_saved(store, user.id, tag_id, limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
        if view == "papers" else [],
        "negatives": lib.list_negatives(store, user.id) if view == "not-interested" else [],
        "follows": lib.list_follows(store, user.id), "report": report,
        "feed_url": feed_url(settings.base_url, settings.secret_key, tag) if tag else None,
        "here": here(request), "flash": read_flash(request),
        "page_links": [(n, page_url(n) if n else None) for n in page_window(page, pages)],
        "prev_page_url": page_url(page - 1) if page > 1 else None,
        "next_page_url": page_url(page + 1) if page < pages else None,
    }  # fmt: skip
    ctx["votes"] = vt.vote_counts(store, [p.rowid for p, _ in ctx["items"]])
    ctx["voted"] = vt.user_voted(store, user.id, [p.rowid for p, _ in ctx["items"]])
    return render(request, "library.html", ctx, status_code=400 if report and report.error else 200)


@router.get("/library", response_class=HTMLResponse)
def library_page(request: Request, store: StoreDep, user: SignedIn, tag: str | None = None, view: str = "papers",
                 page: str | None = None) -> Response:  # fmt: skip
    view = view if view in ("papers", "not-interested", "following", "import") else "papers"
    return _library_page(request, store, user, tag_id=parse_tag_id(tag), view=view, page=parse_page(page))


@router.get("/for-you", response_class=HTMLResponse)
def for_you_page(
    request: Request, store: StoreDep, user: SignedIn, searcher: SearcherDep, cache: Recommenders,
    tag: str | None = None, window: str = "week",
) -> Response:  # fmt: skip
    window = window if window in WINDOWS else "week"
    tag_id = parse_tag_id(tag)
    own_tag(store, user.id, tag_id)
    result: ForYou = for_you(store, searcher, cache, user.id, tag_id=tag_id, window=window, k=FOR_YOU_ITEMS)
    rowids = [i.paper.rowid for i in result.items]

    def url(t: int | None, w: str) -> str:
        params = {k: v for k, v in (("tag", t), ("window", w if w != "week" else None)) if v is not None}
        return "/for-you" + (f"?{urlencode(params)}" if params else "")

    ctx = {
        "nav": "foryou", "result": result, "tags": lib.list_tags(store, user.id), "window": window,
        "window_labels": WINDOW_LABELS, "tag_urls": [(None, "All tags", url(None, window))]
        + [(t.id, t.name, url(t.id, window)) for t in lib.list_tags(store, user.id)],
        "window_urls": {w: url(tag_id, w) for w in WINDOWS}, "tag_id": tag_id, "here": here(request),
        "votes": vt.vote_counts(store, rowids), "voted": vt.user_voted(store, user.id, rowids),
        "flash": read_flash(request),
        "mail": foryou_mail.current(store, user), "mail_sizes": foryou_mail.SIZES,
    }  # fmt: skip
    if ctx["mail"] is not None and ctx["mail"][1].tag_id is not None:
        ctx["mail_tag"] = lib.get_tag(store, user.id, ctx["mail"][1].tag_id)
    return render(request, "foryou.html", ctx)
