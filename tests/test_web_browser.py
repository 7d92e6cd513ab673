"""The site in headless Chromium (Playwright), against the real server on 127.0.0.1.

Every test saves screenshots to test-artifacts/ and fails on any browser console
error or uncaught page error.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest

from paperfeed.store import accounts as acc
from paperfeed.store import open_store
from paperfeed.store import votes as vt
from tests.browser import AXE, CHROMIUM, Tab
from tests.webserver import LINKED_TITLE, LiveServer, demo_server, find_paper_id

playwright_api = pytest.importorskip("playwright.sync_api")

# their server is started once for the module: with --engine postgres, one database for the module
PG_SCOPE = "module"

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium is not installed (make browser)")]


@pytest.fixture(scope="module")
def srv() -> LiveServer:
    return demo_server()


@pytest.fixture
def tab(browser: object, srv: LiveServer) -> Iterator[Tab]:
    t = Tab(browser, srv)
    yield t
    t.close()


def test_daily_page_and_day_navigation(tab: Tab, srv: LiveServer) -> None:
    page = tab.page
    with open_store(srv.data_dir) as store:
        dates = [d for d, _ in store.feed_dates()]
    page.goto("/")
    assert page.locator("h1").inner_text() == "Daily Papers"
    assert page.get_by_role("link", name="Subscribe").first.get_attribute("href") == "/subscribe"
    first_label = page.get_by_test_id("feed-date").inner_text()
    assert page.locator("article.paper").count() > 0
    tab.shot("daily")
    # the abstract is collapsed until its summary is activated
    details = page.locator("details.abstract").first
    assert details.get_attribute("open") is None
    details.locator("summary").click()
    assert details.get_attribute("open") is not None
    page.locator("nav.daynav a[rel=prev]").click()
    page.wait_for_url(re.compile(rf"date={dates[1]}"))
    assert page.get_by_test_id("feed-date").inner_text() != first_label
    tab.shot("daily-previous-day")
    page.locator("nav.daynav a[rel=next]").click()
    page.wait_for_url(re.compile(rf"date={dates[0]}"))
    assert page.get_by_test_id("feed-date").inner_text() == first_label
    page.get_by_role("link", name="Week", exact=True).click()
    assert page.get_by_test_id("feed-date").inner_text().startswith("Week of")
    tab.shot("daily-week")
    page.get_by_role("link", name="Month", exact=True).click()
    tab.shot("daily-month")


def test_search_effective_rank_and_open_a_paper_with_similar_papers(tab: Tab, srv: LiveServer) -> None:
    page = tab.page
    page.goto("/")
    box = page.get_by_role("searchbox", name="Search papers")
    box.fill("effective rank")
    box.press("Enter")
    page.wait_for_url(re.compile(r"/search\?q=effective\+rank"))
    assert page.locator("#q").input_value() == "effective rank"
    titles = page.locator("article.paper h2.title").all_inner_texts()
    assert len(titles) >= 5
    ids = [i.removeprefix("p-") for i in page.locator("article.paper").evaluate_all("els => els.map(e => e.id)")]
    with open_store(srv.data_dir) as store:
        hits = [store.get_paper(i) for i in ids]
    top = [p for p in hits if any(s.startswith("hf-page:") for s in p.sources)][:5]
    # seed page 002 is what the original site answered to this search
    assert sum(any(s.startswith("hf-page:002_") for s in p.sources) for p in top) >= 3
    assert page.locator("article.paper mark").count() > 0
    tab.shot("search-effective-rank")
    page.locator("article.paper h2.title a").first.click()
    page.wait_for_url(re.compile(r"/papers/[0-9a-f]+$"))
    assert page.locator("h1.title").inner_text() == titles[0]
    assert page.get_by_role("heading", name="Similar papers").is_visible()
    tab.shot("paper")
    assert srv.server.config.app.state.search.status()["dense"]  # type: ignore[attr-defined]
    similar = page.locator("section.similar li a")
    assert similar.count() >= 3
    assert titles[0] not in similar.all_inner_texts()


def test_sign_up_log_in_upvote_and_undo(browser: object, srv: LiveServer) -> None:
    tab = Tab(browser, srv)
    page = tab.page
    email = f"b{uuid.uuid4().hex[:8]}@example.org"
    password = "browser-pass-42"
    page.goto("/signup")
    tab.shot("signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(re.compile(r"/$"))
    assert email in page.locator("header").inner_text()
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/$"))
    assert email not in page.locator("header").inner_text()
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    assert email in page.locator("header").inner_text()

    with open_store(srv.data_dir) as store:
        pid = store.conn.execute("SELECT id FROM papers WHERE title = ?", (LINKED_TITLE,)).fetchone()[0]
        before = vt.vote_counts(store, [store.get_paper(pid).rowid]).get(store.get_paper(pid).rowid, 0)
    page.goto(f"/papers/{pid}")
    count = page.locator(".head .vote .count")
    assert int(count.inner_text()) == before
    page.get_by_role("button", name=re.compile(r"^Upvote")).click()
    page.wait_for_load_state()
    assert int(count.inner_text()) == before + 1
    tab.shot("paper-upvoted")
    page.get_by_role("button", name=re.compile(r"^Undo your vote")).click()
    page.wait_for_load_state()
    assert int(count.inner_text()) == before
    tab.close()


def test_subscribe_from_the_header(tab: Tab) -> None:
    page = tab.page
    page.goto("/")
    page.get_by_role("link", name="Get trending papers in your email inbox!").click()
    page.wait_for_url(re.compile(r"/subscribe$"))
    tab.shot("subscribe")
    page.locator("form[action='/subscribe'] input[name=email]").fill(f"s{uuid.uuid4().hex[:8]}@example.org")
    page.locator("form[action='/subscribe'] button[type=submit]").click()
    page.wait_for_load_state()
    assert "Check your inbox" in page.locator("main").inner_text()
    tab.shot("subscribe-done")


def test_reading_and_searching_work_without_javascript(browser: object, srv: LiveServer) -> None:
    tab = Tab(browser, srv, java_script_enabled=False)
    page = tab.page
    page.goto("/")
    assert page.locator("article.paper").count() > 0
    page.locator("details.abstract summary").first.click()
    assert page.locator("details.abstract").first.get_attribute("open") is not None
    page.get_by_role("searchbox", name="Search papers").fill("weighting vectors")
    page.get_by_role("searchbox", name="Search papers").press("Enter")
    page.wait_for_url(re.compile(r"/search\?q=weighting"))
    assert page.locator("article.paper").count() > 0
    page.locator("article.paper h2.title a").first.click()
    assert page.locator("h2#abs-h").is_visible()
    tab.shot("nojs-paper")
    tab.close()


def test_phone_width_has_no_horizontal_scroll(browser: object, srv: LiveServer) -> None:
    tab = Tab(browser, srv, viewport={"width": 360, "height": 740}, is_mobile=True)
    page = tab.page
    for path, name in [("/", "phone-daily"), ("/search?q=effective+rank", "phone-search"), ("/trending", "phone-trending"),
                       ("/login", "phone-login")]:  # fmt: skip
        page.goto(path)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, (path, overflow)
        tab.shot(name)
    tab.close()


def test_keyboard_navigation(tab: Tab) -> None:
    page = tab.page
    page.goto("/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#main"
    # tab onwards from the main area until an abstract's summary has focus, then open it with Enter
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.tagName") == "SUMMARY":
            break
    else:
        pytest.fail("no abstract summary is reachable with Tab")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.parentElement.open") is True
    focused_outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert focused_outline != "none"
    tab.shot("keyboard")


def test_trending_and_empty_states(tab: Tab) -> None:
    page = tab.page
    for period in ("day", "week", "month"):
        page.goto(f"/trending?period={period}")
        assert page.locator("h1").inner_text() == "Trending papers"
        current = page.locator("nav.daynav a[aria-current=page]").inner_text()
        assert current == {"day": "Today", "week": "This week", "month": "This month"}[period]
    tab.shot("trending")
    page.goto("/?date=1999-01-01")
    assert "No papers that day" in page.locator("main").inner_text()
    tab.shot("empty-day")
    page.goto("/search?q=qqqzzzxxj&since=1990-01-01&until=1990-01-31")
    assert "No results for" in page.locator("main").inner_text()
    tab.shot("empty-search")


def test_api_docs_render_offline(tab: Tab) -> None:
    # Swagger UI is served from the package, not a CDN: the page must render
    # its operations with no network beyond the site itself.
    page = tab.page
    page.goto("/docs")
    page.wait_for_selector(".opblock", timeout=15_000)
    assert "/api/search" in page.locator("body").inner_text()
    # "Try it out" works under the site's strict CSP (a violation is a console error, which
    # Tab.close fails on)
    op = page.locator(".opblock").filter(has_text="/api/search").first
    op.locator(".opblock-summary-control").click()
    op.get_by_role("button", name="Try it out").click()
    op.locator("tr[data-param-name=q] input").fill("effective rank")
    op.get_by_role("button", name="Execute").click()
    assert op.locator(".live-responses-table tbody .response-col_status").first.inner_text(timeout=30_000) == "200"
    tab.shot("api-docs")




def _mail_pages(srv: LiveServer) -> tuple[str, str]:
    """The pages reached from mails: a subscriber's manage page and a password-reset form."""
    from paperfeed.digest import subscribe
    from paperfeed.digest.tokens import manage_token
    from paperfeed.store import password_resets

    settings = srv.server.config.app.state.settings  # type: ignore[union-attr]
    with open_store(srv.data_dir) as store:
        sub = subscribe(store, settings, "axe@example.org", query="effective rank").subscription
        user = acc.get_user_by_email(store, "admin@example.org")
        assert user is not None
        reset = password_resets.create_reset(store, user.id)
    return f"/manage/{manage_token(settings.secret_key, sub.id, sub.email_key)}", f"/password/reset/{reset}"


@pytest.mark.skipif(AXE is None, reason="axe-core is not installed (npm install -g axe-core, or set PAPERFEED_AXE_JS)")
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_axe_violations(browser: object, srv: LiveServer, scheme: str) -> None:
    pid = find_paper_id(srv.data_dir, LINKED_TITLE)
    manage, reset = _mail_pages(srv)
    # axe is injected as a script, which the site's CSP (rightly) forbids; only this test bypasses it
    t = Tab(browser, srv, bypass_csp=True, color_scheme=scheme, viewport={"width": 390, "height": 844})
    found = {}
    try:
        for path in ("/", "/?page=2", "/search", "/search?q=effective+rank", "/search?author=Lovelace",
                     f"/papers/{pid}", "/trending", "/login", "/signup", "/subscribe", "/password/forgot",
                     manage, reset, "/docs"):  # fmt: skip
            t.page.goto(path)
            if path == "/docs":
                # Swagger UI draws itself from the schema; check one operation opened too
                t.page.wait_for_selector(".opblock", timeout=15_000)
                t.page.locator(".opblock-summary-control").filter(has_text="/api/search").first.click()
                t.page.wait_for_selector(".opblock-body .parameters", timeout=15_000)
            bad = t.serious_axe_violations()
            if bad:
                found[path] = bad
        t.shot(f"axe-phone-{scheme}")
    finally:
        t.close()
    assert found == {}


def test_docs_page_has_a_language_and_the_strict_csp(srv: LiveServer) -> None:
    import httpx

    r = httpx.get(f"{srv.url}/docs", timeout=30)
    assert '<html lang="en">' in r.text and "<main" in r.text
    # no inline script on our Swagger UI page, so it needs no exception to the policy
    assert "<script>" not in r.text and "unsafe-inline" not in r.headers["content-security-policy"]


def test_on_a_phone_the_first_paper_starts_on_the_first_screen(browser: object, srv: LiveServer) -> None:
    t = Tab(browser, srv, viewport={"width": 390, "height": 844})
    try:
        for path in ("/", "/search?q=effective+rank"):
            t.page.goto(path)
            box = t.page.locator("article.paper").first.bounding_box()
            assert box is not None and box["y"] + 120 < 844, (path, box)  # its title and authors show
        # one search box per page: the search page has no header search beside its own
        assert t.page.locator("[role=search]").count() == 1
        t.shot("phone-search")
    finally:
        t.close()
