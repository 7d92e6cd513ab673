"""The page a subscriber reaches from "Manage your subscriptions" in any mail, no account needed.

The link carries a signed token (paperfeed.digest.tokens.manage_token) naming one
subscription and a hash of its address; the page lists and changes every subscription
of that address: pause or resume, daily or weekly, unsubscribe one or all. Holding the
link proves what holding the unsubscribe link proves (the mail reached that mailbox),
and it gives no more: subscribing again still needs the double opt-in click. GET only
shows the page (mail scanners fetch links); the buttons are POSTs with the site's
CSRF token, as on any other form.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from paperfeed.config import Settings
from paperfeed.digest import TokenError
from paperfeed.digest.subscribing import queue_confirmation
from paperfeed.digest.tokens import read_manage_token, same_address
from paperfeed.store import Store
from paperfeed.store import subscription_pauses as pauses
from paperfeed.store import subscriptions as subs
from paperfeed.web.deps import get_settings, get_store, rate_limit, verify_csrf
from paperfeed.web.subscriptions import SubId
from paperfeed.web.templating import render

router = APIRouter(include_in_schema=False)

FLASHES = {
    "paused": "Paused: nothing is sent until you resume.",
    "resumed": "Resumed.",
    "updated": "Updated.",
    "duplicate": "That change would duplicate another of your subscriptions.",
    "unsubscribed": "Unsubscribed.",
    "all": "Unsubscribed from everything: no more mail is sent to this address.",
    "confirm": "Confirmation mail sent: click its link to restart this subscription.",
    "wait": "A confirmation mail was sent a few minutes ago: click its link.",
}


def _owner(store: Store, settings: Settings, token: str) -> subs.Subscription:
    """The subscription the link was mailed for, checked against its address; TokenError else."""
    sub_id, digest = read_manage_token(settings.secret_key, token)
    sub = subs.get_subscription(store, sub_id)
    if sub is None or not same_address(sub.email_key, digest):
        raise TokenError("This link is for a subscription that no longer exists.")
    return sub


def _invalid(request: Request, exc: TokenError) -> Response:
    return render(request, "subscriptions/message.html", {"title": "Link not valid", "message": str(exc)},
                  status_code=400)  # fmt: skip


@router.get("/manage/{token}", response_class=HTMLResponse)
def manage_page(request: Request, token: str, flash: str = "", store: Store = Depends(get_store),
                settings: Settings = Depends(get_settings)) -> Response:  # fmt: skip
    try:
        owner = _owner(store, settings, token)
    except TokenError as exc:
        return _invalid(request, exc)
    rows = subs.list_subscriptions(store, email=owner.email)
    paused = pauses.paused_ids(store, [s.id for s in rows])
    ctx = {"email": owner.email, "token": token, "flash": FLASHES.get(flash, ""),
           "rows": [{"sub": s, "paused": s.id in paused} for s in rows],
           "any_left": any(s.status != "unsubscribed" for s in rows)}  # fmt: skip
    return render(request, "subscriptions/manage.html", ctx)


def _back(token: str, flash: str) -> Response:
    return RedirectResponse(f"/manage/{quote(token, safe='')}?flash={flash}", status_code=303)


def _now() -> str:
    return subs.now_iso()


_GUARDS = [Depends(verify_csrf), Depends(rate_limit("manage", 30))]


@router.post("/manage/{token}/unsubscribe-all", dependencies=_GUARDS)
def unsubscribe_all(request: Request, token: str, store: Store = Depends(get_store),
                    settings: Settings = Depends(get_settings)) -> Response:  # fmt: skip
    try:
        owner = _owner(store, settings, token)
    except TokenError as exc:
        return _invalid(request, exc)
    for s in subs.list_subscriptions(store, email=owner.email):
        subs.unsubscribe(store, s.id, _now())
    return _back(token, "all")


@router.post("/manage/{token}/{sub_id}/{action}", dependencies=_GUARDS)
def change(request: Request, token: str, sub_id: SubId, action: str, period: str = Form(""),
           store: Store = Depends(get_store), settings: Settings = Depends(get_settings)) -> Response:  # fmt: skip
    try:
        owner = _owner(store, settings, token)
    except TokenError as exc:
        return _invalid(request, exc)
    sub = subs.get_subscription(store, sub_id)
    # the link manages its own address's subscriptions only; any other id is unknown here
    if sub is None or sub.email_key != owner.email_key:
        raise HTTPException(status_code=404, detail="No such subscription for this address.")
    if action == "pause":
        pauses.pause(store, sub.id, _now())
        return _back(token, "paused")
    if action == "unsubscribe":
        subs.unsubscribe(store, sub.id, _now())
        return _back(token, "unsubscribed")
    if action == "period":
        if period not in ("daily", "weekly"):
            raise HTTPException(status_code=400, detail="How often must be daily or weekly.")
        if period != sub.period and not subs.set_period(store, sub.id, period, _now()):
            return _back(token, "duplicate")
        return _back(token, "updated")
    if action == "resume":
        pauses.resume(store, sub.id)
        if sub.status == "unsubscribed":
            # subscribing again is a new opt-in: the link proved the mailbox once, not its wish now
            sub, _ = subs.upsert_subscription(store, sub.email, sub.kind, sub.period, sub.query, sub.filters, _now())
        if sub.status == "pending":
            if not queue_confirmation(store, settings, sub, dt.datetime.now(dt.UTC)):
                return _back(token, "wait")
            request.app.state.mailer.send_outbox()
            return _back(token, "confirm")
        return _back(token, "resumed")
    raise HTTPException(status_code=404, detail="No such action.")
