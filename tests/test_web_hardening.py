"""Faults found by attacking a running instance (issue 15), each on a real server on 127.0.0.1."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from paperfeed.store import open_store
from tests.webserver import LiveServer, start_server

pytestmark = pytest.mark.slow  # starts servers (several workers, proxies, a hung mail server)

# their server is started once for the module: with --engine postgres, one database for the module
PG_SCOPE = "module"
@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A site on an empty data directory: what these tests probe needs no papers."""
    srv = start_server(tmp_path_factory.mktemp("hardening") / "data", warm_search=False)
    yield srv
    srv.stop()


@pytest.fixture
def client(bare: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=bare.url, timeout=30, follow_redirects=False) as c:
        yield c


def _raw(url: str, request: bytes, chunks: Sequence[bytes] = ()) -> bytes:
    """Send `request` then `chunks` on one socket and return everything the server answers."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request)
        for chunk in chunks:
            s.sendall(chunk)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while data := s.recv(65536):
            out += data
    return out


# ---- request body size (medium 2) --------------------------------------------------


def test_oversized_form_is_refused_before_parsing_and_csrf(client: httpx.Client) -> None:
    # a valid-looking form with no CSRF token: parsed, it would get 403
    small = client.post("/login", data={"email": "a@example.org", "password": "x" * 1000})
    assert small.status_code == 403
    big = client.post("/login", data={"email": "a@example.org", "password": "x" * (1024 * 1024)})
    assert big.status_code == 413
    assert "too large" in big.text
    api = client.post("/subscribe", content=b"{" + b" " * 100_000 + b"}",
                      headers={"content-type": "application/json", "accept": "application/json"})  # fmt: skip
    assert api.status_code == 413 and "too large" in api.json()["detail"]


def test_content_length_alone_is_enough_to_refuse(bare: LiveServer) -> None:
    """A client announcing a huge body is answered at once, without sending (or us reading) it."""
    head = (b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 1000000000\r\n\r\n")  # fmt: skip
    out = _raw(bare.url, head, [b"email=a%40example.org&password=short"])
    assert out.startswith(b"HTTP/1.1 413"), out[:200]


def test_chunked_body_is_counted_as_it_streams(bare: LiveServer) -> None:
    head = (b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
    piece = b"a" * 1024
    chunks = [b"400\r\n" + piece + b"\r\n" for _ in range(66)] + [b"0\r\n\r\n"]
    out = _raw(bare.url, head, chunks)
    assert out.startswith(b"HTTP/1.1 413"), out[:200]
    # the same framing under the cap is parsed (and then refused for its missing CSRF token)
    out = _raw(bare.url, head.replace(b"/subscribe", b"/login"), [b"400\r\n" + piece + b"\r\n", b"0\r\n\r\n"])
    assert out.startswith(b"HTTP/1.1 403"), out[:200]


# ---- dense index damage (medium 3) -------------------------------------------------


def test_healthz_reports_lost_vectors_and_names_files_to_admins_only(tmp_path: Path) -> None:
    from paperfeed.index import sync
    from paperfeed.index.sync import VECTORS_DIR, embedder_for, index_dir, open_vectors
    from paperfeed.models import Paper
    from paperfeed.store import accounts as acc

    data = tmp_path / "data"
    with open_store(data) as store:
        store.upsert_papers([Paper(title=f"Vector paper {i}", abstract=f"About topic {i}.", sources=["jsonl:t"],
                                   ext_ids={"jsonl:t": str(i)}) for i in range(5)])  # fmt: skip
        sync(store, data)
        acc.create_user(store, "ops@example.org", "operator password", is_admin=True)
    srv = start_server(data, warm_search=False)
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as anon, httpx.Client(base_url=srv.url, timeout=30) as ops:
            token = _csrf(ops.get("/login").text)
            r = ops.post("/login", data={"email": "ops@example.org", "password": "operator password",
                                         "csrf_token": token})  # fmt: skip
            assert r.status_code == 303
            assert anon.get("/healthz").json()["index"]["whole"] is True
            vec = open_vectors(index_dir(data) / VECTORS_DIR, embedder_for(data))
            vec.remove(vec.ids()[:3])
            vec.save()
            public = anon.get("/healthz")
            assert public.json()["status"] == "degraded" and public.json()["index"]["whole"] is False
            assert "problems" not in public.json() and str(tmp_path) not in public.text
            body = ops.get("/healthz").json()
            assert body["status"] == "degraded"
            assert "5 papers are recorded as embedded, 2 vectors are stored" in body["problems"][0]
            assert str(data) in body["problems"][0]
    finally:
        srv.stop()


# ---- mail never stalls the site (medium 1) -------------------------------------------


class BlackHoleSmtp:
    """Accepts TCP connections and never says a word, like a hung mail server."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(200)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.held:
            c.close()


def test_a_hung_mail_server_does_not_stall_the_site(tmp_path: Path) -> None:
    from paperfeed.config import Settings
    from paperfeed.store import outbox as ob

    hole = BlackHoleSmtp()
    data = tmp_path / "data"
    settings = Settings.load(data)
    settings.smtp_port = hole.port
    srv = start_server(data, settings=settings, warm_search=False, rate_limit_scale=1000.0)
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            page = c.get("/subscribe")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            cookies = dict(c.cookies)

        def subscribe(i: int) -> float:
            with httpx.Client(base_url=srv.url, timeout=30, cookies=cookies) as c:
                t0 = time.perf_counter()
                r = c.post("/subscribe", data={"email": f"reader{i}@example.org", "kind": "trending",
                                               "period": "daily", "csrf_token": token})  # fmt: skip
                assert r.status_code == 200 and "Check your inbox" in r.text
                return time.perf_counter() - t0

        with ThreadPoolExecutor(45) as pool:
            took = list(pool.map(subscribe, range(45)))
        assert max(took) < 5
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            for _ in range(3):
                t0 = time.perf_counter()
                assert c.get("/healthz").status_code == 200
                assert time.perf_counter() - t0 < 1.0
                time.sleep(0.3)
        with open_store(data) as store:
            confirms = [r for r in ob.list_rows(store) if r.kind == "confirm"]
        # every request queued its mail; none is lost, the sender works through them
        assert len(confirms) == 45 and {r.status for r in confirms} <= {"pending", "sending"}
    finally:
        srv.stop()
        hole.close()


# ---- integer path parameters (item 13) ------------------------------------------------


def _csrf(page: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert m, "page has no CSRF token"
    return m.group(1)


def _signed_up(c: httpx.Client, email: str, password: str = "correct horse 1") -> str:
    """Sign `c` up as `email`; returns a CSRF token for its next forms."""
    token = _csrf(c.get("/signup").text)
    r = c.post("/signup", data={"email": email, "password": password, "csrf_token": token, "next": "/"})
    assert r.status_code == 303, r.text[:300]
    return token


def test_huge_integer_path_parameters_are_client_errors(client: httpx.Client) -> None:
    token = _signed_up(client, "bigint@example.org")
    for action in ("unsubscribe", "period", "resume"):
        for sub_id in ("99999999999999999999999", str(2**63), "0", "-1"):
            r = client.post(f"/account/subscriptions/{sub_id}/{action}", data={"csrf_token": token, "period": "daily"})
            assert r.status_code == 422, (action, sub_id, r.status_code)
        r = client.post(f"/account/subscriptions/{2**63 - 1}/{action}", data={"csrf_token": token, "period": "daily"})
        assert r.status_code == 404


# ---- small items (item 14) ------------------------------------------------------------


def test_head_is_answered_on_pages_and_healthz(client: httpx.Client) -> None:
    for path in ("/", "/healthz", "/login", "/trending", "/api/papers", "/subscribe", "/static/favicon.svg"):
        get = client.get(path)
        head = client.head(path)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b"" and head.headers.get("content-type") == get.headers.get("content-type"), path
    assert client.head("/no-such-page").status_code == 404


@pytest.mark.sqlite_only("reads the SQLite file")
def test_database_is_created_readable_by_its_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with open_store(data) as store:
        store.meta_set("probe", "1")  # a write, so the -wal file exists too
        for name in ("paperfeed.db", "paperfeed.db-wal"):
            assert (data / name).stat().st_mode & 0o777 == 0o600, name


def test_hsts_only_when_the_site_is_https(tmp_path: Path, client: httpx.Client) -> None:
    from paperfeed.config import Settings

    assert "strict-transport-security" not in client.get("/").headers
    settings = Settings.load(tmp_path / "data")
    settings.base_url = "https://papers.example.org"
    srv = start_server(tmp_path / "data", settings=settings, warm_search=False)
    try:
        r = httpx.get(f"{srv.url}/", timeout=30)
        assert r.status_code == 200 and r.headers["strict-transport-security"] == "max-age=31536000"
    finally:
        srv.stop()


# ---- rate limits (item 11) ---------------------------------------------------------------


def _login(c: httpx.Client, token: str, email: str, password: str = "wrong guess", client_ip: str | None = None
           ) -> httpx.Response:  # fmt: skip
    headers = {"x-forwarded-for": client_ip} if client_ip else {}
    return c.post("/login", data={"email": email, "password": password, "csrf_token": token}, headers=headers)


def _serve(data: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "paperfeed", "--data", str(data), "serve", "--no-sync",
                             "--port", str(port)], env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{url}/healthz", timeout=5)
            return proc, url
        except httpx.HTTPError:
            assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)


@pytest.mark.usefixtures("own_database")  # a store of its own, in a module that shares one database
@pytest.mark.parametrize("trusted", ["", "127.0.0.1"])
def test_forwarded_for_is_believed_only_from_configured_proxies(tmp_path: Path, trusted: str) -> None:
    """A direct client rotating X-Forwarded-For got a fresh login budget with every request."""
    proc, url = _serve(tmp_path / "data", {"PAPERFEED_FORWARDED_ALLOW_IPS": trusted})
    try:
        with httpx.Client(base_url=url, timeout=30) as c:
            token = _csrf(c.get("/login").text)
            codes = [_login(c, token, f"guess{i}@example.org", client_ip=f"198.51.100.{i}").status_code
                     for i in range(22)]  # fmt: skip
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    if trusted:  # behind the configured proxy, each forwarded client has its own budget
        assert codes == [400] * 22
    else:
        assert codes[:20] == [400] * 20 and codes[20:] == [429, 429]


def test_failed_logins_are_limited_per_account(tmp_path: Path) -> None:
    """Guesses at one account from ever-new addresses (the test server believes
    X-Forwarded-For from loopback) stop after ten, even the right password."""
    from paperfeed.store import accounts as acc

    data = tmp_path / "data"
    with open_store(data) as store:
        acc.create_user(store, "victim@example.org", "the right password")
        acc.create_user(store, "bystander@example.org", "another password")
    srv = start_server(data, warm_search=False)
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            token = _csrf(c.get("/login").text)
            codes = [_login(c, token, "Victim@Example.org ", client_ip=f"203.0.113.{i}").status_code for i in range(10)]
            assert codes == [400] * 10
            r = _login(c, token, "victim@example.org", "the right password", client_ip="203.0.113.200")
            assert r.status_code == 429 and "failed log-ins for this account" in r.text
            assert int(r.headers["retry-after"]) > 800
            r = _login(c, token, "bystander@example.org", "another password", client_ip="203.0.113.201")
            assert r.status_code == 303
    finally:
        srv.stop()


@pytest.mark.usefixtures("own_database")  # a store of its own, in a module that shares one database
def test_workers_share_one_login_budget(tmp_path: Path) -> None:
    """Two apps on one data directory, as `serve --workers 2` runs: per process, a client
    spread over them got twice the limit."""
    data = tmp_path / "data"
    a, b = start_server(data, warm_search=False), start_server(data, warm_search=False)
    try:
        with httpx.Client(base_url=a.url, timeout=30) as ca, httpx.Client(base_url=b.url, timeout=30) as cb:
            tokens = {ca: _csrf(ca.get("/login").text), cb: _csrf(cb.get("/login").text)}
            codes = [_login(c, tokens[c], f"spread{i}@example.org").status_code
                     for i in range(12) for c in (ca, cb)]  # fmt: skip
        assert codes[:20] == [400] * 20 and codes[20:] == [429] * 4
    finally:
        a.stop()
        b.stop()


# ---- index catch-up off the request path (item 12) -------------------------------------------


def test_first_search_after_ingest_without_index_does_not_wait_for_the_catch_up(tmp_path: Path) -> None:
    from paperfeed.models import Paper

    data = tmp_path / "data"
    with open_store(data) as store:  # stored as `ingest --no-index` does: nothing indexed yet
        store.upsert_papers([Paper(title=f"Effective rank of layer {i}", abstract=f"We measure the effective rank "
                                   f"of weight matrix {i} during training.", sources=["jsonl:t"],
                                   ext_ids={"jsonl:t": str(i)}) for i in range(60)])  # fmt: skip
    srv = start_server(data, warm_search=False)
    try:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            t0 = time.perf_counter()
            first = c.get("/api/search", params={"q": "effective rank"})
            took = time.perf_counter() - t0
            # answered by the fallback: the catch-up (embedding every paper) was not run in the request
            assert first.status_code == 200 and first.json()["engine"] == "fallback" and first.json()["hits"]
            assert took < 3, f"the first search took {took:.1f}s"
            deadline = time.monotonic() + 120
            while (body := c.get("/api/search", params={"q": "effective rank"}).json())["engine"] != "hybrid":
                assert time.monotonic() < deadline, "the background catch-up never finished"
                time.sleep(0.5)
            assert body["hits"] and body["total"] >= 1
    finally:
        srv.stop()
