"""Store faults found by attacking a running instance (issue 15), on real SQLite files."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from paperfeed.store import open_store
from paperfeed.store.engine import SqliteEngine


def test_concurrent_first_migrations_do_not_race(tmp_path: Path) -> None:
    """Two commands on a fresh data directory both found the migrations missing, and the one
    that got the write lock second failed with "table meta already exists"."""
    engine = SqliteEngine(tmp_path)
    holder = engine.connect()
    holder.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL "
                   "DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')))")  # fmt: skip
    holder.execute("BEGIN IMMEDIATE")  # both migrators look, then queue behind this writer
    results: list[object] = []

    def run() -> None:
        conn = engine.connect()
        try:
            results.append(engine.migrate(conn))
        except sqlite3.Error as exc:
            results.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    holder.execute("COMMIT")
    holder.close()
    for t in threads:
        t.join(60)
    assert not [r for r in results if isinstance(r, Exception)], results
    a, b = results
    # each migration applied exactly once, by one or the other
    assert not set(a) & set(b) and len(a) + len(b) == len(set(a) | set(b)) >= 5  # type: ignore[arg-type]
    with open_store(tmp_path) as store:
        assert store.count() == 0
