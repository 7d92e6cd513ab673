"""The application factory: routers, middleware, error handling, warm search."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.cookies import SimpleCookie
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paperfeed.config import Settings
from paperfeed.search.recommend import ModelCache
from paperfeed.store.engine import StoreUnavailable
from paperfeed.web.deps import CSRF_COOKIE, StorePool
from paperfeed.web.mailer import Mailer
from paperfeed.web.retrain import Retrainer
from paperfeed.web.searching import SearchService

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"

# No inline script or style anywhere, so the policy can forbid them: even if an
# escaping bug slipped through, injected markup could not run script.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


class SiteMiddleware:
    """Seeds the CSRF cookie and adds security headers (pure ASGI, so it costs
    microseconds instead of BaseHTTPMiddleware's extra task per request)."""

    def __init__(self, app: ASGIApp, secure_cookies: bool) -> None:
        self.app = app
        self.secure = secure_cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seed = None
        for name, value in scope.get("headers", []):
            if name == b"cookie":
                try:
                    cookie = SimpleCookie(value.decode("latin-1"))
                except Exception:  # noqa: BLE001 - a malformed cookie header is just ignored
                    continue
                if CSRF_COOKIE in cookie:
                    seed = cookie[CSRF_COOKIE].value
        new_seed = None
        if not seed or len(seed) > 100:
            new_seed = secrets.token_urlsafe(24)
        scope.setdefault("state", {})["csrf_seed"] = new_seed or seed
        path = scope.get("path", "")
        csp = CSP

        t0 = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                # server time up to the first byte, for `paperfeed bench web` and browser dev tools
                dur = (time.perf_counter() - t0) * 1000
                headers += [
                    (b"server-timing", f"app;dur={dur:.2f}".encode()),
                    (b"content-security-policy", csp.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                ]
                if not any(name == b"cache-control" for name, _ in headers):
                    headers.append((b"cache-control", _cache_policy(path, headers)))
                if self.secure:
                    # the site is served over https (base_url): browsers must never fall back to http
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                if new_seed:
                    attrs = f"{CSRF_COOKIE}={new_seed}; Path=/; HttpOnly; SameSite=Lax; Max-Age=31536000"
                    if self.secure:
                        attrs += "; Secure"
                    headers.append((b"set-cookie", attrs.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_wrapper)


def _cache_policy(path: str, headers: list[tuple[bytes, bytes]]) -> bytes:
    """Cache-Control for a response that did not choose its own.

    Static files are revalidated hourly (their ETag makes that a 304), as their URLs carry
    no version. Pages hold a per-visitor CSRF token and login state: no shared cache may
    keep them, and the browser asks again each time.
    """
    if path.startswith(("/static/", "/docs-static/")):
        return b"public, max-age=3600"
    content_type = next((v for n, v in headers if n == b"content-type"), b"")
    if content_type.startswith(b"text/html"):
        return b"private, no-cache"
    return b"no-cache"


class HeadMiddleware:
    """Answers HEAD on every GET route: the route runs as GET and its body is dropped.

    FastAPI registers GET routes without HEAD, so monitors and link checkers that
    probe with HEAD got 405 from every page, /healthz included.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_headers_only)


# Every body is a small form or JSON document, so one cap fits all but the routes listed in
# BODY_LIMITS: the library import takes a file.
MAX_BODY = 64 * 1024
BODY_LIMITS = {"/library/import": 8 * 1024 * 1024, "/api/library/import": 8 * 1024 * 1024}


def _too_large(limit: int) -> StarletteHTTPException:
    return StarletteHTTPException(413, f"The request body is too large (at most {limit // 1024} KiB).")


class BodyLimitMiddleware:
    """Refuses (413) a request body over `max_bytes` before anything parses it.

    A Content-Length over the cap is answered at once, whatever the route, without
    reading a byte of the body. A chunked body has no length, so its bytes are
    counted as they stream in and the 413 is raised from `receive`: it reaches the
    app's error handler like any HTTPException, and nothing past the cap is ever
    buffered by the form parser.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = BODY_LIMITS.get(scope.get("path", ""), self.max_bytes)
        for name, value in scope.get("headers", []):
            # (the server has already refused a Content-Length that is not a number)
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                detail = _too_large(limit).detail
                if _wants_json(Request(scope)):
                    response: Response = JSONResponse({"detail": detail}, status_code=413)
                else:
                    response = PlainTextResponse(detail, status_code=413)
                await response(scope, receive, send)
                return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _too_large(limit)
            return message

        await self.app(scope, limited_receive, send)


def _wants_json(request: Request) -> bool:
    path = request.url.path
    if path.startswith(("/api/", "/feeds/", "/export.", "/healthz", "/openapi")):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = [str(x) for x in err.get("loc", ()) if x not in ("query", "path", "body")]
        where = ".".join(loc) or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid value')}")
    return "; ".join(parts) or "Invalid request."


# Our own page around Swagger UI instead of FastAPI's: a language, landmarks, contrast
# fixes (static/docs.css) and no inline script (static/docs.js), so /docs passes axe-core
# and needs no exception to the site's CSP.
DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<title>paperfeed API</title>
<meta name="description" content="The paperfeed JSON API: papers, search, trending, feeds and exports.">
<link rel="stylesheet" href="/docs-static/swagger-ui.css">
<link rel="stylesheet" href="/static/docs.css">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
</head>
<body>
<header class="docs-top"><a href="/">paperfeed</a></header>
<main id="swagger-ui"></main>
<script src="/docs-static/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script>
</body>
</html>
"""


def _mount_docs(app: FastAPI) -> None:
    import fastapi_offline

    # fastapi-offline ships Swagger UI 5 (OpenAPI 3.1, which FastAPI emits); we use only its files
    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount("/docs-static", StaticFiles(directory=assets), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return HTMLResponse(DOCS_PAGE)


def routers() -> list[APIRouter]:
    """Every route of the site and the API (what /openapi.json documents comes from these)."""
    from paperfeed.web import (
        api,
        auth,
        export,
        feeds,
        library,
        library_api,
        library_feed,
        manage,
        pages,
        password,
        submit,
        subscriptions,
    )

    return [api.router, api.health_router, library_api.router, library_feed.router, feeds.router,
            export.router, auth.router, password.router, manage.router, pages.router, submit.router, library.router,
            subscriptions.router]  # fmt: skip


def create_app(
    data_dir: Path,
    settings: Settings | None = None,
    *,
    warm_search: bool = True,
    rate_limit_scale: float = 1.0,
) -> FastAPI:
    """The site for `data_dir`. warm_search loads the search models at start-up
    (in a background thread) so the first search is not the slow one."""
    data_dir = Path(data_dir)
    settings = settings or Settings.load(data_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if warm_search:
            app.state.search.warm_in_background()
            if settings.index_refresh_seconds > 0:
                app.state.search.follow(settings.index_refresh_seconds)
        try:
            yield
        finally:
            app.state.search.stop()
            app.state.mailer.stop()
            app.state.retrainer.stop()
            app.state.pool.close()

    app = FastAPI(
        title="paperfeed",
        description="Daily research papers, hybrid search, trending and feeds. "
        "Errors are JSON objects `{\"detail\": message}` with a 4xx status.",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.data_dir = data_dir
    app.state.pool = StorePool(data_dir, settings.database_url or None)
    app.state.rate_limit_scale = rate_limit_scale
    app.state.search = SearchService(data_dir, app.state.pool)
    app.state.mailer = Mailer(data_dir, settings)
    # models are kept in the store too: the other workers and the mail reuse them
    app.state.recommenders = ModelCache(persist=True)
    app.state.retrainer = Retrainer(app.state.pool, app.state.search, app.state.recommenders)

    secure = settings.base_url.startswith("https://")
    app.state.secure_cookies = secure
    app.add_middleware(SiteMiddleware, secure_cookies=secure)
    app.add_middleware(BodyLimitMiddleware)
    # inside HeadMiddleware, so a HEAD answer carries the length of the compressed GET body
    app.add_middleware(GZipMiddleware, minimum_size=1000)
    app.add_middleware(HeadMiddleware)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        # browsers and feed readers ask for it at the root whatever the page links
        return FileResponse(STATIC_DIR / "favicon.ico", media_type="image/x-icon",
                            headers={"Cache-Control": "public, max-age=86400"})  # fmt: skip

    _mount_docs(app)

    for router in routers():
        app.include_router(router)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else "Request failed."
        headers = getattr(exc, "headers", None)
        if _wants_json(request):
            return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=headers)
        if exc.status_code == 401:
            nxt = request.url.path
            if request.method == "GET" and request.url.query:
                nxt += "?" + request.url.query
            from urllib.parse import quote

            return RedirectResponse(f"/login?next={quote(nxt, safe='/')}", status_code=303)
        from paperfeed.web.templating import render

        titles = {404: "Not found", 403: "Not allowed", 429: "Slow down", 405: "Not allowed", 413: "Too large"}
        resp = render(
            request,
            "error.html",
            {"title": titles.get(exc.status_code, "Something is wrong"), "message": detail},
            status_code=exc.status_code,
        )
        if headers:
            resp.headers.update(headers)
        return resp

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(request: Request, exc: StoreUnavailable) -> Response:
        # the pool checks each connection it lends, so the first request after the database
        # is back is served normally: nothing to reset here
        log.warning("store unavailable: %s", exc)
        message = "The database is unreachable at the moment. Try again in a minute."
        headers = {"Retry-After": "30"}
        if _wants_json(request):
            return JSONResponse({"detail": message}, status_code=503, headers=headers)
        from paperfeed.web.templating import render

        request.state.user = None  # looking the user up needs the database
        resp = render(request, "error.html", {"title": "Temporarily unavailable", "message": message},
                      status_code=503)  # fmt: skip
        resp.headers.update(headers)
        return resp

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        message = _validation_message(exc)
        if _wants_json(request):
            return JSONResponse({"detail": message}, status_code=422)
        from paperfeed.web.templating import render

        return render(request, "error.html", {"title": "Bad request", "message": message}, status_code=422)

    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` and multi-worker serving: each worker builds
    its own app from PAPERFEED_DATA, sharing only the data directory."""
    from paperfeed.config import resolve_data_dir

    return create_app(resolve_data_dir())
