""""Submit a paper": a signed-in user adds an arXiv paper by id (OAI-PMH GetRecord), as on HF Papers."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from paperfeed.ingest.harvest import add_by_id, make_client
from paperfeed.ingest.oai import BadInput, HarvestError
from paperfeed.store import Store
from paperfeed.store.accounts import User
from paperfeed.web.deps import current_user, get_settings, get_store, rate_limit, verify_csrf
from paperfeed.web.templating import render

router = APIRouter(include_in_schema=False)
# a submission waits on arXiv: give up well before a browser or proxy would
RETRY_SECONDS = 20.0
TIMEOUT = 30.0


@router.get("/submit")
def submit_page(request: Request, user: User | None = Depends(current_user)) -> Response:
    if user is None:
        return RedirectResponse("/login?" + urlencode({"next": "/submit"}), status_code=303)
    return render(request, "submit.html", {"nav": "submit", "value": ""})


@router.post("/submit", dependencies=[Depends(verify_csrf), Depends(rate_limit("submit", 10))])
def submit_form(
    request: Request,
    arxiv_id: str = Form("", max_length=200),
    store: Store = Depends(get_store),
    user: User | None = Depends(current_user),
) -> Response:
    if user is None:
        return RedirectResponse("/login?" + urlencode({"next": "/submit"}), status_code=303)
    try:
        with make_client(get_settings(request), delay=0, retry_seconds=RETRY_SECONDS, timeout=TIMEOUT) as client:
            paper, _ = add_by_id(store, client, arxiv_id)
    except BadInput as e:
        return render(request, "submit.html", {"nav": "submit", "value": arxiv_id, "error": str(e)}, status_code=400)
    except HarvestError as e:
        return render(request, "submit.html", {"nav": "submit", "value": arxiv_id,
                                               "error": f"arXiv could not be asked right now: {e}"}, status_code=502)  # fmt: skip
    return RedirectResponse(f"/papers/{paper.id}", status_code=303)
