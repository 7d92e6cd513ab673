"""Accounts, sessions, votes and the trending formula, on a real SQLite store."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from paperfeed.models import Paper
from paperfeed.store import Store, open_store
from paperfeed.store import accounts as acc
from paperfeed.store import papers as feed
from paperfeed.store import votes as vt

NOW = dt.datetime(2025, 6, 15, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def store(data_dir: Path) -> Store:
    s = open_store(data_dir)
    days = ["2025-06-15", "2025-06-14", "2025-06-10", "2025-05-01"]
    s.upsert_papers([Paper(title=f"Paper on day {d}", abstract="x", feed_date=d, sources=["csv"]) for d in days])
    yield s
    s.close()


def _paper(store: Store, day: str) -> Paper:
    return next(p for p in store.list_papers(limit=100) if p.feed_date == day)


def _votes(store: Store, paper: Paper, n: int, at: dt.datetime) -> None:
    for i in range(n):
        u = acc.create_user(store, f"v{paper.rowid}-{i}-{at.timestamp():.0f}@example.org", "password-123")
        vt.vote(store, u.id, paper.rowid)
        with store.write() as c:
            c.execute("UPDATE votes SET created_at = ? WHERE user_id = ?", (at.strftime("%Y-%m-%dT%H:%M:%SZ"), u.id))


def test_trending_follows_the_documented_formula(store: Store) -> None:
    fresh, day_old, week_old = _paper(store, "2025-06-15"), _paper(store, "2025-06-14"), _paper(store, "2025-06-10")
    _votes(store, fresh, 2, NOW - dt.timedelta(hours=1))
    _votes(store, day_old, 5, NOW - dt.timedelta(hours=2))
    _votes(store, week_old, 9, NOW - dt.timedelta(hours=3))
    ranked = vt.trending(store, "week", limit=10, offset=0, now=NOW)
    for p, votes, score in ranked:
        age = (NOW - dt.datetime.fromisoformat(p.feed_date).replace(tzinfo=dt.UTC)).total_seconds() / 3600
        assert score == pytest.approx(votes / (age + 2) ** 1.8)
    scores = [s for _, _, s in ranked]
    assert scores == sorted(scores, reverse=True)
    # age outweighs raw votes: 2 votes today beat 9 votes on a five-day-old paper
    assert [p.rowid for p, _, _ in ranked] == [fresh.rowid, day_old.rowid, week_old.rowid]
    assert [v for _, v, _ in ranked] == [2, 5, 9]
    assert vt.trending(store, "week", limit=1, offset=1, now=NOW)[0][0].rowid == day_old.rowid


def test_trending_counts_only_votes_inside_the_period(store: Store) -> None:
    old = _paper(store, "2025-05-01")
    recent = _paper(store, "2025-06-14")
    _votes(store, old, 4, NOW - dt.timedelta(days=20))
    _votes(store, recent, 1, NOW - dt.timedelta(days=3))
    assert vt.trending(store, "day", now=NOW) == []
    assert [p.rowid for p, _, _ in vt.trending(store, "week", now=NOW)] == [recent.rowid]
    month = vt.trending(store, "month", now=NOW)
    assert {p.rowid: v for p, v, _ in month} == {recent.rowid: 1, old.rowid: 4}
    with pytest.raises(ValueError, match="period"):
        vt.trending(store, "year", now=NOW)


def test_hidden_papers_leave_trending_and_lists(store: Store) -> None:
    p = _paper(store, "2025-06-15")
    _votes(store, p, 1, NOW)
    admin = acc.create_user(store, "admin@example.org", "password-123", is_admin=True)
    assert acc.set_paper_hidden(store, p.id, True, by_user=admin.id)
    assert vt.trending(store, "week", now=NOW) == []
    assert p.rowid not in [q.rowid for q, _ in feed.list_range(store, "2025-01-01", "2025-12-31")]
    assert feed.latest_feed_date(store) == "2025-06-14"
    log = store.conn.execute("SELECT action, user_id FROM moderation_log").fetchall()
    assert [tuple(r) for r in log] == [("hide", admin.id)]


def test_one_vote_per_user_and_undo(store: Store) -> None:
    p = _paper(store, "2025-06-14")
    u = acc.create_user(store, "a@example.org", "password-123")
    assert vt.vote(store, u.id, p.rowid) is True
    assert vt.vote(store, u.id, p.rowid) is False
    assert vt.vote_counts(store, [p.rowid]) == {p.rowid: 1}
    assert vt.user_voted(store, u.id, [p.rowid]) == {p.rowid}
    assert vt.unvote(store, u.id, p.rowid) is True
    assert vt.unvote(store, u.id, p.rowid) is False
    assert vt.vote_counts(store, [p.rowid]) == {}


def test_passwords_and_sessions(store: Store) -> None:
    u = acc.create_user(store, "Mixed.Case@Example.org", "s3cret-password")
    assert acc.authenticate(store, "mixed.case@example.org", "s3cret-password") == u
    assert acc.authenticate(store, "mixed.case@example.org", "wrong-password") is None
    assert acc.authenticate(store, "nobody@example.org", "s3cret-password") is None
    with pytest.raises(acc.AccountError, match="already exists"):
        acc.create_user(store, "MIXED.case@example.org", "another-password")
    with pytest.raises(acc.AccountError, match="single email address"):
        acc.create_user(store, "not-an-email", "another-password")
    token = acc.create_session(store, u.id)
    assert acc.session_user(store, token) == u
    assert acc.session_user(store, token + "x") is None
    expired = acc.create_session(store, u.id, days=-1)
    assert acc.session_user(store, expired) is None
    stored = store.conn.execute("SELECT token_hash FROM sessions").fetchall()
    assert token not in {r[0] for r in stored}  # only hashes are stored
    acc.delete_session(store, token)
    assert acc.session_user(store, token) is None


def test_daily_navigation_helpers(store: Store) -> None:
    assert feed.latest_feed_date(store) == "2025-06-15"
    assert feed.prev_feed_date(store, "2025-06-14") == "2025-06-10"
    assert feed.next_feed_date(store, "2025-06-10") == "2025-06-14"
    assert feed.prev_feed_date(store, "2025-05-01") is None
    assert feed.count_range(store, "2025-06-01", "2025-06-30") == 3


def test_email_verification_and_takeover_of_an_unverified_account(store: Store) -> None:
    squatter = acc.create_user(store, "victim@example.org", "squatter-password")
    assert not squatter.email_verified
    token = acc.create_session(store, squatter.id)
    # one verification mail per few minutes, none once verified
    assert acc.note_verify_sent(store, squatter.id, now=NOW) is True
    assert acc.note_verify_sent(store, squatter.id, now=NOW + dt.timedelta(minutes=1)) is False
    assert acc.note_verify_sent(store, squatter.id, now=NOW + acc.VERIFY_RESEND + dt.timedelta(seconds=1)) is True
    with pytest.raises(acc.AccountError, match="at least"):
        acc.claim_unverified(store, squatter.id, "short")
    owner = acc.claim_unverified(store, squatter.id, "owner-password")
    assert owner.email_verified and acc.session_user(store, token) is None  # the squatter is logged out
    assert acc.authenticate(store, "victim@example.org", "squatter-password") is None
    assert acc.authenticate(store, "victim@example.org", "owner-password") == owner
    # a verified address cannot be taken over again, and verifying twice keeps the first time
    with pytest.raises(acc.AccountError, match="already confirmed"):
        acc.claim_unverified(store, owner.id, "another-password")
    assert acc.mark_email_verified(store, owner.id).email_verified_at == owner.email_verified_at
    assert acc.note_verify_sent(store, owner.id, now=NOW + dt.timedelta(days=1)) is False


def test_one_address_validator_and_key_for_accounts_and_subscriptions(store: Store) -> None:
    from paperfeed.addresses import address_key
    from paperfeed.config import Settings
    from paperfeed.digest import SubscriptionError, subscribe
    from paperfeed.store import subscriptions as subs

    hidden = ["\x00", "\x1b[2J", "\x07", "\x7f", "\u202e", "\u200b", "\u2028"]
    for ch in hidden:
        with pytest.raises(acc.AccountError, match="control characters"):
            acc.create_user(store, f"eve{ch}@example.org", "a long password")
    # the Kelvin sign is a K: its account is kate's own address, not a second one beside it
    kelvin = "\u212aate@Example.org"
    u = acc.create_user(store, kelvin, "a long password")
    assert u.email == "Kate@example.org"
    with pytest.raises(acc.AccountError, match="already exists"):
        acc.create_user(store, "kate@example.org", "another password")
    assert acc.authenticate(store, "KATE@EXAMPLE.ORG", "a long password") == u
    assert address_key(kelvin) == address_key("kate@example.org") == "kate@example.org"
    # fullwidth letters fold the same way; other non-ASCII mailbox names are refused
    assert acc.create_user(store, "\uff42ob@example.org", "a long password").email == "bob@example.org"
    with pytest.raises(acc.AccountError, match="not a valid mailbox"):
        acc.create_user(store, "jos\u00e9@example.org", "a long password")
    # a subscription typed either way has the account's key, so the account finds it
    settings = Settings(data_dir=store.data_dir, secret_key="k")
    sub = subscribe(store, settings, kelvin, trending="daily").subscription
    assert sub.email_key == "kate@example.org" and sub.email == "Kate@example.org"
    assert [s.id for s in subs.list_subscriptions(store, email="kate@EXAMPLE.org")] == [sub.id]
    with pytest.raises(SubscriptionError, match="control characters"):
        subscribe(store, settings, "kate\u202e@example.org", trending="daily")


def test_control_characters_are_escaped_in_users_list_and_logs(tmp_path: Path) -> None:
    from tests.helpers import run_cli

    data = tmp_path / "data"
    with open_store(data) as store:
        # an address stored before validation got strict
        store.conn.execute("INSERT INTO users (email, email_key, password_hash, is_admin, created_at) "
                           "VALUES (?, ?, 'x', 0, '2025-01-01T00:00:00Z')",
                           ("evil\x1b[31m\u202e@example.org", "evil"))  # fmt: skip
    r = run_cli("users", "list", data=data)
    assert r.returncode == 0 and "\x1b" not in r.stdout and "\u202e" not in r.stdout
    assert "evil\\x1b[31m\\u202e@example.org" in r.stdout
    r = run_cli("users", "verify", "evil\x1b[31m@example.org", data=data)
    assert r.returncode == 1 and "\x1b" not in r.stderr and "evil\\x1b[31m@example.org" in r.stderr


def test_log_messages_escape_control_characters() -> None:
    import io
    import logging

    from paperfeed.cli.main import EscapeHidden

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(EscapeHidden())
    log = logging.getLogger("paperfeed.test.escape")
    log.addHandler(handler)
    try:
        log.warning("verification mail to %s not sent", "a\x1b[2J\u202e@example.org\nFAKE: forged line")
    finally:
        log.removeHandler(handler)
    assert out.getvalue() == "verification mail to a\\x1b[2J\\u202e@example.org\\x0aFAKE: forged line not sent\n"
