"""PostgreSQL behind the store: a connection adapter for the sqlite3 idiom, and the engine.

Imported only when a database_url is set, so a SQLite install never loads psycopg.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool, PoolTimeout

from paperfeed.store.engine import (
    EXPRESSION_KEY,
    MIGRATE_LOCK,
    POOL_SIZE,
    WRITE_LOCK,
    StoreUnavailable,
    lock_key,
    migration_files,
    redact,
)

log = logging.getLogger(__name__)


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
        return tok.replace("%", "%%")  # a literal, quoted name or comment: only its % needs escaping

    return _TOKENS.sub(sub, sql)


_translated: dict[str, str] = {}


def _pg_sql(sql: str) -> str:
    out = _translated.get(sql)
    if out is None:
        out = translate(sql)
        if len(_translated) < 4096:
            _translated[sql] = out
    return out


def _params(params: Sequence[Any] | None) -> tuple[Any, ...]:
    """PostgreSQL text cannot hold NUL, which SQLite stores. paperfeed refuses NUL in what it
    stores (ingest, addresses), so a NUL reaches here only in a lookup (a URL with %00): as
    U+FFFD it matches nothing, as SQLite's answer does, instead of failing the request."""
    if not params:
        return ()
    return tuple(v.replace("\x00", "\ufffd") if isinstance(v, str) and "\x00" in v else v for v in params)


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

    def __init__(self, conn: psycopg.Connection, pool: ConnectionPool | None = None) -> None:
        self.raw = conn
        self.pool = pool  # the pool it goes back to

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> PgCursor:
        try:
            cur = self.raw.cursor(row_factory=_row_factory)
            cur.execute(_pg_sql(sql), _params(params))
        except psycopg.OperationalError as exc:
            raise _unavailable(exc) from exc
        return PgCursor(cur)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> PgCursor:
        try:
            cur = self.raw.cursor(row_factory=_row_factory)
            cur.executemany(_pg_sql(sql), [_params(r) for r in rows])
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


class PostgresEngine:
    """PostgreSQL shared by every node, through a process-wide psycopg pool."""

    name = "postgres"
    IntegrityError = psycopg.errors.IntegrityError
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
                    check=ConnectionPool.check_connection, reset=_reset, timeout=5,
                    name="paperfeed",
                )  # fmt: skip
                self._pools[self.url] = pool
            return pool

    def connect(self, *, readonly: bool = False) -> PgConnection:
        pool = self.pool()
        try:
            raw = pool.getconn()
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise StoreUnavailable(f"the database server {redact(self.url)} cannot be reached: {exc}") from exc
        return PgConnection(raw, pool)

    def release(self, conn: PgConnection) -> None:
        # to the pool it came from: if that was closed meanwhile (close_pools), it closes the connection
        (conn.pool or self.pool()).putconn(conn.raw)

    def begin_write(self, conn: PgConnection, *, serial: bool = True) -> None:
        conn.execute("BEGIN")
        if serial:
            conn.execute("SELECT pg_advisory_xact_lock(?)", (lock_key(WRITE_LOCK),))

    @contextlib.contextmanager
    def bulk(self, conn: PgConnection) -> Iterator[None]:
        """Each batch commits on its own. For this session only, a commit does not wait for its
        WAL flush: a server crash may lose the last batches, which a rerun of the import writes
        again (as SQLite's synchronous=NORMAL may lose them to an OS crash); nothing is ever
        half-written. No server-wide setting changes."""
        conn.execute("SET synchronous_commit = off")
        try:
            yield
        finally:
            with contextlib.suppress(StoreUnavailable):
                conn.execute("RESET synchronous_commit")

    def copy_rows(self, conn: PgConnection, table: str, columns: Sequence[str],
                  rows: Sequence[Sequence[Any]], *, binary: bool = False) -> None:  # fmt: skip
        """COPY FROM STDIN: the bulk path (issue 14 asks ≥ 15k records/s). `binary` (rows whose
        Python types are the columns' own, as the importer writes them) spares the server parsing
        numbers and the client escaping text; the text format takes any value PostgreSQL can
        parse, as `db copy` needs for rows read back from SQLite."""
        fmt = " (FORMAT BINARY)" if binary else ""
        # looked up before the COPY starts: the connection takes no other statement during one
        types = self._column_types(conn, table, tuple(columns)) if binary else None
        with conn.raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN{fmt}") as cp:
            if types:
                cp.set_types(types)
            for r in rows:
                cp.write_row(r)

    _types: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}

    def _column_types(self, conn: PgConnection, table: str, columns: tuple[str, ...]) -> list[str]:
        key = (self.url, table, columns)
        types = self._types.get(key)
        if types is None:
            found = dict(conn.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = ?::regclass AND attnum > 0 AND NOT attisdropped", (table,)).fetchall())  # fmt: skip
            types = self._types[key] = [found[c] for c in columns]
        return types

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
            "ARRAY(SELECT COALESCE(a.attname, ?) FROM unnest(ix.indkey) WITH ORDINALITY k(n, o) "
            "LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.n ORDER BY k.o) "
            "FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid "
            "JOIN pg_namespace ns ON ns.oid = t.relnamespace "
            "WHERE ns.nspname = current_schema() AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint c WHERE c.conindid = ix.indexrelid)",
            (EXPRESSION_KEY,),
        ):
            out.setdefault(r[0], {"columns": {}, "indexes": {}})["indexes"][r[1]] = (bool(r[2]), tuple(r[3]))
        return out

    @classmethod
    def close_pools(cls, url: str | None = None) -> None:
        """Close the pool of `url`, or every pool."""
        with cls._pools_lock:
            for key in [url] if url else list(cls._pools):
                pool = cls._pools.pop(key, None)
                if pool is not None:
                    pool.close()


def _reset(conn: psycopg.Connection) -> None:
    # a connection goes back to the pool without the locks of the Store that used it
    conn.execute("SELECT pg_advisory_unlock_all()")


