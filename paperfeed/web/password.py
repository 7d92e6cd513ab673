"""Password reset by mail: ask with an address, get a single-use link, choose a new password.

The request form answers the same words whether or not an account has the address,
and the mail is sent by the mailer thread after the answer, so neither the page nor
its timing tells a visitor which addresses have accounts. The link's token is random
and stored only as a hash (paperfeed.store.password_resets); opening it (GET) only
shows the form, since mail scanners fetch links. Setting the password ends every
session of the account, then signs in the browser that did it.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from paperfeed.addresses import address_key
from paperfeed.store import Store, ratelimits
from paperfeed.store import accounts as acc
from paperfeed.store import password_resets as resets
from paperfeed.web.auth import _login_response as login_response
from paperfeed.web.deps import get_store, rate_limit, verify_csrf
from paperfeed.web.templating import render

router = APIRouter(include_in_schema=False)

# Reset mails per address per hour, whoever asks: the form cannot be used to flood a
# mailbox. Not scaled by rate_limit_scale: it bounds mail to a person, not load.
MAILS_PER_ADDRESS = 3
MAIL_WINDOW = 3600.0
CHANGED = "Password changed."


@router.get("/password/forgot", response_class=HTMLResponse)
def forgot_page(request: Request) -> Response:
    return render(request, "password/forgot.html", {"email": "", "sent": False})


@router.post("/password/forgot", dependencies=[Depends(verify_csrf), Depends(rate_limit("password-forgot", 5))])
def forgot_post(request: Request, email: str = Form(""), store: Store = Depends(get_store)) -> Response:
    email = email.strip()[:254]
    user = acc.get_user_by_email(store, email) if email else None
    # counted for every address, known or not, so the work done does not depend on it
    allowed = ratelimits.hit(store, "password-mail", address_key(email), MAILS_PER_ADDRESS, MAIL_WINDOW) is None
    if user is not None and allowed:
        token = resets.create_reset(store, user.id)
        request.app.state.mailer.send_password_reset(user.email, token)
    return render(request, "password/forgot.html", {"email": email, "sent": True})


def _reset_form(request: Request, token: str, error: str | None = None, status_code: int = 200) -> Response:
    return render(request, "password/reset.html", {"token": token, "error": error, "valid": True},
                  status_code=status_code)  # fmt: skip


def _invalid(request: Request) -> Response:
    return render(request, "password/reset.html", {"valid": False}, status_code=400)


@router.get("/password/reset/{token}", response_class=HTMLResponse)
def reset_page(request: Request, token: str, store: Store = Depends(get_store)) -> Response:
    if resets.reset_user(store, token) is None:
        return _invalid(request)
    return _reset_form(request, token)


@router.post("/password/reset/{token}", dependencies=[Depends(verify_csrf), Depends(rate_limit("login", 20))])
def reset_post(request: Request, token: str, password: str = Form(""), password2: str = Form(""),
               store: Store = Depends(get_store)) -> Response:  # fmt: skip
    if resets.reset_user(store, token) is None:
        return _invalid(request)
    if password != password2:
        return _reset_form(request, token, "The two passwords differ.", status_code=400)
    try:
        user = resets.use_reset(store, token, password)
    except acc.AccountError as exc:
        return _reset_form(request, token, str(exc), status_code=400)
    request.state.user = None
    # the account page is where a signed-in user lands; it shows the flash
    return login_response(request, store, user.id, f"/account/subscriptions?flash={quote(CHANGED)}")
