"""Password reset by mail, on a real uvicorn server with a real SMTP server (aiosmtpd):
the link is single-use, expires, is stored hashed, ends every session, and the request
form says the same whether or not the address has an account."""

from __future__ import annotations

import datetime as dt
import hashlib
import re

import httpx
import pytest

from paperfeed.config import Settings
from paperfeed.store import accounts as acc
from paperfeed.store import open_store
from paperfeed.store import password_resets as resets
from tests.digest_support import SmtpSink, parts
from tests.helpers import csrf_from
from tests.webserver import LiveServer

# their server is started once for the module: with --engine postgres, one database for the module
PG_SCOPE = "module"
pytestmark = pytest.mark.slow  # a mail site on a real server, mail through aiosmtpd

# RFC 5322 with a numeric zone, as every mail of ours writes it (compose.mail_date)
DATE_FORMAT = r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} \+0000"


def client_for(srv: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=srv.url, timeout=60, follow_redirects=False)


def ask_reset(c: httpx.Client, email: str) -> httpx.Response:
    page = c.get("/password/forgot")
    assert page.status_code == 200
    return c.post("/password/forgot", data={"email": email, "csrf_token": csrf_from(page.text)})


def login(c: httpx.Client, email: str, password: str) -> httpx.Response:
    page = c.get("/login")
    return c.post("/login", data={"email": email, "password": password, "csrf_token": csrf_from(page.text)})


def test_reset_by_mail_ends_every_session_and_works_once(site: tuple[LiveServer, Settings], sink: SmtpSink) -> None:
    srv, _ = site
    email = "forgetful@example.org"
    with open_store(srv.data_dir) as store:
        acc.create_user(store, email, "old password 1")
    with client_for(srv) as laptop, client_for(srv) as phone:
        assert login(laptop, email, "old password 1").status_code == 303
        assert laptop.get("/account/subscriptions").status_code == 200
        assert 'href="/password/forgot"' in phone.get("/login").text
        page = phone.get("/password/forgot")
        assert phone.post("/password/forgot", data={"email": email}).status_code == 403  # no CSRF token
        r = phone.post("/password/forgot", data={"email": email, "csrf_token": csrf_from(page.text)})
        assert r.status_code == 200 and "a link to choose a new password is on its way" in r.text

        [mail] = sink.wait_to(email)
        assert re.fullmatch(DATE_FORMAT, mail.msg["Date"]), mail.msg["Date"]
        assert mail.msg["List-Unsubscribe"] is None
        text, html = parts(mail.msg)
        [url] = re.findall(r"http://\S+/password/reset/\S+", text)
        assert url.startswith(srv.url) and f'href="{url}"' in html
        token = url.rsplit("/", 1)[1]
        with open_store(srv.data_dir) as store:
            stored = [r[0] for r in store.conn.execute("SELECT token_hash FROM password_resets")]
        # only a hash of the token is kept
        assert token not in stored and hashlib.sha256(token.encode()).hexdigest() in stored

        with client_for(srv) as scanner:  # a mail scanner's GET changes nothing
            assert scanner.get(url).status_code == 200
        form = phone.get(url)
        assert form.status_code == 200 and 'name="password2"' in form.text
        csrf = csrf_from(form.text)
        assert phone.post(url, data={"password": "new password 2", "password2": "new password 2"}).status_code == 403
        bad = phone.post(url, data={"password": "new password 2", "password2": "other", "csrf_token": csrf})
        assert bad.status_code == 400 and "differ" in bad.text
        short = phone.post(url, data={"password": "short", "password2": "short", "csrf_token": csrf})
        assert short.status_code == 400 and "at least 8" in short.text
        done = phone.post(url, data={"password": "new password 2", "password2": "new password 2", "csrf_token": csrf})
        assert done.status_code == 303 and done.headers["location"].startswith("/account/subscriptions")
        assert "Password changed." in phone.get(done.headers["location"]).text  # signed in here

        # the laptop's session ended with the reset
        assert laptop.get("/account/subscriptions").status_code == 303
        # the link works once
        again = phone.post(url, data={"password": "third password 3", "password2": "third password 3",
                                      "csrf_token": csrf})  # fmt: skip
        assert again.status_code == 400 and "expired or was already used" in again.text
        assert phone.get(url).status_code == 400
    with client_for(srv) as c:
        assert login(c, email, "old password 1").status_code == 400
        assert login(c, email, "new password 2").status_code == 303
    with open_store(srv.data_dir) as store:
        user = acc.get_user_by_email(store, email)
        assert user is not None and user.email_verified  # the link proved the mailbox


def test_the_answer_does_not_tell_who_has_an_account(site: tuple[LiveServer, Settings], sink: SmtpSink) -> None:
    srv, _ = site
    with open_store(srv.data_dir) as store:
        acc.create_user(store, "member@example.org", "member password")
    with client_for(srv) as c:
        known = ask_reset(c, "member@example.org")
        unknown = ask_reset(c, "stranger@example.org")
        hostile = ask_reset(c, "<script>alert(1)</script>@example.org")
    assert known.status_code == unknown.status_code == hostile.status_code == 200

    def same(r: httpx.Response, email: str) -> str:
        return re.sub(r'value="[^"]+"', "", r.text.replace(email, "ADDRESS"))

    assert same(known, "member@example.org") == same(unknown, "stranger@example.org")
    assert "<script>alert(1)" not in hostile.text and "&lt;script&gt;" in hostile.text
    sink.wait_to("member@example.org")
    assert sink.to("stranger@example.org") == []


def test_expired_links_and_a_mailbox_flood_are_refused(site: tuple[LiveServer, Settings], sink: SmtpSink) -> None:
    srv, _ = site
    email = "flooded@example.org"
    with open_store(srv.data_dir) as store:
        user = acc.create_user(store, email, "flooded password")
        old = resets.create_reset(store, user.id, now=dt.datetime.now(dt.UTC) - resets.RESET_TTL - dt.timedelta(minutes=1))
    with client_for(srv) as c:
        assert c.get(f"/password/reset/{old}").status_code == 400
        assert c.get("/password/reset/" + "A" * 5000).status_code == 400
        answers = [ask_reset(c, email) for _ in range(resets_allowed() + 2)]
    # every request gets the same answer; only the first few per hour send a mail
    assert {r.status_code for r in answers} == {200}
    assert len({re.sub(r'value="[^"]+"', "", r.text) for r in answers}) == 1
    sink.wait_to(email, resets_allowed())
    with open_store(srv.data_dir) as store:
        live = store.conn.execute("SELECT COUNT(*) FROM password_resets WHERE user_id = ? AND created_at > ?",
                                  (user.id, resets._ts(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)))).fetchone()[0]  # fmt: skip
    assert live == resets_allowed()


def resets_allowed() -> int:
    from paperfeed.web.password import MAILS_PER_ADDRESS

    return MAILS_PER_ADDRESS


def test_no_server_errors_on_odd_reset_requests(site: tuple[LiveServer, Settings]) -> None:
    srv, _ = site
    with client_for(srv) as c:
        token = csrf_from(c.get("/password/forgot").text)
        for email in ("", "\x00", "a" * 5000, "not an address", "x@" + "y" * 300 + ".org"):
            r = c.post("/password/forgot", data={"email": email, "csrf_token": token})
            assert r.status_code == 200, (email[:20], r.status_code)
        for path in ("/password/reset/%00%0d%0a", "/password/reset/" + "A" * 5000, "/password/reset/..%2f"):
            # ..%2f is normalised by the router to a redirect: never a form, never a 500
            assert c.get(path).status_code in (307, 400, 404)
            r = c.post(path, data={"password": "x" * 5000, "password2": "x" * 5000, "csrf_token": token})
            assert r.status_code in (307, 400, 404), (path[:30], r.status_code)
