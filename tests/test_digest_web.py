"""The subscription pages on a real uvicorn server, and mails whose links resolve on it,
down to the RFC 8058 one-click unsubscribe POST."""

from __future__ import annotations

import datetime as dt
import html as htmlmod
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from paperfeed.config import Settings
from paperfeed.digest import send_digests, subscribe
from paperfeed.digest.sending import send_lock
from paperfeed.digest.subscribing import confirm_email
from paperfeed.models import Paper
from paperfeed.store import open_store
from paperfeed.store import subscription_pauses as pauses
from paperfeed.store import subscriptions as subs
from tests.digest_support import SmtpSink, parts
from tests.helpers import csrf_from
from tests.webserver import LiveServer

pytestmark = pytest.mark.slow  # starts the site and an SMTP sink over an indexed corpus

# their server is started once for the module: with --engine postgres, one database for the module
PG_SCOPE = "module"
HOSTILE = "<script>alert(1)</script> graph colouring"


@pytest.fixture
def client(site: tuple[LiveServer, Settings]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site[0].url, timeout=30, follow_redirects=False) as c:
        yield c


def hrefs(html: str) -> list[str]:
    return [htmlmod.unescape(h) for h in re.findall(r'href="([^"]+)"', html)]


def test_subscribe_confirm_mail_links_and_one_click_unsubscribe(
    site: tuple[LiveServer, Settings], sink: SmtpSink, client: httpx.Client
) -> None:
    srv, settings = site
    sink.reset()
    home = client.get("/")
    assert home.status_code == 200 and 'href="/subscribe"' in home.text
    page = client.get("/subscribe")
    assert page.status_code == 200 and 'action="/subscribe"' in page.text
    form = {"email": "web@example.org", "kind": "alert", "query": "graph colouring", "every": "daily"}
    assert client.post("/subscribe", data=form).status_code == 403  # no CSRF token
    r = client.post("/subscribe", data={**form, "csrf_token": csrf_from(page.text)})
    assert r.status_code == 200 and "Check your inbox" in r.text

    [mail] = sink.wait_for(1)
    assert mail.rcpt_tos == ["web@example.org"]
    text, html = parts(mail.msg)
    [confirm_url] = [u for u in re.findall(r"http://\S+", text) if "/subscriptions/confirm/" in u]
    assert confirm_url.startswith(srv.url) and confirm_url in hrefs(html)
    with open_store(srv.data_dir) as store:
        [sub] = subs.list_subscriptions(store, email="web@example.org")
        assert sub.status == "pending"
    # a link scanner's GET confirms nothing
    with httpx.Client(timeout=30) as fresh:
        g = fresh.get(confirm_url)
        assert g.status_code == 200 and "Confirm my subscription" in g.text
        with open_store(srv.data_dir) as store:
            assert subs.get_subscription(store, sub.id).status == "pending"
        p = fresh.post(confirm_url)
        assert p.status_code == 200 and "Subscription confirmed" in p.text
        assert fresh.post(confirm_url).status_code == 200  # twice is fine
    with open_store(srv.data_dir) as store:
        assert subs.get_subscription(store, sub.id).status == "active"
        store.upsert_papers([
            Paper(title=HOSTILE, abstract="<img src=x onerror=alert(1)> about graph colouring.",
                  sources=["jsonl:web"], ext_ids={"jsonl:web": "1"}),
            Paper(title="Fast graph colouring heuristics", abstract="Graph colouring, fast.",
                  sources=["jsonl:web"], ext_ids={"jsonl:web": "2"}),
        ])  # fmt: skip
        report = send_digests(store, settings)
    assert report.sent == 1
    alert = sink.received[-1]
    msg = alert.msg
    text, html = parts(msg)
    assert HOSTILE in text and "<script>" not in html

    # every link in both parts resolves on the running site, for someone not logged in
    links = set(re.findall(r"http://[^\s\"<>]+", text)) | {h for h in hrefs(html) if h.startswith("http")}
    unsubscribe_url = re.findall(r"<([^>]+)>", msg["List-Unsubscribe"])[0]
    assert unsubscribe_url in links
    # generous timeout: the first paper page may wait for the search index to take
    # in the papers added above
    with httpx.Client(timeout=180, follow_redirects=True) as fresh:
        for url in sorted(links):
            assert url.startswith(srv.url), url
            r = fresh.get(url)
            if url.endswith("/account/subscriptions"):
                assert r.status_code == 200 and "Log in" in r.text  # redirected to the login form
            else:
                assert r.status_code == 200, (url, r.status_code)
            if "/papers/" in url:
                assert "&lt;script&gt;" in r.text or "graph colouring" in r.text.lower()
        # the unsubscribe page only shows a button
        assert "Unsubscribe" in fresh.get(unsubscribe_url).text
        with open_store(srv.data_dir) as store:
            assert subs.get_subscription(store, sub.id).status == "active"

    # RFC 8058 one-click: a bare POST, no cookie, no CSRF token
    with httpx.Client(timeout=30) as mail_client:
        one = mail_client.post(unsubscribe_url, content=b"List-Unsubscribe=One-Click",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        assert one.status_code == 200 and "Unsubscribed" in one.text
        again = mail_client.post(unsubscribe_url, data={"List-Unsubscribe": "One-Click"})
        assert again.status_code == 200
    with open_store(srv.data_dir) as store:
        assert subs.get_subscription(store, sub.id).status == "unsubscribed"
        store.upsert_papers([Paper(title="Graph colouring, later", abstract="graph colouring",
                                   sources=["jsonl:web"], ext_ids={"jsonl:web": "3"})])  # fmt: skip
        later = send_digests(store, settings, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    assert later.sent == 0 and len(sink.to("web@example.org")) == 2


def test_bad_input_and_tampered_tokens_are_refused_on_the_site(
    site: tuple[LiveServer, Settings], sink: SmtpSink, client: httpx.Client
) -> None:
    srv, settings = site
    sink.reset()
    token = csrf_from(client.get("/subscribe").text)
    cases = [
        ({"email": "nope", "kind": "trending", "period": "daily"}, "single email address"),
        ({"email": "a@example.org\r\nBcc: b@example.org", "kind": "trending", "period": "daily"}, "line breaks"),
        ({"email": "a@example.org", "kind": "alert", "query": "x" * 10_000}, "at most 500"),
        ({"email": "a@example.org", "kind": "alert", "query": "a\r\nb"}, "one line"),
        ({"email": "a@example.org", "kind": "trending", "period": "hourly"}, "daily or weekly"),
        ({"email": "a@example.org", "kind": "both"}, "trending digest or a search"),
        ({"email": "<b>x</b>@example.org", "kind": "trending", "period": "daily"}, "not a valid mailbox"),
    ]
    for form, message in cases:
        r = client.post("/subscribe", data={**form, "csrf_token": token})
        assert r.status_code == 400, form
        assert message in htmlmod.unescape(r.text), (form, r.text[:500])
        assert "<b>x</b>" not in r.text and "Traceback" not in r.text
    with open_store(srv.data_dir) as store:
        assert subs.list_subscriptions(store, email="a@example.org") == []

    with open_store(srv.data_dir) as store:
        res = subscribe(store, settings, "tamper@example.org", trending="daily")
    from paperfeed.digest.tokens import confirm_token, unsubscribe_token

    sub = res.subscription
    good_c = confirm_token(settings.secret_key, sub.id, sub.email_key, sub.epoch)
    good_u = unsubscribe_token(settings.secret_key, sub.id, sub.email_key)
    bad = [good_c[:-3] + "abc", "garbage", good_u]  # the last: a valid token of the wrong kind
    for t in bad:
        for method in ("GET", "POST"):
            r = client.request(method, f"/subscriptions/confirm/{t}")
            assert r.status_code == 400 and "not valid" in r.text, (t, method)
    for t in [good_u[:-3] + "abc", good_c, unsubscribe_token("other-key", sub.id, sub.email_key)]:
        for method in ("GET", "POST"):
            r = client.request(method, f"/unsubscribe/{t}")
            assert r.status_code == 400 and "not valid" in r.text, (t, method)
    with open_store(srv.data_dir) as store:
        assert subs.get_subscription(store, sub.id).status == "pending"


def test_account_page_manages_own_subscriptions_only(
    site: tuple[LiveServer, Settings], sink: SmtpSink, client: httpx.Client
) -> None:
    srv, settings = site
    anon = client.get("/account/subscriptions")
    assert anon.status_code == 303 and anon.headers["location"].startswith("/login")
    email = "owner@example.org"
    sink.reset()
    signup(client, email, "correct horse 1")
    with open_store(srv.data_dir) as store:
        mine = subscribe(store, settings, email, trending="daily").subscription
        subscribe(store, settings, email, query="effective rank", every="weekly")
        confirm_email(store, email)
        theirs = subscribe(store, settings, "someone-else@example.org", query="secret topic").subscription
    # the owner proves the address with the mailed link, opened while logged in
    verify_url = verification_link(sink, email)
    page = client.get(verify_url)
    assert page.status_code == 200 and "Confirm my address" in page.text
    r = client.post(verify_url, data={"csrf_token": csrf_from(page.text)})
    assert r.status_code == 303 and r.headers["location"].startswith("/account/subscriptions")
    page = client.get("/account/subscriptions")
    assert page.status_code == 200
    assert "Trending papers, daily" in page.text and "effective rank" in htmlmod.unescape(page.text)
    assert "secret topic" not in page.text
    token = csrf_from(page.text)
    # pause (nothing is sent) and resume, from the account page as from a mail's manage link
    assert client.post(f"/account/subscriptions/{mine.id}/pause", data={}).status_code == 403  # CSRF
    r = client.post(f"/account/subscriptions/{mine.id}/pause", data={"csrf_token": token})
    assert r.status_code == 303 and "Paused" in client.get(r.headers["location"]).text
    with open_store(srv.data_dir) as store:
        assert pauses.paused_ids(store, [mine.id]) == {mine.id}
    assert client.post(f"/account/subscriptions/{theirs.id}/pause", data={"csrf_token": token}).status_code == 404
    assert "Resume" in client.get("/account/subscriptions").text
    r = client.post(f"/account/subscriptions/{mine.id}/resume", data={"csrf_token": token})
    with open_store(srv.data_dir) as store:
        assert not pauses.paused_ids(store, [mine.id])
    # change how often, then unsubscribe
    r = client.post(f"/account/subscriptions/{mine.id}/period", data={"period": "weekly", "csrf_token": token})
    assert r.status_code == 303
    with open_store(srv.data_dir) as store:
        assert subs.get_subscription(store, mine.id).period == "weekly"
    assert client.post(f"/account/subscriptions/{mine.id}/unsubscribe", data={}).status_code == 403  # CSRF
    r = client.post(f"/account/subscriptions/{mine.id}/unsubscribe", data={"csrf_token": token})
    assert r.status_code == 303
    with open_store(srv.data_dir) as store:
        assert subs.get_subscription(store, mine.id).status == "unsubscribed"
    # someone else's subscription is not reachable from this account
    r = client.post(f"/account/subscriptions/{theirs.id}/unsubscribe", data={"csrf_token": token})
    assert r.status_code == 404
    with open_store(srv.data_dir) as store:
        assert subs.get_subscription(store, theirs.id).status == "pending"
    # subscribing again goes through a confirmation mail (once the earlier one is
    # older than the anti-flood interval)
    r = client.post(f"/account/subscriptions/{mine.id}/resume", data={"csrf_token": token})
    assert "a few minutes ago" in client.get(r.headers["location"]).text
    with open_store(srv.data_dir) as store:
        store.conn.execute("UPDATE subscriptions SET last_confirm_at = '2000-01-01T00:00:00Z' WHERE id = ?", (mine.id,))
    sink.reset()
    r = client.post(f"/account/subscriptions/{mine.id}/resume", data={"csrf_token": token})
    assert r.status_code == 303
    [again] = sink.wait_to(email)
    assert "Confirm" in again.msg["Subject"]
    with open_store(srv.data_dir) as store:
        assert subs.get_subscription(store, mine.id).status == "pending"
    assert client.get("/account/subscriptions").text.count("Resend the confirmation mail") >= 1


def signup(c: httpx.Client, email: str, password: str) -> None:
    r = c.post("/signup", data={"email": email, "password": password, "next": "/",
                                "csrf_token": csrf_from(c.get("/signup").text)})  # fmt: skip
    assert r.status_code == 303, r.text[:300]


def verification_link(sink: SmtpSink, email: str) -> str:
    """The link in the account verification mail to `email` (sent after the sign-up response)."""
    [mail] = [m for m in sink.wait_to(email) if "Confirm your email address" in m.msg["Subject"]]
    assert mail.msg["List-Unsubscribe"] is None  # one mail per sign-up, not a list
    text, html = parts(mail.msg)
    [url] = [u for u in re.findall(r"http://\S+", text) if "/account/verify/" in u]
    assert url in hrefs(html)
    return url


def message_of(page: str) -> str:
    """The first paragraph of a message page: what it tells the visitor."""
    main = page.split('<main id="main"', 1)[1]
    return htmlmod.unescape(re.search(r"<h1>(.*?)</h1>\s*<p>(.*?)</p>", main, re.S).group(0))


def test_someone_who_registers_an_address_does_not_see_its_subscriptions(
    site: tuple[LiveServer, Settings], sink: SmtpSink
) -> None:
    srv, settings = site
    victim = "victim@example.org"
    with open_store(srv.data_dir) as store:
        subscribe(store, settings, victim, query="secret topic alpha", every="daily")
        subscribe(store, settings, victim, trending="weekly")
        secret, weekly = confirm_email(store, victim)
    sink.reset()
    with httpx.Client(base_url=srv.url, timeout=30) as squatter, httpx.Client(base_url=srv.url, timeout=30) as owner:
        signup(squatter, victim, "squatter pass 1")
        page = squatter.get("/account/subscriptions")
        assert page.status_code == 200 and "Send the link again" in page.text
        assert "secret topic" not in page.text and "Trending papers, weekly" not in page.text
        token = csrf_from(page.text)
        for action, form in [("unsubscribe", {}), ("period", {"period": "weekly"}), ("pause", {}), ("resume", {})]:
            r = squatter.post(f"/account/subscriptions/{secret.id}/{action}", data={**form, "csrf_token": token})
            assert r.status_code == 404, action
        # the subscribe form answers the same for a subscription the address has and one it has not
        form = {"email": victim, "kind": "alert", "every": "daily", "csrf_token": csrf_from(squatter.get("/subscribe").text)}
        has = squatter.post("/subscribe", data={**form, "query": "secret topic alpha"})
        new = squatter.post("/subscribe", data={**form, "query": "unrelated topic beta"})
        assert has.status_code == new.status_code == 200
        assert message_of(has.text) == message_of(new.text) and "Already" not in has.text
        with open_store(srv.data_dir) as store:
            assert [s.status for s in (subs.get_subscription(store, secret.id), subs.get_subscription(store, weekly.id))] == ["active"] * 2
            assert store.conn.execute("SELECT email_verified_at FROM users WHERE email_key = ?", (victim,)).fetchone()[0] is None

        # the verification link reached only the mailbox; its owner, not logged in,
        # cannot verify the squatter's account by clicking it...
        url = verification_link(sink, victim)
        shown = owner.get(url)
        assert shown.status_code == 200 and "Take over the account" in shown.text
        r = owner.post(url, data={"csrf_token": csrf_from(shown.text)})
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        assert "secret topic" not in squatter.get("/account/subscriptions").text
        # ...and tampered links are refused
        for bad in (url[:-3] + "abc", url.rsplit("/", 1)[0] + "/garbage"):
            assert owner.get(bad).status_code == 400
            assert owner.post(bad + "/claim", data={"password": "x" * 12, "csrf_token": csrf_from(shown.text)}).status_code == 400
        # but proving the address lets the owner take the account over and see the subscriptions
        r = owner.post(url + "/claim", data={"password": "owner password 1", "csrf_token": csrf_from(shown.text)})
        assert r.status_code == 303
        mine = owner.get(r.headers["location"])
        assert mine.status_code == 200 and "Address confirmed." in mine.text
        assert "secret topic alpha" in htmlmod.unescape(mine.text) and "Trending papers, weekly" in mine.text
        r = owner.post(f"/account/subscriptions/{weekly.id}/unsubscribe", data={"csrf_token": csrf_from(mine.text)})
        assert r.status_code == 303
        with open_store(srv.data_dir) as store:
            assert subs.get_subscription(store, weekly.id).status == "unsubscribed"
        # the squatter was logged out, and the link cannot take the account back
        assert squatter.get("/account/subscriptions").status_code == 303
        again = squatter.post(url + "/claim", data={"password": "squatter pass 2", "csrf_token": token})
        assert again.status_code == 400 and "already confirmed" in again.text
        login = squatter.post("/login", data={"email": victim, "password": "squatter pass 1", "csrf_token": token})
        assert login.status_code == 400


@pytest.mark.sqlite_only("one data directory's send lock; PostgreSQL claims rows instead")
def test_confirmation_mail_waits_for_a_running_send_job(
    site: tuple[LiveServer, Settings], sink: SmtpSink, client: httpx.Client
) -> None:
    srv, settings = site
    sink.reset()
    form = {"email": "queued@example.org", "kind": "trending", "period": "weekly",
            "csrf_token": csrf_from(client.get("/subscribe").text)}  # fmt: skip
    # a send job (the scheduler, or cron's `digest send`) holds the lock meanwhile
    with open_store(srv.data_dir) as store, send_lock(store):
        assert client.post("/subscribe", data=form).status_code == 200
        time.sleep(1.5)
        assert sink.to("queued@example.org") == []
    [mail] = sink.wait_to("queued@example.org", timeout=30)
    assert "Confirm" in mail.msg["Subject"]


def test_no_server_errors_on_odd_requests(site: tuple[LiveServer, Settings], client: httpx.Client) -> None:
    odd = ["/unsubscribe/" + "A" * 5000, "/subscriptions/confirm/%00%0d%0a", "/unsubscribe/..%2f..%2f",
           "/subscribe?q=" + "x" * 3000, "/account/subscriptions/abc/period", "/account/verify/" + "A" * 5000,
           "/account/verify/%00%0d%0a/claim", "/account/verify"]  # fmt: skip
    for url in odd:
        for method in ("GET", "POST"):
            r = client.request(method, url)
            assert r.status_code < 500, (method, url, r.status_code)
    r = client.post("/subscribe", content=b"\xff\xfe garbage", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code in (400, 403)
