"""Harvest state and arXiv's per-paper record data in SQLite (migration 0401).

Callers that must be atomic (a page of papers with its resumption point) call these inside
one `store.write()`; each function also works on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

from paperfeed.store.engine import in_chunks
from paperfeed.store.papers import Connection, Store, _now


@dataclass
class SetState:
    source: str
    set_spec: str
    harvested_until: str | None = None
    run_from: str | None = None
    run_until: str | None = None
    run_token: str | None = None
    run_cursor: int | None = None
    run_total: int | None = None
    run_response_day: str | None = None
    status: str = "running"
    added: int = 0
    revised: int = 0
    deleted: int = 0
    unchanged: int = 0
    pages: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    last_error: str | None = None
    updated_at: str = ""

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_STATE_COLUMNS = [f.name for f in fields(SetState)]


def get_state(store: Store, source: str, set_spec: str) -> SetState | None:
    row = store.conn.execute(
        f"SELECT {', '.join(_STATE_COLUMNS)} FROM harvest_sets WHERE source = ? AND set_spec = ?", (source, set_spec)
    ).fetchone()
    return SetState(**dict(row)) if row else None


def list_states(store: Store, source: str | None = None) -> list[SetState]:
    sql = f"SELECT {', '.join(_STATE_COLUMNS)} FROM harvest_sets"
    args: tuple = ()
    if source:
        sql += " WHERE source = ?"
        args = (source,)
    return [SetState(**dict(r)) for r in store.conn.execute(sql + " ORDER BY source, set_spec", args)]


def save_state(store: Store, state: SetState) -> None:
    """Insert or replace the row; call inside the page's transaction to make it atomic with the page."""
    state.updated_at = _now()
    cols = ", ".join(_STATE_COLUMNS)
    marks = ", ".join("?" * len(_STATE_COLUMNS))
    updates = ", ".join(f"{n} = excluded.{n}" for n in _STATE_COLUMNS[2:])
    with store.write() as c:
        c.execute(f"INSERT INTO harvest_sets ({cols}) VALUES ({marks}) ON CONFLICT (source, set_spec) DO UPDATE "
                  f"SET {updates}", [getattr(state, n) for n in _STATE_COLUMNS])  # fmt: skip


@dataclass(slots=True)
class KnownRecord:
    updated: str | None
    deleted: bool


def known_records(c: Connection, arxiv_ids: Sequence[str]) -> dict[str, KnownRecord]:
    out: dict[str, KnownRecord] = {}
    for cond, args in in_chunks(c, arxiv_ids):
        for r in c.execute(f"SELECT arxiv_id, updated, deleted FROM arxiv_records WHERE arxiv_id {cond}", args):
            out[r[0]] = KnownRecord(r[1], bool(r[2]))
    return out


def papers_by_arxiv_id(c: Connection, arxiv_ids: Sequence[str]) -> dict[str, str]:
    """arxiv_id -> paper id, for the ids the store has."""
    out: dict[str, str] = {}
    for cond, args in in_chunks(c, arxiv_ids):
        out.update((r[0], r[1]) for r in c.execute(f"SELECT arxiv_id, id FROM papers WHERE arxiv_id {cond}", args))
    return out


def changed_since(c: Connection, seq: int) -> set[str]:
    """arXiv ids of papers that existed before `seq` and changed after it."""
    rows = c.execute("SELECT arxiv_id FROM papers WHERE seq > ? AND added_seq <= ? AND arxiv_id IS NOT NULL",
                     (seq, seq))  # fmt: skip
    return {r[0] for r in rows}


def write_records(c: Connection, rows: Iterable[tuple]) -> None:
    """Upsert (arxiv_id, datestamp, created, updated, comments, journal_ref, license, deleted) rows,
    linked to the paper with that arXiv id when the store has one."""
    c.executemany(
        "INSERT INTO arxiv_records (arxiv_id, paper_rowid, datestamp, created, updated, comments, journal_ref, "
        "license, deleted) VALUES (?, (SELECT rowid FROM papers WHERE arxiv_id = ?), ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(arxiv_id) DO UPDATE SET paper_rowid = COALESCE(excluded.paper_rowid, arxiv_records.paper_rowid), "
        "datestamp = excluded.datestamp, created = COALESCE(excluded.created, arxiv_records.created), "
        "updated = COALESCE(excluded.updated, arxiv_records.updated), comments = COALESCE(excluded.comments, arxiv_records.comments), "
        "journal_ref = COALESCE(excluded.journal_ref, arxiv_records.journal_ref), license = COALESCE(excluded.license, arxiv_records.license), "
        "deleted = excluded.deleted",
        [(r[0], *r) for r in rows],  # the arXiv id twice: the row's key, and to find its paper
    )


def record_for_paper(store: Store, paper_rowid: int) -> dict | None:
    """What arXiv said about a paper (dates of its first and latest version, journal ref...), if harvested."""
    row = store.conn.execute(
        "SELECT arxiv_id, datestamp, created, updated, comments, journal_ref, license FROM arxiv_records "
        "WHERE paper_rowid = ?",
        (paper_rowid,),
    ).fetchone()
    return dict(row) if row else None
