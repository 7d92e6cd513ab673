"""Models are trained when a library changes (issue 13), not when they are next needed: a
request that changed the signed-in user's library (any save, unsave, tag, "not interested",
follow or import: they all move library_state.version) hands the user to one background thread,
which trains the whole library's model and the model of the tag their mail ranks by, and keeps
them in the store (ModelCache(persist=True)). The next page view, feed or mail, in this process
or any other, then only scores. A user already waiting is not queued twice; a failure is logged
and the model is trained on its next use instead.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any

from fastapi import Request

from paperfeed.search.foryou import train_for
from paperfeed.store import foryou_mail
from paperfeed.store import library as lib
from paperfeed.web.deps import MaybeUser, StoreDep

log = logging.getLogger(__name__)


class Retrainer:
    def __init__(self, pool: Any, search: Any, cache: Any) -> None:
        self.pool, self.search, self.cache = pool, search, cache
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._pending: set[int] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, user_id: int) -> None:
        with self._lock:
            if user_id in self._pending:
                return
            self._pending.add(user_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="retrain", daemon=True)
                self._thread.start()
        self._queue.put(user_id)

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            user_id = self._queue.get()
            if user_id is None:
                return
            with self._lock:
                self._pending.discard(user_id)
            try:
                self.train_user(user_id)
            except Exception:  # noqa: BLE001 - the model is trained on its next use instead
                log.exception("background retrain of user %s failed", user_id)

    def train_user(self, user_id: int) -> None:
        searcher = self.search.ensure_loaded()
        if searcher is None:
            return
        store = self.pool.acquire()
        try:
            opts = foryou_mail.for_user(store, user_id)
            for tag_id in dict.fromkeys([None, opts.tag_id if opts else None]):
                train_for(store, searcher, self.cache, user_id, tag_id)
        finally:
            self.pool.release(store)


def retrain_on_change(request: Request, store: StoreDep, user: MaybeUser) -> Iterator[None]:
    """Router dependency: after a request that changed the signed-in user's library, queue the
    user for a background retrain (the store and user are the request's own: dependencies are
    resolved once per request)."""
    if user is None or request.method in ("GET", "HEAD"):
        yield
        return
    before = _version(store, user.id)
    yield
    after = _version(store, user.id)
    if after is not None and after != before:
        request.app.state.retrainer.submit(user.id)


def _version(store: Any, user_id: int) -> str | None:
    try:
        return lib.library_version(store, user_id)
    except Exception:  # noqa: BLE001 - a failed request must not fail here too
        return None
