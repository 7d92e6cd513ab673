"""Subscriptions, composing, the outbox and SMTP delivery, against a real aiosmtpd server."""

from __future__ import annotations

import datetime as dt
import email.policy
import email.utils
import re
from pathlib import Path

import pytest

from paperfeed.config import Settings
from paperfeed.demo import demo_paths
from paperfeed.digest import (
    SubscriptionError,
    TokenError,
    confirm,
    send_digests,
    subscribe,
    unsubscribe,
)
from paperfeed.digest.tokens import confirm_token, unsubscribe_token
from paperfeed.ingest import ingest_paths
from paperfeed.models import Paper
from paperfeed.store import open_store
from paperfeed.store import outbox as ob
from paperfeed.store import subscriptions as subs
from tests.digest_support import SmtpSink, parts, smtp_env
from tests.helpers import run_cli

QUERY = "importance reweighting"
FROM = "Paperfeed Digest <digest@paperfeed.test>"


@pytest.fixture
def smtp(sink: SmtpSink) -> SmtpSink:
    sink.reset()
    return sink


def make_settings(data_dir: Path, sink: SmtpSink) -> Settings:
    return Settings(data_dir=data_dir, base_url="https://papers.example.org", secret_key="s3cret-for-tests",
                    smtp_host="127.0.0.1", smtp_port=sink.port, mail_from=FROM)  # fmt: skip


def ingest_seeds(store) -> None:  # noqa: ANN001
    report = ingest_paths(store, demo_paths())
    assert report.added > 0


def active(store, settings, email: str, **kw) -> subs.Subscription:  # noqa: ANN001
    r = subscribe(store, settings, email, **kw)
    confirm(store, settings, confirm_token(settings.secret_key, r.subscription.id, r.subscription.email_key,
                                            r.subscription.epoch))
    got = subs.get_subscription(store, r.subscription.id)
    assert got is not None and got.status == "active"
    return got


def links_in(text: str) -> list[str]:
    return re.findall(r"https?://[^\s\"<>]+", text)


# ---- bad input ----------------------------------------------------------------


@pytest.mark.parametrize(
    "address, fragment",
    [
        ("", "Enter an email"),
        ("not-an-address", "single email address"),
        ("a@@example.org", "single email address"),
        ("a b@example.org", "not a valid mailbox"),
        ("a@example", "not a valid mail domain"),
        ("a@-example.org", "not a valid mail domain"),
        ("victim@example.org\r\nBcc: everyone@example.org", "line breaks"),
        ("victim@example.org\n", "line breaks"),
        ("Name <a@example.org>", "not a valid mailbox"),
        ("a" * 65 + "@example.org", "not a valid mailbox"),
        ("a@" + "b" * 250 + ".org", "too long"),
    ],
)
def test_invalid_addresses_are_refused_with_a_reason(tmp_path: Path, smtp: SmtpSink, address: str, fragment: str) -> None:
    settings = make_settings(tmp_path, smtp)
    with open_store(tmp_path) as store:
        with pytest.raises(SubscriptionError) as err:
            subscribe(store, settings, address, trending="daily")
        assert fragment in str(err.value)
        assert subs.list_subscriptions(store) == []
        assert ob.list_rows(store) == []


@pytest.mark.parametrize(
    "query, fragment",
    [
        ("x" * 10_000, "10,000 characters"),
        ("reweighting\r\nBcc: all@example.org", "one line"),
        ("reweighting\x00", "control characters"),
        ("   ", "Enter the search"),
        ("the of and", "only common words"),
    ],
)
def test_bad_queries_are_refused(tmp_path: Path, smtp: SmtpSink, query: str, fragment: str) -> None:
    settings = make_settings(tmp_path, smtp)
    with open_store(tmp_path) as store:
        with pytest.raises(SubscriptionError) as err:
            subscribe(store, settings, "a@example.org", query=query)
        assert fragment in str(err.value)
        with pytest.raises(SubscriptionError, match="author filter must be on one line"):
            subscribe(store, settings, "a@example.org", query="ok", filters={"author": "x\r\nTo: b@example.org"})
        assert subs.list_subscriptions(store) == []


def test_cli_refuses_bad_input_clearly(tmp_path: Path, smtp: SmtpSink) -> None:
    env = smtp_env(smtp)
    r = run_cli("subscribe", "not-an-address", "--trending", "daily", data=tmp_path, env=env)
    assert r.returncode != 0 and "single email address" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("subscribe", "a@example.org", "--query", "q" * 10_000, data=tmp_path, env=env)
    assert r.returncode != 0 and "at most 500" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("subscribe", "a@example.org", data=tmp_path, env=env)
    assert r.returncode == 2 and "--trending" in r.stderr
    r = run_cli("subscriptions", "confirm", "nobody@example.org", data=tmp_path, env=env)
    assert r.returncode == 1 and "no pending subscription" in r.stderr
    r = run_cli("subscriptions", "list", "--json", data=tmp_path, env=env)
    assert r.returncode == 0 and r.stdout.strip() == "[]"
    r = run_cli("digest", "send", "--period", "hourly", data=tmp_path, env=env)
    assert r.returncode == 2 and "hourly" in r.stderr
    assert smtp.received == []
    # the mail server is down: the confirmation mail waits in the outbox, and
    # `digest send` says so with exit status 1 (cron mails its output)
    from tests.digest_support import free_port

    down = {**env, "PAPERFEED_SMTP_PORT": str(free_port())}
    r = run_cli("subscribe", "later@example.org", "--trending", "weekly", data=tmp_path, env=down)
    assert r.returncode == 0 and "will retry" in r.stderr
    with open_store(tmp_path) as store:
        [row] = ob.list_rows(store)
        assert (row.kind, row.status, row.attempts, row.last_code) == ("confirm", "pending", 1, None)
        assert "Connection refused" in row.last_error
    # the retry is not due yet (backoff), and the summary says a mail is waiting
    r = run_cli("digest", "send", data=tmp_path, env=down)
    assert r.returncode == 0 and "waiting to retry 1" in r.stdout
    # due again (as if minutes passed) with the server still down: exit status 1
    with open_store(tmp_path) as store:
        store.conn.execute("UPDATE outbox SET next_attempt_at = '2000-01-01T00:00:00Z'")
    r = run_cli("digest", "send", data=tmp_path, env=down)
    assert r.returncode == 1 and "error: connection" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("digest", "send", "--json", data=tmp_path, env=env)
    assert r.returncode == 0 and '"waiting":1' in r.stdout  # backoff doubled; nothing lost


def test_tampered_and_foreign_tokens_are_refused(tmp_path: Path, smtp: SmtpSink) -> None:
    settings = make_settings(tmp_path, smtp)
    with open_store(tmp_path) as store:
        a = subscribe(store, settings, "alice@example.org", trending="daily").subscription
        b = subscribe(store, settings, "bob@example.org", trending="daily").subscription
        good = confirm_token(settings.secret_key, a.id, a.email_key, a.epoch)
        tampered = [good[:-2] + ("AA" if not good.endswith("AA") else "BB"), good + "x", "x" + good, good.split(".")[0]]
        for t in tampered:
            with pytest.raises(TokenError):
                confirm(store, settings, t)
        # a token signed with another site's key
        with pytest.raises(TokenError):
            confirm(store, settings, confirm_token("another-key", b.id, b.email_key, b.epoch))
        # a validly signed token for alice's address does not work on bob's subscription
        with pytest.raises(TokenError):
            confirm(store, settings, confirm_token(settings.secret_key, b.id, a.email_key, b.epoch))
        # an unsubscribe token is not a confirmation token, and back
        with pytest.raises(TokenError):
            confirm(store, settings, unsubscribe_token(settings.secret_key, a.id, a.email_key))
        with pytest.raises(TokenError):
            unsubscribe(store, settings, good)
        assert {s.status for s in subs.list_subscriptions(store)} == {"pending"}
        # an expired confirmation link
        from paperfeed.digest.tokens import read_confirm_token

        with pytest.raises(TokenError, match="expired"):
            read_confirm_token(settings.secret_key, good, max_age=-1)


# ---- double opt-in, alerts, headers -------------------------------------------


def test_double_opt_in_then_one_alert_per_period(tmp_path: Path, smtp: SmtpSink) -> None:
    settings = make_settings(tmp_path, smtp)
    now = dt.datetime(2025, 3, 4, 8, 0, tzinfo=dt.UTC)
    with open_store(tmp_path) as store:
        res = subscribe(store, settings, "Reader@Example.org", query=QUERY, every="daily", now=now)
        assert res.created and res.confirm_queued and res.subscription.status == "pending"
        # a second sign-up moments later is the same subscription and no second mail
        again = subscribe(store, settings, "reader@example.org", query=QUERY, every="daily", now=now)
        assert again.subscription.id == res.subscription.id and not again.confirm_queued

        ingest_seeds(store)
        r1 = send_digests(store, settings, now=now)
        # unconfirmed: only the confirmation mail went out, though papers matched
        assert (r1.composed, r1.sent) == (0, 1)
        [confirm_mail] = smtp.received
        assert confirm_mail.rcpt_tos == ["Reader@example.org"]
        text, html = parts(confirm_mail.msg)
        [confirm_url] = [u for u in links_in(text) if "/subscriptions/confirm/" in u]
        assert confirm_url.startswith("https://papers.example.org/subscriptions/confirm/")
        assert confirm_url in html
        assert "importance reweighting" in text

        confirm(store, settings, confirm_url.rsplit("/", 1)[1], now=now)
        confirm(store, settings, confirm_url.rsplit("/", 1)[1], now=now)  # a second click changes nothing
        # confirmed after the seeds were stored: the seeds are not new for this alert
        r2 = send_digests(store, settings, now=now)
        assert (r2.composed, r2.sent, r2.empty) == (0, 0, 1)

        # new papers arrive: one matches both words, one matches only one of them
        match = Paper(title="Importance Reweighting for <Robust> Fine-tuning",
                      abstract="We study importance weights & reweighting under shift.",
                      authors=["Ann Author", "Bo Builder"], sources=["jsonl:new"], ext_ids={"jsonl:new": "1"})  # fmt: skip
        other = Paper(title="Reweighting Losses Without Any Importance", abstract="Loss reweighting only.",
                      sources=["jsonl:new"], ext_ids={"jsonl:new": "2"})  # fmt: skip
        unrelated = Paper(title="A Study of Graph Colouring", abstract="Colours.", sources=["jsonl:new"],
                          ext_ids={"jsonl:new": "3"})  # fmt: skip
        store.upsert_papers([match, other, unrelated])
        r3 = send_digests(store, settings, now=now)
        assert (r3.composed, r3.sent) == (1, 1)
        alert = smtp.received[-1]
        msg = alert.msg
        assert alert.rcpt_tos == ["Reader@example.org"]
        assert msg["To"] == "Reader@example.org"
        assert msg["From"] == FROM
        assert msg["Subject"].startswith("2 new papers for") and QUERY in msg["Subject"]
        assert email.utils.parsedate_to_datetime(msg["Date"]) == now
        assert re.fullmatch(r"<paperfeed\.\d+\.2025-03-04\.[0-9a-f]+@papers\.example\.org>", msg["Message-ID"])
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        lu = re.findall(r"<([^>]+)>", msg["List-Unsubscribe"])
        assert lu[0].startswith("https://papers.example.org/unsubscribe/")
        assert lu[1].startswith("mailto:digest@paperfeed.test?subject=unsubscribe")
        assert msg.get_content_type() == "multipart/alternative"
        text, html = parts(msg)
        assert "Importance Reweighting for <Robust> Fine-tuning" in text
        assert "Importance Reweighting for &lt;Robust&gt; Fine-tuning" in html and "<Robust>" not in html
        assert "Reweighting Losses Without Any Importance" in text  # 'importance' and 'reweighting' both there
        assert "Graph Colouring" not in text
        assert "Ann Author, Bo Builder" in text
        # the first alert has no "last alert" to count from
        assert "since you subscribed" in text and "since your last alert" not in text
        # each item says when, what and which: date, categories, arXiv id; no row of "Read more"
        assert "Read more" not in html and "Read more" not in text
        for url in links_in(text):
            assert url.startswith("https://papers.example.org/"), url
        assert 'style="' in html and "<style" not in html  # inline CSS only
        assert lu[0] in html

        # the same period again: nothing, even with more new papers
        store.upsert_papers([Paper(title="Importance reweighting, again", abstract="importance reweighting",
                                   sources=["jsonl:new"], ext_ids={"jsonl:new": "4"})])  # fmt: skip
        r4 = send_digests(store, settings, now=now + dt.timedelta(hours=5))
        assert (r4.composed, r4.sent) == (0, 0)
        # the next day the paper that arrived since is the alert
        r5 = send_digests(store, settings, now=now + dt.timedelta(days=1))
        assert (r5.composed, r5.sent) == (1, 1)
        t5, _ = parts(smtp.received[-1].msg)
        assert "Importance reweighting, again" in t5 and "Robust" not in t5
        assert "since your last alert" in t5
        ids = [r.msg["Message-ID"] for r in smtp.received]
        assert len(set(ids)) == len(ids)


def test_alert_lists_matching_seed_papers_via_cli(tmp_path: Path, smtp: SmtpSink) -> None:
    """The issue's scenario: subscribe, confirm, ingest the seed pages, send."""
    env = smtp_env(smtp)
    data = tmp_path / "data"
    r = run_cli("subscribe", "alerts@example.org", "--query", QUERY, data=data, env=env)
    assert r.returncode == 0, r.stderr
    r = run_cli("subscribe", "nothing@example.org", "--query", "zyxwvut quantum basket weaving", data=data, env=env)
    assert r.returncode == 0, r.stderr
    assert len(smtp.wait_for(2)) == 2 and all("Confirm" in m.msg["Subject"] for m in smtp.received)
    for addr in ("alerts@example.org", "nothing@example.org"):
        r = run_cli("subscriptions", "confirm", addr, data=data, env=env)
        assert r.returncode == 0 and "confirmed" in r.stdout
    r = run_cli("ingest", "--demo", "--no-index", "--no-progress", data=data, env=env)
    assert r.returncode == 0, r.stderr
    r = run_cli("digest", "send", "--json", data=data, env=env)
    assert r.returncode == 0, r.stderr
    assert '"composed":1' in r.stdout and '"empty":1' in r.stdout
    mails = smtp.received[2:]
    assert [m.rcpt_tos for m in mails] == [["alerts@example.org"]]  # the empty alert is not sent
    text, _ = parts(mails[0].msg)
    titles = re.findall(r"^\d+\. (.+)$", text, flags=re.M)
    assert titles
    with open_store(data) as store:
        for t in titles:
            row = store.conn.execute("SELECT title, abstract FROM papers WHERE title = ?", (t,)).fetchone()
            assert row is not None, t
            body = (row[0] + " " + row[1]).lower()
            assert "importan" in body and "reweight" in body, t
        # every seed paper that has both words is in the alert
        expected = [r[0] for r in store.conn.execute("SELECT title, abstract FROM papers")
                    if re.search(r"\bimportance\b", (r[0] + r[1]).lower()) and re.search(r"\breweighting\b", (r[0] + r[1]).lower())]  # fmt: skip
        assert set(expected) <= set(titles)
    r = run_cli("digest", "send", data=data, env=env)
    assert r.returncode == 0 and "composed 0, sent 0" in r.stdout
    assert len(smtp.received) == 3
    r = run_cli("subscriptions", "list", "--json", data=data, env=env)
    import json

    listed = json.loads(r.stdout)
    assert {s["email"]: s["status"] for s in listed} == {"alerts@example.org": "active", "nothing@example.org": "active"}
    # an unsubscribe request that came by mail, handled by the operator
    r = run_cli("subscriptions", "unsubscribe", "Nothing@Example.org", data=data, env=env)
    assert r.returncode == 0 and "unsubscribed" in r.stdout
    r = run_cli("subscriptions", "list", "--status", "active", data=data, env=env)
    assert "alerts@example.org" in r.stdout and "nothing@example.org" not in r.stdout


def test_trending_digest_lists_voted_papers(tmp_path: Path, smtp: SmtpSink) -> None:
    from paperfeed.store import accounts as acc
    from paperfeed.store import votes as vt

    settings = make_settings(tmp_path, smtp)
    with open_store(tmp_path) as store:
        ingest_seeds(store)
        sub = active(store, settings, "fan@example.org", trending="weekly")
        r0 = send_digests(store, settings)
        assert r0.composed == 0 and r0.empty == 1  # nothing voted: nothing trending, nothing sent
        papers = store.list_papers(limit=3)
        users = [acc.create_user(store, f"u{i}@example.org", "password-123") for i in range(3)]
        for i, p in enumerate(papers):
            for u in users[: 3 - i]:
                vt.vote(store, u.id, p.rowid)
        smtp.reset()
        r1 = send_digests(store, settings)
        assert (r1.composed, r1.sent) == (1, 1)
        [mail] = smtp.received
        assert mail.rcpt_tos == [sub.email]
        text, html = parts(mail.msg)
        listed = re.findall(r"^\d+\. (.+)$", text, flags=re.M)
        assert listed == [" ".join(p.title.split()) for p in papers]
        assert "3 votes" in html and "1 vote" in html
        # the plain-text part carries the votes too, with each paper's date and categories
        assert "3 votes" in text and "1 vote" in text
        first = papers[0]
        meta = re.findall(r"^   (.+ · 3 votes)$", text, flags=re.M)
        assert meta and (first.feed_date or first.published or "") in meta[0]
        if first.categories:
            assert first.categories[0] in meta[0]
        assert mail.msg["Subject"].startswith("Trending papers, week ")
        r2 = send_digests(store, settings)
        assert (r2.composed, r2.sent) == (0, 0)


def test_unsubscribe_cancels_unsent_mail_and_is_idempotent(tmp_path: Path, smtp: SmtpSink) -> None:
    settings = make_settings(tmp_path, smtp)
    with open_store(tmp_path) as store:
        sub = active(store, settings, "leaver@example.org", query="graph")
        store.upsert_papers([Paper(title="Graph things", abstract="graph", sources=["x"], ext_ids={"x": "1"})])
        # compose without sending: the server refuses with 421 for now
        smtp.reply("leaver@example.org", "451 4.7.1 try later")
        send_digests(store, settings)
        [row] = [r for r in ob.list_rows(store, subscription_id=sub.id) if r.kind == "alert"]
        assert row.status == "pending"
        token = unsubscribe_token(settings.secret_key, sub.id, sub.email_key)
        assert unsubscribe(store, settings, token).status == "unsubscribed"
        assert unsubscribe(store, settings, token).status == "unsubscribed"
        assert ob.get(store, row.id).status == "cancelled"
        smtp.reply("leaver@example.org", None)
        r = send_digests(store, settings, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
        assert r.sent == 0 and smtp.to("leaver@example.org") == []
        # an old confirmation link does not bring it back
        with pytest.raises(TokenError, match="cancelled"):
            confirm(store, settings, confirm_token(settings.secret_key, sub.id, sub.email_key, sub.epoch))


def test_permanent_and_transient_failures(tmp_path: Path, smtp: SmtpSink) -> None:
    """451 for one address (retried with backoff across runs), 550 for another
    (recorded, no more attempts, address suppressed), 250 for a third."""
    settings = make_settings(tmp_path, smtp)
    t0 = dt.datetime(2025, 5, 1, 6, 0, tzinfo=dt.UTC)
    with open_store(tmp_path) as store:
        ok = active(store, settings, "ok@example.org", query="graph", now=t0)
        later = active(store, settings, "greylisted@example.org", query="graph", now=t0)
        gone = active(store, settings, "gone@example.org", query="graph", now=t0)
        store.upsert_papers([Paper(title="Graph things", abstract="graph", sources=["x"], ext_ids={"x": "1"})])
        smtp.reply("greylisted@example.org", "451 4.7.1 Greylisted, try again later")
        smtp.reply("gone@example.org", "550 5.1.1 No such user")

        r1 = send_digests(store, settings, now=t0)
        assert (r1.composed, r1.sent, r1.retry, r1.failed) == (3, 1, 1, 1)
        assert len(smtp.to("ok@example.org")) == 1

        def row(sub: subs.Subscription) -> ob.OutboxRow:
            [x] = [r for r in ob.list_rows(store, subscription_id=sub.id) if r.kind == "alert"]
            return x

        g = row(later)
        assert (g.status, g.attempts, g.last_code) == ("pending", 1, 451)
        assert "Greylisted" in g.last_error and g.next_attempt_at > "2025-05-01T06:00:00Z"
        f = row(gone)
        assert (f.status, f.attempts, f.last_code) == ("failed", 1, 550) and "No such user" in f.last_error
        assert subs.suppression(store, "gone@example.org")[0] == 550

        # right away: the backoff has not passed, so nobody is contacted
        seen = len(smtp.handler.rcpt_seen)
        r2 = send_digests(store, settings, now=t0 + dt.timedelta(minutes=1))
        assert (r2.sent, r2.retry, r2.failed) == (0, 0, 0) and len(smtp.handler.rcpt_seen) == seen

        # after the backoff: retried, refused again, waits twice as long
        r3 = send_digests(store, settings, now=t0 + dt.timedelta(minutes=6))
        assert (r3.sent, r3.retry, r3.failed) == (0, 1, 0)
        g3 = row(later)
        assert g3.attempts == 2
        first_wait = dt.datetime.fromisoformat(g.next_attempt_at) - t0
        second_wait = dt.datetime.fromisoformat(g3.next_attempt_at) - (t0 + dt.timedelta(minutes=6))
        assert second_wait == 2 * first_wait
        assert smtp.handler.rcpt_seen.count("gone@example.org") == 1  # never retried

        # the server takes it now
        smtp.reply("greylisted@example.org", None)
        r4 = send_digests(store, settings, now=t0 + dt.timedelta(hours=1))
        assert (r4.sent, r4.retry) == (1, 0)
        assert row(later).status == "sent" and len(smtp.to("greylisted@example.org")) == 1
        assert row(later).message_id == smtp.to("greylisted@example.org")[0].msg["Message-ID"]

        # next day: the suppressed address gets nothing composed; the others do
        store.upsert_papers([Paper(title="More graph", abstract="graph", sources=["x"], ext_ids={"x": "2"})])
        r5 = send_digests(store, settings, now=t0 + dt.timedelta(days=1))
        assert r5.composed == 2 and r5.sent == 2
        assert smtp.handler.rcpt_seen.count("gone@example.org") == 1
        assert [r.status for r in ob.list_rows(store, subscription_id=gone.id) if r.kind == "alert"] == ["failed"]
        assert {s.status for s in (ok, later, gone)} == {"active"}


def test_retries_give_up_after_max_attempts(tmp_path: Path, smtp: SmtpSink) -> None:
    from paperfeed.digest.sending import MAX_ATTEMPTS

    settings = make_settings(tmp_path, smtp)
    t = dt.datetime(2025, 5, 1, 6, 0, tzinfo=dt.UTC)
    with open_store(tmp_path) as store:
        sub = active(store, settings, "busy@example.org", query="graph", now=t)
        store.upsert_papers([Paper(title="Graph", abstract="graph", sources=["x"], ext_ids={"x": "1"})])
        smtp.reply("busy@example.org", "452 4.2.2 Mailbox full")
        for _ in range(MAX_ATTEMPTS + 2):
            send_digests(store, settings, now=t)
            t += dt.timedelta(days=1)
        [row] = [r for r in ob.list_rows(store, subscription_id=sub.id) if r.kind == "alert"]
        assert row.status == "failed" and row.attempts == MAX_ATTEMPTS and "gave up" in row.last_error
        assert subs.suppression(store, "busy@example.org") is None  # not a permanent refusal
        assert smtp.handler.rcpt_seen.count("busy@example.org") == MAX_ATTEMPTS


def test_unreachable_server_keeps_mail_for_later(tmp_path: Path, smtp: SmtpSink) -> None:
    from tests.digest_support import free_port

    settings = make_settings(tmp_path, smtp)
    down = Settings(**{**settings.__dict__, "smtp_port": free_port()})
    t = dt.datetime(2025, 5, 1, 6, 0, tzinfo=dt.UTC)
    with open_store(tmp_path) as store:
        for i in range(3):
            active(store, settings, f"r{i}@example.org", query="graph", now=t)
        store.upsert_papers([Paper(title="Graph", abstract="graph", sources=["x"], ext_ids={"x": "1"})])
        r1 = send_digests(store, down, now=t)
        # the first connection failure stops the run instead of failing every mail
        assert r1.composed == 3 and r1.retry == 1 and r1.sent == 0 and "connection" in r1.errors[0]
        assert ob.counts(store) == {"pending": 3, "cancelled": 3}  # confirmation mails made moot
        r2 = send_digests(store, settings, now=t + dt.timedelta(hours=1))
        assert r2.sent == 3 and r2.composed == 0
        assert sorted(m.rcpt_tos[0] for m in smtp.received if "new paper" in m.msg["Subject"]) == [
            "r0@example.org", "r1@example.org", "r2@example.org"]  # fmt: skip


def test_dry_run_writes_eml_and_records_nothing(tmp_path: Path, smtp: SmtpSink) -> None:
    settings = make_settings(tmp_path / "data", smtp)
    with open_store(settings.data_dir) as store:
        active(store, settings, "dry@example.org", query="graph")
        store.upsert_papers([Paper(title="Graph <b>bold</b>", abstract="graph", sources=["x"], ext_ids={"x": "1"})])
        smtp.reset()
        before = ob.counts(store)
        r = send_digests(store, settings, dry_run=tmp_path / "out")
        assert len(r.written) == 1 and smtp.received == []
        assert ob.counts(store) == before
        import email as email_mod
        import email.policy

        msg = email_mod.message_from_bytes(Path(r.written[0]).read_bytes(), policy=email.policy.default)
        assert msg["To"] == "dry@example.org" and "Graph <b>bold</b>" in parts(msg)[0]
        # the dry run consumed nothing: the real run sends the same alert
        r2 = send_digests(store, settings)
        assert r2.sent == 1 and "Graph <b>bold</b>" in parts(smtp.received[0].msg)[0]


def test_hostile_and_huge_text_is_mailed_safely(tmp_path: Path, smtp: SmtpSink) -> None:
    settings = make_settings(tmp_path, smtp)
    with open_store(tmp_path) as store:
        active(store, settings, "safe@example.org", query="payload")
        title = '<script>alert(1)</script> payload "quoted" \u202eevil\u202c 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \U0001f9ea'
        abstract = "<img src=x onerror=alert(1)> payload " + "word " * 40_000
        store.upsert_papers([Paper(title=title, abstract=abstract, authors=["<b>Eve</b>"] + [f"A{i}" for i in range(30)],
                                   sources=["x"], ext_ids={"x": "1"})])  # fmt: skip
        smtp.reset()
        assert send_digests(store, settings).sent == 1
        msg = smtp.received[0].msg
        text, html = parts(msg)
        assert title in text
        assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
        assert "&lt;b&gt;Eve&lt;/b&gt;" in html and "et al. (31 authors)" in text
        assert len(smtp.received[0].data) < 40_000  # the first lines of the abstract, not 200 kB
        assert all(len(line) <= 998 for line in smtp.received[0].data.split(b"\r\n"))


def test_non_ascii_query_and_idn_address(tmp_path: Path, smtp: SmtpSink) -> None:
    settings = make_settings(tmp_path, smtp)
    with open_store(tmp_path) as store:
        sub = active(store, settings, "Lea@Bücher.Example", query="naïve Bayes", every="weekly")
        assert sub.email == "Lea@xn--bcher-kva.example"  # the domain in its ASCII form, for SMTP
        store.upsert_papers([Paper(title="Naïve Bayes, revisited — 再訪", abstract="naïve bayes 🧪",
                                   sources=["x"], ext_ids={"x": "1"})])  # fmt: skip
        smtp.reset()
        assert send_digests(store, settings).sent == 1
        [m] = smtp.received
        assert m.rcpt_tos == ["Lea@xn--bcher-kva.example"]
        assert m.msg["Subject"] == '1 new paper for "naïve Bayes"'
        assert b"=?utf-8?" in m.data.split(b"\r\n\r\n", 1)[0]  # RFC 2047 in the raw header
        text, html = parts(m.msg)
        assert "Naïve Bayes, revisited — 再訪" in text and "Naïve Bayes, revisited — 再訪" in html


def test_bench_mail_command_runs_small(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from paperfeed.cli.bench import bench_mail

    r = CliRunner().invoke(bench_mail, ["--mails", "20", "--papers", "402", "--json"])
    assert r.exit_code == 0, r.output
    import json

    [res] = json.loads(r.output)
    assert res["sent"] == res["received_by_sink"] == res["composed"] == 20
    assert res["mails_per_s"] > 0 and res["peak_rss_mb"] > 0


def test_confirmation_mails_cannot_flood_an_inbox(tmp_path: Path, smtp: SmtpSink) -> None:
    from paperfeed.digest.subscribing import CONFIRMS_PER_HOUR

    settings = make_settings(tmp_path, smtp)
    t = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
    with open_store(tmp_path) as store:
        results = [subscribe(store, settings, "victim@example.org", query=f"topic {i}", now=t) for i in range(12)]
        assert sum(r.confirm_queued for r in results) == CONFIRMS_PER_HOUR
        assert "do not send another yet" in results[-1].message
        # the same subscription again within minutes: no second mail either
        assert not subscribe(store, settings, "victim@example.org", query="topic 0", now=t).confirm_queued
        later = subscribe(store, settings, "victim@example.org", query="topic 11", now=t + dt.timedelta(hours=2))
        assert later.confirm_queued
        send_digests(store, settings, now=t + dt.timedelta(hours=2))
        assert len(smtp.to("victim@example.org")) == CONFIRMS_PER_HOUR + 1


def test_alerts_follow_the_site_query_syntax(tmp_path: Path, smtp: SmtpSink) -> None:
    """"exact phrase" and -excluded words mean in an alert what they mean in the search box."""
    settings = make_settings(tmp_path, smtp)
    with open_store(tmp_path) as store:
        active(store, settings, "syntax@example.org", query='"effective rank" -matrix')
        titles = {
            "1": ("On the effective rank of embeddings", "We measure it."),
            "2": ("Rank is not effective", "Words apart."),  # both words, not the phrase
            "3": ("Effective rank of a matrix", "Excluded word."),
            "4": ("Effective ranks in deep networks", "Plural still matches the stemmed phrase."),
        }
        store.upsert_papers([Paper(title=t, abstract=a, sources=["x"], ext_ids={"x": k}) for k, (t, a) in titles.items()])
        smtp.reset()
        assert send_digests(store, settings).sent == 1
        text, _ = parts(smtp.received[0].msg)
        listed = set(re.findall(r"^\d+\. (.+)$", text, flags=re.M))
        assert listed == {titles["1"][0], titles["4"][0]}


def test_unsubscribing_after_compose_stops_the_mail(tmp_path: Path, smtp: SmtpSink) -> None:
    settings = make_settings(tmp_path, smtp)
    with open_store(tmp_path) as store:
        sub = active(store, settings, "late@example.org", query="graph")
        store.upsert_papers([Paper(title="Graph", abstract="graph", sources=["x"], ext_ids={"x": "1"})])
        send_digests(store, settings, limit=0)  # composed, not sent
        [row] = [r for r in ob.list_rows(store, subscription_id=sub.id) if r.kind == "alert"]
        # the row is already being handled when the click arrives (as in a concurrent run)
        store.conn.execute("UPDATE outbox SET status = 'sending' WHERE id = ?", (row.id,))
        store.conn.execute("UPDATE subscriptions SET status = 'unsubscribed' WHERE id = ?", (sub.id,))
        smtp.reset()
        r = send_digests(store, settings)
        assert r.sent == 0 and smtp.received == []
        assert ob.get(store, row.id).status == "cancelled"


def test_an_old_confirmation_link_cannot_restart_a_cancelled_subscription(tmp_path: Path, smtp: SmtpSink) -> None:
    """Confirm, unsubscribe, a stranger subscribes the address again: the first mail's link
    must not give the consent only the address's owner can give; a link mailed since can."""
    settings = make_settings(tmp_path, smtp)
    t0 = dt.datetime(2025, 5, 1, 6, 0, tzinfo=dt.UTC)

    def mailed_link(sub_id: int) -> str:
        row = [r for r in ob.list_rows(store, subscription_id=sub_id) if r.kind == "confirm"][-1]
        text, _ = parts(email.message_from_bytes(row.message, policy=email.policy.default))
        [link] = {u for u in links_in(text) if "/subscriptions/confirm/" in u}
        return link.rsplit("/", 1)[1]

    with open_store(tmp_path) as store:
        sub = subscribe(store, settings, "owner@example.org", trending="daily", now=t0).subscription
        old = mailed_link(sub.id)
        assert confirm(store, settings, old, now=t0).status == "active"
        unsubscribe(store, settings, unsubscribe_token(settings.secret_key, sub.id, sub.email_key))
        again = subscribe(store, settings, "owner@example.org", trending="daily", now=t0 + dt.timedelta(hours=1))
        assert again.subscription.id == sub.id and again.subscription.status == "pending" and again.confirm_queued
        with pytest.raises(TokenError, match="cancelled after this link was sent"):
            confirm(store, settings, old)
        assert subs.get_subscription(store, sub.id).status == "pending"
        assert confirm(store, settings, mailed_link(sub.id)).status == "active"


def test_alert_filters_mean_what_the_search_filters_mean(tmp_path: Path, smtp: SmtpSink) -> None:
    """An alert's author and category filters are the search's: whole name words in order within
    one author (not a substring of any), and a category is checked when subscribing."""
    from paperfeed.digest.matching import candidate_papers

    settings = make_settings(tmp_path, smtp)
    with open_store(tmp_path) as store:
        with pytest.raises(SubscriptionError, match="arXiv category"):
            subscribe(store, settings, "a@example.org", query="ok", filters={"category": "not a category!"})
        start = store.max_seq()
        store.upsert_papers([
            Paper(title="Sparse coding", authors=["Geoffrey E. Hinton"], categories=["cs.LG"],
                  sources=["jsonl:f"], ext_ids={"jsonl:f": "1"}),
            Paper(title="Sparse priors", authors=["Abraham Lincoln"], categories=["stat.ML"],
                  sources=["jsonl:f"], ext_ids={"jsonl:f": "2"}),
        ])  # fmt: skip
        end = store.max_seq()

        def titles(**filters: str) -> list[str]:
            return sorted(p.title for p in candidate_papers(store, start, end, filters))

        assert titles(author="Hinton") == ["Sparse coding"]
        assert titles(author="Geoffrey Hinton") == ["Sparse coding"]  # one word apart, as the index's slop
        assert titles(author="Linc") == []  # a substring of a name is not the name
        assert titles(author="Hinton Geoffrey") == []  # in order
        assert titles(category="stat.ML") == ["Sparse priors"]
        assert titles(category="cs.LG,stat.ML") == ["Sparse coding", "Sparse priors"]
