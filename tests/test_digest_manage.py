"""Managing one's mail from the link in any mail, without an account: a real digest
captured by aiosmtpd, its "Manage your subscriptions" link opened on the real server,
then pause, resume, frequency and unsubscribe-all, checked by the next digests."""

from __future__ import annotations

import datetime as dt
import html as htmlmod
import re

import httpx
import pytest

from paperfeed.config import Settings
from paperfeed.digest import compose, send_digests, subscribe
from paperfeed.digest.subscribing import confirm_email
from paperfeed.models import Paper
from paperfeed.store import open_store
from paperfeed.store import subscriptions as subs
from tests.digest_support import SmtpSink, parts
from tests.helpers import csrf_from
from tests.webserver import LiveServer

# their server is started once for the module: with --engine postgres, one database for the module
PG_SCOPE = "module"
pytestmark = pytest.mark.slow  # a mail site on a real server, mail through aiosmtpd

READER = "reader@example.org"
HOSTILE_QUERY = "<b>spectral</b> sparsification"
DATE_FORMAT = r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} \+0000"


def add_papers(srv: LiveServer, tag: str) -> None:
    with open_store(srv.data_dir) as store:
        store.upsert_papers([
            Paper(title=f"Graph colouring {tag}", abstract="Graph colouring, again.",
                  sources=["jsonl:manage"], ext_ids={"jsonl:manage": f"g-{tag}"}),
            Paper(title=f"Spectral sparsification {tag}", abstract="Spectral sparsification of graphs, <b>b</b> for bold.",
                  sources=["jsonl:manage"], ext_ids={"jsonl:manage": f"s-{tag}"}),
        ])  # fmt: skip


def send(srv: LiveServer, settings: Settings, day: int) -> None:
    with open_store(srv.data_dir) as store:
        send_digests(store, settings, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=day))


def subjects(sink: SmtpSink) -> list[str]:
    return [r.msg["Subject"] for r in sink.to(READER)]


def test_every_mail_links_a_page_that_manages_the_address_without_an_account(
    site: tuple[LiveServer, Settings], sink: SmtpSink
) -> None:
    srv, settings = site
    with open_store(srv.data_dir) as store:
        colour = subscribe(store, settings, READER, query="graph colouring").subscription
        sparse = subscribe(store, settings, READER, query=HOSTILE_QUERY).subscription
        other = subscribe(store, settings, "other@example.org", query="graph colouring").subscription
        confirm_email(store, READER)
        confirm_email(store, "other@example.org")
    add_papers(srv, "one")
    send(srv, settings, 0)
    # confirmed by the operator: the two confirmation mails were cancelled, two alerts went out
    mails = sink.wait_to(READER, 2)
    alert = next(m for m in mails if "graph colouring" in m.msg["Subject"] and "new paper" in m.msg["Subject"])
    msg = alert.msg
    assert all(re.fullmatch(DATE_FORMAT, m.msg["Date"]) for m in mails), [m.msg["Date"] for m in mails]
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"  # still there beside the page
    text, html = parts(msg)
    [manage_url] = re.findall(r"Manage your subscriptions: (\S+)", text)
    assert manage_url.startswith(f"{srv.url}/manage/")
    assert manage_url in [htmlmod.unescape(h) for h in re.findall(r'href="([^"]+)"', html)]

    with httpx.Client(base_url=srv.url, timeout=60, follow_redirects=False) as reader:
        page = reader.get(manage_url)
        assert page.status_code == 200
        assert "graph colouring" in page.text and "&lt;b&gt;spectral&lt;/b&gt;" in page.text
        assert "<b>spectral" not in page.text
        assert page.text.count('name="period"') == 2  # the other address's subscription is not listed
        base = manage_url.removeprefix(srv.url)
        token = csrf_from(page.text)
        assert reader.post(f"{base}/{colour.id}/pause").status_code == 403  # no CSRF token
        r = reader.post(f"{base}/{colour.id}/pause", data={"csrf_token": token})
        assert r.status_code == 303
        assert "Paused" in reader.get(r.headers["location"]).text
        # a link for one address cannot touch another address's subscription
        assert reader.post(f"{base}/{other.id}/unsubscribe", data={"csrf_token": token}).status_code == 404
        tampered = base[:-3] + ("AAA" if not base.endswith("AAA") else "BBB")
        assert reader.get(tampered).status_code == 400
        assert reader.post(f"{tampered}/unsubscribe-all", data={"csrf_token": token}).status_code == 400

        # paused: the next day's digests leave it out
        before = len(sink.to(READER))
        add_papers(srv, "two")
        send(srv, settings, 1)
        got = sink.wait_to(READER, before + 1)[before:]
        assert [m.msg["Subject"] for m in got] == ['1 new paper for "<b>spectral</b> sparsification"']

        r = reader.post(f"{base}/{sparse.id}/period", data={"csrf_token": token, "period": "weekly"})
        assert r.status_code == 303
        assert reader.post(f"{base}/{sparse.id}/period", data={"csrf_token": token, "period": "hourly"}).status_code == 400
        r = reader.post(f"{base}/{colour.id}/resume", data={"csrf_token": token})
        assert r.status_code == 303 and "Resumed" in reader.get(r.headers["location"]).text
        with open_store(srv.data_dir) as store:
            assert subs.get_subscription(store, sparse.id).period == "weekly"
            assert subs.get_subscription(store, colour.id).status == "active"

        # resumed: the paused days' papers come in the next alert
        before = len(sink.to(READER))
        send(srv, settings, 2)
        [resumed] = sink.wait_to(READER, before + 1)[before:]
        assert resumed.msg["Subject"] == '1 new paper for "graph colouring"'

        r = reader.post(f"{base}/unsubscribe-all", data={"csrf_token": token})
        assert r.status_code == 303 and "Unsubscribed from everything" in reader.get(r.headers["location"]).text
    with open_store(srv.data_dir) as store:
        assert {s.status for s in subs.list_subscriptions(store, email=READER)} == {"unsubscribed"}
        assert subs.get_subscription(store, other.id).status == "active"
    before = len(sink.to(READER))
    add_papers(srv, "three")
    send(srv, settings, 3)
    send(srv, settings, 10)
    sink.wait_to("other@example.org", 2)
    assert len(sink.to(READER)) == before


def test_verification_mail_has_the_same_date_format(site: tuple[LiveServer, Settings]) -> None:
    import email
    import email.policy

    _, settings = site
    now = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    _, raw = compose.compose_verify_email(settings, READER, f"{settings.base_url}/account/verify/x", now)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Date"] == "Tue, 04 Mar 2025 05:06:07 +0000" == compose.mail_date(now)


def test_no_server_errors_on_odd_manage_requests(site: tuple[LiveServer, Settings]) -> None:
    srv, settings = site
    from paperfeed.digest.tokens import manage_token

    with open_store(srv.data_dir) as store:
        sub = subscribe(store, settings, "odd@example.org", query="odd requests").subscription
    good = manage_token(settings.secret_key, sub.id, sub.email_key)
    gone = manage_token(settings.secret_key, 10**9, sub.email_key)
    with httpx.Client(base_url=srv.url, timeout=60, follow_redirects=False) as c:
        token = csrf_from(c.get(f"/manage/{good}").text)
        form = {"csrf_token": token, "period": "\x00<script>"}
        for url, want in [(f"/manage/{'A' * 5000}", 400), ("/manage/%00%0d%0a", 400), (f"/manage/{gone}", 400),
                          (f"/manage/{good}/{2**63}/pause", 422), (f"/manage/{good}/abc/pause", 422),
                          (f"/manage/{good}/{sub.id}/explode", 404), (f"/manage/{good}/{sub.id}/period", 400),
                          (f"/manage/{gone}/unsubscribe-all", 400)]:  # fmt: skip
            method = "GET" if url.count("/") == 2 else "POST"
            r = c.request(method, url, data=form if method == "POST" else None)
            assert r.status_code == want, (method, url, r.status_code)
