"""Trained recommender models, persisted (table rec_models, issue 13).

A model is trained when a library changes (on the next page view, feed or mail that needs it)
and kept here, so that every process and node that ranks for this library (the site's other
workers, `digest send`, a restarted server) scores with it instead of training it again. A row
is keyed by (user, tag_key): '' for the whole library, else the tag's id as text. It is valid
while its `version` equals the library's current version (paperfeed.store.library.
library_version); a save moves the version on, so the next use retrains and replaces the row.

The model itself is opaque bytes here (paperfeed.search.recommend.Recommender.to_bytes).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from paperfeed.store.engine import in_chunks
from paperfeed.store.papers import Store


@dataclass(frozen=True, slots=True)
class StoredModel:
    user_id: int
    tag_key: str
    version: str
    seq: int
    model: bytes


def tag_key(tag: str | int | None) -> str:
    return "" if tag is None else str(tag)


def save(store: Store, user_id: int, tag: str | int | None, version: str, seq: int, model: bytes) -> None:
    """Keep (or replace) the model of (user, tag) trained on library `version`."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with store.write() as c:
        c.execute(
            "INSERT INTO rec_models (user_id, tag_key, version, seq, model, trained_at) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT (user_id, tag_key) DO UPDATE SET version = excluded.version, seq = excluded.seq, "
            "model = excluded.model, trained_at = excluded.trained_at",
            (user_id, tag_key(tag), version, seq, model, now),
        )


def load(store: Store, user_id: int, tag: str | int | None, version: str) -> StoredModel | None:
    """The model of (user, tag) if it was trained on library `version`, else None."""
    r = store.conn.execute(
        "SELECT user_id, tag_key, version, seq, model FROM rec_models WHERE user_id = ? AND tag_key = ? "
        "AND version = ?",
        (user_id, tag_key(tag), version),
    ).fetchone()
    return StoredModel(r[0], r[1], r[2], r[3], bytes(r[4])) if r else None


def load_many(store: Store, user_ids: Iterable[int]) -> dict[tuple[int, str], StoredModel]:
    """Every stored model of these users, by (user_id, tag_key), whatever its version (the
    caller compares it with the library's)."""
    ids = sorted(set(user_ids))
    out: dict[tuple[int, str], StoredModel] = {}
    for cond, chunk in in_chunks(store.conn, ids):
        for r in store.conn.execute(
            f"SELECT user_id, tag_key, version, seq, model FROM rec_models WHERE user_id {cond}", chunk
        ):
            out[(r[0], r[1])] = StoredModel(r[0], r[1], r[2], r[3], bytes(r[4]))
    return out


def count(store: Store) -> int:
    return store.conn.execute("SELECT COUNT(*) FROM rec_models").fetchone()[0]
