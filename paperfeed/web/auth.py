"""Sign-up, log-in and log-out (server-side sessions, see paperfeed.store.accounts)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from paperfeed.store import Store
from paperfeed.store import accounts as acc
from paperfeed.web.deps import SESSION_COOKIE, get_store, rate_limit, verify_csrf
from paperfeed.web.pages import safe_next
from paperfeed.web.templating import render

router = APIRouter(include_in_schema=False)


def _login_response(request: Request, store: Store, user_id: int, target: str) -> Response:
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
          status_code: int = 200) -> Response:  # fmt: skip
    ctx = {"mode": mode, "next": safe_next(next_), "email": email, "error": error}
    return render(request, "login.html", ctx, status_code=status_code)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> Response:
    return _form(request, "login", next)


@router.get("/signup", response_class=HTMLResponse)
def signup_page(request: Request, next: str = "/") -> Response:
    return _form(request, "signup", next)


@router.post("/login", dependencies=[Depends(verify_csrf), Depends(rate_limit("login", 20))])
def login(
    request: Request,
    email: str = Form(""),
    password: str = Form(""),
    next: str = Form("/"),
    store: Store = Depends(get_store),
) -> Response:
    user = acc.authenticate(store, email, password)
    if user is None:
        return _form(request, "login", next, email[:254], "Wrong email or password.", status_code=400)
    return _login_response(request, store, user.id, safe_next(next))


@router.post("/signup", dependencies=[Depends(verify_csrf), Depends(rate_limit("signup", 10))])
def signup(
    request: Request,
    email: str = Form(""),
    password: str = Form(""),
    next: str = Form("/"),
    store: Store = Depends(get_store),
) -> Response:
    try:
        user = acc.create_user(store, email, password)
    except acc.AccountError as exc:
        return _form(request, "signup", next, email[:254], str(exc), status_code=400)
    return _login_response(request, store, user.id, safe_next(next))


@router.post("/logout", dependencies=[Depends(verify_csrf)])
def logout(request: Request, store: Store = Depends(get_store)) -> Response:
    acc.delete_session(store, request.cookies.get(SESSION_COOKIE))
    request.state.user = None
    resp = RedirectResponse("/", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp
