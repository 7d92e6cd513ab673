"""Subscribe form, confirmation and unsubscribe links, and the subscriptions page.

The confirmation and unsubscribe links are signed tokens (paperfeed.digest.tokens):
they work without logging in, and the token is what proves the request came from
the mail, so these two POSTs need no CSRF token. That is required for
unsubscribing: mail clients send the RFC 8058 one-click POST
(`List-Unsubscribe=One-Click`) with no cookie and no form of ours. GET only shows
a button, because mail scanners fetch every link in a mail and must not confirm
or cancel anything by doing so.

Subscriptions are keyed by address, and anyone may type any address (into this
form, or into the sign-up form). So nothing here tells a visitor what an address
is subscribed to: the subscribe form answers the same whether or not the address
already has that subscription, and /account/subscriptions lists an address's
subscriptions only to an account that proved it reads that address
(paperfeed.web.auth, email verification).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from paperfeed.addresses import address_key
from paperfeed.config import Settings
from paperfeed.digest import SubscriptionError, TokenError
from paperfeed.digest import confirm as do_confirm
from paperfeed.digest import subscribe as do_subscribe
from paperfeed.digest import unsubscribe as do_unsubscribe
from paperfeed.digest.subscribing import check_confirmable, queue_confirmation
from paperfeed.digest.tokens import read_confirm_token, read_unsubscribe_token
from paperfeed.store import Store
from paperfeed.store import outbox as ob
from paperfeed.store import subscription_pauses as pauses
from paperfeed.store import subscriptions as subs
from paperfeed.store.accounts import User
from paperfeed.web.deps import current_user, get_settings, get_store, rate_limit, require_user, verify_csrf
from paperfeed.web.templating import render

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

# Served by this router (the site's CSP allows same-origin stylesheets, not inline
# style), so the subscription pages need nothing from the shared static folder.
_CSS = """
.subscribe fieldset { border: 1px solid #d4d4d8; border-radius: 8px; padding: .75rem 1rem; margin: 0; }
.subscribe legend { font-weight: 600; padding: 0 .25rem; }
.subscribe label.choice { display: flex; flex-direction: row; gap: .5rem; align-items: center; font-weight: 600; }
.subscribe label.choice input { width: auto; margin: 0; }
.subscribe select { display: block; margin-top: .25rem; padding: .35rem; }
ul.subscriptions { list-style: none; padding: 0; }
ul.subscriptions li { border-top: 1px solid #e4e4e7; padding: .75rem 0; }
ul.subscriptions form.inline { display: inline-flex; gap: .35rem; align-items: center; margin-right: .5rem; }
"""


@router.get("/subscriptions.css")
def stylesheet() -> Response:
    return Response(_CSS, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})


def _message(request: Request, title: str, message: str, status_code: int = 200, **extra: object) -> Response:
    return render(request, "subscriptions/message.html", {"title": title, "message": message, **extra},
                  status_code=status_code)  # fmt: skip


def _form(request: Request, values: dict[str, str], error: str | None = None, status_code: int = 200) -> Response:
    return render(request, "subscriptions/subscribe.html", {"v": values, "error": error}, status_code=status_code)


@router.get("/subscribe", response_class=HTMLResponse)
def subscribe_page(request: Request, q: str = "", user: User | None = Depends(current_user)) -> Response:
    values = {
        "email": user.email if user else "",
        "kind": "alert" if q else "trending",
        "period": "daily",
        "query": q[:500],
        "every": "daily",
        "category": "",
        "author": "",
    }
    return _form(request, values)


@router.post("/subscribe", dependencies=[Depends(verify_csrf), Depends(rate_limit("subscribe", 10))])
def subscribe_post(
    request: Request,
    email: str = Form(""),
    kind: str = Form("trending"),
    period: str = Form("daily"),
    query: str = Form(""),
    every: str = Form("daily"),
    category: str = Form(""),
    author: str = Form(""),
    store: Store = Depends(get_store),
    settings: Settings = Depends(get_settings),
    user: User | None = Depends(current_user),
) -> Response:
    values = {"email": email, "kind": kind, "period": period, "query": query, "every": every,
              "category": category, "author": author}  # fmt: skip
    # echo back at most what the fields allow, so a huge post is not reflected whole
    shown = {k: v[:600] for k, v in values.items()}
    try:
        if kind == "trending":
            result = do_subscribe(store, settings, email, trending=period)
        elif kind == "alert":
            result = do_subscribe(
                store, settings, email, query=query, every=every, filters={"category": category, "author": author}
            )
        else:
            raise SubscriptionError("Choose the trending digest or a search alert.")
    except SubscriptionError as exc:
        return _form(request, shown, str(exc), status_code=400)
    if result.confirm_queued:
        request.app.state.mailer.send_outbox()
    sub = result.subscription
    if _proven_owner(user, sub.email_key):
        if sub.status == "active":
            return _message(request, "Already subscribed", f"{sub.email} already receives: {sub.describe()}.",
                            manage=True)  # fmt: skip
        if not result.confirm_queued:
            return _message(request, "Check your inbox", result.message, detail=sub.describe())
    # Anyone else gets one answer whatever the state, or the form would tell them
    # what a stranger's address is subscribed to.
    return _message(
        request,
        "Check your inbox",
        f"Unless {sub.email} already receives this, a confirmation link is on its way there "
        "(at most one every few minutes). Nothing is sent until it is clicked.",
        detail=sub.describe(),
    )


@router.get("/subscriptions/confirm/{token}", response_class=HTMLResponse)
def confirm_page(request: Request, token: str, store: Store = Depends(get_store),
                 settings: Settings = Depends(get_settings)) -> Response:  # fmt: skip
    try:
        sub = check_confirmable(store, *read_confirm_token(settings.secret_key, token))
    except TokenError as exc:
        return _message(request, "Link not valid", str(exc), status_code=400)
    return render(request, "subscriptions/confirm.html", {"sub": sub, "token": token})


@router.post("/subscriptions/confirm/{token}")
def confirm_post(request: Request, token: str, store: Store = Depends(get_store),
                 settings: Settings = Depends(get_settings)) -> Response:  # fmt: skip
    try:
        sub = do_confirm(store, settings, token)
    except TokenError as exc:
        return _message(request, "Link not valid", str(exc), status_code=400)
    return _message(request, "Subscription confirmed", f"{sub.email} will receive: {sub.describe()}.",
                    manage=True)  # fmt: skip


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_page(request: Request, token: str, store: Store = Depends(get_store),
                     settings: Settings = Depends(get_settings)) -> Response:  # fmt: skip
    try:
        sub_id, _ = read_unsubscribe_token(settings.secret_key, token)
    except TokenError as exc:
        return _message(request, "Link not valid", str(exc), status_code=400)
    sub = subs.get_subscription(store, sub_id)
    if sub is None:
        return _message(request, "Link not valid", "This subscription no longer exists.", status_code=404)
    return render(request, "subscriptions/unsubscribe.html", {"sub": sub, "token": token})


@router.post("/unsubscribe/{token}")
def unsubscribe_post(request: Request, token: str, store: Store = Depends(get_store),
                     settings: Settings = Depends(get_settings)) -> Response:  # fmt: skip
    """The button on the page above and the RFC 8058 one-click POST from mail clients."""
    try:
        sub = do_unsubscribe(store, settings, token)
    except TokenError as exc:
        return _message(request, "Link not valid", str(exc), status_code=400)
    return _message(request, "Unsubscribed", f"{sub.email} will no longer receive: {sub.describe()}.",
                    resubscribe=True)  # fmt: skip


# ---- the signed-in user's page ---------------------------------------------


def _proven_owner(user: User | None, email_key: str) -> bool:
    """The signed-in account has proven it reads this address."""
    return user is not None and user.email_verified and address_key(user.email) == email_key


# A path integer past SQLite's 64-bit range made the query raise OverflowError (a 500):
# bounded, it is a 422 like any other malformed path.
SubId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _own(store: Store, user: User, sub_id: int) -> subs.Subscription:
    sub = subs.get_subscription(store, sub_id)
    # an unverified account gets the same 404 as for a stranger's subscription,
    # so it cannot probe which ids belong to its (claimed) address
    if sub is None or not _proven_owner(user, sub.email_key):
        raise HTTPException(status_code=404, detail="No such subscription for your address.")
    return sub


@router.get("/account/subscriptions", response_class=HTMLResponse)
def account_page(request: Request, user: User = Depends(require_user), store: Store = Depends(get_store),
                 flash: str = "") -> Response:  # fmt: skip
    flash = flash[:200] if flash in _FLASHES else ""
    if not user.email_verified:
        return render(request, "subscriptions/account.html", {"verified": False, "rows": [], "email": user.email,
                                                               "flash": flash})  # fmt: skip
    rows = []
    mine = subs.list_subscriptions(store, email=user.email)
    paused = pauses.paused_ids(store, [s.id for s in mine])
    for s in mine:
        history = ob.list_rows(store, subscription_id=s.id, limit=10_000)
        last = next((r for r in reversed(history) if r.kind != "confirm" and r.status == "sent"), None)
        rows.append({"sub": s, "paused": s.id in paused,
                     "last_sent": last.sent_at[:10] if last and last.sent_at else None,
                     "sent": sum(1 for r in history if r.kind != "confirm" and r.status == "sent")})  # fmt: skip
    ctx = {"verified": True, "rows": rows, "suppressed": subs.suppression(store, user.email), "email": user.email,
           "flash": flash}  # fmt: skip
    return render(request, "subscriptions/account.html", ctx)


_FLASHES = {"Unsubscribed.", "Updated.", "Confirmation mail sent: click its link to restart this subscription.",
            "That change would duplicate another of your subscriptions.",
            "A confirmation mail was sent a few minutes ago: click its link.", "Address confirmed.",
            "Confirmation link sent: open it from your inbox while logged in.",
            "A confirmation link was sent a few minutes ago: click it.", "Password changed.",
            "Paused: nothing is sent until you resume."}  # fmt: skip


def _back(flash: str) -> Response:
    from urllib.parse import quote

    return RedirectResponse(f"/account/subscriptions?flash={quote(flash)}", status_code=303)


@router.post("/account/subscriptions/{sub_id}/unsubscribe", dependencies=[Depends(verify_csrf)])
def account_unsubscribe(sub_id: SubId, user: User = Depends(require_user), store: Store = Depends(get_store)) -> Response:
    sub = _own(store, user, sub_id)
    subs.unsubscribe(store, sub.id, _now())
    return _back("Unsubscribed.")


@router.post("/account/subscriptions/{sub_id}/period", dependencies=[Depends(verify_csrf)])
def account_period(sub_id: SubId, period: str = Form(""), user: User = Depends(require_user),
                   store: Store = Depends(get_store)) -> Response:  # fmt: skip
    sub = _own(store, user, sub_id)
    if period not in ("daily", "weekly"):
        raise HTTPException(status_code=400, detail="How often must be daily or weekly.")
    if period != sub.period and not subs.set_period(store, sub.id, period, _now()):
        return _back("That change would duplicate another of your subscriptions.")
    return _back("Updated.")


@router.post("/account/subscriptions/{sub_id}/pause", dependencies=[Depends(verify_csrf)])
def account_pause(sub_id: SubId, user: User = Depends(require_user), store: Store = Depends(get_store)) -> Response:
    sub = _own(store, user, sub_id)
    if sub.status == "active":
        pauses.pause(store, sub.id, _now())
    return _back("Paused: nothing is sent until you resume.")


@router.post("/account/subscriptions/{sub_id}/resume", dependencies=[Depends(verify_csrf)])
def account_resume(request: Request, sub_id: SubId, user: User = Depends(require_user),
                   store: Store = Depends(get_store), settings: Settings = Depends(get_settings)) -> Response:  # fmt: skip
    sub = _own(store, user, sub_id)
    pauses.resume(store, sub.id)  # paused from a mail's manage link
    if sub.status == "active":
        return _back("Updated.")
    if sub.status == "unsubscribed":
        sub, _ = subs.upsert_subscription(store, sub.email, sub.kind, sub.period, sub.query, sub.filters, _now())
    if sub.status == "pending":
        if not queue_confirmation(store, settings, sub, dt.datetime.now(dt.UTC)):
            return _back("A confirmation mail was sent a few minutes ago: click its link.")
        request.app.state.mailer.send_outbox()
    return _back("Confirmation mail sent: click its link to restart this subscription.")


def _now() -> str:
    return subs.now_iso()
