"""The two engines behind the store: SQLite (the default, here) and PostgreSQL (pg.py).

Every SQL dialect difference of the project lives in this module, in paperfeed.store.pg,
and in the per-engine migration folders (`migrations/sqlite`, `migrations/postgres`). Store modules write
portable SQL with `?` placeholders (ON CONFLICT, RETURNING, CASE, COALESCE, `instr`,
which the PostgreSQL schema defines) and call `store.conn.execute(sql, params)`; rows
are addressable by position and by column name on both engines.

On PostgreSQL a Store borrows one connection from a process-wide psycopg pool. The
connection runs in autocommit mode, so a statement outside `Store.write()` is its own
transaction, as with sqlite3's isolation_level=None. `Store.write()` takes a
transaction-scoped advisory lock (WRITE_LOCK): writers queue as they do behind SQLite's
BEGIN IMMEDIATE, which keeps `seq` gapless in commit order, so a node following the
store by `seq` never skips a change committed late. Work that must not queue behind
other writers (claiming outbox rows) uses `write(serial=False)` and row locks instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import numbers
import os
import re
import sqlite3
import zlib
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DB_NAME = "paperfeed.db"
WRITE_LOCK = "store.write"
MIGRATE_LOCK = "store.migrate"
# connections per process; a serve node uses one per request in flight
POOL_SIZE = 20



# how `schema` names an index key that is an expression (lower(doi)), on both engines
EXPRESSION_KEY = "<expression>"


class StoreUnavailable(RuntimeError):
    """The database server cannot be reached. The message is for people; the site
    answers 503 with it, the CLI prints it."""


def lock_key(name: str) -> int:
    """A stable 31-bit advisory-lock key for a lock name (PostgreSQL keys are bigints)."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def is_postgres(url: str | None) -> bool:
    return bool(url) and url.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


IN_CHUNK = 500  # values per `IN (...)` on SQLite: well under its bound-parameter limit


def in_chunks(conn: Any, values: Sequence[Any]) -> Iterator[tuple[str, list[Any]]]:
    """`values` as (condition, parameters) for "column <condition>", to match a column against a
    list: `IN (?, ?, ...)` in chunks of IN_CHUNK on SQLite; on PostgreSQL one `= ANY(...)` for
    the whole list with a single parameter, which the server plans once. Nothing for an empty
    list. Measured for 5,000 arXiv ids: 500-value IN lists took 42 ms, a text[] parameter 30 ms
    (psycopg quotes each element in Python), one joined string split by the server 5.5 ms."""
    values = list(values)
    if not values:
        return
    if isinstance(conn, sqlite3.Connection):
        for i in range(0, len(values), IN_CHUNK):
            chunk = values[i : i + IN_CHUNK]
            yield f"IN ({','.join('?' * len(chunk))})", chunk
    elif all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
        yield "= ANY(string_to_array(?, ',')::bigint[])", [",".join(str(int(v)) for v in values)]
    elif all(type(v) is str and v and _UNIT_SEP not in v for v in values):
        yield "= ANY(string_to_array(?, chr(31)))", [_UNIT_SEP.join(values)]
    else:  # a value the joined form cannot carry (empty, or holding the separator)
        yield "= ANY(?)", [values]


_UNIT_SEP = "\x1f"


# ---- the SQLite engine (PostgreSQL: paperfeed.store.pg) ------------------------------


class SqliteEngine:
    """SQLite in the data directory: one file, WAL, writers queued by BEGIN IMMEDIATE."""

    name = "sqlite"
    IntegrityError = sqlite3.IntegrityError
    # one writer at a time for the whole file: row locks would add nothing
    row_locks = False
    shared = False  # one data directory, one store
    skip_locked = ""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / DB_NAME

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    def connect(self, *, readonly: bool = False) -> sqlite3.Connection:
        """isolation_level=None gives explicit transaction control (BEGIN IMMEDIATE in
        writers), which is what keeps a SIGKILL from leaving half a batch behind."""
        if readonly:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None,
                                   check_same_thread=False, timeout=30)  # fmt: skip
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # Sessions and tokens live here: readable by the owner only, like secret.key. SQLite
            # gives its -wal and -shm files the database file's mode.
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 30000")
        if not readonly:
            # 16 KiB pages (a no-op on an existing database): measured on a 300k-paper
            # arXiv import, the store writes 25% faster than with 4 KiB pages, as the
            # random-key indexes (id, title_key) need fewer, shallower page splits.
            conn.execute("PRAGMA page_size = 16384")
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL is durable against process crashes in WAL mode; only an OS crash
            # can lose the last transactions, which a rerun of ingest restores.
            conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA cache_size = -65536")
        conn.execute("PRAGMA temp_store = MEMORY")
        return conn

    def release(self, conn: sqlite3.Connection) -> None:
        conn.close()

    def begin_write(self, conn: sqlite3.Connection, *, serial: bool = True) -> None:
        conn.execute("BEGIN IMMEDIATE")

    @contextlib.contextmanager
    def bulk(self, conn: sqlite3.Connection) -> Iterator[None]:
        """Checkpoint the WAL less often while a large import runs: every checkpoint syncs
        the database file, and at the default (every 1,000 pages) a million-paper import
        spends a fifth of its time in them. The WAL may grow to ~128 MB meanwhile."""
        conn.execute("PRAGMA wal_autocheckpoint = 8192")
        # the random-key indexes (id, title_key) outgrow the default cache past ~500k papers
        conn.execute("PRAGMA cache_size = -196608")
        try:
            yield
        finally:
            conn.execute("PRAGMA cache_size = -65536")
            conn.execute("PRAGMA wal_autocheckpoint = 1000")
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def copy_rows(self, conn: sqlite3.Connection, table: str, columns: Sequence[str],
                  rows: Sequence[Sequence[Any]], *, binary: bool = False) -> None:  # fmt: skip
        marks = ",".join("?" * len(columns))
        conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def next_rowid(self, conn: sqlite3.Connection, table: str, column: str) -> int:
        """The first free key of an integer primary key (call inside a write transaction)."""
        return conn.execute(f"SELECT COALESCE(MAX({column}), 0) + 1 FROM {table}").fetchone()[0]

    def advance_ids(self, conn: sqlite3.Connection, table: str, column: str) -> None:
        """SQLite's INTEGER PRIMARY KEY picks MAX + 1 by itself."""

    @contextlib.contextmanager
    def named_lock(self, conn: sqlite3.Connection, name: str) -> Iterator[bool]:
        """A lock across processes on this data directory: a flock the kernel drops when
        its holder dies. Yields False when another process holds it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.data_dir / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def try_row_lock(self, conn: sqlite3.Connection, name: str, key: int) -> bool:
        """One sender per data directory holds the send lock, so a row needs no lock of its own."""
        return True

    def row_unlock(self, conn: sqlite3.Connection, name: str, key: int) -> None:
        pass

    def migrate(self, conn: sqlite3.Connection) -> list[str]:
        """Whether a migration is applied is read inside the write transaction that applies
        it: two commands started at once on a fresh data directory both saw it missing when
        they looked before taking the lock, and the second failed with "already exists"."""
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL "
            "DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')))"
        )
        done = {r[0] for r in conn.execute("SELECT name FROM schema_migrations")}
        applied = []
        for name, sql in migration_files(self.name):
            if name in done:
                continue  # the common case, decided without taking the write lock
            conn.execute("BEGIN IMMEDIATE")
            try:
                if conn.execute("SELECT 1 FROM schema_migrations WHERE name = ?", (name,)).fetchone():
                    conn.execute("COMMIT")  # another process applied it while we waited for the lock
                    continue
                log.info("applying migration %s", name)
                for statement in sqlite_statements(sql):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations(name) VALUES (?)", (name,))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            applied.append(name)
        return applied

    def schema(self, conn: sqlite3.Connection) -> dict[str, dict]:
        """{table: {"columns": {name: not_null}, "indexes": {name: (unique, columns)}}} for the
        schema-agreement test and `db check`."""
        out: dict[str, dict] = {}
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]  # fmt: skip
        for t in tables:
            cols = {r["name"]: bool(r["notnull"] or r["pk"]) for r in conn.execute(f"PRAGMA table_info({t})")}
            idx = {}
            for r in conn.execute(f"PRAGMA index_list({t})"):
                if r["origin"] != "c":
                    continue  # the ones a PRIMARY KEY or UNIQUE clause makes have engine-specific names
                names = [c["name"] or EXPRESSION_KEY for c in conn.execute(f"PRAGMA index_info({r['name']})")]
                idx[r["name"]] = (bool(r["unique"]), tuple(names))
            out[t] = {"columns": cols, "indexes": idx}
        return out


Engine = Any  # SqliteEngine, or paperfeed.store.pg.PostgresEngine


def engine_for(data_dir: Path, database_url: str | None) -> Engine:
    if database_url:
        if not is_postgres(database_url):
            raise ValueError(f"database_url must be a postgresql:// URL, not {redact(database_url)!r}")
        from paperfeed.store.pg import PostgresEngine

        return PostgresEngine(database_url)
    return SqliteEngine(data_dir)


# ---- migrations --------------------------------------------------------------------


def migration_files(engine: str) -> list[tuple[str, str]]:
    """(name, sql) in name order. Both engines have a file of each name (a test checks it)."""
    pkg = resources.files("paperfeed.store") / "migrations" / engine
    return sorted((f.name, f.read_text(encoding="utf-8")) for f in pkg.iterdir() if f.name.endswith(".sql"))


def sqlite_statements(sql: str) -> list[str]:
    """Split a migration script into statements (sqlite3.complete_statement knows where a
    CREATE TRIGGER ... END ends), so they can run inside a transaction we hold: executescript
    would commit it first."""
    out, buf = [], ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    rest = "\n".join(ln for ln in buf.splitlines() if ln.strip() and not ln.strip().startswith("--"))
    if rest:
        raise ValueError(f"migration ends with an incomplete statement: {rest[:80]!r}")
    return out
