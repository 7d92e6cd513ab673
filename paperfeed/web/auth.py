"""Sign-up, log-in, log-out (server-side sessions, see paperfeed.store.accounts),
and proving the account's email address.

Sign-up accepts any address, so an account proves nothing about the mailbox
until its holder follows the signed link mailed there. Subscriptions are keyed
by address, so only a verified account sees them (paperfeed.web.subscriptions).
The link verifies the account only for someone signed in to it: the mailbox
owner clicking a link they did not ask for must not hand their subscriptions to
whoever registered their address. Someone who is not signed in is offered the
alternative instead: the mailbox owner may take the account over by choosing a
new password, which ends every other session (a password reset, allowed only
while the address is unverified).
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from paperfeed.addresses import address_key
from paperfeed.config import Settings
from paperfeed.models import Paper
from paperfeed.store import Store, ratelimits
from paperfeed.store import accounts as acc
from paperfeed.store import votes as vt
from paperfeed.web.deps import (
    SESSION_COOKIE,
    current_user,
    get_settings,
    get_store,
    rate_limit,
    require_user,
    scaled,
    too_many,
    verify_csrf,
)
from paperfeed.web.ids import lookup_paper
from paperfeed.web.pages import safe_next
from paperfeed.web.templating import render

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)


def _pending_vote(store: Store, paper_id: str) -> Paper | None:
    """The paper a logged-out visitor clicked the vote button of, if it can be voted for."""
    p = lookup_paper(store, paper_id)[0] if paper_id else None
    return p if p is not None and not p.hidden else None


def _login_response(request: Request, store: Store, user_id: int, target: str, vote: str = "") -> Response:
    # the vote that sent the visitor here counts once they are in: no second click needed
    paper = _pending_vote(store, vote)
    if paper is not None:
        vt.vote(store, user_id, paper.rowid)
        target += "" if "#" in target else f"#p-{paper.id}"
    token = acc.create_session(store, user_id)
    resp = RedirectResponse(target, status_code=303)
    resp.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=acc.SESSION_DAYS * 86400,
        httponly=True,
        samesite="lax",
        secure=request.app.state.secure_cookies,
        path="/",
    )
    return resp


def _form(request: Request, mode: str, next_: str, email: str = "", error: str | None = None,
          status_code: int = 200, vote: str = "") -> Response:  # fmt: skip
    ctx = {"mode": mode, "next": safe_next(next_), "email": email, "error": error}
    if vote:
        store = request.app.state.pool.acquire()
        try:
            ctx["vote_paper"] = _pending_vote(store, vote)
        finally:
            request.app.state.pool.release(store)
    return render(request, "login.html", ctx, status_code=status_code)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/", vote: str = "") -> Response:
    return _form(request, "login", next, vote=vote)


@router.get("/signup", response_class=HTMLResponse)
def signup_page(request: Request, next: str = "/", vote: str = "") -> Response:
    return _form(request, "signup", next, vote=vote)


# Failed log-ins per account, whatever address they come from: a password-guessing
# loop spread over many client addresses still gets this many tries per window.
ACCOUNT_FAILURES = 10
ACCOUNT_WINDOW = 15 * 60.0


@router.post("/login", dependencies=[Depends(verify_csrf), Depends(rate_limit("login", 20))])
def login(
    request: Request,
    email: str = Form(""),
    password: str = Form(""),
    next: str = Form("/"),
    vote: str = Form(""),
    store: Store = Depends(get_store),
) -> Response:
    key = address_key(email)
    wait = ratelimits.check(store, "login-failed", key, scaled(request, ACCOUNT_FAILURES), ACCOUNT_WINDOW)
    if wait is not None:
        raise too_many(wait, "Too many failed log-ins for this account")
    user = acc.authenticate(store, email, password)
    if user is None:
        ratelimits.note(store, "login-failed", key)
        return _form(request, "login", next, email[:254], "Wrong email or password.", status_code=400, vote=vote)
    return _login_response(request, store, user.id, safe_next(next), vote)


@router.post("/signup", dependencies=[Depends(verify_csrf), Depends(rate_limit("signup", 10))])
def signup(
    request: Request,
    email: str = Form(""),
    password: str = Form(""),
    next: str = Form("/"),
    vote: str = Form(""),
    store: Store = Depends(get_store),
) -> Response:
    try:
        user = acc.create_user(store, email, password)
    except acc.AccountError as exc:
        return _form(request, "signup", next, email[:254], str(exc), status_code=400, vote=vote)
    if acc.note_verify_sent(store, user.id):
        request.app.state.mailer.send_verification(user.id)
    return _login_response(request, store, user.id, safe_next(next), vote)


@router.post("/logout", dependencies=[Depends(verify_csrf)])
def logout(request: Request, store: Store = Depends(get_store)) -> Response:
    acc.delete_session(store, request.cookies.get(SESSION_COOKIE))
    request.state.user = None
    resp = RedirectResponse("/", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


# ---- proving the address ----------------------------------------------------


def _verify_page(request: Request, ctx: dict, status_code: int = 200) -> Response:
    return render(request, "verify.html", ctx, status_code=status_code)


def _token_user(store: Store, settings: Settings, token: str) -> acc.User:
    """The account a verification link is for; TokenError when it is not valid
    for that account's current address."""
    from paperfeed.digest.tokens import TokenError, read_verify_email_token, same_address

    user_id, digest = read_verify_email_token(settings.secret_key, token)
    user = acc.get_user(store, user_id)
    if user is None or not same_address(address_key(user.email), digest):
        raise TokenError("This link is for an account that no longer exists.")
    return user


@router.get("/account/verify/{token}", response_class=HTMLResponse)
def verify_page(request: Request, token: str, store: Store = Depends(get_store),
                settings: Settings = Depends(get_settings),
                user: acc.User | None = Depends(current_user)) -> Response:  # fmt: skip
    """Shows a button only: mail scanners fetch links, and must not verify anything."""
    from paperfeed.digest.tokens import TokenError

    try:
        owner = _token_user(store, settings, token)
    except TokenError as exc:
        return _verify_page(request, {"state": "invalid", "message": str(exc)}, status_code=400)
    if owner.email_verified:
        state = "done"
    elif user is not None and user.id == owner.id:
        state = "confirm"
    else:
        state = "claim"
    return _verify_page(request, {"state": state, "email": owner.email, "token": token,
                                  "login_url": f"/login?next={quote(f'/account/verify/{token}', safe='/')}",
                                  "signed_in_other": user is not None and user.id != owner.id})  # fmt: skip


@router.post("/account/verify/{token}", dependencies=[Depends(verify_csrf)])
def verify_post(request: Request, token: str, store: Store = Depends(get_store),
                settings: Settings = Depends(get_settings), user: acc.User = Depends(require_user)) -> Response:  # fmt: skip
    from paperfeed.digest.tokens import TokenError

    try:
        owner = _token_user(store, settings, token)
    except TokenError as exc:
        return _verify_page(request, {"state": "invalid", "message": str(exc)}, status_code=400)
    if owner.id != user.id:
        return _verify_page(request, {"state": "invalid", "message": f"This link is for the account of {owner.email}; "
                                      "log out and open it again."}, status_code=403)  # fmt: skip
    acc.mark_email_verified(store, user.id)
    return RedirectResponse(f"/account/subscriptions?flash={quote('Address confirmed.')}", status_code=303)


@router.post("/account/verify/{token}/claim",
             dependencies=[Depends(verify_csrf), Depends(rate_limit("login", 20))])  # fmt: skip
def verify_claim(request: Request, token: str, password: str = Form(""), store: Store = Depends(get_store),
                 settings: Settings = Depends(get_settings)) -> Response:  # fmt: skip
    from paperfeed.digest.tokens import TokenError

    try:
        owner = _token_user(store, settings, token)
    except TokenError as exc:
        return _verify_page(request, {"state": "invalid", "message": str(exc)}, status_code=400)
    try:
        user = acc.claim_unverified(store, owner.id, password)
    except acc.AccountError as exc:
        ctx = {"state": "done" if owner.email_verified else "claim", "email": owner.email, "token": token,
               "error": str(exc), "login_url": f"/login?next={quote(f'/account/verify/{token}', safe='/')}"}  # fmt: skip
        return _verify_page(request, ctx, status_code=400)
    request.state.user = None
    return _login_response(request, store, user.id, f"/account/subscriptions?flash={quote('Address confirmed.')}")


@router.post("/account/verify", dependencies=[Depends(verify_csrf), Depends(rate_limit("verify", 10))])
def verify_resend(request: Request, store: Store = Depends(get_store),
                  user: acc.User = Depends(require_user)) -> Response:  # fmt: skip
    if user.email_verified:
        flash = "Address confirmed."
    elif acc.note_verify_sent(store, user.id):
        request.app.state.mailer.send_verification(user.id)
        flash = "Confirmation link sent: open it from your inbox while logged in."
    else:
        flash = "A confirmation link was sent a few minutes ago: click it."
    return RedirectResponse(f"/account/subscriptions?flash={quote(flash)}", status_code=303)
