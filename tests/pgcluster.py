"""A throwaway PostgreSQL cluster for the tests: initdb in a temporary directory, a unix
socket only (listen_addresses = ''), run as an unprivileged user (PostgreSQL refuses root),
stopped and deleted afterwards."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

USER = "paperfeed"  # the cluster's superuser role; the socket trusts local connections


def bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError("PostgreSQL server binaries not found: `make test` installs Debian's postgresql")


def _as_owner(cmd: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *cmd] if owner else cmd


class Cluster:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="paperfeed-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root
        self.owner: str | None = None
        if os.geteuid() == 0:
            # root cannot run the server: the Debian package's `postgres` account can, else nobody
            for name in ("postgres", "nobody"):
                try:
                    pw = pwd.getpwnam(name)
                except KeyError:
                    continue
                self.owner = name
                os.chown(self.root, pw.pw_uid, pw.pw_gid)
                break
        self.bin = bindir()
        self._names = itertools.count()

    def start(self) -> None:
        env = {**os.environ, "LC_ALL": "C"}
        if not self.data.exists():
            self._initdb(env)
        self._pg_ctl_start(env)

    def _initdb(self, env: dict[str, str]) -> None:
        subprocess.run(_as_owner([str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust",
                                  "--encoding=UTF8", "--locale=C", "--no-sync"], self.owner),
                       check=True, capture_output=True, env=env)  # fmt: skip

    def _pg_ctl_start(self, env: dict[str, str]) -> None:
        # a test server: durability off (a crash loses the cluster anyway), no TCP at all
        opts = (f"-c listen_addresses='' -c unix_socket_directories={self.socket_dir} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
                "-c shared_buffers=64MB")  # fmt: skip
        subprocess.run(_as_owner([str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
                                  str(self.root / "server.log"), "-w", "start"], self.owner),
                       check=True, capture_output=True, env=env)  # fmt: skip

    def halt(self, mode: str = "fast") -> None:
        """Stop the server, keeping its files (start() again resumes it). "fast" ends every
        connection and writes out what was committed (commits are asynchronous here, so an
        "immediate" stop may lose the last ones)."""
        subprocess.run(_as_owner([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                                  "stop"], self.owner), capture_output=True)  # fmt: skip

    def stop(self) -> None:
        self.halt("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{USER}@/{dbname}?host={self.socket_dir}"

    def create_database(self, template: str | None = None) -> str:
        name = f"t{os.getpid()}_{next(self._names)}"
        with cluster_connection(self) as conn:
            conn.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
        return name

    def drop_database(self, name: str) -> None:
        with cluster_connection(self) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def cluster_connection(cluster: Cluster) -> psycopg.Connection:
    """An administrative connection (CREATE/DROP DATABASE run outside a transaction)."""
    return psycopg.connect(cluster.url(), autocommit=True)
