"""Jinja2 templates with autoescaping, and `render`, which every page uses so the
layout always has the user, the CSRF token and the base URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from paperfeed.latex import plain_text
from paperfeed.web.deps import csrf_token, get_settings, load_user
from paperfeed.web.library_marks import LibraryMarks
from paperfeed.web.math import render_tex

TEMPLATE_DIR = Path(__file__).parent / "templates"

# autoescape for every template name (html, atom, txt): a paper title is
# untrusted text wherever it ends up
_env = Environment(
    loader=FileSystemLoader(str(TEMPLATE_DIR)),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates = Jinja2Templates(env=_env)


_env.filters["tex"] = render_tex
_env.filters["plain"] = plain_text  # where no markup may go (<title>, attributes, hidden labels)


def render(request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200) -> HTMLResponse:
    """Render `name` with `user`, `csrf_token`, `base_url` and `request` added to `context`."""
    ctx = dict(context or {})
    ctx.setdefault("user", load_user(request))
    ctx.setdefault("csrf_token", csrf_token(request))
    ctx.setdefault("base_url", get_settings(request).base_url)
    # the save / tag buttons of paper cards; loaded only if a card asks
    ctx.setdefault("library", LibraryMarks(request, ctx["user"]))
    return templates.TemplateResponse(request, name, ctx, status_code=status_code)
