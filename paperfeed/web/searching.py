"""The site's view of search: one warm Searcher per process, plus safe snippets.

The search package (paperfeed.search) owns ranking; this module only holds its
Searcher warm, turns its hits into what pages need, and falls back to a plain
substring match when the search package or its indexes are not available, so
the site still answers (and /healthz says the index is not ready).
"""

from __future__ import annotations

import html
import inspect
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from paperfeed.index.damage import IndexDamaged
from paperfeed.models import Paper
from paperfeed.store import Store

log = logging.getLogger(__name__)

MAX_QUERY = 500
RETRY_SECONDS = 60.0
_MARK_SPLIT = re.compile(r"(</?mark>)", re.IGNORECASE)


class QueryProblem(ValueError):
    """The query cannot be run; the message says why (shown to the user, 400 in the API)."""


@dataclass
class Hit:
    paper: Paper
    score: float
    snippet: Markup
    votes: int = 0
    title_html: Markup | None = None  # the title with matched words marked, when the engine gives it


@dataclass
class SearchPage:
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


def safe_snippet(snippet: str) -> Markup:
    """Keep only <mark> tags from a snippet; everything else becomes text.

    Unescaping before escaping makes this right whether or not the searcher
    already escaped the text, so a title with markup can never become markup.
    """
    out = []
    for part in _MARK_SPLIT.split(snippet or ""):
        low = part.lower()
        if low in ("<mark>", "</mark>"):
            out.append(low)
        else:
            out.append(str(escape(html.unescape(part))))
    text = "".join(out)
    # balance marks so a truncated snippet cannot leave one open
    opened = text.count("<mark>") - text.count("</mark>")
    if opened > 0:
        text += "</mark>" * opened
    return Markup(text)


def highlight(text: str, terms: list[str], width: int = 320) -> Markup:
    """A window of `text` around the first term, terms wrapped in <mark> (fallback engine)."""
    if not text:
        return Markup("")
    low = text.casefold()
    first = min((i for i in (low.find(t.casefold()) for t in terms if t) if i >= 0), default=0)
    start = max(0, first - width // 4)
    window = text[start : start + width]
    pattern = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True) if t)
    parts = re.split(f"({pattern})", window, flags=re.IGNORECASE) if pattern else [window]
    out = []
    for i, part in enumerate(parts):
        out.append(f"<mark>{escape(part)}</mark>" if i % 2 == 1 else str(escape(part)))
    prefix = "… " if start > 0 else ""
    suffix = " …" if start + width < len(text) else ""
    return Markup(prefix + "".join(out) + suffix)


def _kwargs_for(fn: Any, wanted: dict[str, Any]) -> dict[str, Any]:
    """The subset of `wanted` that `fn` accepts (the search API is not frozen yet)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return wanted
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return wanted
    return {k: v for k, v in wanted.items() if k in params}


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
        self._searcher: Any = None
        self._query_error: tuple[type[BaseException], ...] = ()
        self._lock = threading.Lock()
        self._loaded = False
        self.load_error: str | None = None
        self.load_seconds: float | None = None
        self._tried_at = 0.0
        self._catch_up_lock = threading.Lock()
        self._indexed_seq = -1  # the store's max seq when the last catch-up started
        self._catch_up_failed_at = 0.0
        self.caught_up = threading.Event()  # set after the first catch-up (tests wait on it)

    # ---- loading -----------------------------------------------------------

    def warm_in_background(self) -> None:
        threading.Thread(target=self._warm, name="search-warmup", daemon=True).start()

    def _warm(self) -> None:
        self.ensure_loaded()
        self._catch_up()

    def catch_up_in_background(self, store: Store) -> None:
        """Start a catch-up if the store has papers the indexes have not seen (cheap to call)."""
        if store.max_seq() <= self._indexed_seq or self._catch_up_lock.locked():
            return
        if time.monotonic() - self._catch_up_failed_at < RETRY_SECONDS:
            return
        threading.Thread(target=self._catch_up, name="search-catch-up", daemon=True).start()

    def _catch_up(self) -> None:
        if not self._catch_up_lock.acquire(blocking=False):
            return
        try:
            from paperfeed.index import sync

            store = self.pool.acquire()
            try:
                seq = store.max_seq()
                searcher = self._searcher
                report = sync(store, self.data_dir, embedder=getattr(searcher, "embedder", None), wait=False)
                if not report.skipped_busy:  # else another process is catching up: look again later
                    self._indexed_seq = seq
                if searcher is not None and hasattr(searcher, "refresh"):
                    searcher.refresh(store)  # reopen what the catch-up wrote
            finally:
                self.pool.release(store)
        except Exception as exc:  # noqa: BLE001 - the site keeps serving what is indexed
            log.warning("index catch-up failed, searching the indexes as they are: %s", exc)
            self._catch_up_failed_at = time.monotonic()
        finally:
            self._catch_up_lock.release()
            self.caught_up.set()

    def ensure_loaded(self) -> Any:
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

    def _open(self) -> Any:
        import paperfeed.search as search_pkg

        self._query_error = tuple(
            e for e in (getattr(search_pkg, "QueryError", None),) if isinstance(e, type)
        )
        store = self.pool.acquire()
        # requests never catch up themselves (see the class docstring), where the searcher allows
        wanted: dict[str, Any] = {"data_dir": self.data_dir, "store": store}
        if "auto_sync" in inspect.signature(search_pkg.Searcher).parameters:
            wanted["auto_sync"] = False
        try:
            for name in ("open_searcher", "load_searcher"):
                fn = getattr(search_pkg, name, None)
                if callable(fn):
                    return fn(**_kwargs_for(fn, wanted))
            cls = search_pkg.Searcher
            for name in ("open", "load", "from_data_dir"):
                fn = getattr(cls, name, None)
                if callable(fn):
                    return fn(**_kwargs_for(fn, wanted))
            return cls(**_kwargs_for(cls, wanted))
        finally:
            self.pool.release(store)

    @staticmethod
    def _ready(searcher: Any) -> bool:
        ready = getattr(searcher, "ready", None)
        if not callable(ready):
            return True
        try:
            return bool(ready())
        except Exception:  # noqa: BLE001 - an index that cannot say is not ready
            return False

    def status(self) -> dict[str, Any]:
        searcher = self._searcher
        engine = "hybrid" if searcher is not None and self._ready(searcher) else "fallback"
        info: dict[str, Any] = {"loaded": self._loaded, "engine": engine}
        # similar papers need the dense (vector) index, which may lag the lexical one
        info["dense"] = searcher is not None and getattr(searcher, "vectors", True) is not None
        if self.load_error:
            info["error"] = self.load_error
        ready = getattr(searcher, "ready", None) if searcher is not None else None
        if callable(ready):
            try:
                info["ready"] = bool(ready())
            except Exception as exc:  # noqa: BLE001
                info["ready"] = False
                info["error"] = str(exc)
        else:
            info["ready"] = searcher is not None
        return info

    # ---- querying ------------------------------------------------------------

    def search(
        self,
        store: Store,
        q: str,
        *,
        limit: int = 20,
        offset: int = 0,
        since: str | None = None,
        until: str | None = None,
        category: str | None = None,
        author: str | None = None,
    ) -> SearchPage:
        q = (q or "").strip()
        if not q:
            raise QueryProblem("Type a few words to search for.")
        if len(q) > MAX_QUERY:
            raise QueryProblem(f"The query is too long (at most {MAX_QUERY} characters).")
        if "\x00" in q:
            raise QueryProblem("The query contains a NUL character.")
        searcher = self.ensure_loaded()
        self.catch_up_in_background(store)
        if searcher is None or not self._ready(searcher):
            return self._fallback(store, q, limit, offset, since, until, category, author)
        filters = {"since": since, "until": until, "category": category, "author": author}
        wanted = {"query": q, "q": q, "limit": limit, "k": limit, "offset": offset, "store": store, **filters}
        query_errors = self._query_error or (QueryProblem,)
        try:
            result = searcher.search(**_kwargs_for(searcher.search, wanted))
        except query_errors as exc:
            raise QueryProblem(str(exc)) from exc
        except IndexDamaged as exc:
            # found while catching up; /healthz names the fix, the visitor still gets results
            log.error("%s", exc)
            return self._fallback(store, q, limit, offset, since, until, category, author)
        hits_raw = getattr(result, "hits", result)
        total = getattr(result, "total", None)
        hits = []
        for h in hits_raw:
            paper = getattr(h, "paper", None)
            if paper is None and isinstance(getattr(h, "rowid", None), int):
                found = store.get_by_rowids([h.rowid])
                paper = found[0] if found else None
            # an index that lags behind a moderator must still not show a hidden paper
            if paper is None or paper.hidden:
                continue
            snippet = getattr(h, "snippet", None) or str(escape(paper.abstract[:320]))
            title_html = getattr(h, "title_html", None)
            hits.append(Hit(paper=paper, score=float(getattr(h, "score", 0.0)), snippet=safe_snippet(snippet),
                            title_html=safe_snippet(title_html) if title_html else None))  # fmt: skip
        notes = [str(n) for n in getattr(result, "notes", []) or []]
        return SearchPage(q, hits, total, limit, offset, engine="hybrid", notes=notes)

    def _fallback(
        self, store: Store, q: str, limit: int, offset: int,
        since: str | None, until: str | None, category: str | None, author: str | None,
    ) -> SearchPage:  # fmt: skip
        from paperfeed.store.accounts import substring_search

        terms = [t for t in re.findall(r"\w+", q) if len(t) > 1][:10] or [q]
        rows, total = substring_search(
            store, terms, since=since, until=until, category=category, author=author, limit=limit, offset=offset
        )
        hits = [Hit(paper=p, score=s, snippet=highlight(p.abstract, terms)) for p, s in rows]
        return SearchPage(q, hits, total, limit, offset, engine="fallback",
                          notes=["The search index is not ready; showing plain word matches."])  # fmt: skip

    def similar(self, store: Store, paper: Paper, k: int = 8) -> list[tuple[Paper, float]]:
        searcher = self.ensure_loaded()
        fn = getattr(searcher, "similar", None) if searcher is not None else None
        if fn is None:
            return []
        wanted = {"rowid": paper.rowid, "paper_rowid": paper.rowid, "k": k + 1, "limit": k + 1, "store": store}
        try:
            result = fn(**_kwargs_for(fn, wanted))
        except IndexDamaged as exc:
            log.error("%s", exc)
            return []
        out: list[tuple[Paper, float]] = []
        for item in getattr(result, "hits", result):
            if isinstance(item, tuple):
                p, score = item[0], float(item[1])
            else:
                p, score = getattr(item, "paper", None), float(getattr(item, "score", 0.0))
            if isinstance(p, int):
                got = store.get_by_rowids([p])
                p = got[0] if got else None
            if p is None or p.rowid == paper.rowid or p.hidden:
                continue
            out.append((p, score))
        return out[:k]
