"""Settings: environment variables first, then a TOML config file, then defaults.

The config file is `$PAPERFEED_CONFIG`, else `<data dir>/config.toml` if present.
Keys in the file are the variable names without the `PAPERFEED_` prefix, in
lower case (`smtp_host = "..."`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

DEFAULT_DATA_DIR = "paperfeed-data"


def resolve_data_dir(value: str | os.PathLike | None = None) -> Path:
    return Path(value or os.environ.get("PAPERFEED_DATA") or DEFAULT_DATA_DIR)


class ConfigError(ValueError):
    """A setting (environment variable or config.toml) with a value paperfeed cannot use. The
    message names the setting and what it accepts; the CLI prints it instead of a traceback."""


# read from the environment only (see Settings.from_env)
PROCESS_WIDE = frozenset({"embedder", "model_dir", "embed_threads", "embed_max_tokens", "ann_threshold"})


@dataclass
class Settings:
    data_dir: Path = field(default_factory=resolve_data_dir)
    base_url: str = "http://127.0.0.1:8000"
    secret_key: str = ""
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_tls: str = "none"  # none | starttls | ssl
    mail_from: str = "paperfeed <paperfeed@localhost>"
    # serve: run the digest job every N minutes (0 = off)
    digest_interval_minutes: int = 0
    # live harvesting (`paperfeed harvest arxiv`); the default URL is arXiv's, from its OAI-PMH docs
    arxiv_oai_url: str = "https://oaipmh.arxiv.org/oai"
    arxiv_sets: str = "cs"  # space- or comma-separated set names: cs, math, physics:astro-ph, ...
    # seconds between two requests; arXiv's terms of use ask for at most one every three seconds
    arxiv_oai_delay: float = 3.0
    contact_email: str = ""  # named in the harvester's User-Agent, as arXiv asks
    # serve: harvest every N minutes (0 = off)
    harvest_interval_minutes: int = 0
    # serve: addresses of the reverse proxies whose X-Forwarded-For / -Proto is believed,
    # comma-separated ("127.0.0.1", "10.0.0.5,10.0.0.6", "*" for any). Empty: none, so a
    # client cannot choose the address its rate limits are counted against.
    forwarded_allow_ips: str = ""
    # The embedding model. These belong to the install, not to a data directory, so they are
    # read from the environment alone (`from_env`), where no data directory is known.
    embedder: str = ""  # a backend name (see `paperfeed models list`); empty: the fastest here
    model_dir: str = ""  # derived model files; empty: <sys.prefix>/share/paperfeed/models
    embed_threads: int = 0  # inference threads; 0: the cores this process may run on
    embed_max_tokens: int = 256  # tokens of a text the ONNX encoder reads
    ann_threshold: int = 50_000  # vectors from which dense search is approximate (HNSW)
    # the system of record: empty = SQLite in the data directory; postgresql://... = a PostgreSQL
    # server that several nodes (each with its own data directory for the indexes) share
    database_url: str = ""
    # serve: seconds between two looks at the store for papers another node (or process) added,
    # which the search indexes of this node then catch up with
    index_refresh_seconds: float = 5.0

    @classmethod
    def load(cls, data_dir: Path | None = None, config_file: Path | None = None) -> Settings:
        s = cls(data_dir=resolve_data_dir(data_dir))
        s._read(_file_values(s.data_dir, config_file))
        if not s.secret_key:
            s.secret_key = _data_dir_secret(s.data_dir)
        return s

    @classmethod
    def from_env(cls) -> Settings:
        """The settings the environment gives, without a config file or a generated secret: for
        the process-wide ones (the embedding model), read where no data directory is known."""
        s = cls(data_dir=resolve_data_dir())
        s._read({})
        return s

    def _read(self, file_values: dict) -> None:
        s = self
        for f in fields(self):
            if f.name == "data_dir":
                continue
            env = os.environ.get(f"PAPERFEED_{f.name.upper()}")
            if f.name in PROCESS_WIDE:
                # blank is unset; a config.toml (per data directory) cannot choose the install's model
                raw = env if env and env.strip() else None
            else:
                raw = env if env is not None else file_values.get(f.name)
            if raw is None:
                continue
            if f.type in ("int", int):
                try:
                    raw = int(raw)
                except (TypeError, ValueError):
                    raise ConfigError(f"PAPERFEED_{f.name.upper()} must be a whole number, not {raw!r}") from None
            elif f.type in ("float", float):
                try:
                    raw = float(raw)
                except (TypeError, ValueError):
                    raise ConfigError(f"PAPERFEED_{f.name.upper()} must be a number, not {raw!r}") from None
                if not 0 <= raw < float("inf"):
                    raise ConfigError(f"PAPERFEED_{f.name.upper()} must be a number of seconds >= 0, not {raw!r}")
            elif isinstance(raw, list):  # config.toml may list values: arxiv_sets = ["cs", "math"]
                raw = " ".join(map(str, raw))
            setattr(s, f.name, raw if f.type in ("int", int, "float", float) else str(raw))
        if s.smtp_tls not in ("none", "starttls", "ssl"):
            raise ConfigError(f"PAPERFEED_SMTP_TLS must be none, starttls or ssl, not {s.smtp_tls!r}")
        s.base_url = s.base_url.rstrip("/")
        if not s.arxiv_oai_url.startswith(("http://", "https://")):
            raise ConfigError(f"PAPERFEED_ARXIV_OAI_URL must be an http(s) URL, not {s.arxiv_oai_url!r}")
        s.embedder, s.model_dir = s.embedder.strip(), s.model_dir.strip()

    def harvest_sets(self) -> list[str]:
        return self.arxiv_sets.replace(",", " ").split()


def _file_values(data_dir: Path, config_file: Path | None = None) -> dict:
    path = config_file or (Path(os.environ["PAPERFEED_CONFIG"]) if os.environ.get("PAPERFEED_CONFIG") else None)
    path = path or data_dir / "config.toml"
    if not path.is_file():
        return {}
    with path.open("rb") as f:
        return tomllib.load(f)


def database_url(data_dir: Path, config_file: Path | None = None) -> str:
    """PAPERFEED_DATABASE_URL, else database_url in the config file, else "" (SQLite). Read on its
    own so that opening a Store needs no secret key or other settings."""
    env = os.environ.get("PAPERFEED_DATABASE_URL")
    if env is not None:
        return env
    return str(_file_values(data_dir, config_file).get("database_url", ""))


@contextlib.contextmanager
def throwaway_sqlite() -> Iterator[None]:
    """For the commands that build throw-away data directories (`eval`, the benchmarks): their
    stores are SQLite inside those directories whatever PAPERFEED_DATABASE_URL says, for this
    process and the commands it starts. A node configured for PostgreSQL must never load an
    evaluation collection or a synthetic corpus into its system of record (and two such runs
    would share, and spoil, one database). The benchmarks that measure PostgreSQL take
    --database-url."""
    old = os.environ.get("PAPERFEED_DATABASE_URL")
    os.environ["PAPERFEED_DATABASE_URL"] = ""
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PAPERFEED_DATABASE_URL", None)
        else:
            os.environ["PAPERFEED_DATABASE_URL"] = old


def is_configured(name: str, data_dir: Path, config_file: Path | None = None) -> bool:
    """Whether setting `name` was given (environment or config file) rather than defaulted."""
    return os.environ.get(f"PAPERFEED_{name.upper()}") is not None or name in _file_values(data_dir, config_file)


def served_base_url(host: str, port: int) -> str:
    """The base URL of a server bound to host:port, for when none is configured.

    A wildcard bind (0.0.0.0, ::) has no one address; the loopback one at least works
    from the machine itself.
    """
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _data_dir_secret(data_dir: Path) -> str:
    """A secret generated once per data directory, so every web worker that shares
    the directory signs and verifies with the same key without configuration."""
    path = data_dir / "secret.key"
    if path.is_file():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(key)
    os.chmod(tmp, 0o600)
    try:
        # link() fails if another process won the race; then use theirs
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()
