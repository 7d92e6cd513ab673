"""What reference managers, crawlers and feed readers read from the site: Highwire and
OpenGraph tags, arXiv ids in URLs, BibTeX, and feed HTTP caching, over real HTTP."""

from __future__ import annotations

import tempfile
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from webserver import LiveServer, start_server

from paperfeed.models import Paper
from paperfeed.store import open_store

DAY = "2026-11-20"
TEX_TITLE = r"Bounds on $\alpha_1$ and \ell_\infty {Robust} Learning: Ünïcödé & 50% of R_D #1"
HOSTILE_TITLE = '"><script>alert(1)</script> Quoted \'title\''
PAPERS = [
    Paper(title=TEX_TITLE, abstract="We bound things. " * 40, authors=["Ada Lovelace", "Émile Borel", "Q. O'Neil"],
          categories=["cs.LG", "stat.ML"], arxiv_id="2210.02885", doi="10.1016/j.laa_2024.01.002",
          published="2022-10-06", feed_date=DAY, sources=["jsonl"]),
    Paper(title="Old Style Strings", abstract="Strings, old style.", authors=["Edward Witten"],
          categories=["hep-th"], arxiv_id="hep-th/9901001", feed_date=DAY, sources=["jsonl"]),
    Paper(title="Only Ingested Once", abstract="No ids at all.", authors=["Ada Lovelace"],
          categories=["cs.LG"], feed_date=DAY, sources=["jsonl"]),
    Paper(title="Only Ingested Twice", abstract="No ids either.", authors=["Ada Lovelace"],
          categories=["cs.LG"], feed_date=DAY, sources=["jsonl"]),
    Paper(title=HOSTILE_TITLE, abstract='<img src=x onerror=alert(1)> "quoted"', authors=['<b>Eve</b> "the" hacker'],
          categories=["cs.CR"], feed_date=DAY, sources=["jsonl"]),
]  # fmt: skip


@pytest.fixture(scope="module")
def srv() -> LiveServer:
    root = Path(tempfile.mkdtemp(prefix="paperfeed-cite-"))
    with open_store(root / "data") as store:
        store.upsert_papers(PAPERS)
    server = start_server(root / "data", warm_search=False, rate_limit_scale=1000.0)
    yield server
    server.stop()


@pytest.fixture
def client(srv: LiveServer) -> httpx.Client:
    with httpx.Client(base_url=srv.url, timeout=30, follow_redirects=False) as c:
        yield c


def paper_id(srv: LiveServer, title: str) -> str:
    with open_store(srv.data_dir) as store:
        return store.conn.execute("SELECT id FROM papers WHERE title = ?", (title,)).fetchone()[0]


class HeadTags(HTMLParser):
    """The <meta> and <link> tags of a page, as (name or property, content) pairs."""

    def __init__(self) -> None:
        super().__init__()
        self.meta: list[tuple[str, str]] = []
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "meta" and (a.get("name") or a.get("property")):
            self.meta.append((a.get("name") or a.get("property") or "", a.get("content") or ""))
        elif tag == "link":
            self.links.append(a)

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.meta if k == name]


def head_tags(page: str) -> HeadTags:
    parser = HeadTags()
    parser.feed(page)
    return parser


# ---- 1. Highwire / OpenGraph ----------------------------------------------------


def test_paper_page_has_highwire_opengraph_description_and_canonical(client: httpx.Client, srv: LiveServer) -> None:
    pid = paper_id(srv, TEX_TITLE)
    r = client.get(f"/papers/{pid}")
    assert r.status_code == 200
    tags = head_tags(r.text)
    assert tags.values("citation_title") == [TEX_TITLE]
    assert tags.values("citation_author") == ["Ada Lovelace", "Émile Borel", "Q. O'Neil"]
    assert tags.values("citation_date") == ["2022/10/06"]
    assert tags.values("citation_arxiv_id") == ["2210.02885"]
    assert tags.values("citation_pdf_url") == ["https://arxiv.org/pdf/2210.02885"]
    assert tags.values("citation_doi") == ["10.1016/j.laa_2024.01.002"]
    assert tags.values("og:title") == [TEX_TITLE]
    assert tags.values("og:type") == ["article"]
    canonical = [link["href"] for link in tags.links if link.get("rel") == "canonical"]
    assert canonical == [f"http://127.0.0.1:8000/papers/{pid}"]
    assert tags.values("og:url") == canonical
    (description,) = tags.values("description")
    assert description.startswith("We bound things.") and len(description) <= 300
    assert tags.values("og:description") == [description]


def test_citation_tags_leave_out_what_is_unknown(client: httpx.Client, srv: LiveServer) -> None:
    tags = head_tags(client.get(f"/papers/{paper_id(srv, 'Only Ingested Once')}").text)
    assert tags.values("citation_title") == ["Only Ingested Once"]
    # the day it entered the feed is not a publication date
    for name in ("citation_date", "citation_arxiv_id", "citation_pdf_url", "citation_doi"):
        assert tags.values(name) == [], name


def test_hostile_metadata_stays_inside_the_attributes(client: httpx.Client, srv: LiveServer) -> None:
    r = client.get(f"/papers/{paper_id(srv, HOSTILE_TITLE)}")
    assert r.status_code == 200
    assert "<script>alert(1)" not in r.text and "<img src=x" not in r.text
    tags = head_tags(r.text)
    assert tags.values("citation_title") == [HOSTILE_TITLE]
    assert tags.values("citation_author") == ['<b>Eve</b> "the" hacker']
    assert tags.values("og:description") == ['<img src=x onerror=alert(1)> "quoted"']


# ---- 2. arXiv ids in URLs -------------------------------------------------------


def test_arxiv_id_urls_reach_the_paper(client: httpx.Client, srv: LiveServer) -> None:
    pid = paper_id(srv, TEX_TITLE)
    r = client.get("/papers/2210.02885")
    assert r.status_code == 200
    assert head_tags(r.text).values("citation_arxiv_id") == ["2210.02885"]
    api = client.get("/api/papers/2210.02885")
    assert api.status_code == 200 and api.json()["id"] == pid
    assert client.get("/api/papers/2210.02885v3").json()["id"] == pid
    assert client.get("/papers/2210.02885/bibtex").status_code == 200


@pytest.mark.parametrize("alias", ["2210.02885v2", "arXiv:2210.02885", "arxiv:2210.02885v1"])
def test_versioned_arxiv_ids_redirect_to_the_canonical_page(client: httpx.Client, srv: LiveServer, alias: str) -> None:
    r = client.get(f"/papers/{alias}")
    assert r.status_code == 301
    assert r.headers["location"] == f"/papers/{paper_id(srv, TEX_TITLE)}"


def test_old_style_arxiv_ids_work(client: httpx.Client, srv: LiveServer) -> None:
    pid = paper_id(srv, "Old Style Strings")
    r = client.get("/papers/hep-th/9901001")
    assert r.status_code == 200
    assert head_tags(r.text).values("citation_arxiv_id") == ["hep-th/9901001"]
    assert client.get("/papers/hep-th/9901001v2").headers.get("location") == f"/papers/{pid}"
    assert client.get("/api/papers/hep-th/9901001").json()["id"] == pid
    assert client.get("/api/papers/hep-th/9901001v1").json()["arxiv_id"] == "hep-th/9901001"


@pytest.mark.parametrize("path", ["/papers/2210.99999", "/papers/hep-th/9999999", "/papers/not/an-id",
                                  "/api/papers/2210.99999", "/api/papers/hep-th/9999999", "/api/papers/x/y",
                                  "/papers/" + "1" * 70, "/papers/2210.02885v"])  # fmt: skip
def test_unknown_ids_are_404(client: httpx.Client, path: str) -> None:
    assert client.get(path).status_code == 404
