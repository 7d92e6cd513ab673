"""Papers: dedup-on-write upserts, lookups, listings and the feed queries of the site.

All paper SQL lives here, written once for both engines (paperfeed.store.engine).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from paperfeed.config import database_url as configured_database_url
from paperfeed.models import Paper, arxiv_id_of, doi_of, stable_id, title_key
from paperfeed.store.engine import DB_NAME, Engine, StoreUnavailable, engine_for, in_chunks

# How much a source is trusted when two sources disagree on a field: arXiv's own
# metadata beats a structured file, which beats a scraped page.
SOURCE_RANK = {"arxiv": 3, "beir": 2, "jsonl": 2, "csv": 2, "hf-page": 1}

_COLUMN_LIST = (
    "rowid", "id", "arxiv_id", "doi", "title", "abstract", "authors", "categories", "published", "feed_date",
    "links", "hidden", "rank", "content_hash", "seq", "added_seq", "created_at", "updated_at",
)  # fmt: skip
_COLUMNS = ", ".join(_COLUMN_LIST)
# papers a title query brings to the top at most (the same title imported twice, say)
NAMED_MAX = 5
_INSERT_COLUMNS = ("rowid", "id", "arxiv_id", "doi", "title", "title_key", "abstract", "authors", "categories",
                   "published", "feed_date", "links", "hidden", "rank", "content_hash", "seq", "added_seq",
                   "created_at", "updated_at")  # fmt: skip

# Connection: a sqlite3.Connection or engine.PgConnection; both take execute(sql_with_?, params).
Connection = Any


def source_rank(source: str) -> int:
    return SOURCE_RANK.get(source.split(":", 1)[0], 1)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class UpsertCounts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0

    def __iadd__(self, other: UpsertCounts) -> UpsertCounts:
        self.added += other.added
        self.updated += other.updated
        self.unchanged += other.unchanged
        return self


class Store:
    """One connection to the system of record. Use one Store per thread.

    The database is SQLite in `data_dir` unless `database_url` (default: the
    PAPERFEED_DATABASE_URL setting) names a PostgreSQL server.
    """

    _migrated: set[str] = set()  # PostgreSQL URLs this process has migrated already

    def __init__(self, data_dir: Path, *, readonly: bool = False, database_url: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_NAME
        url = configured_database_url(self.data_dir) if database_url is None else database_url
        self.engine: Engine = engine_for(self.data_dir, url)
        self.conn: Connection = self.engine.connect(readonly=readonly)
        if not readonly and url not in self._migrated:
            try:
                self.engine.migrate(self.conn)
            except BaseException:
                self.close()
                raise
            if url:
                self._migrated.add(url)

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            self.engine.release(conn)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def write(self, *, serial: bool = True) -> Iterator[Connection]:
        """A write transaction, taken up front so concurrent writers queue instead of deadlocking.

        Inside another `write()` it joins the outer transaction, so a caller can make several
        writes (a page of harvested papers and its resumption point) one atomic unit.
        `serial=False` (PostgreSQL only) skips the queue of writers, for row-locked work that
        reads no `seq`.
        """
        if self.conn.in_transaction:
            yield self.conn
            return
        self.engine.begin_write(self.conn, serial=serial)
        try:
            yield self.conn
        except BaseException:
            with suppress(StoreUnavailable):  # a dead connection has no transaction left to end
                self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def healthy(self) -> bool:
        """False once the connection is broken (the database server restarted, say)."""
        return not getattr(self.conn, "closed", False)

    def rollback(self) -> None:
        """End a transaction a failed request left open."""
        if self.conn.in_transaction:
            with suppress(StoreUnavailable):
                self.conn.execute("ROLLBACK")

    def bulk(self) -> AbstractContextManager[None]:
        """Engine settings for a large import (fewer WAL checkpoints on SQLite)."""
        return self.engine.bulk(self.conn)

    def lock(self, name: str) -> AbstractContextManager[bool]:
        """A named lock across processes (harvest, digest send): a flock in the data directory on
        SQLite, an advisory lock every node sees on PostgreSQL. Yields False when it is taken."""
        return self.engine.named_lock(self.conn, name)

    # ---- meta -------------------------------------------------------------

    def meta_get(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def meta_set(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # ---- reading ----------------------------------------------------------

    def max_seq(self) -> int:
        return self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM papers").fetchone()[0]

    def count(self, *, include_hidden: bool = True) -> int:
        sql = "SELECT COUNT(*) FROM papers" + ("" if include_hidden else " WHERE hidden = 0")
        return self.conn.execute(sql).fetchone()[0]

    def _papers_from_rows(self, rows: Sequence[Any]) -> list[Paper]:
        papers = [_row_to_paper(r) for r in rows]
        _attach_sources(self.conn, papers)
        return papers

    def rowids_named(self, text: str, limit: int = NAMED_MAX) -> list[int]:
        """Rowids of the shown papers that `text` names: by their title, as `title_key` compares
        titles (case, punctuation and spacing aside), newest first; or, when `text` is one
        arXiv id, "arXiv:" id or arXiv URL (version aside), or one DOI or doi.org URL, by that
        identifier. One indexed lookup."""
        one = len(text.split()) == 1
        arxiv, doi = (arxiv_id_of(text), doi_of(text)) if one else (None, None)
        if arxiv:
            sql, arg = "SELECT rowid FROM papers WHERE arxiv_id = ? AND hidden = 0 LIMIT ?", arxiv
        elif doi:
            sql, arg = "SELECT rowid FROM papers WHERE lower(doi) = ? AND hidden = 0 ORDER BY rowid DESC LIMIT ?", doi
        else:
            key = title_key(text)
            if not key:
                return []
            sql, arg = "SELECT rowid FROM papers WHERE title_key = ? AND hidden = 0 ORDER BY rowid DESC LIMIT ?", key
        return [r[0] for r in self.conn.execute(sql, (arg, limit))]

    def get_paper(self, paper_id: str) -> Paper | None:
        rows = self.conn.execute(f"SELECT {_COLUMNS} FROM papers WHERE id = ?", (paper_id,)).fetchall()
        papers = self._papers_from_rows(rows)
        return papers[0] if papers else None

    def get_by_rowids(self, rowids: Sequence[int]) -> list[Paper]:
        """Papers in the order of `rowids`; ids the store does not have are skipped."""
        found: dict[int, Any] = {}
        ids = list(rowids)
        for cond, args in in_chunks(self.conn, ids):
            for r in self.conn.execute(f"SELECT {_COLUMNS} FROM papers WHERE rowid {cond}", args):
                found[r[0]] = r
        ordered = [found[i] for i in ids if i in found]
        return self._papers_from_rows(ordered)

    def iter_changed(self, since_seq: int, batch: int = 2000) -> Iterator[list[Paper]]:
        """Papers changed after `since_seq`, oldest change first, in batches."""
        last = since_seq
        while True:
            rows = self.conn.execute(
                f"SELECT {_COLUMNS} FROM papers WHERE seq > ? ORDER BY seq LIMIT ?", (last, batch)
            ).fetchall()
            if not rows:
                return
            last = rows[-1]["seq"]
            yield self._papers_from_rows(rows)

    def list_papers(
        self,
        *,
        feed_date: str | None = None,
        since: str | None = None,
        until: str | None = None,
        source: str | None = None,
        order: str = "newest",
        limit: int = 50,
        offset: int = 0,
        include_hidden: bool = False,
    ) -> list[Paper]:
        """Papers by feed date. `order` is "newest" or "source" (page order, with `source`)."""
        where, args = [], []
        if feed_date:
            where.append("p.feed_date = ?")
            args.append(feed_date)
        if since:
            where.append("p.feed_date >= ?")
            args.append(since)
        if until:
            where.append("p.feed_date <= ?")
            args.append(until)
        if not include_hidden:
            where.append("p.hidden = 0")
        join = ""
        if source:
            join = "JOIN paper_sources s ON s.paper_rowid = p.rowid AND s.source = ?"
            args.insert(0, source)
        order_sql = {
            "newest": "p.feed_date DESC NULLS LAST, p.published DESC NULLS LAST, p.rowid DESC",
            "oldest": "p.feed_date ASC NULLS FIRST, p.rowid ASC",
            "source": "s.position ASC" if source else "p.rowid ASC",
        }.get(order)
        if order_sql is None:
            raise ValueError(f"unknown order {order!r}: use newest, oldest or source")
        sql = f"SELECT {', '.join('p.' + c.strip() for c in _COLUMNS.split(','))} FROM papers p {join}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {order_sql} LIMIT ? OFFSET ?"
        args += [limit, offset]
        return self._papers_from_rows(self.conn.execute(sql, args).fetchall())

    def feed_dates(self, limit: int = 1000) -> list[tuple[str, int]]:
        """Days that have visible papers, newest first, with their paper counts."""
        rows = self.conn.execute(
            "SELECT feed_date, COUNT(*) FROM papers WHERE hidden = 0 AND feed_date IS NOT NULL "
            "GROUP BY feed_date ORDER BY feed_date DESC LIMIT ?",
            (limit,),
        )
        return [(r[0], r[1]) for r in rows]

    def sources(self) -> list[tuple[str, int]]:
        rows = self.conn.execute("SELECT source, COUNT(*) FROM paper_sources GROUP BY source ORDER BY source")
        return [(r[0], r[1]) for r in rows]

    def set_hidden(self, paper_id: str, hidden: bool) -> bool:
        """Hide or show a paper; bumps seq so the indexes drop or restore it."""
        with self.write() as c:
            seq = self.max_seq() + 1
            cur = c.execute(
                "UPDATE papers SET hidden = ?, seq = ?, updated_at = ? WHERE id = ? AND hidden != ?",
                (int(hidden), seq, _now(), paper_id, int(hidden)),
            )
            return cur.rowcount > 0

    # ---- writing ----------------------------------------------------------

    def upsert_papers(self, papers: Sequence[Paper]) -> UpsertCounts:
        """Insert or merge a batch of papers in one transaction.

        Identity: the same arXiv id, else the same (source, external id), else the
        same normalised title is the same paper. Merging is order-independent for
        what matters to a rerun: fields are only overwritten by an equally or more
        trusted source, feed_date keeps the earliest day, and sources accumulate.
        A crash loses at most this batch, which a rerun then writes again.
        """
        counts = UpsertCounts()
        if not papers:
            return counts
        with self.write() as c:
            seq = self.max_seq()
            now = _now()
            keys = [p.key or title_key(p.title) for p in papers]
            existing = _Lookup(c, papers, keys)
            # New papers are written together at the end (COPY on PostgreSQL), with keys
            # chosen here under the write lock; a later record of this batch that is the
            # same paper merges into the pending one.
            rowid = self.engine.next_rowid(c, "papers", "rowid")
            pending: dict[int, tuple[Paper, str]] = {}
            for incoming, key in zip(papers, keys, strict=True):
                old = existing.find(incoming, key)
                if old is None:
                    seq += 1
                    new = _prepare_new(incoming, key, seq, now)
                    new.rowid = rowid
                    rowid += 1
                    pending[new.rowid] = (new, key)
                    existing.remember(new, key)
                    counts.added += 1
                    continue
                merged, new_sources = _merge(old, incoming)
                if merged is None and not new_sources:
                    counts.unchanged += 1
                    continue
                seq += 1
                p = merged or old
                p.content_hash = p.compute_hash()
                p.seq = seq
                p.updated_at = now
                if p.rowid in pending:
                    pending[p.rowid] = (p, title_key(p.title))
                else:
                    c.execute(
                        "UPDATE papers SET arxiv_id=?, doi=?, title=?, title_key=?, abstract=?, authors=?, "
                        "categories=?, published=?, feed_date=?, links=?, rank=?, content_hash=?, seq=?, "
                        "updated_at=? WHERE rowid=?",
                        (
                            p.arxiv_id, p.doi, p.title, title_key(p.title), p.abstract, _dumps(p.authors),
                            _dumps(p.categories), p.published, p.feed_date, _dumps(p.links), _rank_of(p),
                            p.content_hash, seq, now, p.rowid,
                        ),
                    )  # fmt: skip
                    _write_sources(c, p, new_sources)
                existing.remember(p, title_key(p.title))
                counts.updated += 1
            if pending:
                self._insert_new(c, list(pending.values()))
        return counts

    def _insert_new(self, c: Connection, new: Sequence[tuple[Paper, str]]) -> None:
        self.engine.copy_rows(c, "papers", _INSERT_COLUMNS, [
            (p.rowid, p.id, p.arxiv_id, p.doi, p.title, key, p.abstract, _dumps(p.authors), _dumps(p.categories),
             p.published, p.feed_date, _dumps(p.links), 0, _rank_of(p), p.content_hash, p.seq, p.added_seq,
             p.created_at, p.updated_at)
            for p, key in new
        ], binary=True)  # fmt: skip
        self.engine.copy_rows(c, "paper_sources", ("paper_rowid", "source", "ext_id", "position"), [
            (p.rowid, s, p.ext_ids.get(s), p.positions.get(s)) for p, _ in new for s in p.sources
        ], binary=True)  # fmt: skip
        self.engine.advance_ids(c, "papers", "rowid")


# ---- feed queries (the site's daily pages and the fallback search) --------------


def latest_feed_date(store: Store) -> str | None:
    return store.conn.execute("SELECT MAX(feed_date) FROM papers WHERE hidden = 0").fetchone()[0]


def prev_feed_date(store: Store, before: str) -> str | None:
    """The nearest day before `before` that has visible papers."""
    return store.conn.execute(
        "SELECT MAX(feed_date) FROM papers WHERE feed_date < ? AND hidden = 0", (before,)
    ).fetchone()[0]


def next_feed_date(store: Store, after: str) -> str | None:
    return store.conn.execute(
        "SELECT MIN(feed_date) FROM papers WHERE feed_date > ? AND hidden = 0", (after,)
    ).fetchone()[0]


def count_range(store: Store, since: str, until: str) -> int:
    return store.conn.execute(
        "SELECT COUNT(*) FROM papers WHERE feed_date >= ? AND feed_date <= ? AND hidden = 0", (since, until)
    ).fetchone()[0]


def list_range(
    store: Store, since: str, until: str, *, order: str = "votes", limit: int = 50, offset: int = 0
) -> list[tuple[Paper, int]]:
    """Visible papers with since <= feed_date <= until, with their vote counts.

    order "votes": most votes first, then newer day, then page/ingest order (so a
    store without votes shows a day in the order its source page had);
    "newest": newer day first, then newest publication.
    """
    order_sql = {
        "votes": "n DESC, p.feed_date DESC, p.rowid ASC",
        "newest": "p.feed_date DESC, p.published DESC NULLS LAST, p.rowid DESC",
    }.get(order)
    if order_sql is None:
        raise ValueError(f"order must be votes or newest, not {order!r}")
    rows = store.conn.execute(
        "SELECT p.rowid, COALESCE(v.n, 0) AS n FROM papers p "
        "LEFT JOIN (SELECT paper_rowid, COUNT(*) AS n FROM votes GROUP BY paper_rowid) v "
        "ON v.paper_rowid = p.rowid "
        f"WHERE p.feed_date >= ? AND p.feed_date <= ? AND p.hidden = 0 ORDER BY {order_sql} LIMIT ? OFFSET ?",
        (since, until, limit, offset),
    ).fetchall()
    counts = {r[0]: r[1] for r in rows}
    return [(p, counts[p.rowid]) for p in store.get_by_rowids([r[0] for r in rows])]


def substring_search(
    store: Store,
    terms: Sequence[str],
    *,
    since: str | None = None,
    until: str | None = None,
    category: str | None = None,
    author: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> tuple[list[tuple[Paper, float]], int]:
    """Papers containing every term (case-insensitive substring), title hits first.

    Only used by the site while the real search index is unavailable, so that a
    fresh install still answers searches; it scans, which is fine for a small store.
    """
    where, args = ["p.hidden = 0"], []
    for t in terms:
        where.append("instr(lower(p.title || ' ' || p.abstract), ?) > 0")
        args.append(t.lower())
    if since:
        where.append("COALESCE(p.feed_date, p.published) >= ?")
        args.append(since)
    if until:
        where.append("COALESCE(p.feed_date, p.published) <= ?")
        args.append(until)
    if category:
        where.append("instr(lower(p.categories), ?) > 0")
        args.append(category.lower())
    if author:
        where.append("instr(lower(p.authors), ?) > 0")
        args.append(author.lower())
    # the whole phrase counts most, then each term in the title
    phrase = " ".join(terms).lower()
    title_score = " + ".join(["(CASE WHEN instr(lower(p.title), ?) > 0 THEN 1 ELSE 0 END)"] * len(terms)) or "0"
    score_sql = f"4 * (CASE WHEN instr(lower(p.title || ' ' || p.abstract), ?) > 0 THEN 1 ELSE 0 END) + {title_score}"
    sql_where = " AND ".join(where)
    total = store.conn.execute(f"SELECT COUNT(*) FROM papers p WHERE {sql_where}", args).fetchone()[0]
    rows = store.conn.execute(
        f"SELECT p.rowid, ({score_sql}) AS s FROM papers p WHERE {sql_where} "
        "ORDER BY s DESC, p.feed_date DESC NULLS LAST, p.rowid ASC LIMIT ? OFFSET ?",
        [phrase, *(t.lower() for t in terms), *args, limit, offset],
    ).fetchall()
    scores = {r[0]: float(r[1]) for r in rows}
    return [(p, scores[p.rowid]) for p in store.get_by_rowids([r[0] for r in rows])], total


def list_category(store: Store, category: str, *, days: int = 30, limit: int = 100) -> list[Paper]:
    """Visible papers of one category (exact, as arXiv writes it: cs.LG) from the last
    `days` feed days, newest first.

    The window bounds the scan: an unknown category reads a month of papers, not the store.
    """
    latest = latest_feed_date(store)
    if latest is None:
        return []
    since = (dt.date.fromisoformat(latest) - dt.timedelta(days=days)).isoformat()
    rows = store.conn.execute(
        "SELECT p.rowid FROM papers p WHERE p.feed_date >= ? AND p.hidden = 0 "
        # the category as a JSON string inside the JSON array: exact, and the same SQL on both engines
        "AND instr(p.categories, ?) > 0 ORDER BY p.feed_date DESC, p.rowid DESC LIMIT ?",
        (since, _dumps(category), limit),
    ).fetchall()
    return store.get_by_rowids([r[0] for r in rows])


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def _rank_of(p: Paper) -> int:
    return max((source_rank(s) for s in p.sources), default=0)


def _attach_sources(c: Connection, papers: Sequence[Paper]) -> None:
    """Fill each paper's sources, external ids and page positions from paper_sources."""
    by_rowid = {p.rowid: p for p in papers}
    for cond, args in in_chunks(c, list(by_rowid)):
        for r in c.execute(
            f"SELECT paper_rowid, source, ext_id, position FROM paper_sources "
            f"WHERE paper_rowid {cond} ORDER BY paper_rowid, source",
            args,
        ):
            p = by_rowid[r[0]]
            p.sources.append(r[1])
            if r[2] is not None:
                p.ext_ids[r[1]] = r[2]
            if r[3] is not None:
                p.positions[r[1]] = r[3]


def _row_to_paper(r: Any) -> Paper:
    return Paper(
        rowid=r[0],
        id=r[1],
        arxiv_id=r[2],
        doi=r[3],
        title=r[4],
        abstract=r[5],
        authors=orjson.loads(r[6]),
        categories=orjson.loads(r[7]),
        published=r[8],
        feed_date=r[9],
        links=orjson.loads(r[10]),
        hidden=bool(r[11]),
        content_hash=r[13],
        seq=r[14],
        added_seq=r[15],
        created_at=r[16],
        updated_at=r[17],
    )


def _prepare_new(p: Paper, key: str, seq: int, now: str) -> Paper:
    if p.arxiv_id:
        p.id = stable_id("arxiv", p.arxiv_id)
    elif p.ext_ids:
        src, ext = sorted(p.ext_ids.items())[0]
        p.id = stable_id(f"src:{src}", ext)
    else:
        p.id = stable_id("title", key)
    p.content_hash = p.content_hash or p.compute_hash()
    p.seq = p.added_seq = seq
    p.created_at = p.updated_at = now
    return p


def _write_sources(c: Connection, p: Paper, sources: Iterable[str]) -> None:
    rows = [(p.rowid, s, p.ext_ids.get(s), p.positions.get(s)) for s in sources]
    if rows:
        c.executemany(
            "INSERT INTO paper_sources (paper_rowid, source, ext_id, position) VALUES (?,?,?,?) "
            "ON CONFLICT(paper_rowid, source) DO UPDATE SET ext_id = COALESCE(excluded.ext_id, paper_sources.ext_id), "
            "position = COALESCE(paper_sources.position, excluded.position)",
            rows,
        )


def _merge(old: Paper, new: Paper) -> tuple[Paper | None, list[str]]:
    """Merge `new` into a copy of `old`; return (changed paper or None, sources to add)."""
    new_sources = [s for s in new.sources if s not in old.sources]
    trusted = _rank_of(new) >= _rank_of(old)
    changed = False
    out = dataclasses.replace(
        old,
        authors=list(old.authors),
        categories=list(old.categories),
        links=dict(old.links),
        sources=list(old.sources),
        ext_ids=dict(old.ext_ids),
        positions=dict(old.positions),
    )
    for f in ("title", "abstract", "doi", "published", "arxiv_id"):
        nv, ov = getattr(new, f), getattr(old, f)
        if nv and nv != ov and (trusted or not ov):
            setattr(out, f, nv)
            changed = True
    for f in ("authors", "categories"):
        nv, ov = getattr(new, f), getattr(old, f)
        if nv and nv != ov and (trusted or not ov):
            setattr(out, f, list(nv))
            changed = True
    if new.feed_date and (not old.feed_date or new.feed_date < old.feed_date):
        out.feed_date = new.feed_date
        changed = True
    for k, v in new.links.items():
        if out.links.get(k) != v and (trusted or k not in out.links):
            out.links[k] = v
            changed = True
    for s in new_sources:
        out.sources.append(s)
        if s in new.ext_ids:
            out.ext_ids[s] = new.ext_ids[s]
        if s in new.positions:
            out.positions[s] = new.positions[s]
    if new_sources:
        changed = True
    return (out if changed else None), new_sources


class _Lookup:
    """Finds the stored paper an incoming record is, for one batch, with a few IN queries."""

    def __init__(self, c: Connection, papers: Sequence[Paper], keys: Sequence[str]) -> None:
        self.c = c
        self.by_arxiv: dict[str, Paper] = {}
        self.by_ext: dict[tuple[str, str], Paper] = {}
        self.by_title: dict[str, Paper] = {}
        arxiv_ids = list({p.arxiv_id for p in papers if p.arxiv_id})
        rowids: set[int] = set()
        for cond, args in in_chunks(c, arxiv_ids):
            rowids.update(r[0] for r in c.execute(f"SELECT rowid FROM papers WHERE arxiv_id {cond}", args))
        ext_pairs: dict[str, list[str]] = {}
        for p in papers:
            for s, e in p.ext_ids.items():
                ext_pairs.setdefault(s, []).append(e)
        for s, exts in ext_pairs.items():
            for cond, args in in_chunks(c, list(set(exts))):
                rowids.update(
                    r[0]
                    for r in c.execute(
                        f"SELECT paper_rowid FROM paper_sources WHERE source = ? AND ext_id {cond}", [s, *args]
                    )
                )
        wanted = list({k for p, k in zip(papers, keys, strict=True) if not p.ext_ids})
        for cond, args in in_chunks(c, wanted):
            rowids.update(r[0] for r in c.execute(f"SELECT rowid FROM papers WHERE title_key {cond}", args))
        if rowids:
            store_rows = []
            for cond, args in in_chunks(c, sorted(rowids)):
                store_rows += c.execute(f"SELECT {_COLUMNS} FROM papers WHERE rowid {cond}", args).fetchall()
            papers_found = [_row_to_paper(r) for r in store_rows]
            _attach_sources(c, papers_found)
            for p in papers_found:
                self.remember(p, title_key(p.title))

    def remember(self, p: Paper, key: str) -> None:
        if p.arxiv_id:
            self.by_arxiv[p.arxiv_id] = p
        for s, e in p.ext_ids.items():
            self.by_ext[(s, e)] = p
        # the first paper with a title stays its title's owner, as in the store;
        # a merged copy of that paper replaces the stale one
        owner = self.by_title.get(key)
        if owner is None or owner.rowid == p.rowid:
            self.by_title[key] = p

    def find(self, p: Paper, key: str) -> Paper | None:
        if p.arxiv_id and p.arxiv_id in self.by_arxiv:
            return self.by_arxiv[p.arxiv_id]
        for s, e in p.ext_ids.items():
            hit = self.by_ext.get((s, e))
            if hit is not None:
                return hit
        if p.ext_ids:
            # a collection with its own ids says two same-titled records are two documents
            return None
        hit = self.by_title.get(key)
        if hit is None:
            return None
        if p.arxiv_id and hit.arxiv_id and hit.arxiv_id != p.arxiv_id:
            return None  # two arXiv papers that share a title are two papers
        return hit


def open_store(data_dir: Path, *, readonly: bool = False, database_url: str | None = None) -> Store:
    return Store(data_dir, readonly=readonly, database_url=database_url)


def store_exists(data_dir: Path, database_url: str | None = None) -> bool:
    """Whether there is a store to read without creating one: the SQLite file in `data_dir`, or
    a configured PostgreSQL database (a node's data directory holds no store then; its papers
    may have been ingested on another node)."""
    url = configured_database_url(Path(data_dir)) if database_url is None else database_url
    return bool(url) or (Path(data_dir) / DB_NAME).exists()
