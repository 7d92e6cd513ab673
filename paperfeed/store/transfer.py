"""Operating the store: apply migrations, report its state, and move a SQLite store to PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from paperfeed.store.engine import engine_for, migration_files, redact
from paperfeed.store.papers import Store

BATCH = 5000


class CopyError(RuntimeError):
    """`db copy` cannot go on; the message says why (nothing was written)."""


def migrate(data_dir: Path, database_url: str) -> list[str]:
    """Apply the migrations not applied yet; the names applied now."""
    engine = engine_for(data_dir, database_url)
    conn = engine.connect()
    try:
        return engine.migrate(conn)
    finally:
        engine.release(conn)


def tables(store: Store) -> list[str]:
    """The store's tables in creation order (parents before the tables that refer to them)."""
    lite = store.engine.schema(store.conn)
    order = [r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")] \
        if store.engine.name == "sqlite" else _pg_table_order(store)  # fmt: skip
    return [t for t in order if t in lite and t != "schema_migrations"]


def _pg_table_order(store: Store) -> list[str]:
    # the migrations create every table before any table that refers to it: their files' order
    names = []
    for _, sql in migration_files("postgres"):
        for line in sql.splitlines():
            if line.startswith("CREATE TABLE "):
                names.append(line.split()[2])
    return names


def counts(store: Store) -> dict[str, int]:
    return {t: store.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables(store)}


def check(data_dir: Path, database_url: str) -> dict[str, Any]:
    """Connectivity, schema version and row counts (raises StoreUnavailable when unreachable)."""
    with Store(data_dir, database_url=database_url, readonly=True) as store:
        applied = [r[0] for r in store.conn.execute("SELECT name FROM schema_migrations ORDER BY name")]
        known = [n for n, _ in migration_files(store.engine.name)]
        return {
            "engine": store.engine.name,
            "database": store.engine.describe(),
            "reachable": True,
            "schema_version": applied[-1] if applied else None,
            "pending_migrations": [n for n in known if n not in applied],
            "rows": counts(store),
        }


def copy(data_dir: Path, to_url: str, *, progress: Callable[[str, int], None] | None = None) -> dict[str, Any]:
    """Copy every row of the data directory's SQLite store into the (empty) PostgreSQL database
    at `to_url` in one transaction (COPY), then compare the row counts of every table."""
    with Store(data_dir, database_url="") as src, Store(data_dir, database_url=to_url) as dst:
        names = tables(src)
        before = counts(dst)
        busy = {t: n for t, n in before.items() if n and t != "meta"}
        if busy:
            raise CopyError(f"{redact(to_url)} already holds data ({', '.join(f'{t}: {n}' for t, n in busy.items())}); "
                            "copy into an empty database")  # fmt: skip
        identity = [(r[0], r[1]) for r in dst.conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND is_identity = 'YES'")]  # fmt: skip
        with dst.write() as c:
            c.execute("DELETE FROM meta")
            for t in names:
                cols = list(dst.engine.schema(dst.conn)[t]["columns"])
                cur = src.conn.execute(f"SELECT {', '.join(cols)} FROM {t}")
                done = 0
                while rows := cur.fetchmany(BATCH):
                    dst.engine.copy_rows(c, t, cols, [tuple(r) for r in rows])
                    done += len(rows)
                    if progress:
                        progress(t, done)
            for t, col in identity:
                dst.engine.advance_ids(c, t, col)
        source, target = counts(src), counts(dst)
    if source != target:
        raise CopyError(f"row counts differ after the copy: {source} != {target}")
    return {"from": f"sqlite:{Path(data_dir) / 'paperfeed.db'}", "to": redact(to_url), "rows": target}
