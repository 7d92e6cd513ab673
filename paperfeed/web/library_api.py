"""The JSON API of the library, tags, "not interested", followed authors and recommendations.

The same rules as the site: the session cookie says who is asking (401 without one), and every
request that changes something carries the CSRF token in the X-CSRF-Token header (403 without
it); GET /api/session hands a signed-in client its token. A tag id of another user is a 404,
exactly like an id that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from paperfeed.ingest.library_import import import_library
from paperfeed.search.foryou import for_you
from paperfeed.store import library as lib
from paperfeed.web.api import ERRORS, ErrorOut, PaperId, PaperOut, paper_out
from paperfeed.web.deps import (
    MaybeUser,
    Recommenders,
    SearcherDep,
    SettingsDep,
    SignedIn,
    StoreDep,
    csrf_token,
    rate_limit,
    verify_csrf,
)
from paperfeed.web.library import find_paper, own_tag
from paperfeed.web.library_feed import feed_url
from paperfeed.web.library_io import export_bibtex, export_json, read_upload
from paperfeed.web.retrain import retrain_on_change

# a change to the library trains its models in the background (paperfeed.web.retrain)
router = APIRouter(prefix="/api", tags=["library"], dependencies=[Depends(retrain_on_change)])

CHANGES = [Depends(verify_csrf), Depends(rate_limit("library", 240))]
AUTH_ERRORS = {
    **ERRORS,
    401: {"model": ErrorOut, "description": "Not signed in"},
    403: {"model": ErrorOut, "description": "Missing or invalid CSRF token (X-CSRF-Token header)"},
}
TagId = Annotated[int, Path(ge=1, le=2**62, description="The id of one of your tags")]


class SessionOut(BaseModel):
    signed_in: bool
    email: str | None = None
    csrf_token: str = Field(
        description="Send it as the X-CSRF-Token header with every POST, PUT, PATCH and DELETE"
    )


class TagIn(BaseModel):
    name: str = Field(min_length=1, max_length=lib.MAX_TAG_NAME)


class TagOut(BaseModel):
    id: int
    name: str
    papers: int
    feed_url: str = Field(description="Atom feed of this tag's recommendations; secret, replaceable")


class SaveIn(BaseModel):
    tags: list[Annotated[int, Field(ge=1, le=2**62)]] = Field(
        default_factory=list, max_length=lib.MAX_TAGS, description="Ids of your tags to add"
    )


class SavedPaperOut(BaseModel):
    paper: PaperOut
    saved_at: str
    tags: list[int]


class LibraryOut(BaseModel):
    tag: int | None
    total: int
    limit: int
    offset: int
    tags: list[TagOut]
    papers: list[SavedPaperOut]


class PaperListOut(BaseModel):
    papers: list[PaperOut]


class FollowIn(BaseModel):
    name: str = Field(min_length=1, max_length=lib.MAX_NAME, description="The author's full name")
    coauthor: str = Field(
        "", max_length=lib.MAX_NAME, description="Only papers that also list this co-author"
    )
    category: str = Field("", max_length=40, description="Only papers in this category (cs.LG)")


class FollowOut(BaseModel):
    id: int
    name: str
    coauthor: str | None
    category: str | None


class NearestOut(BaseModel):
    id: str
    title: str
    url: str


class RecommendationOut(BaseModel):
    paper: PaperOut
    score: float | None = Field(
        description="The model's score; null for a followed author's paper it did not rank"
    )
    nearest: NearestOut | None = Field(description="The saved paper it is most like")
    shared_terms: list[str] = Field(description="Main terms it shares with that paper")
    followed_author: str | None = Field(None, description="Set when it is here because you follow its author")


class RecommendationsOut(BaseModel):
    window: Literal["today", "week", "month"]
    since: str | None
    until: str | None
    tag: int | None
    trained_on: int = Field(description="Saved papers the model learned from")
    note: str | None
    items: list[RecommendationOut]


class ImportEntryOut(BaseModel):
    index: int
    label: str
    status: Literal["matched", "added", "duplicate", "unmatched", "error"]
    message: str
    paper_id: str | None
    matched_by: str | None


class ImportOut(BaseModel):
    format: str | None
    error: str | None
    saved: int
    counts: dict[str, int]
    entries: list[ImportEntryOut]


def _tag_out(request: Request, t: lib.Tag) -> TagOut:
    s = request.app.state.settings
    return TagOut(id=t.id, name=t.name, papers=t.count, feed_url=feed_url(s.base_url, s.secret_key, t))


def _library_error(exc: lib.LibraryError) -> Response:
    return Response(
        ErrorOut(detail=str(exc)).model_dump_json(), status_code=400, media_type="application/json"
    )


@router.get(
    "/session", response_model=SessionOut, tags=["session"], summary="Who is signed in, and the CSRF token"
)
def api_session(request: Request, user: MaybeUser) -> SessionOut:
    return SessionOut(
        signed_in=user is not None, email=user.email if user else None, csrf_token=csrf_token(request)
    )


@router.get("/library", response_model=LibraryOut, responses=AUTH_ERRORS, summary="Your saved papers")
def api_library(
    request: Request, store: StoreDep, user: SignedIn,
    tag: Annotated[int | None, Query(ge=1, le=2**62, description="Only this tag's papers")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=lib.MAX_LIBRARY)] = 0,
) -> LibraryOut:  # fmt: skip
    own_tag(store, user.id, tag)
    rows = lib.list_saved(store, user.id, tag, limit=limit, offset=offset)
    marks = lib.marks(store, user.id, [p.rowid for p, _ in rows])
    return LibraryOut(
        tag=tag, total=lib.count_saved(store, user.id, tag), limit=limit, offset=offset,
        tags=[_tag_out(request, t) for t in lib.list_tags(store, user.id)],
        papers=[SavedPaperOut(paper=paper_out(request, p), saved_at=when, tags=list(marks.tags.get(p.rowid, ())))
                for p, when in rows],
    )  # fmt: skip


@router.put("/library/papers/{paper_id}", response_model=SavedPaperOut, responses=AUTH_ERRORS,
            dependencies=CHANGES, summary="Save a paper (and add tags to it)")  # fmt: skip
def api_save(request: Request, paper_id: PaperId, store: StoreDep, user: SignedIn, body: SaveIn | None = None
             ) -> SavedPaperOut | Response:  # fmt: skip
    p = find_paper(store, paper_id)
    tags = (body or SaveIn()).tags
    for t in tags:
        own_tag(store, user.id, t)
    try:
        lib.save(store, user.id, [p.rowid], tags)
    except lib.LibraryError as exc:
        return _library_error(exc)
    marks = lib.marks(store, user.id, [p.rowid])
    return SavedPaperOut(paper=paper_out(request, p), saved_at=lib.saved_at(store, user.id, p.rowid) or "",
                         tags=list(marks.tags.get(p.rowid, ())))  # fmt: skip


@router.delete("/library/papers/{paper_id}", status_code=204, responses=AUTH_ERRORS, dependencies=CHANGES,
               summary="Remove a paper from your library (and from every tag)")  # fmt: skip
def api_unsave(paper_id: PaperId, store: StoreDep, user: SignedIn) -> Response:
    lib.unsave(store, user.id, find_paper(store, paper_id, visible=False).rowid)
    return Response(status_code=204)


@router.delete("/library/papers/{paper_id}/tags/{tag_id}", status_code=204, responses=AUTH_ERRORS,
               dependencies=CHANGES, summary="Take one tag off a saved paper")  # fmt: skip
def api_untag(paper_id: PaperId, tag_id: TagId, store: StoreDep, user: SignedIn) -> Response:
    own_tag(store, user.id, tag_id)
    lib.untag(store, user.id, find_paper(store, paper_id, visible=False).rowid, tag_id)
    return Response(status_code=204)


@router.get("/library/tags", response_model=list[TagOut], responses=AUTH_ERRORS, summary="Your tags")
def api_tags(request: Request, store: StoreDep, user: SignedIn) -> list[TagOut]:
    return [_tag_out(request, t) for t in lib.list_tags(store, user.id)]


@router.post("/library/tags", response_model=TagOut, status_code=201, responses=AUTH_ERRORS, dependencies=CHANGES,
             summary="Create a tag (the same name again returns the existing tag)")  # fmt: skip
def api_create_tag(request: Request, body: TagIn, store: StoreDep, user: SignedIn) -> TagOut | Response:
    try:
        return _tag_out(request, lib.create_tag(store, user.id, body.name))
    except lib.LibraryError as exc:
        return _library_error(exc)


@router.patch("/library/tags/{tag_id}", response_model=TagOut, responses=AUTH_ERRORS, dependencies=CHANGES,
              summary="Rename a tag")  # fmt: skip
def api_rename_tag(
    request: Request, tag_id: TagId, body: TagIn, store: StoreDep, user: SignedIn
) -> TagOut | Response:
    own_tag(store, user.id, tag_id)
    try:
        return _tag_out(request, lib.rename_tag(store, user.id, tag_id, body.name))
    except lib.LibraryError as exc:
        return _library_error(exc)


@router.delete("/library/tags/{tag_id}", status_code=204, responses=AUTH_ERRORS, dependencies=CHANGES,
               summary="Delete a tag (its papers stay saved)")  # fmt: skip
def api_delete_tag(tag_id: TagId, store: StoreDep, user: SignedIn) -> Response:
    own_tag(store, user.id, tag_id)
    lib.delete_tag(store, user.id, tag_id)
    return Response(status_code=204)


@router.post("/library/tags/{tag_id}/feed", response_model=TagOut, responses=AUTH_ERRORS, dependencies=CHANGES,
             summary="Replace the tag's secret feed address (the old one stops working)")  # fmt: skip
def api_regenerate_feed(request: Request, tag_id: TagId, store: StoreDep, user: SignedIn) -> TagOut:
    own_tag(store, user.id, tag_id)
    tag = lib.regenerate_feed(store, user.id, tag_id)
    assert tag is not None
    return _tag_out(request, tag)


@router.get("/library/not-interested", response_model=PaperListOut, responses=AUTH_ERRORS,
            summary="Papers you marked not interested")  # fmt: skip
def api_negatives(request: Request, store: StoreDep, user: SignedIn) -> PaperListOut:
    return PaperListOut(
        papers=[paper_out(request, p) for p in lib.list_negatives(store, user.id, limit=lib.MAX_LIBRARY)]
    )


@router.put("/library/not-interested/{paper_id}", status_code=204, responses=AUTH_ERRORS, dependencies=CHANGES,
            summary="Mark a paper not interested (it leaves your library if it was saved)")  # fmt: skip
def api_not_interested(paper_id: PaperId, store: StoreDep, user: SignedIn) -> Response:
    lib.set_not_interested(store, user.id, find_paper(store, paper_id).rowid, True)
    return Response(status_code=204)


@router.delete("/library/not-interested/{paper_id}", status_code=204, responses=AUTH_ERRORS, dependencies=CHANGES,
               summary="Undo not interested")  # fmt: skip
def api_undo_not_interested(paper_id: PaperId, store: StoreDep, user: SignedIn) -> Response:
    lib.set_not_interested(store, user.id, find_paper(store, paper_id, visible=False).rowid, False)
    return Response(status_code=204)


def _follow_out(f: lib.Follow) -> FollowOut:
    return FollowOut(id=f.id, name=f.name, coauthor=f.coauthor or None, category=f.category or None)


@router.get(
    "/library/follows", response_model=list[FollowOut], responses=AUTH_ERRORS, summary="Authors you follow"
)
def api_follows(store: StoreDep, user: SignedIn) -> list[FollowOut]:
    return [_follow_out(f) for f in lib.list_follows(store, user.id)]


@router.post("/library/follows", response_model=FollowOut, status_code=201, responses=AUTH_ERRORS,
             dependencies=CHANGES, summary="Follow an author, optionally narrowed by a co-author or a category")  # fmt: skip
def api_follow(body: FollowIn, store: StoreDep, user: SignedIn) -> FollowOut | Response:
    try:
        return _follow_out(
            lib.follow_author(store, user.id, body.name, coauthor=body.coauthor, category=body.category)
        )
    except lib.LibraryError as exc:
        return _library_error(exc)


@router.delete("/library/follows/{follow_id}", status_code=204, responses=AUTH_ERRORS, dependencies=CHANGES,
               summary="Unfollow")  # fmt: skip
def api_unfollow(
    follow_id: Annotated[int, Path(ge=1, le=2**62)], store: StoreDep, user: SignedIn
) -> Response:
    lib.unfollow_author(store, user.id, follow_id)
    return Response(status_code=204)


@router.get("/recommendations", response_model=RecommendationsOut, responses=AUTH_ERRORS,
            summary="For you: the window's papers ranked by your library, with why")  # fmt: skip
def api_recommendations(
    request: Request, store: StoreDep, user: SignedIn, searcher: SearcherDep, cache: Recommenders,
    tag: Annotated[int | None, Query(ge=1, le=2**62, description="Learn from this tag only")] = None,
    window: Literal["today", "week", "month"] = "week",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> RecommendationsOut:  # fmt: skip
    own_tag(store, user.id, tag)
    r = for_you(store, searcher, cache, user.id, tag_id=tag, window=window, k=limit)
    base = request.app.state.settings.base_url
    return RecommendationsOut(
        window=window, since=r.since, until=r.until, tag=tag, trained_on=r.trained_on, note=r.note,
        items=[RecommendationOut(
            paper=paper_out(request, i.paper), score=i.score, shared_terms=list(i.shared_terms),
            nearest=NearestOut(id=i.nearest.id, title=i.nearest.title, url=f"{base}/papers/{i.nearest.id}")
            if i.nearest else None, followed_author=i.follow.describe() if i.follow else None,
        ) for i in r.items],
    )  # fmt: skip


@router.post("/library/import", response_model=ImportOut, responses={**AUTH_ERRORS, 413: {"model": ErrorOut}},
             dependencies=[Depends(verify_csrf), Depends(rate_limit("library-import", 20))],
             summary="Import BibTeX, RIS or CSL-JSON into your library; a report entry by entry")  # fmt: skip
def api_import(
    request: Request, store: StoreDep, user: SignedIn, file: Annotated[UploadFile, File()],
    tag: Annotated[int | None, Form(ge=1, le=2**62)] = None,
    add_papers: Annotated[bool, Form(description="Add unmatched entries with title and abstract as papers")] = False,
    format: Annotated[Literal["bibtex", "ris", "csl-json"] | None, Form(description="Default: detected")] = None,
) -> ImportOut:  # fmt: skip
    own_tag(store, user.id, tag)
    report = import_library(store, user.id, read_upload(file), file.filename or "", fmt=format, tag_id=tag,
                            add_papers=add_papers)  # fmt: skip
    if report.count("added"):
        request.app.state.search.catch_up_in_background(store)
    return ImportOut.model_validate(report.to_dict())


@router.get("/library/export", response_class=Response, responses={**AUTH_ERRORS, 200: {"content": {
    "application/json": {}, "application/x-bibtex": {}}}}, summary="Your library as JSON or BibTeX")  # fmt: skip
def api_export(
    store: StoreDep, user: SignedIn, settings: SettingsDep,
    format: Literal["json", "bibtex"] = "json",
    tag: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> Response:  # fmt: skip
    own_tag(store, user.id, tag)
    if format == "bibtex":
        return Response(export_bibtex(store, user.id, tag), media_type="application/x-bibtex; charset=utf-8")
    return Response(export_json(store, user.id, tag), media_type="application/json")
