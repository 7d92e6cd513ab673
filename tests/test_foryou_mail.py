"""The opt-in "For you" mail: subscribed on the site, composed on the outbox exactly once per
period, delivered to a real SMTP server (aiosmtpd), stopped by an RFC 8058 one-click POST."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from pathlib import Path

import httpx
import pytest

from paperfeed.digest import send_digests
from paperfeed.models import Paper
from paperfeed.store import accounts as acc
from paperfeed.store import open_store
from paperfeed.store import outbox as ob
from paperfeed.store import subscriptions as subs
from tests.digest_support import SmtpSink, parts, start_mail_site
from tests.helpers import csrf_from

# starts a server over an indexed corpus (conftest.SLOW_FILES says the same of its peers)
# their server is started once for the module: with --engine postgres, one database for the module
PG_SCOPE = "module"
pytestmark = pytest.mark.slow


def test_for_you_mail_is_sent_once_per_period_and_one_click_unsubscribes(tmp_path: Path, sink: SmtpSink) -> None:
    sink.reset()
    srv, settings = start_mail_site(tmp_path / "data", sink)
    try:
        email = f"reader{uuid.uuid4().hex[:6]}@example.org"
        with httpx.Client(base_url=srv.url, timeout=120) as c:
            token = csrf_from(c.get("/signup").text)
            c.post("/signup", data={"email": email, "password": "correct horse 1", "csrf_token": token})
            with open_store(srv.data_dir) as store:
                latest = store.conn.execute("SELECT MAX(feed_date) FROM papers").fetchone()[0]
                saved_id, saved_title = store.conn.execute(
                    "SELECT id, title FROM papers WHERE feed_date = ? ORDER BY rowid LIMIT 1", (latest,)).fetchone()  # fmt: skip
            token = csrf_from(c.get("/for-you").text)
            c.post("/library/save", data={"csrf_token": token, "paper_id": saved_id})
            # an address that is not proven gets no mail
            r = c.post("/for-you/mail", data={"csrf_token": token, "period": "daily", "size": "5"}, follow_redirects=True)
            assert "Confirm your email address first" in r.text
            with open_store(srv.data_dir) as store:
                assert subs.list_subscriptions(store, email=email) == []
                user = acc.get_user_by_email(store, email)
                assert user is not None
                acc.mark_email_verified(store, user.id)
            r = c.post("/for-you/mail", data={"csrf_token": token, "period": "daily", "size": "5"}, follow_redirects=True)
            assert "You get the top 5 every day" in r.text
            sink.reset()  # the verification mail of the sign-up went out meanwhile

        now = dt.datetime.now(dt.UTC)
        with open_store(srv.data_dir) as store:
            (sub,) = subs.list_subscriptions(store, email=email)
            assert sub.kind == "foryou" and sub.status == "active"
            first = send_digests(store, settings, period="daily", now=now)
            assert first.composed == 1 and first.sent == 1
            # the same period again, and another run later that day: nothing more
            assert send_digests(store, settings, period="daily", now=now).composed == 0
            assert send_digests(store, settings, now=now + dt.timedelta(minutes=5)).composed == 0
            rows = [r for r in ob.list_rows(store, subscription_id=sub.id) if r.kind == "foryou"]
            assert [(r.status, r.paper_count) for r in rows] == [("sent", 5)]
        (mail,) = sink.wait_to(email)
        assert len(sink.to(email)) == 1
        msg = mail.msg
        assert msg["Subject"].startswith("For you: 5 papers")
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        text, html = parts(msg)
        assert text.count("which you saved") >= 1 and saved_title.split()[0] in text
        assert f"/papers/{saved_id}\n" not in text  # the saved paper itself is not recommended
        assert "<script>" not in html and "/for-you?window=today" in text

        # the next day brought no new papers: no mail
        with open_store(srv.data_dir) as store:
            assert send_digests(store, settings, now=now + dt.timedelta(days=1)).composed == 0

        unsubscribe_url = re.findall(r"<([^>]+)>", msg["List-Unsubscribe"])[0]
        with httpx.Client(timeout=30) as mail_client:  # no cookie, no CSRF token: RFC 8058
            one = mail_client.post(unsubscribe_url, content=b"List-Unsubscribe=One-Click",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
            assert one.status_code == 200
        with open_store(srv.data_dir) as store:
            assert subs.get_subscription(store, sub.id).status == "unsubscribed"
            # new papers would make a mail due again, but not for an unsubscribed address
            store.upsert_papers([Paper(title="A later paper", abstract="later", feed_date=latest, sources=["csv"])])
            assert send_digests(store, settings, now=now + dt.timedelta(days=2)).composed == 0
    finally:
        srv.stop()
    assert len(sink.to(email)) == 1
