"""Shared fixtures. Every test gets real files in its own temporary data directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SEEDS_DIR = ROOT / "paperfeed" / "demo" / "seeds"
ARXIV_SAMPLE = SHARED / "arxiv" / "oai-snapshot-sample.jsonl"
CRANFIELD = SHARED / "ir" / "cranfield"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(scope="session")
def seed_paths() -> list[Path]:
    return sorted(SEEDS_DIR.glob("*.txt"))


def run_cli(*args: str, data: Path | None = None, input: str | None = None, timeout: int = 300,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real `paperfeed` command in a subprocess."""
    cmd = [sys.executable, "-m", "paperfeed"]
    if data is not None:
        cmd += ["--data", str(data)]
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(cmd + list(args), capture_output=True, text=True, input=input, timeout=timeout,
                          env=full_env)


def spawn_cli(*args: str, data: Path, log: Path, env: dict | None = None) -> subprocess.Popen:
    """Start the real `paperfeed` command (a server) in its own process group, stderr to `log`;
    stop it with os.killpg(proc.pid, ...)."""
    with log.open("w") as err:
        return subprocess.Popen([sys.executable, "-m", "paperfeed", "--data", str(data), *args],
                                stdout=subprocess.DEVNULL, stderr=err, env=env, start_new_session=True)  # fmt: skip


# Files whose tests start servers, browsers or killed subprocesses, or embed a corpus: `pytest -m
# "not slow"` is the quick loop while editing (about a third of the suite's time).
SLOW_FILES = {
    "test_web_browser.py",
    "test_digest_browser.py",
    "test_digest_crash.py",
    "test_digest_scheduler.py",
    "test_harvest_scheduler.py",
    "test_ingest_faults.py",
    "test_eval.py",
    "test_bench.py",
    "test_search.py",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)
