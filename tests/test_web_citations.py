"""What reference managers, crawlers and feed readers read from the site: Highwire and
OpenGraph tags, arXiv ids in URLs, BibTeX, and feed HTTP caching, over real HTTP."""

from __future__ import annotations

import html
import re
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import bibtexparser
import feedparser
import httpx
import pytest
from bibtexparser.middlewares import LatexDecodingMiddleware

from paperfeed.models import Paper
from paperfeed.store import open_store
from paperfeed.web.citations import Cited, bibtex, unique_keys
from paperfeed.web.math import render_tex
from paperfeed.web.pages import page_window
from tests.webserver import LiveServer, start_server

pytestmark = pytest.mark.slow  # asks the shared demo server

# their server is started once for the module: with --engine postgres, one database for the module
PG_SCOPE = "module"
DAY = "2026-11-20"
TEX_TITLE = r"Bounds on $\alpha_1$ and \ell_\infty {Robust} Learning: Ünïcödé & 50% of R_D #1"
HOSTILE_TITLE = "\"><script>alert(1)</script> Quoted 'title'"
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
    Paper(title="Anonymous Preprint", abstract="Nobody signed it.", categories=["cs.LG"], feed_date=DAY,
          sources=["jsonl"]),
    Paper(title=HOSTILE_TITLE, abstract='<img src=x onerror=alert(1)> "quoted"', authors=['<b>Eve</b> "the" hacker'],
          categories=["cs.CR"], feed_date=DAY, sources=["jsonl"]),
]  # fmt: skip
LATEX_DAY = "2026-11-18"
LATEX_TITLE = r"Erd\H{o}s--R\'enyi graphs: {\em sparse} limits of $G(n,p)$"
LATEX_PAPER = Paper(title=LATEX_TITLE, abstract=r"We bound the {\em weighting vector}, 10\% faster; see ``Fig.~2''.",
                    categories=["math.CO"], feed_date=LATEX_DAY, sources=["jsonl"])  # fmt: skip
BUSY_DAY = "2026-11-19"  # 120 papers: three pages of the daily list
FILLERS = [Paper(title=f"Filler paper number {i}", abstract="Filler.", authors=["Filler Person"],
                 categories=["math.CO"], feed_date=BUSY_DAY, sources=["jsonl"]) for i in range(120)]  # fmt: skip


@pytest.fixture(scope="module")
def srv() -> LiveServer:
    root = Path(tempfile.mkdtemp(prefix="paperfeed-cite-"))
    with open_store(root / "data") as store:
        store.upsert_papers([*PAPERS, *FILLERS, LATEX_PAPER])
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


def test_paper_page_has_highwire_opengraph_description_and_canonical(
    client: httpx.Client, srv: LiveServer
) -> None:
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
def test_versioned_arxiv_ids_redirect_to_the_canonical_page(
    client: httpx.Client, srv: LiveServer, alias: str
) -> None:
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


# ---- 3. BibTeX ------------------------------------------------------------------


def parse_bib(text: str, decode: bool = False) -> list[dict[str, str]]:
    """Entries as bibtexparser reads them: {ENTRYTYPE, ID, field: value}; decode turns TeX into Unicode."""
    library = bibtexparser.parse_string(text, append_middleware=[LatexDecodingMiddleware()] if decode else [])
    assert not library.failed_blocks, [b.error for b in library.failed_blocks]
    return [
        {"ENTRYTYPE": e.entry_type, "ID": e.key, **{f.key: f.value for f in e.fields}}
        for e in library.entries
    ]


def one_entry(title: str, **kw: object) -> str:
    return bibtex([Cited(Paper(title=title, authors=["Ada Lovelace"], **kw))])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "title",
    ["Ünïcödé, 漢字 and emoji 🧪 in titles", "R&D: 50% of #1 fits_all ~ ^ cost $5", "A lone backslash \\ here",
     "Unbalanced } braces { here", "Escaped \\{ brace", "}, note = {injected"],
)  # fmt: skip
def test_bibtex_plain_titles_round_trip_through_bibtexparser(title: str) -> None:
    (entry,) = parse_bib(one_entry(title), decode=True)
    assert set(entry) == {"ENTRYTYPE", "ID", "title", "author"}
    # pylatexenc decodes \textasciicircum{} to the modifier letter ˆ, LaTeX prints ^
    decoded = entry["title"].strip("{}").replace("\u02c6", "^")
    if "brace" not in title and "{" not in title:
        assert decoded == title
    else:
        # the brace characters themselves have no Unicode decoding; every word survives
        words = [w.strip("{}\\,") for w in title.split()]
        assert all(w in decoded for w in words if w), decoded


@pytest.mark.parametrize(
    "title",
    [r"Bounds on $\alpha_1$ and $\ell_\infty$ norms", r"The {B}ayesian {\'e}tale cohomology of \LaTeX"],
)
def test_bibtex_keeps_the_tex_of_titles(title: str) -> None:
    (entry,) = parse_bib(one_entry(title))
    assert entry["title"] == "{" + title + "}"


def test_bibtex_url_and_doi_are_verbatim_and_arxiv_papers_are_misc_eprints() -> None:
    (entry,) = parse_bib(bibtex([Cited(PAPERS[0])]))
    assert entry["ENTRYTYPE"] == "misc"
    assert entry["doi"] == "10.1016/j.laa_2024.01.002"
    assert entry["url"] == "https://arxiv.org/abs/2210.02885"
    assert (entry["eprint"], entry["archivePrefix"], entry["primaryClass"]) == (
        "2210.02885",
        "arXiv",
        "cs.LG",
    )
    assert entry["year"] == "2022"
    (journal,) = parse_bib(bibtex([Cited(PAPERS[0], journal="Linear Algebra Appl. 690 (2024) 1-20")]))
    assert journal["ENTRYTYPE"] == "article" and journal["journal"] == "Linear Algebra Appl. 690 (2024) 1-20"


def test_bibtex_year_comes_from_publication_or_arxiv_id_never_the_ingest_date() -> None:
    (old,) = parse_bib(bibtex([Cited(PAPERS[1])]))
    assert old["year"] == "1999" and old["eprint"] == "hep-th/9901001"
    (ingested,) = parse_bib(bibtex([Cited(PAPERS[2])]))
    assert "year" not in ingested and PAPERS[2].feed_date


def test_bibtex_keys_are_unique_across_an_export() -> None:
    papers = [
        Paper(title=f"Learning things {i}", authors=["Sam Paper"], published="2026-01-01") for i in range(30)
    ]
    papers.append(Paper(title="Learning alone", authors=["Sam Paper"], published="2026-01-01"))
    # its key would be the first suffixed key of the others, were taken keys not skipped
    papers.append(Paper(title="Learning", authors=["Sam Paper"], published="2026-01-01"))
    entries = parse_bib(bibtex([Cited(p) for p in papers]))
    keys = [e["ID"] for e in entries]
    assert len(entries) == 32 and len(set(keys)) == 32
    assert keys[:3] == ["paper2026learninga", "paper2026learningb", "paper2026learningc"]
    assert all(k.startswith("paper2026learning") for k in keys)
    assert unique_keys(PAPERS[2:4]) == ["lovelaceonlya", "lovelaceonlyb"]


def test_bibtex_download_from_the_site_parses(client: httpx.Client, srv: LiveServer) -> None:
    for title in (TEX_TITLE, HOSTILE_TITLE, "Old Style Strings"):
        r = client.get(f"/papers/{paper_id(srv, title)}/bibtex")
        assert r.status_code == 200
        (entry,) = parse_bib(r.text)
        assert entry["author"]
    assert parse_bib(client.get("/papers/2210.02885/bibtex").text)[0]["doi"] == "10.1016/j.laa_2024.01.002"


# ---- 4. feeds over HTTP ---------------------------------------------------------


def test_feeds_answer_conditional_requests_with_304(client: httpx.Client) -> None:
    r = client.get("/feeds/daily.atom")
    assert r.status_code == 200
    etag, last_modified = r.headers["etag"], r.headers["last-modified"]
    again = client.get("/feeds/daily.atom", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert client.get("/feeds/daily.atom", headers={"If-Modified-Since": last_modified}).status_code == 304
    assert client.get("/feeds/daily.atom", headers={"If-None-Match": '"stale"'}).status_code == 200
    # an ETag that no longer matches wins over a date that still would
    stale = {"If-None-Match": '"stale"', "If-Modified-Since": last_modified}
    assert client.get("/feeds/daily.atom", headers=stale).status_code == 200
    old = {"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}
    assert client.get("/feeds/daily.atom", headers=old).status_code == 200
    assert client.get("/feeds/daily.atom", headers={"If-Modified-Since": "not a date"}).status_code == 200


def test_feeds_are_gzipped(client: httpx.Client) -> None:
    r = client.get("/feeds/daily.atom", headers={"Accept-Encoding": "gzip"})
    assert r.headers.get("content-encoding") == "gzip"
    assert int(r.headers["content-length"]) < len(r.content)  # compressed on the wire
    assert "accept-encoding" in r.headers.get("vary", "").lower()
    plain = client.get("/feeds/daily.atom", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == r.content


def test_feeds_parse_with_an_icon_and_no_made_up_authors(client: httpx.Client, srv: LiveServer) -> None:
    r = client.get("/feeds/daily.atom")
    feed = feedparser.parse(r.content)
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.feed.icon == "http://127.0.0.1:8000/favicon.ico"
    by_title = {e.title: e for e in feed.entries}
    assert "Unknown" not in r.text
    assert "authors" not in by_title["Anonymous Preprint"] or by_title["Anonymous Preprint"].authors == [
        {"name": "paperfeed"}
    ]
    assert [a["name"] for a in by_title[TEX_TITLE].authors] == ["Ada Lovelace", "Émile Borel", "Q. O'Neil"]


def test_category_feeds(client: httpx.Client) -> None:
    r = client.get("/feeds/category/cs.LG.atom")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/atom+xml")
    feed = feedparser.parse(r.content)
    assert not feed.bozo
    titles = {e.title for e in feed.entries}
    assert {TEX_TITLE, "Only Ingested Once", "Anonymous Preprint"} <= titles
    assert "Old Style Strings" not in titles and "stat.ML" not in feed.feed.title
    assert {e.title for e in feedparser.parse(client.get("/feeds/category/hep-th.atom").content).entries} == {
        "Old Style Strings"
    }
    # a prefix of a category is not the category
    assert feedparser.parse(client.get("/feeds/category/cs.L.atom").content).entries == []
    for bad in (
        "/feeds/category/%3Cscript%3E.atom",
        "/feeds/category/a.b.c.atom",
        "/feeds/category/" + "x" * 50 + ".atom",
    ):
        assert client.get(bad).status_code == 404, bad


def test_favicon_is_served_and_head_is_answered(client: httpx.Client) -> None:
    r = client.get("/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"] == "image/x-icon"
    assert r.content[:4] == b"\x00\x00\x01\x00"  # the ICO header
    head = client.head("/favicon.ico")
    assert head.status_code == 200 and head.content == b""
    feed_head = client.head("/feeds/category/cs.LG.atom")
    assert feed_head.status_code == 200 and feed_head.content == b"" and feed_head.headers["etag"]


# ---- 5. exporting many papers ---------------------------------------------------


def ris_records(text: str) -> list[dict[str, list[str]]]:
    records: list[dict[str, list[str]]] = []
    current: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        tag, sep, value = line.partition("  - ")
        assert sep and len(tag) == 2, line  # every line is a RIS tag line
        if tag == "ER":
            records.append(current)
            current = {}
        else:
            current.setdefault(tag, []).append(value)
    assert current == {}, "a record without ER"
    return records


def test_export_a_selection_as_bibtex_and_ris(client: httpx.Client, srv: LiveServer) -> None:
    pid = paper_id(srv, "Only Ingested Once")
    ids = f"2210.02885v2, hep-th/9901001,{pid}"
    r = client.get("/export.bib", params={"ids": ids})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-bibtex")
    assert 'filename="paperfeed-selection.bib"' in r.headers["content-disposition"]
    entries = parse_bib(r.text)
    assert [e.get("eprint") for e in entries] == ["2210.02885", "hep-th/9901001", None]
    records = ris_records(client.get("/export.ris", params={"ids": ids}).text)
    assert [rec["TI"] for rec in records] == [[TEX_TITLE], ["Old Style Strings"], ["Only Ingested Once"]]
    assert records[0]["AU"] == ["Ada Lovelace", "Émile Borel", "Q. O'Neil"] and records[0]["DO"] == [
        PAPERS[0].doi
    ]
    assert records[0]["TY"] == ["UNPB"] and "PY" not in records[2]


def test_export_a_day_a_search_and_a_category(client: httpx.Client) -> None:
    day = parse_bib(client.get("/export.bib", params={"date": DAY}).text)
    assert len(day) == len(PAPERS) and len({e["ID"] for e in day}) == len(PAPERS)
    assert len(ris_records(client.get("/export.ris", params={"since": DAY, "until": DAY}).text)) == len(
        PAPERS
    )
    found = parse_bib(client.get("/export.bib", params={"q": "Ingested"}).text)
    assert sorted(e["ID"] for e in found) == ["lovelaceonlya", "lovelaceonlyb"]
    hep = parse_bib(client.get("/export.bib", params={"category": "hep-th"}).text)
    assert [e["eprint"] for e in hep] == ["hep-th/9901001"]


@pytest.mark.parametrize(
    ("path", "status"),
    [("/export.bib", 400), ("/export.bib?ids=nope,2210.02885", 404), ("/export.pdf?date=" + DAY, 422),
     ("/export.ris?since=2026-12-01&until=2026-01-01", 400), ("/export.bib?date=2026-02-30", 422),
     ("/export.bib?ids=" + ",".join(["x"] * 501), 400)],
)  # fmt: skip
def test_export_refuses_what_it_cannot_do(client: httpx.Client, path: str, status: int) -> None:
    r = client.get(path)
    assert r.status_code == status
    assert r.json()["detail"]


def test_pages_link_to_their_exports(client: httpx.Client, srv: LiveServer) -> None:
    page = client.get("/", params={"date": DAY}).text
    links = re.findall(r'href="(/export\.(?:bib|ris)\?[^"]+)"', page)
    assert len(links) == 2
    assert len(parse_bib(client.get(html.unescape(links[0])).text)) == len(PAPERS)
    search = client.get("/search", params={"q": "Ingested"}).text
    (bib_link,) = re.findall(r'href="(/export\.bib\?[^"]+)"', search)
    assert len(parse_bib(client.get(html.unescape(bib_link)).text)) == 2
    paper = client.get(f"/papers/{paper_id(srv, TEX_TITLE)}").text
    (ris_link,) = re.findall(r'href="(/export\.ris\?[^"]+)"', paper)
    assert ris_records(client.get(html.unescape(ris_link)).text)[0]["TI"] == [TEX_TITLE]


# ---- list cards: authors, categories, links -------------------------------------


def test_cards_link_authors_categories_and_arxiv_and_hide_source_tags(client: httpx.Client) -> None:
    page = client.get("/", params={"date": DAY}).text
    assert '<a href="/search?author=%C3%89mile%20Borel">Émile Borel</a>' in page
    assert '<a class="tag" href="/search?category=cs.LG"' in page
    assert 'href="https://arxiv.org/abs/2210.02885" rel="noopener noreferrer">arXiv:2210.02885</a>' in page
    assert 'href="https://arxiv.org/pdf/hep-th/9901001"' in page
    assert "jsonl" not in page  # the source tag of every paper here
    assert "&lt;b&gt;Eve&lt;/b&gt;" in page and "<b>Eve</b>" not in page


def test_author_and_category_links_list_their_papers(client: httpx.Client, srv: LiveServer) -> None:
    by_author = client.get("/search", params={"author": "Ada Lovelace"})
    assert by_author.status_code == 200
    listed = re.findall(r'<h2 class="title"><a href="/papers/([0-9a-f]+)">', by_author.text)
    titles = [TEX_TITLE, "Only Ingested Once", "Only Ingested Twice"]
    assert sorted(listed) == sorted(paper_id(srv, t) for t in titles)
    assert "Papers by Ada Lovelace" in by_author.text
    in_hep = client.get("/search", params={"category": "hep-th"}).text
    assert re.findall(r'<h2 class="title"><a href="/papers/[0-9a-f]+">([^<]+)</a>', in_hep) == [
        "Old Style Strings"
    ]
    assert 'href="/feeds/category/hep-th.atom"' in in_hep
    nobody = client.get("/search", params={"author": "Nobody Atall"})
    assert nobody.status_code == 200 and "No papers match these filters" in nobody.text
    hostile = client.get("/search", params={"author": "<script>x</script>"})
    assert hostile.status_code == 200 and "<script>x" not in hostile.text
    exported = parse_bib(client.get("/export.bib", params={"author": "Ada Lovelace"}).text)
    assert len(exported) == 3


# ---- navigation -----------------------------------------------------------------


def test_page_window_shows_ends_and_neighbours() -> None:
    assert page_window(1, 1) == [1]
    assert page_window(1, 3) == [1, 2, 3]
    assert page_window(10, 20) == [1, None, 8, 9, 10, 11, 12, None, 20]
    assert page_window(2, 20) == [1, 2, 3, 4, None, 20]


def test_daily_pages_are_numbered_top_and_bottom(client: httpx.Client) -> None:
    page = client.get("/", params={"date": BUSY_DAY, "page": 2}).text
    navs = re.findall(r'<nav class="pager numbered" aria-label="([^"]+)">(.*?)</nav>', page, re.S)
    assert [label for label, _ in navs] == ["Pages, top", "Pages, bottom"]
    for _, nav in navs:
        assert re.findall(r">(\d+)</a>", nav) == ["1", "2", "3"]
        assert '<a href="/?date=2026-11-19&amp;page=2" aria-current="page">2</a>' in nav
        assert (
            'rel="prev" href="/?date=2026-11-19"' in nav
            and 'rel="next" href="/?date=2026-11-19&amp;page=3"' in nav
        )
    first = client.get("/", params={"date": BUSY_DAY}).text
    assert '<span class="disabled">← Previous</span>' in first
    assert "pager numbered" not in client.get("/", params={"date": DAY}).text  # one page: no pager


def test_a_page_past_the_end_says_so(client: httpx.Client) -> None:
    r = client.get("/", params={"date": BUSY_DAY, "page": 99})
    assert r.status_code == 404
    assert "There is no page 99" in r.text and "120 papers on 3 pages" in r.text
    assert "No papers that day" not in r.text
    assert 'href="/?date=2026-11-19&amp;page=3">Go to the last page' in r.text


def test_daily_page_has_a_date_picker(client: httpx.Client) -> None:
    page = client.get("/", params={"date": BUSY_DAY, "view": "week"}).text
    form = page[page.index('<form class="datepick"') :]
    form = form[: form.index("</form>")]
    assert '<input id="day-pick" type="date" name="date" value="2026-11-19" required>' in form
    assert '<input type="hidden" name="view" value="week">' in form and '<label for="day-pick">' in form


def test_stylesheet_has_a_dark_scheme_and_unbroken_dates(client: httpx.Client) -> None:
    css = client.get("/static/style.css").text
    light = css[css.index(":root {") : css.index("}", css.index(":root {"))]
    dark_at = css.index("@media (prefers-color-scheme: dark)")
    dark = css[dark_at : css.index("}", css.index(":root {", dark_at))]
    names = set(re.findall(r"(--[a-z-]+):", light))
    assert len(names) > 10 and names == set(re.findall(r"(--[a-z-]+):", dark))
    # colours outside the two palettes would not follow the scheme
    rest = css[css.index("}", css.index(":root {", dark_at)) :]
    assert not re.findall(r"#[0-9a-fA-F]{3,6}\b", rest)
    assert re.search(r"time \{ white-space: nowrap; \}", css)
    assert ".vote .count { font-weight: 700; color: inherit; }" in css


def test_static_files_and_pages_have_cache_headers_and_compression(client: httpx.Client) -> None:
    css = client.get("/static/style.css", headers={"Accept-Encoding": "gzip"})
    assert (
        css.headers["cache-control"] == "public, max-age=3600" and css.headers["content-encoding"] == "gzip"
    )
    assert client.get("/static/style.css", headers={"If-None-Match": css.headers["etag"]}).status_code == 304
    page = client.get("/", headers={"Accept-Encoding": "gzip"})
    assert page.headers["cache-control"] == "private, no-cache" and page.headers["content-encoding"] == "gzip"
    assert client.get("/feeds/daily.atom").headers["cache-control"] == "public, max-age=300"
    assert client.get("/api/papers").headers["cache-control"] == "no-cache"


# ---- accounts -------------------------------------------------------------------


def _csrf(page: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert m
    return m.group(1)


def test_a_vote_cast_while_logged_out_counts_after_signing_up(client: httpx.Client, srv: LiveServer) -> None:
    pid = paper_id(srv, "Old Style Strings")
    before = client.get(f"/api/papers/{pid}").json()["votes"]
    page = client.get("/", params={"date": DAY}).text
    (vote_link,) = re.findall(rf'<a class="vote" href="(/login\?[^"]*vote={pid})"', page)
    login_page = client.get(html.unescape(vote_link)).text
    assert "Your vote for “Old Style Strings” is recorded once you log in." in login_page
    (signup_link,) = re.findall(r'<a href="(/signup\?[^"]+)">Create an account', login_page)
    signup_page = client.get(html.unescape(signup_link)).text
    assert f'<input type="hidden" name="vote" value="{pid}">' in signup_page
    r = client.post("/signup", data={"email": "voter@example.org", "password": "correct horse 1", "next": "/",
                                     "vote": pid, "csrf_token": _csrf(signup_page)})  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == f"/#p-{pid}"
    assert client.get(f"/api/papers/{pid}").json()["votes"] == before + 1
    # and the header now leads to the subscriptions of the account
    assert '<a href="/account/subscriptions">Your subscriptions</a>' in client.get("/").text
    client.post("/logout", data={"csrf_token": _csrf(client.get("/").text)})
    # logging in again with the same pending vote does not count it twice
    login_form = client.get("/login", params={"next": "/", "vote": pid}).text
    r = client.post("/login", data={"email": "voter@example.org", "password": "correct horse 1", "next": "/",
                                    "vote": pid, "csrf_token": _csrf(login_form)})  # fmt: skip
    assert r.status_code == 303
    assert client.get(f"/api/papers/{pid}").json()["votes"] == before + 1
    # a vote for a paper that does not exist is ignored, not an error
    bogus = client.get("/login", params={"vote": "<script>"})
    assert bogus.status_code == 200 and "Your vote for" not in bogus.text


# ---- math -----------------------------------------------------------------------


def test_tex_in_titles_and_abstracts_is_mathml_on_the_page(client: httpx.Client, srv: LiveServer) -> None:
    page = client.get(f"/papers/{paper_id(srv, TEX_TITLE)}").text
    h1 = page[page.index('<h1 class="title">') : page.index("</h1>")]
    assert '<math display="inline"><mrow><msub><mi>α</mi><mn>1</mn></msub></mrow></math>' in h1
    assert "$" not in h1 and "\\alpha" not in h1
    # the citation tags keep the TeX: that is what reference managers store
    assert head_tags(page).values("citation_title") == [TEX_TITLE]
    daily = client.get("/", params={"date": DAY}).text
    assert "<mi>α</mi>" in daily


def test_text_mode_latex_reads_as_typeset_on_pages_and_feeds(client: httpx.Client, srv: LiveServer) -> None:
    page = client.get(f"/papers/{paper_id(srv, LATEX_TITLE)}").text
    h1 = page[page.index('<h1 class="title">') : page.index("</h1>")]
    assert h1.startswith('<h1 class="title">Erdős–Rényi graphs: sparse limits of <math')
    assert "<title>Erdős–Rényi graphs: sparse limits of $G(n,p)$" in page  # no markup in a <title>
    assert "We bound the weighting vector, 10% faster; see “Fig.\u00a02”." in html.unescape(page)
    abstract = page[page.index('<p class="fullabstract">') :]
    abstract = abstract[: abstract.index("</p>")]
    assert "\\" not in h1 + abstract and "``" not in abstract  # (the BibTeX block keeps the TeX)
    assert head_tags(page).values("citation_title") == [LATEX_TITLE]  # reference managers keep TeX
    feed = feedparser.parse(client.get("/feeds/daily.atom", params={"date": LATEX_DAY}).content)
    (entry,) = feed.entries
    assert entry.title == "Erdős–Rényi graphs: sparse limits of $G(n,p)$"
    assert entry.summary == "We bound the weighting vector, 10% faster; see “Fig.\u00a02”."


@pytest.mark.parametrize(
    "text",
    [r"$\text{<script>alert(1)</script>}$", r"$\href{javascript:alert(1)}{x}$", r"$\text{&lt;img src=x onerror=alert(1)&gt;}$",
     r"$\text{</mtext><img src=x onerror=alert(1)>}$", "$x$ <img src=x onerror=alert(1)> $y$", r"$\style{x}$",
     r"$\mathrm{a\" onload=\"alert(1)}$", r"$\text{<!DOCTYPE x [<!ENTITY a 'b'>]>}$", r"$\frac{1}{2$"],
)  # fmt: skip
def test_hostile_tex_never_becomes_markup(text: str) -> None:
    out = str(render_tex(text))
    elements = Elements()
    elements.feed(out)
    assert {tag for tag, _ in elements.found} <= {
        "math",
        "mrow",
        "mi",
        "mn",
        "mo",
        "mtext",
        "mfrac",
        "mstyle",
    }, out
    # the only attributes are MathML presentation words, never an event handler or a URL
    assert {name for _, attrs in elements.found for name, _ in attrs} <= {
        "display",
        "mathvariant",
        "stretchy",
    }, out
    assert "<!" not in out


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


def test_tex_without_math_is_plain_escaped_text() -> None:
    assert str(render_tex("R&D costs $5 <b>today</b>")) == "R&amp;D costs $5 &lt;b&gt;today&lt;/b&gt;"
    assert str(render_tex(None)) == ""
