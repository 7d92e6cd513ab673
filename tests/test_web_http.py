"""The site over real HTTP: a uvicorn server on 127.0.0.1, driven with httpx."""

from __future__ import annotations

import html
import re
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paperfeed.store import accounts as acc
from paperfeed.store import open_store
from paperfeed.store import papers as feed
from paperfeed.store import votes as vt
from tests.helpers import csrf_from
from tests.webserver import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    LINKED_TITLE,
    XSS_ABSTRACT,
    XSS_TITLE,
    LiveServer,
    demo_server,
    find_paper_id,
    start_server,
)

pytestmark = pytest.mark.slow  # every test asks the shared demo server (ingest, index, model warm-up)

# their server is started once for the module: with --engine postgres, one database for the module
PG_SCOPE = "module"
ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture(scope="module")
def srv() -> LiveServer:
    return demo_server()


@pytest.fixture
def client(srv: LiveServer) -> httpx.Client:
    with httpx.Client(base_url=srv.url, timeout=30, follow_redirects=False) as c:
        yield c


def signup(c: httpx.Client, email: str | None = None, password: str = "correct horse 1") -> str:
    email = email or f"u{uuid.uuid4().hex[:10]}@example.org"
    token = csrf_from(c.get("/signup").text)
    r = c.post("/signup", data={"email": email, "password": password, "csrf_token": token, "next": "/"})
    assert r.status_code == 303, r.text[:500]
    assert "pf_session" in c.cookies
    return email


def login(c: httpx.Client, email: str, password: str) -> httpx.Response:
    token = csrf_from(c.get("/login").text)
    return c.post("/login", data={"email": email, "password": password, "csrf_token": token})


def cards(page: str) -> list[str]:
    return re.findall(r'<article class="paper" id="p-([0-9a-f]+)"', page)


def api_votes(c: httpx.Client, pid: str) -> int:
    return c.get(f"/api/papers/{pid}").json()["votes"]


# ---- daily page ----------------------------------------------------------------


def test_daily_page_shows_latest_day_like_the_seed_pages(client: httpx.Client, srv: LiveServer) -> None:
    with open_store(srv.data_dir) as store:
        latest = feed.latest_feed_date(store)
        n = feed.count_range(store, latest, latest)
    r = client.get("/")
    assert r.status_code == 200
    page = r.text
    assert "Get trending papers in your email inbox!" in page
    assert 'href="/subscribe"' in page and ">Subscribe<" in page
    assert "<h1>Daily Papers</h1>" in page
    assert len(cards(page)) == min(n, 50)
    assert f"{n} papers" in page
    # the abstract is collapsed in a <details>, which works without JavaScript
    assert '<details class="abstract">' in page
    assert "<script" not in page.lower().replace("&lt;script", "")


def test_day_navigation_walks_days_with_papers(client: httpx.Client, srv: LiveServer) -> None:
    with open_store(srv.data_dir) as store:
        dates = [d for d, _ in store.feed_dates()]
    assert len(dates) >= 2
    page = client.get("/").text
    prev = re.search(r'<a rel="prev" href="([^"]+)"', page)
    assert prev and f"date={dates[1]}" in html.unescape(prev.group(1))
    older = client.get(html.unescape(prev.group(1)))
    assert older.status_code == 200
    with open_store(srv.data_dir) as store:
        older_ids = {p.id for p, _ in feed.list_range(store, dates[1], dates[1], limit=50)}
    assert set(cards(older.text)) == older_ids
    nxt = re.search(r'<a rel="next" href="([^"]+)"', older.text)
    assert nxt and f"date={dates[0]}" in html.unescape(nxt.group(1))


def test_week_and_month_views_cover_their_range(client: httpx.Client, srv: LiveServer) -> None:
    import datetime as dt

    from paperfeed.web.pages import period_range

    with open_store(srv.data_dir) as store:
        latest = feed.latest_feed_date(store)
        for view in ("week", "month"):
            start, end = period_range(dt.date.fromisoformat(latest), view)
            n = feed.count_range(store, start.isoformat(), end.isoformat())
            page = client.get("/", params={"date": latest, "view": view}).text
            assert f"{n} paper" in page
            assert 'aria-current="page">' + view.capitalize() in page


def test_sort_by_votes_puts_voted_paper_first(client: httpx.Client, srv: LiveServer) -> None:
    with open_store(srv.data_dir) as store:
        d = [d for d, _ in store.feed_dates()][-1]  # the oldest day: other tests vote on the latest
        papers = [p for p, _ in feed.list_range(store, d, d, order="newest", limit=500)]
        target = papers[-1]
        u = acc.create_user(store, f"sorter-{uuid.uuid4().hex[:6]}@example.org", "password-123")
        vt.vote(store, u.id, target.rowid)
    try:
        by_votes = cards(client.get("/", params={"date": d, "sort": "votes"}).text)
        by_newest = cards(client.get("/", params={"date": d, "sort": "newest"}).text)
        assert by_votes[0] == target.id
        assert by_newest[0] == papers[0].id != target.id
    finally:
        with open_store(srv.data_dir) as store:
            vt.unvote(store, u.id, target.rowid)


def test_empty_day_and_bad_date_are_explained(client: httpx.Client) -> None:
    r = client.get("/", params={"date": "1999-01-01"})
    assert r.status_code == 200
    assert "No papers that day" in r.text and 'href="/"' in r.text
    assert cards(r.text) == []
    bad = client.get("/", params={"date": "2025-02-30"})
    assert bad.status_code == 400
    assert "not a real calendar date" in bad.text and "Traceback" not in bad.text
    worse = client.get("/", params={"date": "<b>x</b>"})
    assert worse.status_code == 400 and "<b>x</b>" not in worse.text


# ---- search ------------------------------------------------------------------------


def test_search_effective_rank_finds_the_right_papers(client: httpx.Client, srv: LiveServer) -> None:
    r = client.get("/search", params={"q": "effective rank"})
    assert r.status_code == 200
    assert 'value="effective rank"' in r.text  # the query stays in the box
    assert "<mark>" in r.text
    ids = cards(r.text)
    assert len(ids) >= 5
    with open_store(srv.data_dir) as store:
        hits = [store.get_paper(i) for i in ids]
    # the seed page 002 is the result page of this very search on the original site; the
    # papers this test adds itself are left out of the count
    top = [p for p in hits if any(s.startswith("hf-page:") for s in p.sources)][:5]
    from_page = [p for p in top if any(s.startswith("hf-page:002_") for s in p.sources)]
    assert len(from_page) >= 3, [p.title for p in top]
    # and a paper about the phrase itself is on the first page (ranking quality is the search issue's)
    assert any("effective rank" in (p.title + " " + p.abstract).lower() for p in hits[:10])
    # results look like the seed pages: the title comes before the abstract text
    first_card = re.sub(r"</?mark>", "", r.text[r.text.index(f'id="p-{ids[0]}"') :])
    assert first_card.index(html.escape(hits[0].title, quote=False)) < first_card.index('class="snippet"')
    # the internal source tags (hf-page, beir) are not for readers
    multi = [p for p in hits if sum(s.startswith("hf-page:") for s in p.sources) > 1 and not p.categories]
    assert multi, "the seed corpus has papers on several pages"
    card = r.text[r.text.index(f'id="p-{multi[0].id}"') :]
    card = card[: card.index("</article>")] if "</article>" in card else card[:4000]
    assert "hf-page" not in card and "tag source" not in card


def test_search_empty_results_and_empty_query_suggest_something(client: httpx.Client) -> None:
    # dense retrieval always has neighbours, so an empty result comes from filters
    r = client.get("/search", params={"q": "effective rank", "since": "1990-01-01", "until": "1990-12-31"})
    assert r.status_code == 200
    assert "No results for" in r.text and "/trending" in r.text
    assert "Search again without the filters" in r.text
    r = client.get("/search")
    assert r.status_code == 200 and "effective+rank" in r.text
    r = client.get("/search", params={"q": "rank", "since": "2025-05-01", "until": "2025-01-01"})
    assert r.status_code == 400 and "after" in r.text


def test_search_filters_and_pagination(client: httpx.Client) -> None:
    r = client.get("/api/search", params={"q": "effective rank", "category": "cs.LG", "limit": 10})
    assert r.status_code == 200
    hits = r.json()["hits"]
    assert hits and all("cs.LG" in h["paper"]["categories"] for h in hits)
    assert LINKED_TITLE in [h["paper"]["title"] for h in hits]
    r = client.get("/api/search", params={"q": "effective rank", "author": "Lovelace"})
    assert [h["paper"]["title"] for h in r.json()["hits"]] == [LINKED_TITLE]
    p1 = client.get("/api/search", params={"q": "weighting", "limit": 3}).json()["hits"]
    p2 = client.get("/api/search", params={"q": "weighting", "limit": 3, "offset": 3}).json()["hits"]
    assert len(p1) == 3 and p2
    assert not {h["paper"]["id"] for h in p1} & {h["paper"]["id"] for h in p2}
    page2 = client.get("/search", params={"q": "weighting", "page": "2"})
    assert page2.status_code == 200 and "Previous page" in page2.text


def test_a_pasted_abstract_searches_and_nonsense_finds_nothing(client: httpx.Client) -> None:
    abstract = (
        "We study the effective rank of learned representations. The effective rank measures how many "
        "dimensions a set of embeddings really uses. We show that it predicts downstream accuracy. "
    ) * 12
    r = client.get("/api/search", params={"q": abstract, "limit": 5})
    assert r.status_code == 200, r.text[:300]
    hits = r.json()["hits"]
    assert hits and "rank" in (hits[0]["paper"]["title"] + hits[0]["paper"]["abstract"]).lower()
    page = client.get("/search", params={"q": abstract})
    assert page.status_code == 200 and "too long" not in page.text
    r = client.get("/api/search", params={"q": "xyzzyqwv"})
    assert r.status_code == 200 and r.json()["hits"] == [] and r.json()["total"] == 0
    page = client.get("/search", params={"q": "xyzzyqwv"})
    assert page.status_code == 200 and "No results" in page.text
    assert client.get("/api/search", params={"q": "x" * 10_001}).status_code == 422


# ---- hostile text -------------------------------------------------------------------


def test_hostile_paper_renders_as_text_everywhere(client: httpx.Client, srv: LiveServer) -> None:
    pid = find_paper_id(srv.data_dir, XSS_TITLE)
    escaped_title = "&lt;script&gt;alert(1)&lt;/script&gt;"
    pages = {
        "daily": client.get("/", params={"sort": "newest"}).text,
        "paper": client.get(f"/papers/{pid}").text,
        # matched words are marked in titles; the tags around them are the only markup allowed
        "search": re.sub(r"</?mark>", "", client.get("/search", params={"q": "onerror alert ampersands"}).text),
    }
    for name, page in pages.items():
        assert "<script>alert(1)</script>" not in page, name
        assert "<img src=x" not in page, name
        assert escaped_title in page, name
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages["paper"]
    assert "&lt;b&gt;Eve&lt;/b&gt;" in pages["paper"]
    # API: the exact text, as data
    data = client.get(f"/api/papers/{pid}").json()
    assert data["title"] == XSS_TITLE and data["abstract"] == XSS_ABSTRACT
    hits = client.get("/api/search", params={"q": "onerror alert ampersands"}).json()["hits"]
    hit = next(h for h in hits if h["paper"]["id"] == pid)
    assert "<img" not in hit["snippet"] and "<script" not in hit["snippet"]
    # feeds: parsed back, the text is exactly the title; raw, it is escaped
    for url in ("/feeds/daily.atom", "/feeds/search.atom?q=onerror+alert+ampersands"):
        raw = client.get(url)
        assert raw.status_code == 200
        assert b"<script>" not in raw.content and b"<img " not in raw.content
        root = ET.fromstring(raw.content)
        titles = [e.findtext(f"{ATOM}title") for e in root.iter(f"{ATOM}entry")]
        assert XSS_TITLE in titles, url
        entry = next(e for e in root.iter(f"{ATOM}entry") if e.findtext(f"{ATOM}title") == XSS_TITLE)
        assert entry.findtext(f"{ATOM}summary") == XSS_ABSTRACT


def test_security_headers(client: httpx.Client) -> None:
    r = client.get("/")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "httponly" in r.headers["set-cookie"].lower()


# ---- paper page -------------------------------------------------------------------------


def test_paper_page_links_and_bibtex(client: httpx.Client, srv: LiveServer) -> None:
    pid = find_paper_id(srv.data_dir, LINKED_TITLE)
    page = client.get(f"/papers/{pid}").text
    assert 'href="https://arxiv.org/abs/2401.00001"' in page
    assert 'href="https://arxiv.org/pdf/2401.00001"' in page
    assert 'href="https://doi.org/10.1000/xyz123"' in page
    assert '<a href="/search?author=Ada%20Lovelace">Ada Lovelace</a>, <a href="/search?author=Alan%20Turing">' in page
    bib = client.get(f"/papers/{pid}/bibtex")
    assert bib.status_code == 200 and bib.headers["content-type"].startswith("application/x-bibtex")
    text = bib.text
    assert text.startswith("@misc{lovelace")  # a DOI alone does not make it a journal article
    assert "author = {Ada Lovelace and Alan Turing}" in text
    assert "eprint = {2401.00001}" in text and "doi = {10.1000/xyz123}" in text
    assert text.count("{") == text.count("}")
    assert client.get("/papers/does-not-exist").status_code == 404


# ---- accounts, CSRF, votes -------------------------------------------------------------


def test_forms_without_csrf_token_are_refused(client: httpx.Client, srv: LiveServer) -> None:
    client.get("/")  # gets the CSRF cookie, but the forms below do not carry the token
    pid = find_paper_id(srv.data_dir, LINKED_TITLE)
    for url, data in [
        ("/signup", {"email": "x@example.org", "password": "password-123"}),
        ("/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        (f"/papers/{pid}/vote", {"action": "up"}),
        ("/logout", {}),
    ]:
        r = client.post(url, data=data)
        assert r.status_code == 403, url
        r = client.post(url, data={**data, "csrf_token": "forged.token"})
        assert r.status_code == 403, url
    with open_store(srv.data_dir) as store:
        assert acc.get_user_by_email(store, "x@example.org") is None
    # a token from another browser (another CSRF cookie) does not work either
    with httpx.Client(base_url=srv.url) as other:
        token = csrf_from(other.get("/login").text)
    r = client.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token})
    assert r.status_code == 403


def test_signup_vote_once_and_undo(client: httpx.Client, srv: LiveServer) -> None:
    email = signup(client)
    assert email in client.get("/").text
    setcookie = [h for h in client.get("/login").headers.get_list("set-cookie")]
    assert all("pf_session" not in h for h in setcookie)  # the session cookie is not re-issued on GETs
    pid = find_paper_id(srv.data_dir, LINKED_TITLE)
    before = api_votes(client, pid)
    page = client.get(f"/papers/{pid}").text
    token = csrf_from(page)
    for _ in range(2):  # voting twice counts once
        r = client.post(f"/papers/{pid}/vote", data={"action": "up", "csrf_token": token, "next": f"/papers/{pid}"})
        assert r.status_code == 303 and r.headers["location"].startswith(f"/papers/{pid}")
    assert api_votes(client, pid) == before + 1
    page = client.get(f"/papers/{pid}").text
    assert 'aria-pressed="true"' in page and "Undo your vote" in page
    r = client.post(f"/papers/{pid}/vote", data={"action": "undo", "csrf_token": token, "next": "//evil.example/"})
    assert r.status_code == 303 and r.headers["location"].startswith("/#")  # an off-site next is ignored
    assert api_votes(client, pid) == before


def test_signup_and_login_errors(client: httpx.Client, srv: LiveServer) -> None:
    email = signup(client)
    with httpx.Client(base_url=srv.url) as c2:
        token = csrf_from(c2.get("/signup").text)
        dup = c2.post("/signup", data={"email": email.upper(), "password": "another-pass-1", "csrf_token": token})
        assert dup.status_code == 400 and "already exists" in dup.text
        short = c2.post("/signup", data={"email": "new@example.org", "password": "short", "csrf_token": token})
        assert short.status_code == 400 and "at least 8" in short.text
        bad = c2.post("/signup", data={"email": "<script>@x", "password": "password-123", "csrf_token": token})
        assert bad.status_code == 400 and "not a valid mailbox" in bad.text and "<script>@x" not in bad.text
        wrong = login(c2, email, "not the password")
        assert wrong.status_code == 400 and "Wrong email or password" in wrong.text
        assert "pf_session" not in c2.cookies
        ok = login(c2, email, "correct horse 1")
        assert ok.status_code == 303
        cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
    with open_store(srv.data_dir) as store:
        row = store.conn.execute("SELECT password_hash FROM users WHERE email = ?", (email,)).fetchone()
        assert row[0].startswith("$argon2id$") and "correct horse" not in row[0]


def test_logout_ends_the_session_on_the_server(client: httpx.Client) -> None:
    email = signup(client)
    cookie = client.cookies["pf_session"]
    token = csrf_from(client.get("/").text)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    # even a copy of the old cookie no longer works
    client.cookies.set("pf_session", cookie)
    assert email not in client.get("/").text


def test_admin_can_hide_a_paper_and_others_cannot(client: httpx.Client, srv: LiveServer) -> None:
    with open_store(srv.data_dir) as store:
        d = [d for d, _ in store.feed_dates()][-1]
        victim = feed.list_range(store, d, d, order="newest", limit=1)[0][0]
    signup(client)
    token = csrf_from(client.get(f"/papers/{victim.id}").text)
    assert client.post(f"/papers/{victim.id}/hide", data={"csrf_token": token}).status_code == 403
    with httpx.Client(base_url=srv.url) as admin:
        assert login(admin, ADMIN_EMAIL, ADMIN_PASSWORD).status_code == 303
        page = admin.get(f"/papers/{victim.id}").text
        assert "Hide this paper" in page
        r = admin.post(f"/papers/{victim.id}/hide", data={"csrf_token": csrf_from(page), "action": "hide"})
        assert r.status_code == 303
        try:
            assert client.get(f"/papers/{victim.id}").status_code == 404
            assert client.get(f"/api/papers/{victim.id}").status_code == 404
            listed = client.get("/api/papers", params={"date": d, "limit": 500}).json()["papers"]
            assert victim.id not in {p["id"] for p in listed}
            assert "hidden from lists" in admin.get(f"/papers/{victim.id}").text
        finally:
            page = admin.get(f"/papers/{victim.id}").text
            admin.post(f"/papers/{victim.id}/hide", data={"csrf_token": csrf_from(page), "action": "show"})
        assert client.get(f"/api/papers/{victim.id}").status_code == 200


# ---- API, feeds, health -------------------------------------------------------------------


def test_api_lists_and_errors(client: httpx.Client, srv: LiveServer) -> None:
    with open_store(srv.data_dir) as store:
        latest = feed.latest_feed_date(store)
        n = feed.count_range(store, latest, latest)
    body = client.get("/api/papers").json()
    assert body["date"] == latest and body["total"] == n and len(body["papers"]) == min(n, 100)
    for url, status in [
        ("/api/papers/nope", 404),
        ("/api/papers?date=2025-13-45", 422),
        ("/api/papers?date=yesterday", 422),
        ("/api/search?q=", 422),
        ("/api/search?q=x&limit=0", 422),
        ("/api/search?q=rank&since=2025-05-01&until=2025-01-01", 400),
        ("/api/trending?period=year", 422),
        ("/api/papers/nope/similar", 404),
    ]:
        r = client.get(url)
        assert r.status_code == status, url
        assert isinstance(r.json()["detail"], str) and r.json()["detail"], url
    assert client.get("/openapi.json").json()["paths"]["/api/search"]
    assert client.get("/docs").status_code == 200


def test_trending_counts_votes_and_feeds(client: httpx.Client, srv: LiveServer) -> None:
    pid = find_paper_id(srv.data_dir, LINKED_TITLE)
    with open_store(srv.data_dir) as store:
        paper = store.get_paper(pid)
        users = [acc.create_user(store, f"t{i}-{uuid.uuid4().hex[:6]}@example.org", "password-123") for i in range(3)]
        for u in users:
            vt.vote(store, u.id, paper.rowid)
    try:
        items = client.get("/api/trending", params={"period": "day"}).json()["items"]
        top = items[0]
        assert top["paper"]["id"] == pid and top["votes"] >= 3 and top["score"] > 0
        assert LINKED_TITLE in client.get("/trending?period=day").text
        root = ET.fromstring(client.get("/feeds/trending.atom?period=day").content)
        assert LINKED_TITLE in [e.findtext(f"{ATOM}title") for e in root.iter(f"{ATOM}entry")]
    finally:
        with open_store(srv.data_dir) as store:
            for u in users:
                vt.unvote(store, u.id, paper.rowid)


def test_search_feed_is_a_saved_search(client: httpx.Client) -> None:
    r = client.get("/feeds/search.atom", params={"q": "effective rank"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/atom+xml")
    root = ET.fromstring(r.content)
    assert root.findtext(f"{ATOM}title") == "Search: effective rank"
    assert len(list(root.iter(f"{ATOM}entry"))) >= 5
    assert client.get("/feeds/search.atom").status_code == 422


def test_healthz_reports_store_and_index(client: httpx.Client, srv: LiveServer) -> None:
    body = client.get("/healthz").json()
    with open_store(srv.data_dir) as store:
        assert body["store"] == {"ok": True, "papers": store.count(include_hidden=False), "max_seq": store.max_seq()}
    assert body["status"] in ("ok", "degraded") and "ready" in body["index"]


# ---- several workers, rate limits ---------------------------------------------------------------


def test_a_second_worker_shares_sessions_through_the_store(srv: LiveServer) -> None:
    other = start_server(srv.data_dir, warm_search=False)
    try:
        with httpx.Client(base_url=srv.url) as a:
            email = signup(a)
            with httpx.Client(base_url=other.url, cookies=a.cookies) as b:
                page = b.get("/").text
                assert email in page
                # and a form rendered by one worker posts to the other
                pid = find_paper_id(srv.data_dir, LINKED_TITLE)
                r = b.post(f"/papers/{pid}/vote", data={"action": "up", "csrf_token": csrf_from(page)})
                assert r.status_code == 303
                r = a.post(f"/papers/{pid}/vote", data={"action": "undo", "csrf_token": csrf_from(page)})
                assert r.status_code == 303
    finally:
        other.stop()


@pytest.mark.usefixtures("own_database")  # the limits are counted in the store, which the demo server shares
def test_login_is_rate_limited_per_client(tmp_path: Path) -> None:
    # its own data directory: the limits are counted in the store, which the demo server shares
    limited = start_server(tmp_path / "data", warm_search=False)
    try:
        with httpx.Client(base_url=limited.url) as c:
            token = csrf_from(c.get("/login").text)
            # distinct accounts: failed log-ins are also limited per account
            codes = [
                c.post("/login", data={"email": f"nobody{i}@example.org", "password": "guess",
                                       "csrf_token": token}).status_code
                for i in range(22)
            ]
            assert codes[:20] == [400] * 20
            assert codes[-1] == 429
            r = c.post("/login", data={"email": "nobody@example.org", "password": "guess", "csrf_token": token})
            assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
            assert "Too many attempts" in r.text
            # other actions have their own budget
            signup(c)
    finally:
        limited.stop()


# ---- fuzzing the HTML pages (schemathesis covers the API) ----------------------------------------

_odd_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(q=_odd_text, date=_odd_text, page=_odd_text, view=st.sampled_from(["day", "week", "month", "x"]),
       path=st.sampled_from(["/", "/search", "/trending", "/papers/{}", "/papers/{}/bibtex", "/login"]))  # fmt: skip
def test_pages_never_fail_on_odd_input(srv: LiveServer, q: str, date: str, page: str, view: str, path: str) -> None:
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        url = path.format(quote(q, safe="") or "x")
        r = c.get(url, params={"q": q, "date": date, "since": date, "page": page, "view": view, "period": view,
                               "next": q, "category": q, "author": q})  # fmt: skip
    assert r.status_code in (200, 400, 404, 422), (url, r.status_code)
    assert "Traceback" not in r.text
    if q and len(q) > 3 and "<" in q:
        assert q not in r.text  # anything with markup comes back escaped


def test_api_similar_ranks_by_vectors_and_words(srv: LiveServer, client: httpx.Client) -> None:
    # the server holds the corpus features once caught up, so its "Similar papers" are
    # `similar_papers` (vectors and words), not the vector index's nearest neighbours alone
    from paperfeed.search import Searcher
    from paperfeed.search.similar import similar_papers

    with open_store(srv.data_dir) as store:
        rowid, pid = store.conn.execute("SELECT rowid, id FROM papers WHERE hidden = 0 ORDER BY rowid LIMIT 1").fetchone()
        want = [r for r, _ in similar_papers(Searcher(srv.data_dir, auto_sync=False), store, rowid, 6)]
        ids = dict(store.conn.execute(f"SELECT rowid, id FROM papers WHERE rowid IN ({','.join('?' * len(want))})",
                                      want).fetchall())  # fmt: skip
    r = client.get(f"/api/papers/{pid}/similar", params={"k": 6})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i["paper"]["id"] for i in items] == [ids[w] for w in want]
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True) and pid not in [i["paper"]["id"] for i in items]
