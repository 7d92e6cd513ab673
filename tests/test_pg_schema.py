"""The two engines' migrations agree: the same files, tables, columns, NOT NULLs and indexes."""

from __future__ import annotations

from pathlib import Path

from paperfeed.store import open_store
from paperfeed.store.engine import migration_files


def test_both_engines_have_the_same_migration_files() -> None:
    assert [n for n, _ in migration_files("sqlite")] == [n for n, _ in migration_files("postgres")]


def test_sqlite_and_postgres_schemas_agree(tmp_path: Path, pg_url: str) -> None:
    with open_store(tmp_path / "lite", database_url="") as lite, open_store(tmp_path / "pg", database_url=pg_url) as pg:
        a, b = lite.engine.schema(lite.conn), pg.engine.schema(pg.conn)
    assert sorted(a) == sorted(b) and len(a) >= 14
    assert sum(len(t["indexes"]) for t in a.values()) >= 15
    for table in a:
        assert a[table]["columns"] == b[table]["columns"], table
        assert a[table]["indexes"] == b[table]["indexes"], table


def test_placeholders_are_rewritten_outside_literals_only() -> None:
    from paperfeed.store.pg import translate

    assert translate("SELECT ? FROM t WHERE a = '?' AND b LIKE '50%' AND \"c?\" = ? -- why?\n") == (
        "SELECT %s FROM t WHERE a = '?' AND b LIKE '50%%' AND \"c?\" = %s -- why?\n"
    )
    assert translate("SELECT 'it''s ?', ?") == "SELECT 'it''s ?', %s"


def test_rows_read_by_position_and_by_name_on_postgres(tmp_path: Path, pg_url: str) -> None:
    with open_store(tmp_path, database_url=pg_url) as store:
        store.meta_set("k", "v%?")
        row = store.conn.execute("SELECT key, value FROM meta WHERE key = ?", ("k",)).fetchone()
        assert (row[0], row["value"], dict(row)) == ("k", "v%?", {"key": "k", "value": "v%?"})
        with store.write() as c:
            assert c.execute("UPDATE meta SET value = ? WHERE key = ?", ("w", "k")).rowcount == 1
        assert store.meta_get("k") == "w" and not store.conn.in_transaction


def test_a_nul_in_a_lookup_matches_nothing_on_postgres(tmp_path: Path, pg_url: str) -> None:
    with open_store(tmp_path, database_url=pg_url) as store:
        assert store.get_paper("\x00") is None and store.meta_get("a\x00b") is None
