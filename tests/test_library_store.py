"""The library in the store: tags, saves, "not interested", versions, follows; on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from paperfeed.models import Paper
from paperfeed.store import Store, open_store, rec_models
from paperfeed.store import accounts as acc
from paperfeed.store import library as lib


@pytest.fixture
def store(data_dir: Path) -> Store:
    s = open_store(data_dir)
    s.upsert_papers([
        Paper(title=f"Paper {i}", abstract="x", feed_date=f"2025-06-{10 + i:02d}", sources=["csv"],
              authors=authors, categories=cats)
        for i, (authors, cats) in enumerate([
            (["José Müller", "Ada Lovelace"], ["cs.LG"]),
            (["Jose Muller"], ["math.AG"]),
            (["Müller, José", "Alan Turing"], ["cs.LG"]),
            (["Wei Li"], ["cs.CL"]),
            (["Li Wei", "Li Weiss"], ["cs.CL"]),
        ])
    ])  # fmt: skip
    yield s
    s.close()


def _users(store: Store) -> tuple[int, int]:
    a = acc.create_user(store, "a@example.org", "password-123")
    b = acc.create_user(store, "b@example.org", "password-123")
    return a.id, b.id


def _rowids(store: Store) -> list[int]:
    return [p.rowid for p in store.list_papers(order="oldest", limit=100)]


def test_tags_saves_and_versions(store: Store) -> None:
    a, _ = _users(store)
    r = _rowids(store)
    ml = lib.create_tag(store, a, "  Machine   learning ")
    assert ml.name == "Machine learning"
    assert lib.create_tag(store, a, "MACHINE LEARNING").id == ml.id  # one tag per name, case aside
    nlp = lib.create_tag(store, a, "NLP")
    v0, t0, n0 = lib.library_version(store, a), lib.library_version(store, a, ml.id), lib.library_version(store, a, nlp.id)
    assert lib.save(store, a, [r[0], r[1]], [ml.id]) == 2
    assert lib.save(store, a, [r[1]], [nlp.id]) == 0  # already saved: only the tag is added
    assert lib.saved_rowids(store, a) == [r[0], r[1]]
    assert lib.saved_rowids(store, a, ml.id) == [r[0], r[1]]
    assert lib.saved_rowids(store, a, nlp.id) == [r[1]]
    v1, t1, n1 = lib.library_version(store, a), lib.library_version(store, a, ml.id), lib.library_version(store, a, nlp.id)
    assert v1 != v0 and t1 != t0 and n1 != n0
    m = lib.marks(store, a, r)
    assert m.saved == {r[0], r[1]} and m.tags[r[1]] == tuple(sorted((ml.id, nlp.id)))
    assert lib.all_marks(store, a) == m
    assert lib.saved_at(store, a, r[0]) and lib.saved_at(store, a, r[4]) is None
    # untagging changes that tag's version only
    assert lib.untag(store, a, r[1], nlp.id)
    assert lib.library_version(store, a, ml.id) == t1 and lib.library_version(store, a, nlp.id) != n1
    assert lib.saved_rowids(store, a, nlp.id) == [] and r[1] in lib.saved_rowids(store, a)
    # unsaving drops the paper from every tag
    assert lib.unsave(store, a, r[0]) and not lib.unsave(store, a, r[0])
    assert lib.saved_rowids(store, a, ml.id) == [r[1]]
    assert [t.count for t in lib.list_tags(store, a)] == [1, 0]
    # deleting a tag keeps its papers saved, and drops its stored model (not the library's)
    for tag in (ml.id, nlp.id, None):
        rec_models.save(store, a, tag, "v", 0, b"model")
    assert lib.delete_tag(store, a, ml.id)
    assert rec_models.load(store, a, ml.id, "v") is None
    assert rec_models.load(store, a, nlp.id, "v") and rec_models.load(store, a, None, "v")
    assert lib.saved_rowids(store, a) == [r[1]] and [t.name for t in lib.list_tags(store, a)] == ["NLP"]
    with pytest.raises(lib.LibraryError, match="name"):
        lib.create_tag(store, a, " \x00 ")
    with pytest.raises(lib.LibraryError, match="at most"):
        lib.create_tag(store, a, "x" * 61)
    with pytest.raises(lib.LibraryError, match="already"):
        lib.rename_tag(store, a, lib.create_tag(store, a, "Other").id, "nlp")


def test_not_interested_is_undoable_and_contradicts_saving(store: Store) -> None:
    a, _ = _users(store)
    r = _rowids(store)
    t = lib.create_tag(store, a, "T")
    lib.save(store, a, [r[2]], [t.id])
    v = lib.library_version(store, a, t.id)
    assert lib.set_not_interested(store, a, r[2])
    assert lib.saved_rowids(store, a) == [] and lib.negative_rowids(store, a) == [r[2]]
    assert lib.library_version(store, a, t.id) != v  # the tag lost a paper and the negatives changed
    assert not lib.set_not_interested(store, a, r[2])  # idempotent
    v2 = lib.library_version(store, a, t.id)
    assert lib.set_not_interested(store, a, r[2], on=False)
    assert lib.negative_rowids(store, a) == [] and lib.library_version(store, a, t.id) != v2
    lib.set_not_interested(store, a, r[3])
    lib.save(store, a, [r[3]])  # saving takes a "not interested" back
    assert lib.negative_rowids(store, a) == [] and lib.saved_rowids(store, a) == [r[3]]


def test_another_users_tags_are_unreachable_by_id(store: Store) -> None:
    a, b = _users(store)
    r = _rowids(store)
    secret = lib.create_tag(store, a, "Secret project")
    lib.save(store, a, [r[0]], [secret.id])
    assert lib.get_tag(store, b, secret.id) is None
    assert lib.list_tags(store, b) == []
    assert lib.saved_rowids(store, b, secret.id) == []
    assert lib.list_saved(store, b, secret.id) == []
    with pytest.raises(lib.LibraryError, match="no such tag"):
        lib.save(store, b, [r[1]], [secret.id])
    assert lib.saved_rowids(store, b) == []  # the failed save left nothing behind
    with pytest.raises(lib.LibraryError, match="no such tag"):
        lib.rename_tag(store, b, secret.id, "mine now")
    assert not lib.delete_tag(store, b, secret.id)
    assert not lib.untag(store, b, r[0], secret.id)
    assert lib.regenerate_feed(store, b, secret.id) is None
    assert lib.get_tag(store, a, secret.id) == lib.get_tag(store, a, secret.id)
    assert lib.get_tag(store, a, secret.id).feed_gen == 0  # type: ignore[union-attr]
    assert lib.saved_rowids(store, a, secret.id) == [r[0]]


def test_hostile_tag_names_are_stored_faithfully(store: Store) -> None:
    a, _ = _users(store)
    name = "<script>alert(1)</script> \u202eRTL & \U0001f9ea"
    t = lib.create_tag(store, a, name)
    assert lib.get_tag(store, a, t.id).name == name  # type: ignore[union-attr]


def test_follow_an_author_normalised_and_narrowed(store: Store) -> None:
    a, b = _users(store)
    r = _rowids(store)
    f = lib.follow_author(store, a, "Jose Muller")
    got = [p.rowid for p, _ in lib.followed_papers(store, [f], "2025-01-01", "2025-12-31")]
    # accents, case and "Surname, Given" order do not matter
    assert sorted(got) == [r[0], r[1], r[2]]
    narrowed = lib.follow_author(store, a, "José Müller", coauthor="A. M. Turing")
    assert lib.followed_papers(store, [narrowed], "2025-01-01", "2025-12-31") == []  # initials are not expanded
    narrowed = lib.follow_author(store, a, "José Müller", coauthor="Alan Turing")
    assert [p.rowid for p, _ in lib.followed_papers(store, [narrowed], "2025-01-01", "2025-12-31")] == [r[2]]
    by_cat = lib.follow_author(store, a, "jose muller", category="math.AG")
    assert [p.rowid for p, _ in lib.followed_papers(store, [by_cat], "2025-01-01", "2025-12-31")] == [r[1]]
    # word order matters: Wei Li is not Li Wei, and Li Weiss is neither
    wl = lib.follow_author(store, a, "Wei Li")
    assert [p.rowid for p, _ in lib.followed_papers(store, [wl], "2025-01-01", "2025-12-31")] == [r[3]]
    # the window bounds it
    assert [p.rowid for p, _ in lib.followed_papers(store, [f], "2025-06-11", "2025-06-11")] == [r[1]]
    v = lib.library_version(store, a)
    assert lib.follow_author(store, a, "Jose Muller").id == f.id  # the same follow twice is one
    assert lib.library_version(store, a) == v
    # cold start: every day's papers of the follow, newest first, accents or not
    assert lib.papers_by_follows(store, [f]) == [r[2], r[1], r[0]]
    assert lib.papers_by_follows(store, [wl]) == [r[3]]
    assert len(lib.list_follows(store, a)) == 5 and lib.list_follows(store, b) == []
    assert not lib.unfollow_author(store, b, f.id)
    assert lib.unfollow_author(store, a, f.id)
    with pytest.raises(lib.LibraryError, match="full name"):
        lib.follow_author(store, a, "Muller")


@pytest.mark.sqlite_only("reads SQLite's query plan")
def test_a_doi_look_up_reads_an_index_not_the_table(tmp_path: Path) -> None:
    with open_store(tmp_path / "d") as store:
        plan = " ".join(str(r[-1]) for r in store.conn.execute(
            "EXPLAIN QUERY PLAN SELECT rowid FROM papers WHERE lower(doi) = ? AND hidden = 0", ("10.1/x",)))  # fmt: skip
    assert "papers_doi_lower" in plan, plan
