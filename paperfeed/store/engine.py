"""The two engines behind the store: SQLite (the default) and PostgreSQL.

Every SQL dialect difference of the project lives in this module and in the per-engine
migration folders (`migrations/sqlite`, `migrations/postgres`). Store modules write
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
import os
import re
import sqlite3
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool, PoolTimeout

log = logging.getLogger(__name__)

DB_NAME = "paperfeed.db"
WRITE_LOCK = "store.write"
MIGRATE_LOCK = "store.migrate"
# connections per process; a serve node uses one per request in flight
POOL_SIZE = 20

IntegrityError = (sqlite3.IntegrityError, psycopg.errors.IntegrityError)


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


# ---- rows and the PostgreSQL connection adapter ------------------------------------


class Row:
    """A result row by position or column name, like sqlite3.Row (dict(row) works)."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str | slice) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        return tuple(self._values) == (tuple(other) if isinstance(other, Row | tuple) else other)

    def __hash__(self) -> int:
        return hash(tuple(self._values))

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values, strict=False))!r})"

    def keys(self) -> list[str]:
        return list(self._index)


def _row_factory(cursor: psycopg.Cursor) -> Any:
    names = [c.name for c in cursor.description or ()]
    index = {n: i for i, n in enumerate(names)}
    return lambda values: Row(values, index)


# `?` placeholders outside string literals, quoted identifiers and comments
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|\?|%")


def translate(sql: str) -> str:
    """sqlite3's `?` placeholders as psycopg's `%s` (and a literal % as %%)."""

    def sub(m: re.Match[str]) -> str:
        tok = m.group(0)
        if tok == "?":
            return "%s"
        if tok == "%":
            return "%%"
        return tok.replace("%", "%%") if tok[0] in "'\"" else tok

    return _TOKENS.sub(sub, sql)


_translated: dict[str, str] = {}


def _pg_sql(sql: str) -> str:
    out = _translated.get(sql)
    if out is None:
        out = translate(sql)
        if len(_translated) < 4096:
            _translated[sql] = out
    return out


class PgCursor:
    """The part of sqlite3.Cursor the store uses."""

    def __init__(self, cur: psycopg.Cursor) -> None:
        self._cur = cur

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    def fetchone(self) -> Row | None:
        return self._cur.fetchone() if self._cur.description else None

    def fetchall(self) -> list[Row]:
        return self._cur.fetchall() if self._cur.description else []

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())


class PgConnection:
    """A psycopg connection that takes the sqlite3 idiom: execute(sql_with_?, params)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.raw = conn

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> PgCursor:
        try:
            cur = self.raw.cursor(row_factory=_row_factory)
            cur.execute(_pg_sql(sql), tuple(params) if params is not None else ())
        except psycopg.OperationalError as exc:
            raise _unavailable(exc) from exc
        return PgCursor(cur)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> PgCursor:
        try:
            cur = self.raw.cursor(row_factory=_row_factory)
            cur.executemany(_pg_sql(sql), [tuple(r) for r in rows])
        except psycopg.OperationalError as exc:
            raise _unavailable(exc) from exc
        return PgCursor(cur)

    @property
    def closed(self) -> bool:
        return self.raw.closed or self.raw.broken

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()


def _unavailable(exc: Exception) -> StoreUnavailable:
    return StoreUnavailable(f"the database server cannot be reached ({str(exc).strip().splitlines()[0]})")


# ---- engines -----------------------------------------------------------------------


class SqliteEngine:
    """SQLite in the data directory: one file, WAL, writers queued by BEGIN IMMEDIATE."""

    name = "sqlite"
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
                  rows: Sequence[Sequence[Any]]) -> None:  # fmt: skip
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
                names = [c["name"] for c in conn.execute(f"PRAGMA index_info({r['name']})")]
                idx[r["name"]] = (bool(r["unique"]), tuple(names))
            out[t] = {"columns": cols, "indexes": idx}
        return out


class PostgresEngine:
    """PostgreSQL shared by every node, through a process-wide psycopg pool."""

    name = "postgres"
    row_locks = True
    shared = True  # several nodes, each with its own data directory, use the same database
    skip_locked = " FOR UPDATE SKIP LOCKED"
    _pools: dict[str, ConnectionPool] = {}
    _pools_lock = threading.Lock()

    def __init__(self, url: str) -> None:
        self.url = url

    def describe(self) -> str:
        return redact(self.url)

    def pool(self) -> ConnectionPool:
        with self._pools_lock:
            pool = self._pools.get(self.url)
            if pool is None:
                pool = ConnectionPool(
                    self.url, min_size=0, max_size=POOL_SIZE,
                    kwargs={"autocommit": True, "connect_timeout": 5}, open=True,
                    check=ConnectionPool.check_connection, reset=_reset, timeout=10,
                    name="paperfeed",
                )  # fmt: skip
                self._pools[self.url] = pool
            return pool

    def connect(self, *, readonly: bool = False) -> PgConnection:
        try:
            raw = self.pool().getconn()
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise StoreUnavailable(f"the database server {redact(self.url)} cannot be reached: {exc}") from exc
        return PgConnection(raw)

    def release(self, conn: PgConnection) -> None:
        self.pool().putconn(conn.raw)

    def begin_write(self, conn: PgConnection, *, serial: bool = True) -> None:
        conn.execute("BEGIN")
        if serial:
            conn.execute("SELECT pg_advisory_xact_lock(?)", (lock_key(WRITE_LOCK),))

    @contextlib.contextmanager
    def bulk(self, conn: PgConnection) -> Iterator[None]:
        # each batch commits on its own; no server-wide setting is worth changing for one import
        yield

    def copy_rows(self, conn: PgConnection, table: str, columns: Sequence[str],
                  rows: Sequence[Sequence[Any]]) -> None:  # fmt: skip
        """COPY FROM STDIN: the bulk path (issue 14 asks ≥ 15k records/s)."""
        with conn.raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
            for r in rows:
                cp.write_row(r)

    def next_rowid(self, conn: PgConnection, table: str, column: str) -> int:
        return conn.execute(f"SELECT COALESCE(MAX({column}), 0) + 1 FROM {table}").fetchone()[0]

    def advance_ids(self, conn: PgConnection, table: str, column: str) -> None:
        """Keys written explicitly (COPY, `db copy`) do not move the identity sequence: move it
        past them, or the next plain INSERT would reuse a key."""
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
            f"GREATEST((SELECT COALESCE(MAX({column}), 0) FROM {table}), 1))"
        )

    @contextlib.contextmanager
    def named_lock(self, conn: PgConnection, name: str) -> Iterator[bool]:
        """A session advisory lock: one holder across every node; the server drops it when the
        holder's connection ends (a SIGKILLed process included)."""
        got = conn.execute("SELECT pg_try_advisory_lock(?)", (lock_key(name),)).fetchone()[0]
        try:
            yield bool(got)
        finally:
            if got:
                with contextlib.suppress(StoreUnavailable):
                    conn.execute("SELECT pg_advisory_unlock(?)", (lock_key(name),))

    def try_row_lock(self, conn: PgConnection, name: str, key: int) -> bool:
        return bool(conn.execute("SELECT pg_try_advisory_lock(?, ?)", (lock_key(name), key)).fetchone()[0])

    def row_unlock(self, conn: PgConnection, name: str, key: int) -> None:
        conn.execute("SELECT pg_advisory_unlock(?, ?)", (lock_key(name), key))

    def migrate(self, conn: PgConnection) -> list[str]:
        """Under a session advisory lock, so nodes started together apply each file once."""
        applied = []
        conn.execute("SELECT pg_advisory_lock(?)", (lock_key(MIGRATE_LOCK),))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL "
                "DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))"
            )
            done = {r[0] for r in conn.execute("SELECT name FROM schema_migrations")}
            for name, sql in migration_files(self.name):
                if name in done:
                    continue
                log.info("applying migration %s", name)
                with conn.raw.transaction():
                    conn.raw.execute(sql)  # a whole file: no parameters, so psycopg sends it as is
                    conn.execute("INSERT INTO schema_migrations(name) VALUES (?)", (name,))
                applied.append(name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(?)", (lock_key(MIGRATE_LOCK),))
        return applied

    def schema(self, conn: PgConnection) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for r in conn.execute(
            "SELECT table_name, column_name, is_nullable FROM information_schema.columns "
            "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        ):
            out.setdefault(r[0], {"columns": {}, "indexes": {}})["columns"][r[1]] = r[2] == "NO"
        for r in conn.execute(
            "SELECT t.relname, i.relname, ix.indisunique, "
            "ARRAY(SELECT a.attname FROM unnest(ix.indkey) WITH ORDINALITY k(n, o) "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.n ORDER BY k.o) "
            "FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid "
            "JOIN pg_namespace ns ON ns.oid = t.relnamespace "
            "WHERE ns.nspname = current_schema() AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint c WHERE c.conindid = ix.indexrelid)"
        ):
            out.setdefault(r[0], {"columns": {}, "indexes": {}})["indexes"][r[1]] = (bool(r[2]), tuple(r[3]))
        return out

    @classmethod
    def close_pools(cls) -> None:
        with cls._pools_lock:
            for pool in cls._pools.values():
                pool.close()
            cls._pools.clear()


def _reset(conn: psycopg.Connection) -> None:
    # a connection goes back to the pool without the locks of the Store that used it
    conn.execute("SELECT pg_advisory_unlock_all()")


Engine = SqliteEngine | PostgresEngine


def engine_for(data_dir: Path, database_url: str | None) -> Engine:
    if database_url:
        if not is_postgres(database_url):
            raise ValueError(f"database_url must be a postgresql:// URL, not {redact(database_url)!r}")
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
