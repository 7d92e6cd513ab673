"""A real uvicorn server on 127.0.0.1 for the web tests, plus the shared demo data.

The demo server is built once per test process (ingest + index + model warm-up
are the expensive parts) and shared by every test_web_* module.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from paperfeed.store import accounts as acc
from paperfeed.store import open_store
from paperfeed.store import papers as feed
from paperfeed.web import create_app
from tests.helpers import run_cli

XSS_TITLE = "<script>alert(1)</script>"
XSS_ABSTRACT = "<img src=x onerror=alert(1)> abstract with <b>markup</b> & ampersands, \u202eRTL\u202c and emoji \U0001f9ea."
LINKED_TITLE = "Linked Paper With Known Identifiers"
ADMIN_EMAIL = "admin@example.org"
ADMIN_PASSWORD = "admin-password-1"


@dataclass
class LiveServer:
    url: str
    data_dir: Path
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_server(data_dir: Path, **app_kwargs: object) -> LiveServer:
    app = create_app(data_dir, **app_kwargs)  # type: ignore[arg-type]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    return LiveServer(f"http://127.0.0.1:{port}", data_dir, server, thread)


def build_demo_data(root: Path) -> Path:
    """The bundled demo corpus, a hostile paper and a paper with arXiv/DOI ids, indexed."""
    data = root / "data"
    with open_store(data) as store:
        pass
    r = run_cli("ingest", "--demo", "--no-index", "--no-progress", data=data)
    assert r.returncode == 0, r.stderr
    with open_store(data) as store:
        latest = feed.latest_feed_date(store)
        assert latest
    extra = root / "extra.jsonl"
    records = [
        {"title": XSS_TITLE, "abstract": XSS_ABSTRACT, "authors": ["<b>Eve</b>", "O'Brien & Co"],
         "categories": ["cs.<i>CR</i>"], "feed_date": latest, "id": "xss-1"},
        {"title": LINKED_TITLE, "abstract": "A paper that has an arXiv id and a DOI, about effective rank {of} 50% matrices.",
         "authors": ["Ada Lovelace", "Alan Turing"], "categories": ["cs.LG", "stat.ML"], "feed_date": latest,
         "arxiv_id": "2401.00001", "doi": "10.1000/xyz123", "id": "linked-1"},
    ]  # fmt: skip
    extra.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    # the indexes are built by the server itself at start (as `serve` does), not by ingest
    r = run_cli("ingest", str(extra), "--no-index", "--no-progress", data=data)
    assert r.returncode == 0, r.stderr + r.stdout
    with open_store(data) as store:
        acc.create_user(store, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    return data


_demo: LiveServer | None = None
_demo_db: str | None = None
_lock = threading.Lock()


def demo_server() -> LiveServer:
    """The shared server on the demo data (rate limits relaxed so tests do not trip them).

    With --engine postgres each module has its own database (PG_SCOPE = "module"), so a module
    on another database than the running demo gets a demo of its own."""
    global _demo, _demo_db
    with _lock:
        url = os.environ.get("PAPERFEED_DATABASE_URL")
        if _demo is not None and url != _demo_db:
            _demo.stop()
            _demo = None
        if _demo is None:
            _demo_db = url
            root = Path(tempfile.mkdtemp(prefix="paperfeed-web-"))
            data = build_demo_data(root)
            _demo = start_server(data, rate_limit_scale=1000.0)
            # wait for the search warm-up and its index catch-up, so tests see the real engine;
            # `caught_up` is set on failure too, so a search that did not load stops here
            search = _demo.server.config.app.state.search  # type: ignore[union-attr]
            if not search.caught_up.wait(300):
                raise RuntimeError("the demo server's index catch-up did not finish in 300 s")
            status = search.status()
            if not (status["ready"] and status["dense"]):
                raise RuntimeError(f"search did not load on the demo server: {status}")

            def cleanup() -> None:
                assert _demo is not None
                _demo.stop()
                shutil.rmtree(root, ignore_errors=True)

            atexit.register(cleanup)
        return _demo


def find_paper_id(data_dir: Path, title: str) -> str:
    with open_store(data_dir) as store:
        row = store.conn.execute("SELECT id FROM papers WHERE title = ?", (title,)).fetchone()
        assert row, title
        return row[0]
