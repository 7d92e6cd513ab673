"""Helpers the tests share: the real `paperfeed` command in a subprocess, and where the shared
corpora are. Import them as `from tests.helpers import ...` (fixtures are in conftest.py)."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SEEDS_DIR = ROOT / "paperfeed" / "demo" / "seeds"
ARXIV_SAMPLE = SHARED / "arxiv" / "oai-snapshot-sample.jsonl"
CRANFIELD = SHARED / "ir" / "cranfield"
# A small corpus of three topics for the For-you tests that index real papers.
TOPIC_TITLES = [
    "Honey bee colonies and varroa mites in winter",
    "Sourdough starter fermentation and oven spring",
    "Keel design and heeling stability of racing sailboats",
    "Pollination of apple orchards by wild bees",
    "Rye bread acidity and crumb structure",
]



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


def wait_for(what: str, check, proc: subprocess.Popen, log: Path, timeout: float = 90):  # noqa: ANN001, ANN202
    """The first true value of `check()`, polled while the server `proc` is alive (it writes `log`)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert proc.poll() is None, f"serve exited: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {log.read_text()[-3000:]}"
        time.sleep(0.1)


def day(offset: int) -> str:
    """The ISO date `offset` days from today (UTC), as a harvested record would carry it."""
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=offset)).isoformat()


def csrf_from(page: str) -> str:
    """The CSRF token of the first form on an HTML page."""
    m = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert m, "page has no CSRF token"
    return m.group(1)
