"""The library and For you in headless Chromium: the buttons work as plain forms, and the new
pages pass axe-core (light and dark, phone width) like every other page."""

from __future__ import annotations

import uuid

import pytest

from tests.browser import AXE, CHROMIUM, Tab
from tests.webserver import LiveServer, demo_server

playwright_api = pytest.importorskip("playwright.sync_api")
# the shared demo server: with --engine postgres, one database for the module
PG_SCOPE = "module"

pytestmark = [pytest.mark.slow, pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium is not installed (make browser)")]  # fmt: skip


@pytest.fixture(scope="module")
def srv() -> LiveServer:
    return demo_server()


def _sign_up(t: Tab) -> None:
    t.page.goto("/signup")
    t.page.fill("input[name=email]", f"b{uuid.uuid4().hex[:8]}@example.org")
    t.page.fill("input[name=password]", "correct horse 1")
    t.page.locator("main form button[type=submit]").click()
    t.page.wait_for_url("**/")


def test_save_into_a_new_tag_then_for_you_explains(browser: object, srv: LiveServer) -> None:
    t = Tab(browser, srv, java_script_enabled=False)  # the forms must work without script
    try:
        _sign_up(t)
        t.page.goto("/library")
        t.page.fill("#new-tag", "Reading group")
        t.page.get_by_role("button", name="Create tag").click()
        assert "Reading group (0)" in t.page.content()
        t.page.goto("/")
        first = t.page.locator("article.paper").first
        title = first.locator("h2.title a").inner_text()
        first.locator("select[name=tag_id]").select_option(label="Reading group")
        first.get_by_role("button", name="Save").click()
        card = t.page.locator("article.paper").first
        assert "Saved" in card.locator(".libbox").inner_text() and "Reading group" in card.inner_text()
        t.page.goto("/for-you?window=month")
        whys = t.page.locator("[data-testid=why]")
        assert whys.count() > 0 and title in whys.first.inner_text()
        t.page.locator("article.paper").first.get_by_role("button", name="Not interested").click()
        t.page.goto("/library?view=not-interested")
        assert t.page.get_by_role("button", name="Undo").count() == 1
        t.shot("library-for-you")
    finally:
        t.close()


@pytest.mark.skipif(AXE is None, reason="axe-core is not installed (npm install -g axe-core, or set PAPERFEED_AXE_JS)")
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_library_pages_have_no_serious_axe_violations(browser: object, srv: LiveServer, scheme: str) -> None:
    t = Tab(browser, srv, bypass_csp=True, color_scheme=scheme, viewport={"width": 390, "height": 844})
    found = {}
    try:
        _sign_up(t)
        t.page.locator("article.paper").first.get_by_role("button", name="Save").click()
        for path in ("/", "/library", "/for-you", "/for-you?window=month", "/library?view=following",
                     "/library?view=import", "/library?view=not-interested"):  # fmt: skip
            t.page.goto(path)
            bad = t.serious_axe_violations()
            if bad:
                found[path] = bad
        t.shot(f"axe-library-{scheme}")
    finally:
        t.close()
    assert found == {}
