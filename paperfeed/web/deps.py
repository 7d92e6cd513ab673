"""FastAPI dependencies shared by every router: store, settings, user, CSRF, rate limits.

Nothing here keeps state that workers must share: sessions and rate-limit hits
are rows in the database and the CSRF secret is the data directory's key, so any
number of workers serve the same browser, and a client spread over them still
gets one budget.
"""

from __future__ import annotations

import contextlib
import hmac
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from itsdangerous import BadSignature, URLSafeSerializer

from paperfeed.config import Settings
from paperfeed.search.recommend import ModelCache
from paperfeed.search.searcher import Searcher
from paperfeed.store import Store, open_store, ratelimits
from paperfeed.store.accounts import User, session_user

SESSION_COOKIE = "pf_session"
CSRF_COOKIE = "pf_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class StorePool:
    """Stores lent out one request at a time.

    A sqlite3 connection must not be used by two requests at once, and FastAPI may
    run a request's dependency and its endpoint on different threadpool threads,
    so a per-thread Store is not enough: each request borrows a Store for its
    whole life and gives it back.
    """

    def __init__(self, data_dir: Path, database_url: str | None = None, max_idle: int = 16) -> None:
        self.data_dir = data_dir
        self.database_url = database_url  # resolved once at start-up, like every setting
        self._idle: queue.SimpleQueue[Store] = queue.SimpleQueue()
        self._max_idle = max_idle
        self._lock = threading.Lock()
        self._all: list[Store] = []

    def acquire(self) -> Store:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            store = open_store(self.data_dir, database_url=self.database_url)
            with self._lock:
                self._all.append(store)
            return store

    def release(self, store: Store) -> None:
        store.rollback()
        if not store.healthy():
            # a connection the database server dropped: the next request opens a fresh one
            with self._lock:
                if store in self._all:
                    self._all.remove(store)
            store.close()
            return
        if self._idle.qsize() >= self._max_idle:
            with self._lock:
                if store in self._all:
                    self._all.remove(store)
            store.close()
            return
        self._idle.put(store)

    def close(self) -> None:
        with self._lock:
            for s in self._all:
                with contextlib.suppress(Exception):  # closing at shutdown must not raise
                    s.close()
            self._all.clear()


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> Iterator[Store]:
    """A Store for this request only (see StorePool)."""
    pool: StorePool = request.app.state.pool
    store = pool.acquire()
    request.state.store = store
    try:
        yield store
    finally:
        request.state.store = None
        pool.release(store)


def load_user(request: Request) -> User | None:
    """The signed-in user, looked up once per request; usable outside dependencies."""
    if "user" in request.state._state:
        return request.state.user
    token = request.cookies.get(SESSION_COOKIE)
    user = None
    if token:
        store = getattr(request.state, "store", None)
        if store is not None:
            user = session_user(store, token)
        else:
            pool: StorePool = request.app.state.pool
            store = pool.acquire()
            try:
                user = session_user(store, token)
            finally:
                pool.release(store)
    request.state.user = user
    return user


def current_user(request: Request, store: Store = Depends(get_store)) -> User | None:
    return load_user(request)


def require_user(user: User | None = Depends(current_user)) -> User:
    if user is None:
        raise HTTPException(status_code=401, detail="Log in to do this.")
    return user


def require_admin(user: User = Depends(require_user)) -> User:
    if not user.is_admin:
        raise HTTPException(status_code=403, detail="Only an admin can do this.")
    return user


# ---- CSRF ------------------------------------------------------------------
# Double-submit with a signed token: the browser holds a random value in an
# HttpOnly cookie, and every form carries that value signed with the site key.
# Another site can make the browser send the cookie but cannot read it or forge
# the signature, so it cannot produce a matching form field.


def _csrf_signer(request: Request) -> URLSafeSerializer:
    return URLSafeSerializer(get_settings(request).secret_key, salt="paperfeed-csrf")


def csrf_token(request: Request) -> str:
    seed = request.scope.get("state", {}).get("csrf_seed") or request.cookies.get(CSRF_COOKIE) or ""
    return _csrf_signer(request).dumps(seed)


def csrf_valid(request: Request, token: str | None) -> bool:
    seed = request.cookies.get(CSRF_COOKIE)
    if not seed or not token or len(token) > 500:
        return False
    try:
        value = _csrf_signer(request).loads(token)
    except BadSignature:
        return False
    return isinstance(value, str) and hmac.compare_digest(value, seed)


async def verify_csrf(request: Request) -> None:
    """Refuse (403) a state-changing request without a valid CSRF token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    token = request.headers.get(CSRF_HEADER)
    if token is None:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()  # Starlette caches it, so the endpoint's Form() still works
            value = form.get(CSRF_FIELD)
            token = value if isinstance(value, str) else None
    if not csrf_valid(request, token):
        raise HTTPException(
            status_code=403,
            detail="This form has expired or did not come from this site. Reload the page and try again.",
        )


# ---- rate limiting -----------------------------------------------------------


def client_ip(request: Request) -> str:
    # uvicorn rewrites client from X-Forwarded-For only when the peer is one of the
    # proxies in the forwarded_allow_ips setting (`serve` trusts none by default),
    # so a client cannot pick its own bucket by sending that header.
    return request.client.host if request.client else "unknown"


def scaled(request: Request, limit: int) -> int:
    """A limit times the app's rate_limit_scale (tests relax them), at least 1."""
    return max(1, int(limit * getattr(request.app.state, "rate_limit_scale", 1.0)))


def too_many(wait: float, what: str = "Too many attempts") -> HTTPException:
    seconds = int(wait) + 1
    when = f"{seconds} seconds" if seconds < 120 else f"{seconds // 60 + 1} minutes"
    return HTTPException(status_code=429, detail=f"{what}; try again in {when}.",
                         headers={"Retry-After": str(seconds)})  # fmt: skip


def rate_limit(bucket: str, per_minute: int) -> Callable[..., None]:
    """Dependency factory: at most `per_minute` requests a minute per client IP, else 429.
    Counted in the store, so all workers share the budget."""

    def dependency(request: Request, store: Store = Depends(get_store)) -> None:
        wait = ratelimits.hit(store, bucket, client_ip(request), scaled(request, per_minute))
        if wait is not None:
            raise too_many(wait)

    return dependency


# ---- the library and "For you" (issue 13) ----------------------------------------


def get_recommenders(request: Request) -> ModelCache:
    """The process's cache of trained recommenders (keyed by user, tag and library version)."""
    return request.app.state.recommenders


def get_searcher(request: Request) -> Searcher | None:
    """The warm Searcher, or None while the indexes cannot be opened."""
    return request.app.state.search.ensure_loaded()


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MaybeUser = Annotated[User | None, Depends(current_user)]
SignedIn = Annotated[User, Depends(require_user)]
Recommenders = Annotated[ModelCache, Depends(get_recommenders)]
SearcherDep = Annotated[Searcher | None, Depends(get_searcher)]
