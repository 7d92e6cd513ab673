"""Shared fixtures. Every test gets real files in its own temporary data directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.digest_support import SmtpSink, start_mail_site
from tests.helpers import SEEDS_DIR
from tests.pgcluster import Cluster, cluster_connection


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(scope="session")
def seed_paths() -> list[Path]:
    return sorted(SEEDS_DIR.glob("*.txt"))


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    """An aiosmtpd server on 127.0.0.1 that keeps what it receives, one per test module."""
    s = SmtpSink().start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sink: SmtpSink) -> Iterator[tuple]:
    """The site on a real server over the indexed seed corpus, mailing to `sink`; one per module."""
    name = request.module.__name__.rsplit(".", 1)[-1]
    srv, settings = start_mail_site(tmp_path_factory.mktemp(name) / "data", sink)
    yield srv, settings
    srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Chromium (Debian's) driven by Playwright, one per browser test module."""
    from playwright.sync_api import sync_playwright

    from tests.browser import ARGS, CHROMIUM

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


# ---- the engine under test ---------------------------------------------------------
# `pytest --engine postgres` (or PAPERFEED_TEST_ENGINE=postgres) runs each test against a fresh
# database of a throwaway PostgreSQL cluster (tests/pgcluster.py): PAPERFEED_DATABASE_URL is set
# for the test and the commands it starts. Tests that need PostgreSQL whatever the engine (two
# nodes, the schema agreement) use the `pg_cluster` / `pg_url` fixtures.


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--engine", choices=("sqlite", "postgres"),
                     default=os.environ.get("PAPERFEED_TEST_ENGINE", "sqlite"),
                     help="the store engine the tests run against (default sqlite)")  # fmt: skip


TEMPLATE_DB = "pf_template"
NO_MODULE_DATABASE = "postgresql://paperfeed@/set-PG_SCOPE-module-for-module-scoped-stores?host=/nonexistent"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    from paperfeed.store import Store
    from paperfeed.store.pg import PostgresEngine

    cluster = Cluster()
    cluster.start()
    try:
        with cluster_connection(cluster) as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
        # a migrated template: each test's database is a cheap file copy of it
        Store(cluster.root, database_url=cluster.url(TEMPLATE_DB)).close()
        PostgresEngine.close_pools()
        yield cluster
    finally:
        PostgresEngine.close_pools()
        cluster.stop()


def _fresh_database(cluster: Cluster) -> Iterator[str]:
    from paperfeed.store.pg import PostgresEngine

    name = cluster.create_database(template=TEMPLATE_DB)
    url = cluster.url(name)
    try:
        yield url
    finally:
        PostgresEngine.close_pools(url)  # only this database's: a module's store may still be open
        cluster.drop_database(name)


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test."""
    yield from _fresh_database(pg_cluster)


@pytest.fixture(scope="module")
def pg_module_url(pg_cluster: Cluster) -> Iterator[str]:
    """One database for a module whose tests share a server started once (PG_SCOPE = "module")."""
    yield from _fresh_database(pg_cluster)


@pytest.fixture
def other_database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """A second, empty store for the test. On SQLite another data directory is another store
    (None); with --engine postgres it is another database (its URL), which the test puts in
    PAPERFEED_DATABASE_URL wherever it means the second store."""
    if not _postgres(request.config):
        yield None
        return
    yield from _fresh_database(request.getfixturevalue("pg_cluster"))


@pytest.fixture
def own_database(other_database: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """For a test that needs a store of its own in a module that shares one database
    (PG_SCOPE = "module"): with --engine postgres it gets a fresh database for itself; on
    SQLite its own data directory is a store of its own already."""
    if other_database:
        monkeypatch.setenv("PAPERFEED_DATABASE_URL", other_database)


def _postgres(config: pytest.Config) -> bool:
    return config.getoption("--engine") == "postgres"


@pytest.fixture(scope="module", autouse=True)
def _engine_module(request: pytest.FixtureRequest) -> Iterator[None]:
    # module scope, so that module-scoped servers are built on the module's database
    with pytest.MonkeyPatch.context() as mp:
        if _postgres(request.config) and getattr(request.module, "PG_SCOPE", "test") == "module":
            mp.setenv("PAPERFEED_DATABASE_URL", request.getfixturevalue("pg_module_url"))
        elif _postgres(request.config):
            # each test gets its database only when it starts: a module-scoped fixture that opens
            # a store here would silently build on SQLite, and its tests then look in an empty
            # database. Such a module sets PG_SCOPE = "module"; until it does, it fails loudly.
            mp.setenv("PAPERFEED_DATABASE_URL", NO_MODULE_DATABASE)
        else:
            mp.delenv("PAPERFEED_DATABASE_URL", raising=False)
        yield


@pytest.fixture(autouse=True)
def _engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, _engine_module: None) -> None:
    if not _postgres(request.config):
        return
    marker = request.node.get_closest_marker("sqlite_only")
    if marker:
        pytest.skip("SQLite only: " + marker.args[0])
    if getattr(request.module, "PG_SCOPE", "test") != "module":
        monkeypatch.setenv("PAPERFEED_DATABASE_URL", request.getfixturevalue("pg_url"))
