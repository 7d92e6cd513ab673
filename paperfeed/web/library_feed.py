"""The per-tag "For you" Atom feed, behind a secret URL.

Feed readers carry no session, so the URL itself is the credential: a token signed with the
site's secret key over (tag id, feed generation). Nothing secret is stored; regenerating the
address bumps the tag's generation, which makes every older token fail.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from itsdangerous import BadData, URLSafeSerializer

from paperfeed.search.foryou import for_you
from paperfeed.store import library as lib
from paperfeed.web.deps import Recommenders, SearcherDep, SettingsDep, StoreDep
from paperfeed.web.feeds import atom

router = APIRouter(prefix="/feeds", tags=["feeds"])

FEED_ITEMS = 30


def _feed_signer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt="paperfeed.library-feed.v1")


def feed_token(secret: str, tag: lib.Tag) -> str:
    return _feed_signer(secret).dumps([tag.id, tag.feed_gen])


def feed_url(base_url: str, secret: str, tag: lib.Tag) -> str:
    return f"{base_url}/feeds/library/{feed_token(secret, tag)}.atom"


@router.get("/library/{token}.atom", response_class=Response,
                 responses={200: {"content": {"application/atom+xml": {}}}, 404: {"description": "Unknown or revoked"}})  # fmt: skip
def tag_feed(request: Request, token: str, store: StoreDep, settings: SettingsDep, searcher: SearcherDep,
             cache: Recommenders) -> Response:  # fmt: skip
    """ "For you" of one tag of a reader's library, this week, behind a secret URL (made on the
    library page, where it can be replaced by a new one)."""
    gone = HTTPException(
        status_code=404, detail="No such feed (its address may have been replaced by a new one)."
    )
    try:
        payload = _feed_signer(settings.secret_key).loads(token)
    except BadData:
        raise gone from None
    if not (isinstance(payload, list) and len(payload) == 2 and all(type(x) is int for x in payload)):
        raise gone
    found = lib.tag_by_id_any_user(store, payload[0])
    if found is None or found[1].feed_gen != payload[1]:
        raise gone
    owner, tag = found
    result = for_you(store, searcher, cache, owner, tag_id=tag.id, window="week", k=FEED_ITEMS, explain=False)
    return atom(request, f"For you: {tag.name}", f"/feeds/library/{quote(token)}.atom", "/for-you?" + urlencode({"tag": tag.id}),
                [i.paper for i in result.items], subtitle="Papers of the week like the ones in this tag, on paperfeed")  # fmt: skip
