"""The signed-in reader's library as the paper cards need it (saved? which tags? not
interested?), loaded once per page on first use: pages that never draw a card, and visitors
who are not signed in, cost nothing."""

from __future__ import annotations

from functools import cached_property

from fastapi import Request

from paperfeed.models import Paper
from paperfeed.store import Store
from paperfeed.store import library as lib
from paperfeed.store.accounts import User


class LibraryMarks:
    def __init__(self, request: Request, user: User | None) -> None:
        self._request = request
        self.user = user

    def _with_store(self, fn):  # noqa: ANN001, ANN202 - a private helper over the request's store
        store: Store | None = getattr(self._request.state, "store", None)
        if store is not None:
            return fn(store)
        pool = self._request.app.state.pool
        store = pool.acquire()
        try:
            return fn(store)
        finally:
            pool.release(store)

    @cached_property
    def _data(self) -> tuple[lib.Marks, list[lib.Tag]]:
        if self.user is None:
            return lib.Marks(frozenset(), frozenset(), {}), []
        uid = self.user.id

        def load(store: Store) -> tuple[lib.Marks, list[lib.Tag]]:
            return lib.all_marks(store, uid), lib.list_tags(store, uid)

        return self._with_store(load)

    @property
    def tags(self) -> list[lib.Tag]:
        return self._data[1]

    def saved(self, p: Paper) -> bool:
        return p.rowid in self._data[0].saved

    def negative(self, p: Paper) -> bool:
        return p.rowid in self._data[0].negative

    def tags_of(self, p: Paper) -> list[lib.Tag]:
        ids = set(self._data[0].tags.get(p.rowid, ()))
        return [t for t in self._data[1] if t.id in ids]
