"""The site's view of search: one warm Searcher per process, plus safe snippets.

The search package (paperfeed.search) owns ranking; this module only holds its Searcher warm,
turns its hits into what pages need, and falls back to a plain word match while the indexes are
not available, so the site still answers (and /healthz says the index is not ready).
"""

from __future__ import annotations

import html
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from paperfeed.index import sync
from paperfeed.index.damage import IndexDamaged
from paperfeed.latex import plain_text
from paperfeed.models import Paper
from paperfeed.search import Filters, Hit, Searcher, open_searcher, parse_query
from paperfeed.search.query import check_query
from paperfeed.search.rec_features import corpus_features, features_held
from paperfeed.search.similar import similar_papers
from paperfeed.search.snippets import snippet
from paperfeed.store import Store
from paperfeed.store.engine import StoreUnavailable
from paperfeed.store.papers import substring_search

log = logging.getLogger(__name__)

RETRY_SECONDS = 60.0
_MARK_SPLIT = re.compile(r"(</?mark>)", re.IGNORECASE)
# the fallback matches at most this many words of a query by substring (it scans the table)
FALLBACK_WORDS = 10


@dataclass
class SearchPage:
    """One page of results as the site shows it; each hit's snippet and title_html are Markup."""

    query: str
    hits: list[Hit]
    total: int | None
    limit: int
    offset: int
    engine: str
    notes: list[str] = field(default_factory=list)

    @property
    def has_more(self) -> bool:
        if self.total is not None:
            return self.offset + len(self.hits) < self.total
        return len(self.hits) >= self.limit


def safe_snippet(text: str) -> Markup:
    """Keep only <mark> tags from a snippet; everything else becomes text.

    Unescaping before escaping makes this right whether or not the searcher
    already escaped the text, so a title with markup can never become markup.
    """
    out = []
    for part in _MARK_SPLIT.split(text or ""):
        low = part.lower()
        if low in ("<mark>", "</mark>"):
            out.append(low)
        else:
            out.append(str(escape(html.unescape(part))))
    marked = "".join(out)
    # balance marks so a truncated snippet cannot leave one open
    opened = marked.count("<mark>") - marked.count("</mark>")
    if opened > 0:
        marked += "</mark>" * opened
    return Markup(marked)


def _shown(hit: Hit) -> Hit:
    """`hit` with its snippet and title as Markup the templates can print as they are."""
    return Hit(paper=hit.paper, score=hit.score, rank=hit.rank,
               snippet=safe_snippet(hit.snippet or str(escape(plain_text(hit.paper.abstract)[:320]))),
               title_html=safe_snippet(hit.title_html) if hit.title_html else "")  # fmt: skip


class SearchService:
    """The process's Searcher, opened without catching up inside requests.

    Catching the indexes up with the store embeds every new paper: after
    `ingest --no-index` of 3,000 papers, the first search ran that catch-up
    inside its request for 267 s. Here a request only notices that the store is
    ahead and starts the catch-up on a background thread (one at a time); it is
    answered from what is indexed already, or by the substring fallback while
    the index is empty.
    """

    def __init__(self, data_dir: Path, pool: Any) -> None:
        self.data_dir = data_dir
        self.pool = pool
        self._searcher: Searcher | None = None
        self._lock = threading.Lock()
        self._loaded = False
        self.load_error: str | None = None
        self.load_seconds: float | None = None
        self._tried_at = 0.0
        self._catch_up_lock = threading.Lock()
        self._indexed_seq = -1  # the store's max seq when the last catch-up started
        self._catch_up_failed_at = 0.0
        self.caught_up = threading.Event()  # set after the first catch-up (tests wait on it)
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self._threads_lock = threading.Lock()

    def _start(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        with self._threads_lock:  # with `stop`'s: a thread is either waited for or never started
            if self._closing.is_set():
                return
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def background_threads(self) -> list[threading.Thread]:
        """The threads this service started that are still running (warm-up, catch-ups, the
        index follower)."""
        with self._threads_lock:
            return [t for t in self._threads if t.is_alive()]

    def stop(self, timeout: float = 10.0) -> None:
        """At shutdown, before the store pool closes: start no more catch-ups and wait up to
        `timeout` seconds for the running ones, so none of them reaches for a closed pool or a
        stopped database server. One still embedding after that is left to end with the
        process: what it has written is crash-safe, and the next start catches up the rest."""
        deadline = time.monotonic() + timeout
        with self._threads_lock:
            self._closing.set()
            threads = list(self._threads)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in threads):
            log.info("index catch-up still running at shutdown; the next start finishes it")

    # ---- loading -----------------------------------------------------------

    def warm_in_background(self) -> None:
        self._start(self._warm, "search-warmup")

    def _warm(self) -> None:
        self.ensure_loaded()
        if not self._closing.is_set():
            self._catch_up()

    def follow(self, interval: float) -> threading.Event:
        """Look at the store every `interval` seconds and catch the indexes up with what other
        processes or nodes added (index_refresh_seconds). Ends with `stop`."""

        def loop() -> None:
            while not self._closing.wait(interval):
                try:
                    store = self.pool.acquire()
                except StoreUnavailable as exc:
                    log.warning("index refresh skipped: %s", exc)
                    continue
                try:
                    self.catch_up_in_background(store)
                except StoreUnavailable as exc:
                    log.warning("index refresh skipped: %s", exc)
                finally:
                    self.pool.release(store)

        self._start(loop, "index-follow")

    def catch_up_in_background(self, store: Store) -> None:
        """Start a catch-up if the store has papers the indexes have not seen (cheap to call)."""
        if self._closing.is_set() or store.max_seq() <= self._indexed_seq or self._catch_up_lock.locked():
            return
        if time.monotonic() - self._catch_up_failed_at < RETRY_SECONDS:
            return
        self._start(self._catch_up, "search-catch-up")

    def _catch_up(self) -> None:
        if not self._catch_up_lock.acquire(blocking=False):
            return
        try:
            store = self.pool.acquire()
            try:
                seq = store.max_seq()
                searcher = self._searcher
                report = sync(store, self.data_dir, embedder=searcher.embedder if searcher else None, wait=False)
                if not report.skipped_busy:  # else another process is catching up: look again later
                    self._indexed_seq = seq
                if searcher is not None:
                    searcher.refresh(store)  # reopen what the catch-up wrote
                    self._prepare_features(searcher, store)
            finally:
                self.pool.release(store)
        except Exception as exc:  # noqa: BLE001 - the site keeps serving what is indexed
            log.warning("index catch-up failed, searching the indexes as they are: %s", exc)
            self._catch_up_failed_at = time.monotonic()
        finally:
            self._catch_up_lock.release()
            self.caught_up.set()

    def _prepare_features(self, searcher: Searcher, store: Store) -> None:
        """Bring the corpus features ("Similar papers", and the recommender) up to date here, off
        the request path: built cold they take ~11 s at 100k papers (minutes at millions), which
        the first paper page or "For you" after a harvest would otherwise wait for. After a
        restart, or in a second worker, this opens the saved features instead (milliseconds)."""
        try:
            t0 = time.perf_counter()
            n = len(corpus_features(searcher, store))
            log.info("corpus features up to date: %d papers in %.1f s", n, time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 - a For-you request builds them itself then
            log.warning("corpus features not prepared: %s", exc)

    def ensure_loaded(self) -> Searcher | None:
        if self._loaded and (self._searcher is not None or time.monotonic() - self._tried_at < RETRY_SECONDS):
            return self._searcher
        with self._lock:
            if self._loaded and (self._searcher is not None or time.monotonic() - self._tried_at < RETRY_SECONDS):
                return self._searcher
            # a failed load is retried now and then: the index may be built after the site started
            self._tried_at = time.monotonic()
            t0 = time.perf_counter()
            try:
                self._searcher = self._open()
                self.load_error = None
            except Exception as exc:  # noqa: BLE001 - the site must keep serving without search
                log.warning("search is not available, using the substring fallback: %s", exc)
                self.load_error = f"{type(exc).__name__}: {exc}"
                self._searcher = None
            self.load_seconds = time.perf_counter() - t0
            self._loaded = True
            return self._searcher

    def _open(self) -> Searcher:
        store = self.pool.acquire()
        try:
            # requests never catch up themselves (see the class docstring)
            return open_searcher(self.data_dir, store, auto_sync=False)
        finally:
            self.pool.release(store)

    @staticmethod
    def _ready(searcher: Searcher | None) -> bool:
        return searcher is not None and searcher.ready()

    def status(self) -> dict[str, Any]:
        searcher = self._searcher
        ready = self._ready(searcher)
        info: dict[str, Any] = {"loaded": self._loaded, "engine": "hybrid" if ready else "fallback", "ready": ready}
        # similar papers need the dense (vector) index, which may lag the lexical one
        info["dense"] = searcher is not None and searcher.vectors is not None
        info["for_you_papers"] = features_held(self.data_dir)  # None until prepared after start-up
        if self.load_error:
            info["error"] = self.load_error
        return info

    # ---- querying ------------------------------------------------------------

    def search(
        self,
        store: Store,
        query: str,
        *,
        limit: int = 20,
        offset: int = 0,
        since: str | None = None,
        until: str | None = None,
        category: str | None = None,
        author: str | None = None,
    ) -> SearchPage:
        """Raises QueryError (shown to the user, a 400 in the API) for a query or filter that
        cannot be run."""
        query = check_query(query)
        searcher = self.ensure_loaded()
        self.catch_up_in_background(store)
        if searcher is None or not self._ready(searcher):
            return self._fallback(store, query, limit, offset, since, until, category, author)
        try:
            result = searcher.search(query, store=store, limit=limit, offset=offset, since=since, until=until,
                                     category=category, author=author)  # fmt: skip
        except IndexDamaged as exc:
            # found while catching up; /healthz names the fix, the visitor still gets results
            log.error("%s", exc)
            return self._fallback(store, query, limit, offset, since, until, category, author)
        # an index that lags behind a moderator must still not show a hidden paper
        hits = [_shown(h) for h in result.hits if not h.paper.hidden]
        return SearchPage(query, hits, result.total, limit, offset, engine="hybrid", notes=list(result.notes))

    def _fallback(
        self, store: Store, query: str, limit: int, offset: int,
        since: str | None, until: str | None, category: str | None, author: str | None,
    ) -> SearchPage:  # fmt: skip
        """Plain word matches while the index is not ready, read with the search's own parser
        and filter checks, so a query or filter is refused (or not) as the engine would."""
        pq = parse_query(query)
        Filters.parse(since=since, until=until, category=category, author=author)
        words = list(pq.exact[:FALLBACK_WORDS]) or [pq.text]
        rows, total = substring_search(
            store, words, since=since, until=until, category=category, author=author, limit=limit, offset=offset
        )
        terms = pq.highlight_terms()
        hits = [Hit(paper=p, score=s, snippet=Markup(snippet(p.abstract, terms)), rank=offset + i + 1)
                for i, (p, s) in enumerate(rows)]  # fmt: skip
        return SearchPage(query, hits, total, limit, offset, engine="fallback",
                          notes=["The search index is not ready; showing plain word matches."])  # fmt: skip

    def listing(
        self, store: Store, *, limit: int = 20, offset: int = 0, since: str | None = None,
        until: str | None = None, category: str | None = None, author: str | None = None,
    ) -> SearchPage:  # fmt: skip
        """Papers matching the filters alone, newest first: an author's or a category's papers,
        which a link on a paper card asks for without any query words."""
        rows, total = substring_search(
            store, [], since=since, until=until, category=category, author=author, limit=limit, offset=offset
        )
        hits = [Hit(paper=p, score=s, snippet=Markup(""), rank=offset + i + 1) for i, (p, s) in enumerate(rows)]
        return SearchPage("", hits, total, limit, offset, engine="filters")

    def similar(self, store: Store, paper: Paper, limit: int = 8) -> list[tuple[Paper, float]]:
        """"Similar papers": by vectors and words (`similar_papers`) once this process holds the
        corpus features (prepared after start-up, off the request path); until then, and for a
        paper they do not have yet, by the vector index's nearest neighbours alone."""
        searcher = self.ensure_loaded()
        if searcher is None:
            return []
        try:
            held = features_held(self.data_dir) is not None
            pairs = similar_papers(searcher, store, paper.rowid, limit + 1) if held else []
            if pairs:
                by_id = {p.rowid: p for p in store.get_by_rowids([r for r, _ in pairs])}
                found = [(by_id[r], s) for r, s in pairs if r in by_id]
            else:
                found = [(h.paper, h.score) for h in searcher.similar(paper.rowid, limit, store=store)]
        except IndexDamaged as exc:
            log.error("%s", exc)
            return []
        return [(p, s) for p, s in found if p.rowid != paper.rowid and not p.hidden][:limit]
