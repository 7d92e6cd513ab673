"""One data directory's open indexes: opening them, and reopening them when a catch-up (here
or in another process) has written to them, so the searcher above only ranks."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paperfeed.index.lexical import LexicalIndex
from paperfeed.index.sync import (
    LEXICAL_DIR,
    PASSAGES_DIR,
    VECTORS_DIR,
    IndexState,
    embedder_for,
    index_dir,
    open_vectors,
    sync,
)
from paperfeed.store import Store

if TYPE_CHECKING:  # imported by open_vectors only when a vector index exists
    from paperfeed.index.vectors import VectorIndex

log = logging.getLogger(__name__)


class IndexHandle:
    """The lexical index, the vector indexes and the embedder that reads queries into vectors.

    `on_reopen(embedder_changed)` is called whenever the indexes are reopened, so whoever caches
    rankings or query vectors of them can forget those.
    """

    def __init__(self, data_dir: Path, *, embedder: Any = None, auto_sync: bool = True,
                 on_reopen: Callable[[bool], None] | None = None) -> None:  # fmt: skip
        self.data_dir = Path(data_dir)
        self.root = index_dir(self.data_dir)
        self.auto_sync = auto_sync
        self._on_reopen = on_reopen
        self._embedder = embedder
        self._embedder_given = embedder is not None
        self._lock = threading.RLock()
        self._sync_lock = threading.Lock()
        self.seen: tuple[int, int] = (-1, -1)  # (lex_seq, vec_seq) the open indexes reflect
        self.lexical: LexicalIndex | None = None
        self.vectors: VectorIndex | None = None
        self.passages: VectorIndex | None = None  # vectors of the windows of long texts (see index.sync)
        self.reopen()

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            self._embedder = embedder_for(self.data_dir)
        return self._embedder

    def state(self) -> tuple[int, int]:
        """(lex_seq, vec_seq) as the indexes on disk have them."""
        if not (self.root / "state.sqlite").exists():
            return (0, 0)
        st = IndexState(self.root)
        try:
            return (st.get_int("lex_seq"), st.get_int("vec_seq"))
        finally:
            st.close()

    def reopen(self) -> None:
        """Open what is not open yet, and reload what changed on disk since it was opened."""
        with self._lock:
            seen = self.state()
            embedder_changed = False
            if self.lexical is None:
                try:
                    self.lexical = LexicalIndex(self.root / LEXICAL_DIR)
                except ValueError as exc:
                    if "schema" not in str(exc).lower():
                        raise
                    # Written by another version of paperfeed: the next catch-up (`refresh`, or
                    # `paperfeed index`) rebuilds it; until then this handle is not ready.
                    log.warning("the lexical index has an older schema and will be rebuilt: %s", exc)
                    seen = (-1, seen[1])
            elif seen[0] != self.seen[0]:
                self.lexical.reload()
            if self.vectors is None or seen[1] != self.seen[1]:
                if not self._embedder_given and self._embedder is not None:
                    # a rebuild may have switched backends: ask again
                    before = self._embedder.name
                    self._embedder = embedder_for(self.data_dir)
                    embedder_changed = self._embedder.name != before
                vdir, pdir = self.root / VECTORS_DIR, self.root / PASSAGES_DIR
                self.vectors = (
                    open_vectors(vdir, self.embedder) if vdir.exists() else None
                )
                self.passages = (
                    open_vectors(pdir, self.embedder) if self.vectors is not None and pdir.exists() else None
                )
            self.seen = seen
            if self._on_reopen is not None:
                self._on_reopen(embedder_changed)

    def ready(self) -> bool:
        return self.lexical is not None and len(self.lexical) > 0

    def refresh(self, store: Store, *, wait: bool = False) -> None:
        """Catch the indexes up with `store` if it changed since we last looked."""
        try:
            max_seq = store.max_seq()
        except Exception:  # noqa: BLE001 - a store that cannot answer: search what we have
            return
        if max_seq <= min(self.seen) and self.seen[0] >= 0:
            return
        if self.auto_sync and self._sync_lock.acquire(blocking=wait):
            try:
                sync(store, self.data_dir, embedder=self._embedder, wait=wait)
            except Exception as exc:  # noqa: BLE001 - e.g. a read-only store; still serve
                log.warning("index catch-up failed, searching the indexes as they are: %s", exc)
            finally:
                self._sync_lock.release()
        if self.state() != self.seen:
            self.reopen()
