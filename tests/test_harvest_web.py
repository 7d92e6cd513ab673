""""Submit a paper" on the site: a signed-in user adds an arXiv paper by id, fetched with
GetRecord from a loopback OAI-PMH server; the paper page shows its arXiv versions."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from paperfeed.bench.oai_server import ArxivOaiServer, OaiRecord
from paperfeed.config import Settings
from paperfeed.store import accounts as acc
from paperfeed.store import open_store
from tests.helpers import day
from tests.webserver import start_server

pytestmark = pytest.mark.slow  # starts a server and an OAI-PMH server


def _csrf(page: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert m, "form without CSRF field"
    return m.group(1)


def test_signed_in_user_submits_an_arxiv_paper(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with open_store(data) as store:
        acc.create_user(store, "reader@example.org", "reader-password-1")
    record = OaiRecord("2210.02885", day(-1), created="2022-10-06", updated="2022-11-02",
                       title="Effective Rank of\n  Sparse Matrices", authors=[("Roy", "Olivier")],
                       abstract="We study the effective rank.\n", journal_ref="J. Matrices 3 (2023) 1-9")  # fmt: skip
    with ArxivOaiServer([record]) as oai:
        settings = Settings.load(data)
        settings.arxiv_oai_url = oai.url
        site = start_server(data, settings=settings)
        try:
            with httpx.Client(base_url=site.url, timeout=30, follow_redirects=False) as c:
                r = c.get("/submit")
                assert r.status_code == 303 and r.headers["location"].startswith("/login")
                login = c.get("/login")
                r = c.post("/login", data={"email": "reader@example.org", "password": "reader-password-1",
                                           "csrf_token": _csrf(login.text)})  # fmt: skip
                assert r.status_code == 303
                page = c.get("/submit")
                assert page.status_code == 200 and 'href="/submit"' in page.text
                token = _csrf(page.text)
                assert c.post("/submit", data={"arxiv_id": "2210.02885"}).status_code == 403  # no CSRF token

                r = c.post("/submit", data={"arxiv_id": "not an id", "csrf_token": token})
                assert r.status_code == 400 and "is not an arXiv identifier" in r.text
                r = c.post("/submit", data={"arxiv_id": "2210.99999", "csrf_token": token})
                assert r.status_code == 400 and "arXiv has no paper 2210.99999" in r.text

                r = c.post("/submit", data={"arxiv_id": "arxiv:2210.02885v2", "csrf_token": token})
                assert r.status_code == 303 and r.headers["location"].startswith("/papers/")
                paper = c.get(r.headers["location"])
                assert paper.status_code == 200
                assert "Effective Rank of Sparse Matrices" in paper.text
                assert "revised <time datetime=\"2022-11-02\">" in paper.text and "J. Matrices 3" in paper.text
        finally:
            site.stop()
    with open_store(data) as store:
        assert store.count() == 1
