"""A reader's library: saved papers, tags, "not interested" and followed authors (issue 13).

Plain functions over a Store, in the portable SQL subset the other store modules use, so a
PostgreSQL backend can implement the same functions. Every function takes the acting user's
id and every query filters on it: a tag id is only ever looked up together with its owner, so
another user's id (guessed or not) behaves exactly like an id that does not exist.

Versions. `library_version(store, user, tag)` is a string that changes whenever anything the
recommender learns from changes: for the whole library, any save, unsave, tag or "not
interested" edit; for one tag, its own papers or the negatives. It is the model cache key.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from paperfeed.models import Paper
from paperfeed.store import rec_models
from paperfeed.store.engine import in_chunks
from paperfeed.store.papers import Connection, Store

MAX_TAGS = 200
MAX_TAG_NAME = 60
MAX_LIBRARY = 20_000  # saved papers per user: bounds imports and the recommender's training set
MAX_FOLLOWS = 200
MAX_NAME = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAME_PUNCT = re.compile(r"[\W_]+", re.UNICODE)


class LibraryError(ValueError):
    """A library request that cannot be honoured; the message is user-facing."""


@dataclass(frozen=True, slots=True)
class Tag:
    id: int
    name: str
    version: int
    feed_gen: int
    count: int = 0


@dataclass(frozen=True, slots=True)
class Follow:
    id: int
    name: str
    coauthor: str
    category: str
    name_key: str
    coauthor_key: str

    def describe(self) -> str:
        extra = [
            f"with {self.coauthor}" if self.coauthor else "",
            f"in {self.category}" if self.category else "",
        ]
        return " ".join([self.name, *[x for x in extra if x]])


@dataclass(frozen=True, slots=True)
class Marks:
    """What a user's library says about some papers (for the buttons on cards)."""

    saved: frozenset[int]
    negative: frozenset[int]
    tags: dict[int, tuple[int, ...]]  # paper rowid -> ids of the tags it carries


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tag_key(name: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def clean_tag_name(name: str) -> str:
    name = " ".join(_CONTROL.sub(" ", name or "").split())
    if not name:
        raise LibraryError("Give the tag a name.")
    if len(name) > MAX_TAG_NAME:
        raise LibraryError(f"A tag name has at most {MAX_TAG_NAME} characters.")
    return name


def author_key(name: str) -> str:
    """A person's name as compared: accents, case, punctuation and spacing removed, and
    "Surname, Given" read as "Given Surname" (BibTeX and RIS write names that way)."""
    name = name or ""
    if name.count(",") == 1:
        last, first = name.split(",")
        name = f"{first} {last}"
    folded = unicodedata.normalize("NFKD", name).casefold()
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return " ".join(_NAME_PUNCT.sub(" ", folded).split())


# ---- versions ----------------------------------------------------------------


def _bump(c: Connection, user_id: int, *, tags: Iterable[int] = (), negatives: bool = False) -> None:
    c.execute(
        "INSERT INTO library_state (user_id, version, neg_version) VALUES (?, 1, ?) "
        "ON CONFLICT (user_id) DO UPDATE SET version = library_state.version + 1, "
        "neg_version = library_state.neg_version + excluded.neg_version",
        (user_id, int(negatives)),
    )
    for tag_id in set(tags):
        c.execute(
            "UPDATE library_tags SET version = version + 1 WHERE id = ? AND user_id = ?", (tag_id, user_id)
        )


def library_version(store: Store, user_id: int, tag_id: int | None = None) -> str:
    """The cache key part that changes whenever the training data of (user, tag) changes."""
    row = store.conn.execute(
        "SELECT version, neg_version FROM library_state WHERE user_id = ?", (user_id,)
    ).fetchone()
    version, neg = (row[0], row[1]) if row else (0, 0)
    if tag_id is None:
        return f"v{version}"
    t = store.conn.execute(
        "SELECT version FROM library_tags WHERE id = ? AND user_id = ?", (tag_id, user_id)
    ).fetchone()
    return f"t{t[0] if t else -1}.n{neg}"


# ---- tags ----------------------------------------------------------------------


def _tag(r: Any) -> Tag:
    return Tag(id=r[0], name=r[1], version=r[2], feed_gen=r[3], count=r[4] if len(r) > 4 else 0)


def list_tags(store: Store, user_id: int) -> list[Tag]:
    rows = store.conn.execute(
        "SELECT t.id, t.name, t.version, t.feed_gen, "
        "(SELECT COUNT(*) FROM library_tagged g WHERE g.tag_id = t.id) FROM library_tags t "
        "WHERE t.user_id = ? ORDER BY t.name_key, t.id",
        (user_id,),
    ).fetchall()
    return [_tag(r) for r in rows]


def get_tag(store: Store, user_id: int, tag_id: int) -> Tag | None:
    """The user's tag with this id; None for an unknown id and for another user's tag alike."""
    r = store.conn.execute(
        "SELECT t.id, t.name, t.version, t.feed_gen, "
        "(SELECT COUNT(*) FROM library_tagged g WHERE g.tag_id = t.id) FROM library_tags t "
        "WHERE t.id = ? AND t.user_id = ?",
        (tag_id, user_id),
    ).fetchone()
    return _tag(r) if r else None


def tag_by_id_any_user(store: Store, tag_id: int) -> tuple[int, Tag] | None:
    """(owner, tag) for the feed URL, which carries no session: its signature is checked by
    the caller against the owner and feed_gen returned here."""
    r = store.conn.execute(
        "SELECT user_id, id, name, version, feed_gen FROM library_tags WHERE id = ?", (tag_id,)
    ).fetchone()
    return (r[0], Tag(id=r[1], name=r[2], version=r[3], feed_gen=r[4])) if r else None


def create_tag(store: Store, user_id: int, name: str) -> Tag:
    """The user's tag of this name, created if needed (the same name twice is one tag)."""
    name = clean_tag_name(name)
    key = tag_key(name)
    with store.write() as c:
        r = c.execute(
            "SELECT id FROM library_tags WHERE user_id = ? AND name_key = ?", (user_id, key)
        ).fetchone()
        if r is None:
            n = c.execute("SELECT COUNT(*) FROM library_tags WHERE user_id = ?", (user_id,)).fetchone()[0]
            if n >= MAX_TAGS:
                raise LibraryError(f"You have {MAX_TAGS} tags, the most there can be; delete one first.")
            r = c.execute(
                "INSERT INTO library_tags (user_id, name, name_key, created_at) VALUES (?,?,?,?) RETURNING id",
                (user_id, name, key, _now()),
            ).fetchone()
    tag = get_tag(store, user_id, r[0])
    assert tag is not None
    return tag


def rename_tag(store: Store, user_id: int, tag_id: int, name: str) -> Tag:
    name = clean_tag_name(name)
    try:
        with store.write() as c:
            cur = c.execute(
                "UPDATE library_tags SET name = ?, name_key = ? WHERE id = ? AND user_id = ?",
                (name, tag_key(name), tag_id, user_id),
            )
    except store.engine.IntegrityError:
        raise LibraryError(f"You already have a tag named “{name}”.") from None
    if cur.rowcount == 0:
        raise LibraryError("There is no such tag.")
    tag = get_tag(store, user_id, tag_id)
    assert tag is not None
    return tag


def delete_tag(store: Store, user_id: int, tag_id: int) -> bool:
    """Delete the tag and its stored recommender model; its papers stay saved."""
    with store.write() as c:
        cur = c.execute("DELETE FROM library_tags WHERE id = ? AND user_id = ?", (tag_id, user_id))
        if cur.rowcount:
            _bump(c, user_id)
            # SQLite may give the next tag this id: it must not inherit the model
            c.execute("DELETE FROM rec_models WHERE user_id = ? AND tag_key = ?", (user_id, rec_models.tag_key(tag_id)))
        return cur.rowcount > 0


def regenerate_feed(store: Store, user_id: int, tag_id: int) -> Tag | None:
    """A new secret feed URL for the tag; the old one stops working."""
    with store.write() as c:
        c.execute(
            "UPDATE library_tags SET feed_gen = feed_gen + 1 WHERE id = ? AND user_id = ?", (tag_id, user_id)
        )
    return get_tag(store, user_id, tag_id)


# ---- saving ------------------------------------------------------------------------


def _owned_tags(c: Connection, user_id: int, tag_ids: Iterable[int]) -> list[int]:
    ids = sorted(set(tag_ids))
    if not ids:
        return []
    found = {
        r[0]
        for cond, args in in_chunks(c, ids)
        for r in c.execute(f"SELECT id FROM library_tags WHERE user_id = ? AND id {cond}", [user_id, *args])
    }
    if len(found) != len(ids):
        raise LibraryError("There is no such tag.")
    return ids


def save(store: Store, user_id: int, rowids: Sequence[int], tag_ids: Iterable[int] = ()) -> int:
    """Save papers (with the given tags added); returns how many were not saved before.
    Saving a paper takes back a "not interested" on it."""
    rowids = list(dict.fromkeys(rowids))
    if not rowids:
        return 0
    now = _now()
    with store.write() as c:
        tags = _owned_tags(c, user_id, tag_ids)
        have = c.execute("SELECT COUNT(*) FROM library_papers WHERE user_id = ?", (user_id,)).fetchone()[0]
        added = 0
        neg_changed = False
        for rowid in rowids:
            cur = c.execute(
                "INSERT INTO library_papers (user_id, paper_rowid, created_at) VALUES (?,?,?) "
                "ON CONFLICT (user_id, paper_rowid) DO NOTHING",
                (user_id, rowid, now),
            )
            if cur.rowcount:
                added += 1
                if have + added > MAX_LIBRARY:
                    raise LibraryError(f"A library holds at most {MAX_LIBRARY:,} papers.")
            cur = c.execute(
                "DELETE FROM library_negatives WHERE user_id = ? AND paper_rowid = ?", (user_id, rowid)
            )
            neg_changed |= cur.rowcount > 0
            for tag_id in tags:
                c.execute(
                    "INSERT INTO library_tagged (tag_id, user_id, paper_rowid, created_at) VALUES (?,?,?,?) "
                    "ON CONFLICT (tag_id, paper_rowid) DO NOTHING",
                    (tag_id, user_id, rowid, now),
                )
        _bump(c, user_id, tags=tags, negatives=neg_changed)
    return added


def unsave(store: Store, user_id: int, rowid: int) -> bool:
    """Remove a paper from the library and from every tag."""
    with store.write() as c:
        tags = [r[0] for r in c.execute(
            "SELECT tag_id FROM library_tagged WHERE user_id = ? AND paper_rowid = ?", (user_id, rowid))]  # fmt: skip
        cur = c.execute("DELETE FROM library_papers WHERE user_id = ? AND paper_rowid = ?", (user_id, rowid))
        if cur.rowcount:
            _bump(c, user_id, tags=tags)
        return cur.rowcount > 0


def untag(store: Store, user_id: int, rowid: int, tag_id: int) -> bool:
    """Take one tag off a paper; the paper stays saved."""
    with store.write() as c:
        cur = c.execute(
            "DELETE FROM library_tagged WHERE tag_id = ? AND user_id = ? AND paper_rowid = ?",
            (tag_id, user_id, rowid),
        )
        if cur.rowcount:
            _bump(c, user_id, tags=[tag_id])
        return cur.rowcount > 0


def set_not_interested(store: Store, user_id: int, rowid: int, on: bool = True) -> bool:
    """Mark (or, with on=False, unmark) a paper "not interested". Marking a saved paper
    unsaves it: the two signals contradict each other. True when something changed."""
    with store.write() as c:
        if on:
            tags = [r[0] for r in c.execute(
                "SELECT tag_id FROM library_tagged WHERE user_id = ? AND paper_rowid = ?", (user_id, rowid))]  # fmt: skip
            c.execute("DELETE FROM library_papers WHERE user_id = ? AND paper_rowid = ?", (user_id, rowid))
            cur = c.execute(
                "INSERT INTO library_negatives (user_id, paper_rowid, created_at) VALUES (?,?,?) "
                "ON CONFLICT (user_id, paper_rowid) DO NOTHING",
                (user_id, rowid, _now()),
            )
        else:
            tags = []
            cur = c.execute(
                "DELETE FROM library_negatives WHERE user_id = ? AND paper_rowid = ?", (user_id, rowid)
            )
        if cur.rowcount:
            _bump(c, user_id, tags=tags, negatives=True)
        return cur.rowcount > 0


# ---- reading -----------------------------------------------------------------------


def saved_rowids(store: Store, user_id: int, tag_id: int | None = None) -> list[int]:
    """The positives: the whole library, or one tag's papers (oldest save first)."""
    if tag_id is None:
        rows = store.conn.execute(
            "SELECT paper_rowid FROM library_papers WHERE user_id = ? ORDER BY created_at, paper_rowid",
            (user_id,),
        )
    else:
        rows = store.conn.execute(
            "SELECT paper_rowid FROM library_tagged WHERE user_id = ? AND tag_id = ? ORDER BY created_at, paper_rowid",
            (user_id, tag_id),
        )
    return [r[0] for r in rows]


def negative_rowids(store: Store, user_id: int) -> list[int]:
    rows = store.conn.execute(
        "SELECT paper_rowid FROM library_negatives WHERE user_id = ? ORDER BY created_at, paper_rowid",
        (user_id,),
    )
    return [r[0] for r in rows]


def count_saved(store: Store, user_id: int, tag_id: int | None = None) -> int:
    if tag_id is None:
        return store.conn.execute(
            "SELECT COUNT(*) FROM library_papers WHERE user_id = ?", (user_id,)
        ).fetchone()[0]
    return store.conn.execute(
        "SELECT COUNT(*) FROM library_tagged WHERE user_id = ? AND tag_id = ?", (user_id, tag_id)
    ).fetchone()[0]


def list_saved(
    store: Store, user_id: int, tag_id: int | None = None, *, limit: int = 50, offset: int = 0
) -> list[tuple[Paper, str]]:
    """(paper, saved_at) of the library or one tag, newest save first. Hidden papers stay in
    the library (they are the user's), and are shown as such by the caller."""
    if tag_id is None:
        rows = store.conn.execute(
            "SELECT paper_rowid, created_at FROM library_papers WHERE user_id = ? "
            "ORDER BY created_at DESC, paper_rowid DESC LIMIT ? OFFSET ?",
            (user_id, limit, offset),
        ).fetchall()
    else:
        rows = store.conn.execute(
            "SELECT g.paper_rowid, p.created_at FROM library_tagged g JOIN library_papers p "
            "ON p.user_id = g.user_id AND p.paper_rowid = g.paper_rowid WHERE g.user_id = ? AND g.tag_id = ? "
            "ORDER BY p.created_at DESC, g.paper_rowid DESC LIMIT ? OFFSET ?",
            (user_id, tag_id, limit, offset),
        ).fetchall()
    when = {r[0]: r[1] for r in rows}
    return [(p, when[p.rowid]) for p in store.get_by_rowids([r[0] for r in rows])]


def list_negatives(store: Store, user_id: int, *, limit: int = 200) -> list[Paper]:
    rows = store.conn.execute(
        "SELECT paper_rowid FROM library_negatives WHERE user_id = ? ORDER BY created_at DESC, paper_rowid DESC "
        "LIMIT ?",
        (user_id, limit),
    ).fetchall()
    return store.get_by_rowids([r[0] for r in rows])


def all_marks(store: Store, user_id: int) -> Marks:
    """What the user's whole library says, in three queries (the buttons of any page's cards)."""
    saved = frozenset(r[0] for r in store.conn.execute(
        "SELECT paper_rowid FROM library_papers WHERE user_id = ?", (user_id,)))  # fmt: skip
    negative = frozenset(r[0] for r in store.conn.execute(
        "SELECT paper_rowid FROM library_negatives WHERE user_id = ?", (user_id,)))  # fmt: skip
    tags: dict[int, list[int]] = {}
    for r in store.conn.execute(
        "SELECT paper_rowid, tag_id FROM library_tagged WHERE user_id = ? ORDER BY tag_id", (user_id,)
    ):
        tags.setdefault(r[0], []).append(r[1])
    return Marks(saved, negative, {k: tuple(v) for k, v in tags.items()})


def saved_at(store: Store, user_id: int, rowid: int) -> str | None:
    r = store.conn.execute(
        "SELECT created_at FROM library_papers WHERE user_id = ? AND paper_rowid = ?", (user_id, rowid)
    ).fetchone()
    return r[0] if r else None


def marks(store: Store, user_id: int, rowids: Collection[int]) -> Marks:
    ids = list(dict.fromkeys(rowids))
    saved: set[int] = set()
    negative: set[int] = set()
    tags: dict[int, list[int]] = {}
    for cond, chunk in in_chunks(store.conn, ids):
        args = [user_id, *chunk]
        saved.update(r[0] for r in store.conn.execute(
            f"SELECT paper_rowid FROM library_papers WHERE user_id = ? AND paper_rowid {cond}", args))  # fmt: skip
        negative.update(r[0] for r in store.conn.execute(
            f"SELECT paper_rowid FROM library_negatives WHERE user_id = ? AND paper_rowid {cond}", args))  # fmt: skip
        for r in store.conn.execute(
            f"SELECT paper_rowid, tag_id FROM library_tagged WHERE user_id = ? AND paper_rowid {cond} "
            "ORDER BY tag_id", args,
        ):  # fmt: skip
            tags.setdefault(r[0], []).append(r[1])
    return Marks(frozenset(saved), frozenset(negative), {k: tuple(v) for k, v in tags.items()})


# ---- followed authors ----------------------------------------------------------------


def _clean_name(value: str, what: str) -> str:
    value = " ".join(_CONTROL.sub(" ", value or "").split())
    if len(value) > MAX_NAME:
        raise LibraryError(f"The {what} has at most {MAX_NAME} characters.")
    return value


def follow_author(store: Store, user_id: int, name: str, *, coauthor: str = "", category: str = "") -> Follow:
    name = _clean_name(name, "author's name")
    coauthor = _clean_name(coauthor, "co-author's name")
    category = _clean_name(category, "category")
    key = author_key(name)
    if len(key.split()) < 2:
        raise LibraryError("Give the author's full name (given name and surname), as papers write it.")
    co_key = author_key(coauthor)
    if coauthor and not co_key:
        raise LibraryError("The co-author's name has no letters.")
    with store.write() as c:
        n = c.execute("SELECT COUNT(*) FROM author_follows WHERE user_id = ?", (user_id,)).fetchone()[0]
        if n >= MAX_FOLLOWS:
            raise LibraryError(f"You follow {MAX_FOLLOWS} authors, the most there can be.")
        cur = c.execute(
            "INSERT INTO author_follows (user_id, name, name_key, coauthor, coauthor_key, category, created_at) "
            "VALUES (?,?,?,?,?,?,?) ON CONFLICT (user_id, name_key, coauthor_key, category) DO NOTHING",
            (user_id, name, key, coauthor, co_key, category, _now()),
        )
        if cur.rowcount:
            _bump(c, user_id)  # an empty library learns from the followed authors' papers
        r = c.execute(
            "SELECT id, name, coauthor, category, name_key, coauthor_key FROM author_follows "
            "WHERE user_id = ? AND name_key = ? AND coauthor_key = ? AND category = ?",
            (user_id, key, co_key, category),
        ).fetchone()
    return Follow(*r)


def unfollow_author(store: Store, user_id: int, follow_id: int) -> bool:
    with store.write() as c:
        cur = c.execute("DELETE FROM author_follows WHERE id = ? AND user_id = ?", (follow_id, user_id))
        if cur.rowcount:
            _bump(c, user_id)
        return cur.rowcount > 0


def list_follows(store: Store, user_id: int) -> list[Follow]:
    rows = store.conn.execute(
        "SELECT id, name, coauthor, category, name_key, coauthor_key FROM author_follows WHERE user_id = ? "
        "ORDER BY name_key, id",
        (user_id,),
    )
    return [Follow(*r) for r in rows]


def follow_matches(follow: Follow, paper: Paper) -> bool:
    """Whether `paper` is by the followed author, as narrowed (see the migration)."""
    keys = {author_key(a) for a in paper.authors}
    if follow.name_key not in keys:
        return False
    if follow.coauthor_key and follow.coauthor_key not in keys:
        return False
    return not follow.category or follow.category in paper.categories


def _fold(text: str) -> str:
    if text.isascii():
        return text.lower()
    text = unicodedata.normalize("NFKD", text).casefold()
    return "".join(c for c in text if not unicodedata.combining(c))


def followed_papers(
    store: Store, follows: Sequence[Follow], since: str, until: str, *, limit: int = 200
) -> list[tuple[Paper, Follow]]:
    """Visible papers of the feed days since..until by any followed author, newest first.

    The window's author lists are scanned here rather than with SQL LIKE, because the
    comparison ignores accents ("Muller" follows "Müller"), which SQL cannot do portably. A
    folded surname narrows the scan; the exact normalised match then decides, so "Li Wei" does
    not match "Wei Li" nor "Li Weiss".
    """
    if not follows:
        return []
    surnames = [(f, f.name_key.split()[-1]) for f in follows]
    candidates: dict[int, list[Follow]] = {}
    rows = store.conn.execute(
        "SELECT rowid, authors FROM papers WHERE feed_date >= ? AND feed_date <= ? AND hidden = 0",
        (since, until),
    )
    for rowid, authors in rows:
        text = _fold(authors)
        hits = [f for f, surname in surnames if surname in text]
        if hits:
            candidates[rowid] = hits
    out: list[tuple[Paper, Follow]] = []
    for p in store.get_by_rowids(list(candidates)):
        f = next((f for f in candidates[p.rowid] if follow_matches(f, p)), None)
        if f is not None:
            out.append((p, f))
    out.sort(key=lambda x: (x[0].feed_date or "", x[0].rowid), reverse=True)
    return out[:limit]


def papers_by_follows(store: Store, follows: Sequence[Follow], *, limit: int = 200) -> list[int]:
    """Rowids of visible papers, of any day, by the followed authors, newest first: what an empty
    library learns from (cold start).

    The surname narrows the scan in SQL: lower() (PostgreSQL's LIKE is case-sensitive) and LIKE
    with its one-character wildcard in place of each vowel and of c, n, s, z, the letters most
    often accented, so "Muller" finds "Müller". A surname accented elsewhere ("Dvořák" for "Dvorak") is missed here; it still
    shows in the window, which followed_papers compares in full."""
    out: dict[int, None] = {}
    for f in follows:
        # a surname key is letters, digits and spaces only: nothing else LIKE reads as a wildcard
        pattern = "".join("_" if ch in "aeiouycnsz" else ch for ch in f.name_key.split()[-1])
        rows = store.conn.execute(
            "SELECT rowid FROM papers WHERE hidden = 0 AND lower(authors) LIKE ? ORDER BY feed_date DESC, rowid DESC "
            "LIMIT 2000",
            (f"%{pattern}%",),
        ).fetchall()
        for p in store.get_by_rowids([r[0] for r in rows]):
            if follow_matches(f, p):
                out[p.rowid] = None
    return list(out)[:limit]


# ---- matching imported references ------------------------------------------------------


def match_identifiers(
    store: Store,
    *,
    arxiv_ids: Collection[str] = (),
    dois: Collection[str] = (),
    title_keys: Collection[str] = (),
) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Visible papers by arXiv id, by DOI (compared in lower case) and by normalised title:
    three maps to rowids. Where two papers share a title, the older one wins, as in the store."""
    by_arxiv: dict[str, int] = {}
    by_doi: dict[str, int] = {}
    by_title: dict[str, int] = {}
    for cond, chunk in in_chunks(store.conn, sorted(set(arxiv_ids))):
        for r in store.conn.execute(f"SELECT arxiv_id, rowid FROM papers WHERE hidden = 0 AND arxiv_id {cond}", chunk):
            by_arxiv[r[0]] = r[1]
    for cond, chunk in in_chunks(store.conn, sorted(set(dois))):
        for r in store.conn.execute(
            f"SELECT lower(doi), rowid FROM papers WHERE hidden = 0 AND lower(doi) {cond} ORDER BY rowid DESC", chunk
        ):
            by_doi[r[0]] = r[1]
    for cond, chunk in in_chunks(store.conn, sorted(set(title_keys))):
        for r in store.conn.execute(
            f"SELECT title_key, rowid FROM papers WHERE hidden = 0 AND title_key {cond} ORDER BY rowid DESC", chunk
        ):
            by_title[r[0]] = r[1]
    return by_arxiv, by_doi, by_title
