"""The subscribe -> confirm -> mail -> unsubscribe journey in headless Chromium,
with JavaScript on and off, failing on any console error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from paperfeed.config import Settings
from paperfeed.digest import send_digests
from paperfeed.models import Paper
from paperfeed.store import open_store
from paperfeed.store import subscriptions as subs
from tests.browser import CHROMIUM
from tests.digest_support import SmtpSink, parts
from tests.webserver import LiveServer

playwright_api = pytest.importorskip("playwright.sync_api")
# the mail site is started once for the module: with --engine postgres, one database for the module
PG_SCOPE = "module"

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium is not installed (make browser)")]


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_subscribe_confirm_and_unsubscribe_in_a_browser(
    browser: object, site: tuple[LiveServer, Settings], sink: SmtpSink, javascript: bool
) -> None:
    srv, settings = site
    email = f"browser-{'js' if javascript else 'nojs'}@example.org"
    context = browser.new_context(base_url=srv.url, java_script_enabled=javascript)  # type: ignore[attr-defined]
    context.set_default_timeout(120_000)  # a loaded 2-core machine; the site may be indexing new papers
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    ARTIFACTS.mkdir(exist_ok=True)
    tag = "js" if javascript else "nojs"
    try:
        page.goto("/")
        page.get_by_role("link", name="Subscribe").first.click()
        page.wait_for_url(re.compile(r"/subscribe$"))
        page.get_by_label("Email").fill(email)
        page.get_by_label("New papers matching a search").check()
        page.get_by_label("Search", exact=True).fill("graph colouring")
        page.screenshot(path=str(ARTIFACTS / f"digest-subscribe-{tag}.png"), full_page=True)
        page.locator("form[action='/subscribe'] button[type=submit]").click()
        page.get_by_role("heading", name="Check your inbox").wait_for()

        [mail] = sink.wait_to(email)
        text, _ = parts(mail.msg)
        [confirm_url] = [u for u in re.findall(r"http://\S+", text) if "/subscriptions/confirm/" in u]
        page.goto(confirm_url)
        page.get_by_role("button", name="Confirm my subscription").click()
        page.get_by_role("heading", name="Subscription confirmed").wait_for()
        page.screenshot(path=str(ARTIFACTS / f"digest-confirmed-{tag}.png"))

        with open_store(srv.data_dir) as store:
            [sub] = subs.list_subscriptions(store, email=email)
            assert sub.status == "active"
            store.upsert_papers([Paper(title=f"Graph colouring in the browser ({tag})", abstract="graph colouring",
                                       sources=["jsonl:b"], ext_ids={"jsonl:b": tag})])  # fmt: skip
            send_digests(store, settings)
        alert = sink.wait_to(email, 2)[-1]
        _, html = parts(alert.msg)
        unsubscribe_url = re.findall(r"<([^>]+)>", alert.msg["List-Unsubscribe"])[0]
        paper_url = re.search(r'href="([^"]+/papers/[^"]+)"', html).group(1)
        page.goto(paper_url)
        assert f"Graph colouring in the browser ({tag})" in page.title() or page.get_by_text(tag).count() > 0
        page.goto(unsubscribe_url)
        page.get_by_role("button", name="Unsubscribe").click()
        page.get_by_role("heading", name="Unsubscribed").wait_for()
        page.screenshot(path=str(ARTIFACTS / f"digest-unsubscribed-{tag}.png"))
        with open_store(srv.data_dir) as store:
            assert subs.get_subscription(store, sub.id).status == "unsubscribed"
    finally:
        context.close()
    assert errors == [], errors
