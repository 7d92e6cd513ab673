"""A real SMTP server (aiosmtpd) on 127.0.0.1 for the email tests.

It records every accepted message, can answer chosen addresses with a chosen
reply (451, 550, ...), and can be slow, like a real remote server under load.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def msg(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]


@dataclass
class _Handler:
    received: list[Received] = field(default_factory=list)
    started: list[str] = field(default_factory=list)  # Message-IDs whose DATA reached the server
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    rcpt_seen: list[str] = field(default_factory=list)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    started_event: threading.Condition = field(default_factory=threading.Condition)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001, ANN201
        with self.lock:
            self.rcpt_seen.append(address)
            reply = self.rcpt_replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201
        mid = email.message_from_bytes(envelope.content, policy=email.policy.default)["Message-ID"]
        with self.started_event:
            self.started.append(str(mid))
            self.started_event.notify_all()
        if self.delay:
            # If the client goes away during this wait, aiosmtpd cancels this
            # coroutine and the message is never accepted, as with a real server
            # that had not yet answered 250.
            await asyncio.sleep(self.delay)
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 Message accepted"


class SmtpSink:
    def __init__(self) -> None:
        self.handler = _Handler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, ready_timeout=10)

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def reset(self) -> None:
        with self.handler.lock:
            self.handler.received.clear()
            self.handler.started.clear()
            self.handler.rcpt_seen.clear()
            self.handler.rcpt_replies.clear()
            self.handler.delay = 0.0

    def reply(self, address: str, reply: str | None) -> None:
        with self.handler.lock:
            if reply is None:
                self.handler.rcpt_replies.pop(address.lower(), None)
            else:
                self.handler.rcpt_replies[address.lower()] = reply

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.rcpt_tos]

    def wait_started(self, n: int, timeout: float = 60) -> None:
        """Block until the DATA of the n-th message has reached the server."""
        deadline = time.monotonic() + timeout
        with self.handler.started_event:
            while len(self.handler.started) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"only {len(self.handler.started)} messages started")
                self.handler.started_event.wait(left)

    def wait_to(self, address: str, n: int = 1, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.to(address)
            if len(got) >= n:
                return got
            time.sleep(0.02)
        raise TimeoutError(f"expected {n} messages to {address}, got {len(self.to(address))}")

    def wait_for(self, n: int, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received
            if len(got) >= n:
                return got
            time.sleep(0.02)
        raise TimeoutError(f"expected {n} messages, got {len(self.received)}")


def smtp_env(sink: SmtpSink, base_url: str = "http://127.0.0.1:8000") -> dict[str, str]:
    return {
        "PAPERFEED_SMTP_HOST": "127.0.0.1",
        "PAPERFEED_SMTP_PORT": str(sink.port),
        "PAPERFEED_SMTP_TLS": "none",
        "PAPERFEED_MAIL_FROM": "Paperfeed Digest <digest@paperfeed.test>",
        "PAPERFEED_BASE_URL": base_url,
    }


def parts(msg: EmailMessage) -> tuple[str, str]:
    """(text, html) of a multipart/alternative digest."""
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None, "both MIME parts must be present"
    # the wire format has CRLF line ends, which get_content() keeps
    return text.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")


_templates: dict[str, Path] = {}
_template_lock = threading.Lock()


def _mail_template() -> Path:
    """The seed corpus, stored and indexed, built once per test process and database, and
    copied for each site: the index build (embedding every paper) is the slow part, and
    the paper pages a mail links to use the index. On SQLite the copy carries the store; on
    PostgreSQL the papers live in the database, so a module on another database (each module
    has its own) needs a template built on it."""
    url = os.environ.get("PAPERFEED_DATABASE_URL", "")
    with _template_lock:
        if url not in _templates:
            import atexit
            import shutil
            import tempfile

            from paperfeed.demo import demo_paths
            from paperfeed.index import sync
            from paperfeed.ingest import ingest_paths
            from paperfeed.store import open_store

            root = Path(tempfile.mkdtemp(prefix="paperfeed-mail-template-"))
            atexit.register(shutil.rmtree, root, True)
            data = root / "data"
            with open_store(data) as store:
                ingest_paths(store, demo_paths())
                sync(store, data, progress=False)
            _templates[url] = data
        return _templates[url]


def subscribe_readers(store: Any, settings: Any, n: int) -> list[str]:
    """`n` confirmed alert subscribers for "graph colouring" (reader0@... upwards), and three
    papers that match it: each reader is owed one mail."""
    from paperfeed.digest import subscribe
    from paperfeed.digest.subscribing import confirm_email
    from paperfeed.models import Paper

    emails = [f"reader{i}@example.org" for i in range(n)]
    for e in emails:
        subscribe(store, settings, e, query="graph colouring")
        confirm_email(store, e)
    store.upsert_papers([Paper(title=f"Graph colouring part {i}", abstract="graph colouring",
                               sources=["x"], ext_ids={"x": str(i)}) for i in range(3)])  # fmt: skip
    return emails


def start_mail_site(data: Path, sink: SmtpSink):  # noqa: ANN201 - (LiveServer, Settings)
    """A real uvicorn server on the seed corpus whose mails go to `sink` and whose
    links point at itself. Returns (server, settings); stop the server after use."""
    import shutil

    from paperfeed.config import Settings
    from tests.webserver import start_server

    shutil.copytree(_mail_template(), data)
    settings = Settings.load(data)
    settings.smtp_port = sink.port
    settings.mail_from = "paperfeed <digest@paperfeed.test>"
    srv = start_server(data, settings=settings, warm_search=True, rate_limit_scale=1000.0)
    # the port is known only now; the app holds this same Settings object
    settings.base_url = srv.url
    return srv, settings


def kill_during_message(proc: subprocess.Popen, sink: SmtpSink, n: int) -> None:
    """SIGKILL while the server is still deciding on the n-th message of all time:
    the row is 'sending' and the server has not said 250."""
    sink.wait_started(n, timeout=60)
    time.sleep(0.1)  # well inside the server's delay
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
