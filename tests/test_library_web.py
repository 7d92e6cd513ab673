"""The library, "For you", import/export, follows and the per-tag feed over real HTTP (a uvicorn
server on 127.0.0.1 over the demo corpus, indexed), driven with httpx as a browser without script
would: plain form posts with the CSRF token."""

from __future__ import annotations

import json
import re
import uuid
import xml.etree.ElementTree as ET

import bibtexparser
import httpx
import pytest

from paperfeed.store import library as lib
from paperfeed.store import open_store
from tests.helpers import csrf_from
from tests.webserver import LINKED_TITLE, XSS_TITLE, LiveServer, demo_server, find_paper_id

# their server is started once for the module: with --engine postgres, one database for the module
PG_SCOPE = "module"
pytestmark = pytest.mark.slow  # asks the shared demo server

ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture(scope="module")
def srv() -> LiveServer:
    return demo_server()


def _client(srv: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=srv.url, timeout=60, follow_redirects=False)


def signup(c: httpx.Client) -> str:
    email = f"lib{uuid.uuid4().hex[:10]}@example.org"
    token = csrf_from(c.get("/signup").text)
    r = c.post("/signup", data={"email": email, "password": "correct horse 1", "csrf_token": token, "next": "/"})
    assert r.status_code == 303, r.text[:500]
    return email


@pytest.fixture
def user(srv: LiveServer) -> httpx.Client:
    with _client(srv) as c:
        signup(c)
        yield c


@pytest.fixture
def other(srv: LiveServer) -> httpx.Client:
    with _client(srv) as c:
        signup(c)
        yield c


def post(c: httpx.Client, url: str, **data: str) -> httpx.Response:
    token = csrf_from(c.get("/library").text)
    return c.post(url, data={"csrf_token": token, **data})


def make_tag(c: httpx.Client, name: str) -> int:
    r = post(c, "/library/tags", name=name)
    assert r.status_code == 303
    m = re.search(r"/library\?tag=(\d+)", r.headers["location"])
    assert m, r.headers["location"]
    return int(m.group(1))


def api(c: httpx.Client) -> dict[str, str]:
    return {"X-CSRF-Token": c.get("/api/session").json()["csrf_token"]}


def test_save_tag_and_not_interested_work_as_plain_forms(user: httpx.Client, srv: LiveServer) -> None:
    pid = find_paper_id(srv.data_dir, LINKED_TITLE)
    page = user.get("/").text
    cards = re.findall(r'<article class="paper" id="p-([0-9a-f]+)"', page)
    assert cards and all(f'name="paper_id" value="{c}"' in page for c in cards)  # the buttons are on the cards
    ml = make_tag(user, "Matrices")
    r = post(user, "/library/save", paper_id=pid, tag_id=str(ml), next="/")
    assert r.status_code == 303 and r.headers["location"] == f"/#p-{pid}"
    card = user.get(f"/papers/{pid}").text
    assert "Remove from library" in card and f'href="/library?tag={ml}">Matrices</a>' in card
    listing = user.get(f"/library?tag={ml}").text
    assert f'id="p-{pid}"' in listing and "Matrices (1)" in listing
    # untag keeps it saved; unsave removes it
    assert post(user, "/library/untag", paper_id=pid, tag_id=str(ml), next="/library").status_code == 303
    assert f'id="p-{pid}"' not in user.get(f"/library?tag={ml}").text
    assert f'id="p-{pid}"' in user.get("/library").text
    assert post(user, "/library/unsave", paper_id=pid, next="/library").status_code == 303
    assert f'id="p-{pid}"' not in user.get("/library").text
    # not interested, listed, then undone
    assert post(user, "/library/not-interested", paper_id=pid, action="on", next="/").status_code == 303
    assert LINKED_TITLE in user.get("/library?view=not-interested").text
    assert "Undo “not interested”" in user.get(f"/papers/{pid}").text
    assert post(user, "/library/not-interested", paper_id=pid, action="off", next="/").status_code == 303
    assert LINKED_TITLE not in user.get("/library?view=not-interested").text
    # a form without the token changes nothing
    user.get("/")
    assert user.post("/library/save", data={"paper_id": pid}).status_code == 403
    assert f'id="p-{pid}"' not in user.get("/library").text
    assert post(user, "/library/save", paper_id="no-such-paper").status_code == 404


def test_signed_out_visitors_are_sent_to_log_in(srv: LiveServer) -> None:
    with _client(srv) as c:
        assert c.get("/for-you").status_code == 303 and c.get("/for-you").headers["location"].startswith("/login")
        assert c.get("/library").status_code == 303
        assert c.get("/api/library").status_code == 401
        assert c.get("/api/recommendations").status_code == 401
        assert 'name="paper_id"' not in c.get("/").text  # no library buttons for visitors


def test_for_you_ranks_the_window_and_says_why(user: httpx.Client, srv: LiveServer) -> None:
    with open_store(srv.data_dir) as store:
        latest = store.conn.execute("SELECT MAX(feed_date) FROM papers").fetchone()[0]
        rows = store.conn.execute(
            "SELECT id, title FROM papers WHERE feed_date = ? AND hidden = 0 AND abstract != '' ORDER BY rowid",
            (latest,)).fetchall()  # fmt: skip
    saved_id, saved_title = rows[0]
    empty = user.get("/for-you").text
    assert "one saved paper is enough" in empty
    assert post(user, "/library/save", paper_id=saved_id).status_code == 303
    page = user.get("/for-you?window=today").text
    ids = re.findall(r'<article class="paper" id="p-([0-9a-f]+)"', page)
    assert len(ids) >= 5 and saved_id not in ids  # cold start from a single saved paper
    whys = re.findall(r'<p class="why" data-testid="why">(.*?)</p>', page, re.S)
    assert whys and all(f'href="/papers/{saved_id}"' in w for w in whys)
    assert re.search(r'class="terms">[^<]+<', page)
    # not interested leaves the page and is remembered
    dropped = ids[0]
    assert post(user, "/library/not-interested", paper_id=dropped, action="on", next="/for-you").status_code == 303
    again = re.findall(r'<article class="paper" id="p-([0-9a-f]+)"', user.get("/for-you?window=today").text)
    assert dropped not in again and saved_id not in again
    # the API says the same
    data = user.get("/api/recommendations", params={"window": "today", "limit": len(again)}).json()
    assert data["trained_on"] == 1 and data["window"] == "today" and data["until"] == latest
    assert [i["paper"]["id"] for i in data["items"]] == again
    assert all(i["nearest"]["id"] == saved_id for i in data["items"])
    assert saved_title
    # a tag with no papers has nothing to learn from
    t = make_tag(user, "Empty tag")
    assert "Save papers to this tag" in user.get(f"/for-you?tag={t}").text
    assert user.get("/for-you?window=nonsense").status_code == 200


def test_another_users_tags_and_feeds_are_never_visible(user: httpx.Client, other: httpx.Client,
                                                        srv: LiveServer) -> None:  # fmt: skip
    pid = find_paper_id(srv.data_dir, LINKED_TITLE)
    secret = make_tag(user, "Secret grant proposal")
    post(user, "/library/save", paper_id=pid, tag_id=str(secret))
    feed = re.search(r'data-testid="tag-feed">([^<]+)<', user.get(f"/library?tag={secret}").text).group(1)  # type: ignore[union-attr]
    for url in (f"/library?tag={secret}", f"/for-you?tag={secret}", f"/library/export.json?tag={secret}",
                f"/library/export.bib?tag={secret}"):  # fmt: skip
        r = other.get(url)
        assert r.status_code == 404, url
        assert "Secret grant proposal" not in r.text
    for url in (f"/api/library?tag={secret}", f"/api/recommendations?tag={secret}"):
        assert other.get(url).status_code == 404, url
    assert "Secret grant proposal" not in other.get("/library").text
    assert other.get("/api/library/tags").json() == []
    h = api(other)
    assert other.patch(f"/api/library/tags/{secret}", json={"name": "stolen"}, headers=h).status_code == 404
    assert other.delete(f"/api/library/tags/{secret}", headers=h).status_code == 404
    assert other.put(f"/api/library/papers/{pid}", json={"tags": [secret]}, headers=h).status_code == 404
    for action in ("rename", "delete", "feed"):
        assert post(other, f"/library/tags/{secret}/{action}", name="stolen").status_code == 404
    assert post(other, "/library/save", paper_id=pid, tag_id=str(secret)).status_code == 404
    assert post(other, "/library/untag", paper_id=pid, tag_id=str(secret)).status_code == 404
    mine = user.get("/api/library/tags").json()
    assert [(t["id"], t["name"], t["papers"], t["feed_url"]) for t in mine] == [(secret, "Secret grant proposal", 1, feed)]
    # the secret feed URL works without a session; a forged or edited one does not
    with _client(srv) as anon:
        path = feed.split(srv.url, 1)[-1] if feed.startswith(srv.url) else "/" + feed.split("/", 3)[3]
        r = anon.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/atom+xml")
        assert ET.fromstring(r.content).find(f"{ATOM}title").text == "For you: Secret grant proposal"  # type: ignore[union-attr]
        token = path.rsplit("/", 1)[1].removesuffix(".atom")
        assert anon.get(f"/feeds/library/{token[:-2]}xx.atom").status_code == 404
        assert anon.get("/feeds/library/WzEsMF0.atom").status_code == 404
        # regenerating kills the old URL
        assert post(user, f"/library/tags/{secret}/feed").status_code == 303
        new = re.search(r'data-testid="tag-feed">([^<]+)<', user.get(f"/library?tag={secret}").text).group(1)  # type: ignore[union-attr]
        assert new != feed
        assert anon.get(path).status_code == 404
        assert anon.get("/" + new.split("/", 3)[3]).status_code == 200


def test_api_follows_the_session_and_csrf_rules(user: httpx.Client, srv: LiveServer) -> None:
    pid = find_paper_id(srv.data_dir, LINKED_TITLE)
    assert user.put(f"/api/library/papers/{pid}").status_code == 403  # no CSRF header
    assert user.put(f"/api/library/papers/{pid}", headers={"X-CSRF-Token": "forged"}).status_code == 403
    h = api(user)
    tag = user.post("/api/library/tags", json={"name": "API tag"}, headers=h)
    assert tag.status_code == 201
    tid = tag.json()["id"]
    assert user.post("/api/library/tags", json={"name": "api TAG"}, headers=h).json()["id"] == tid
    r = user.put(f"/api/library/papers/{pid}", json={"tags": [tid]}, headers=h)
    assert r.status_code == 200 and r.json()["tags"] == [tid] and r.json()["paper"]["id"] == pid
    body = user.get("/api/library", params={"tag": tid}).json()
    assert body["total"] == 1 and body["papers"][0]["paper"]["title"] == LINKED_TITLE
    assert user.patch(f"/api/library/tags/{tid}", json={"name": "Renamed"}, headers=h).json()["name"] == "Renamed"
    assert user.delete(f"/api/library/papers/{pid}/tags/{tid}", headers=h).status_code == 204
    assert user.get("/api/library", params={"tag": tid}).json()["total"] == 0
    assert user.put(f"/api/library/not-interested/{pid}", headers=h).status_code == 204
    assert [p["id"] for p in user.get("/api/library/not-interested").json()["papers"]] == [pid]
    assert user.get("/api/library").json()["total"] == 0  # not interested took it out of the library
    assert user.delete(f"/api/library/not-interested/{pid}", headers=h).status_code == 204
    assert user.get("/api/library/not-interested").json()["papers"] == []
    f = user.post("/api/library/follows", json={"name": "Ada Lovelace", "coauthor": "Alan Turing"}, headers=h)
    assert f.status_code == 201 and f.json()["coauthor"] == "Alan Turing"
    assert user.post("/api/library/follows", json={"name": "Ada"}, headers=h).status_code == 400
    recs = user.get("/api/recommendations", params={"window": "today"}).json()
    assert recs["items"][0]["paper"]["id"] == pid
    assert recs["items"][0]["followed_author"] == "Ada Lovelace with Alan Turing"
    assert user.delete(f"/api/library/follows/{f.json()['id']}", headers=h).status_code == 204
    assert user.delete(f"/api/library/tags/{tid}", headers=h).status_code == 204
    assert user.get("/api/library/tags").json() == []
    schema = user.get("/openapi.json").json()
    for path in ("/api/library", "/api/library/tags", "/api/library/papers/{paper_id}",
                 "/api/library/not-interested/{paper_id}", "/api/recommendations", "/api/library/import",
                 "/api/library/export", "/api/library/follows"):  # fmt: skip
        assert path in schema["paths"], path


def test_followed_author_reaches_for_you_labelled(user: httpx.Client, srv: LiveServer) -> None:
    pid = find_paper_id(srv.data_dir, LINKED_TITLE)
    r = post(user, "/library/follows", name="Lovelace, Ada")
    assert r.status_code == 303
    page = user.get("/for-you?window=today").text
    ids = re.findall(r'<article class="paper" id="p-([0-9a-f]+)"', page)
    assert ids[0] == pid and "whom you follow" in page
    # cold start from the follow alone: the rest is ranked by the followed author's papers
    assert len(ids) > 3 and page.count(f'<a href="/papers/{pid}">{LINKED_TITLE}</a> (by an author you follow)') >= 3
    assert "same name are told apart" in user.get("/library?view=following").text


def test_hostile_tag_names_are_escaped(user: httpx.Client) -> None:
    tid = make_tag(user, XSS_TITLE)
    for url in (f"/library?tag={tid}", "/library", "/for-you", "/"):
        page = user.get(url).text
        assert XSS_TITLE not in page, url
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in user.get(f"/library?tag={tid}").text
    assert user.get("/api/library/tags").json()[0]["name"] == XSS_TITLE  # stored faithfully


BIBTEX = rb"""
@article{linked, title={Linked Paper With Known Identifiers}, author={Lovelace, Ada}, eprint={2401.00001v2},
  archivePrefix={arXiv}, year={2024}}
@misc{bydoi, title={Some other title}, doi={https://doi.org/10.1000/XYZ123}}
@misc{broken, title={An entry that never closes
@misc{nomatch, title={A paper nobody has written}, author={M{\"u}ller, Jos{\'e}}, year=1999}
@misc{fresh, title={A brand new imported paper}, abstract={It has an abstract, so it may be added.},
  author={Doe, Jane}, year={2020}}
@misc{latin, title={CAFE society of papers}, year={2001}}
""".replace(b"CAFE", b"Caf\xe9")

RIS = b"""TY  - JOUR
TI  - Linked Paper With Known Identifiers
DO  - 10.1000/xyz123
ER  -

TY  - JOUR
AU  - Nobody, A.
ER  -

TI  - no type line
ER  -

TY  - UNPB
TI  - Ris paper with a missing end
AB  - An abstract.
"""


def _import(c: httpx.Client, name: str, data: bytes, **fields: str) -> httpx.Response:
    token = csrf_from(c.get("/library?view=import").text)
    return c.post("/library/import", data={"csrf_token": token, **fields}, files={"file": (name, data)})


def test_import_reports_every_entry_and_keeps_what_is_valid(user: httpx.Client, srv: LiveServer) -> None:
    pid = find_paper_id(srv.data_dir, LINKED_TITLE)
    tid = make_tag(user, "Imported")
    fresh = f"A brand new imported paper {uuid.uuid4().hex[:8]}"
    bib = BIBTEX.replace(b"A brand new imported paper", fresh.encode())
    r = _import(user, "mine.bib", bib, tag_id=str(tid), add_papers="1")
    assert r.status_code == 200, r.text[:500]
    report = r.text
    assert "matched by doi" not in report  # matched entries are counted, not listed
    assert "the same paper as @article{linked}" in report  # the DOI entry names the same paper
    assert "is not valid BibTeX: Unexpected block start" in report
    assert "@misc{nomatch} (line 6): no paper has its arXiv id, DOI or title" in report
    assert "added as a new paper" in report
    assert "not UTF-8; read as Windows-1252" in report
    saved = user.get("/api/library", params={"tag": tid}).json()
    titles = sorted(p["paper"]["title"] for p in saved["papers"])
    assert titles == [fresh, LINKED_TITLE]
    assert pid in [p["paper"]["id"] for p in saved["papers"]]
    # the same file again: nothing new, nothing duplicated
    again = user.post("/api/library/import", headers=api(user), files={"file": ("mine.bib", bib)},
                      data={"tag": str(tid)}).json()  # fmt: skip
    assert again["saved"] == 0 and again["counts"]["duplicate"] == 1
    assert [e["status"] for e in again["entries"]] == ["matched", "duplicate", "error", "unmatched", "matched",
                                                       "unmatched"]  # fmt: skip
    assert again["entries"][4]["matched_by"] == "title"  # the paper the first import added
    assert again["entries"][0]["matched_by"] == "arxiv"


def test_import_ris_csl_json_and_bad_files_never_fail(user: httpx.Client) -> None:
    h = api(user)
    ris = user.post("/api/library/import", headers=h, files={"file": ("refs.ris", RIS)}).json()
    assert ris["format"] == "ris"
    assert [e["status"] for e in ris["entries"]] == ["matched", "error", "error", "unmatched"]
    assert ris["entries"][0]["matched_by"] == "doi"
    assert "no title, DOI or arXiv id" in ris["entries"][1]["message"]
    assert "does not start with a TY" in ris["entries"][2]["message"]
    assert "no ER (end of record) line" in ris["entries"][3]["message"]
    csl = json.dumps([
        {"id": "a", "type": "article", "title": "linked paper with known identifiers!"},
        {"id": "b", "type": "article", "number": "arXiv:2401.00001"},
        "not an object",
        {"id": "c", "title": None, "DOI": 17},
    ]).encode()  # fmt: skip
    out = user.post("/api/library/import", headers=h, files={"file": ("zotero.json", csl)}).json()
    assert [e["status"] for e in out["entries"]] == ["matched", "duplicate", "error", "error"]
    assert out["entries"][0]["matched_by"] == "title"
    for name, data in [("x.json", b"{not json"), ("x.bin", b"\x00\xff\xfe garbage"), ("x.bib", b"\xff\xfe@@@"),
                       ("x.ris", b"TY  - \n" * 50), ("x.json", b"[" * 100_000), ("x.bib", b"")]:  # fmt: skip
        r = user.post("/api/library/import", headers=h, files={"file": (name, data)})
        assert r.status_code == 200, (name, r.text[:300])
    huge = b"@misc{x, title={" + b"a" * (9 * 1024 * 1024) + b"}}"
    r = user.post("/api/library/import", headers=h, files={"file": ("huge.bib", huge)})
    assert r.status_code == 413
    r = _import(user, "huge.bib", huge)
    assert r.status_code == 413


def test_export_is_the_readers_data(user: httpx.Client, srv: LiveServer) -> None:
    pid = find_paper_id(srv.data_dir, LINKED_TITLE)
    tid = make_tag(user, "Export me")
    post(user, "/library/save", paper_id=pid, tag_id=str(tid))
    post(user, "/library/follows", name="Alan Turing", category="cs.LG")
    bib = user.get("/library/export.bib")
    assert bib.status_code == 200 and "attachment" in bib.headers["content-disposition"]
    parsed = bibtexparser.parse_string(bib.text)
    assert [e.fields_dict["eprint"].value for e in parsed.entries] == ["2401.00001"]
    data = user.get("/library/export.json").json()
    assert data["format"] == "paperfeed-library" and data["tags"] == [{"name": "Export me", "papers": 1}]
    assert [(p["id"], p["tags"]) for p in data["papers"]] == [(pid, ["Export me"])]
    assert data["following"] == [{"name": "Alan Turing", "coauthor": None, "category": "cs.LG"}]
    assert user.get("/api/library/export", params={"format": "bibtex"}).text == bib.text
    # what was exported imports back to the same library
    with _client(srv) as fresh:
        signup(fresh)
        out = fresh.post("/api/library/import", headers=api(fresh), files={"file": ("lib.bib", bib.content)}).json()
        assert out["saved"] == 1 and out["entries"][0]["paper_id"] == pid


def test_library_is_kept_in_the_store(user: httpx.Client, srv: LiveServer) -> None:
    pid = find_paper_id(srv.data_dir, LINKED_TITLE)
    email = user.get("/api/session").json()["email"]
    post(user, "/library/save", paper_id=pid)
    with open_store(srv.data_dir) as store:
        uid = store.conn.execute("SELECT id FROM users WHERE email = ?", (email,)).fetchone()[0]
        assert [p.id for p, _ in lib.list_saved(store, uid)] == [pid]


def test_odd_input_never_fails(user: httpx.Client, srv: LiveServer) -> None:
    pid = find_paper_id(srv.data_dir, LINKED_TITLE)
    for url in ("/library?tag=-1", "/library?tag=99999999999999999999", "/library?tag=1e3", "/library?page=-5",
                "/library?page=99999999", "/library?view=%00", "/for-you?window=%F0%9F%A7%AA&tag=",
                "/for-you?tag=0", "/library/export.xml", "/library/export.json?tag=x"):  # fmt: skip
        r = user.get(url)
        assert r.status_code in (200, 404), (url, r.status_code)
    h = api(user)
    for body in ({"tags": [2**63]}, {"tags": ["x"]}, {"tags": [-1]}, {"tags": list(range(1, 300))}, [1]):
        r = user.put(f"/api/library/papers/{pid}", json=body, headers=h)
        assert r.status_code in (404, 422), (body, r.status_code)
    for data in ({"period": "hourly"}, {"size": "7"}, {"size": "x" * 100}, {"tag_id": "123456789"}):
        r = post(user, "/for-you/mail", **data)
        assert r.status_code in (303, 404), (data, r.status_code)
    r = post(user, "/library/tags", name="x" * 61)
    assert r.status_code == 303 and "at most 60 characters" in user.get(r.headers["location"]).text
    # messages are signed by the form that left them: a crafted link shows nothing
    for url in ("/library?flash=Your+session+expired:+log+in+at+evil.example", "/for-you?flash=evil.example"):
        assert "evil.example" not in user.get(url).text


def test_a_save_trains_the_model_in_the_background(srv: LiveServer) -> None:
    """A change to the library trains its model right away (paperfeed.web.retrain), with no page
    view: the store holds it for the library's new version, for the mail and the other workers."""
    import time

    from paperfeed.store import accounts as acc
    from paperfeed.store import rec_models

    pid = find_paper_id(srv.data_dir, LINKED_TITLE)
    with _client(srv) as c:
        email = signup(c)
        with open_store(srv.data_dir) as store:
            uid = acc.get_user_by_email(store, email).id
            assert rec_models.load_many(store, [uid]) == {}
        assert post(c, "/library/save", paper_id=pid, next="/").status_code == 303
        deadline = time.monotonic() + 120
        while True:
            with open_store(srv.data_dir) as store:
                version = lib.library_version(store, uid)
                row = rec_models.load_many(store, [uid]).get((uid, ""))
            if (row is not None and row.version == version) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert row is not None and row.version == version
