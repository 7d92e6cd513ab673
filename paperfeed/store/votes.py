"""Votes and trending: one vote per user per paper, and the papers ranked by recent votes.

Trending formula (Hacker-News style)
-----------------------------------
For a period P (day = 24 h, week = 7 d, month = 30 d) ending now:

    score = V / (age_hours + 2) ** 1.8

where V is the number of votes the paper received within P, and age_hours is the
time between the paper's date (its feed date, else its publication date, else
when it was stored; a bare date counts from 00:00 UTC) and now, floored at 0.
Only papers with at least one vote in P are ranked. The +2 keeps a brand-new
paper from dividing by ~0; the 1.8 gravity makes a day-old paper need about
(26/2)^1.8 ~ 100 times the votes of a fresh one to rank equally, so the list
turns over, while within one period more votes still win. Ties go to more
votes, then the newer paper.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from paperfeed.models import Paper
from paperfeed.store.engine import in_chunks
from paperfeed.store.papers import Store

GRAVITY = 1.8
PERIODS: dict[str, dt.timedelta] = {
    "day": dt.timedelta(days=1),
    "week": dt.timedelta(days=7),
    "month": dt.timedelta(days=30),
}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ts(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- votes -----------------------------------------------------------------


def vote(store: Store, user_id: int, paper_rowid: int) -> bool:
    """Upvote; True if a vote was added (False: this user had already voted)."""
    # the primary key decides, so two racing requests of one user add one vote on any engine
    with store.write(serial=False) as c:
        cur = c.execute(
            "INSERT INTO votes (user_id, paper_rowid, created_at) VALUES (?,?,?) ON CONFLICT DO NOTHING",
            (user_id, paper_rowid, _ts(_now())),
        )
        return cur.rowcount > 0


def unvote(store: Store, user_id: int, paper_rowid: int) -> bool:
    """Undo a vote; True if there was one."""
    with store.write(serial=False) as c:
        cur = c.execute("DELETE FROM votes WHERE user_id = ? AND paper_rowid = ?", (user_id, paper_rowid))
        return cur.rowcount > 0


def vote_counts(store: Store, rowids: Iterable[int]) -> dict[int, int]:
    ids = list(rowids)
    out: dict[int, int] = {}
    for cond, chunk in in_chunks(store.conn, ids):
        for r in store.conn.execute(
            f"SELECT paper_rowid, COUNT(*) FROM votes WHERE paper_rowid {cond} GROUP BY paper_rowid", chunk
        ):
            out[r[0]] = r[1]
    return out


def user_voted(store: Store, user_id: int, rowids: Iterable[int]) -> set[int]:
    ids = list(rowids)
    out: set[int] = set()
    for cond, chunk in in_chunks(store.conn, ids):
        out.update(
            r[0]
            for r in store.conn.execute(
                f"SELECT paper_rowid FROM votes WHERE user_id = ? AND paper_rowid {cond}", [user_id, *chunk]
            )
        )
    return out


def papers_with_votes(store: Store, papers: Sequence[Paper]) -> list[tuple[Paper, int]]:
    counts = vote_counts(store, [p.rowid for p in papers])
    return [(p, counts.get(p.rowid, 0)) for p in papers]


# ---- trending --------------------------------------------------------------


def _paper_time(p: Paper) -> dt.datetime:
    for value in (p.feed_date, p.published, p.created_at):
        if not value:
            continue
        try:
            t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            continue
        return t if t.tzinfo else t.replace(tzinfo=dt.UTC)
    return _now()


def hn_score(votes: int, age_hours: float, gravity: float = GRAVITY) -> float:
    """The decay formula documented at the top of this module."""
    return votes / (max(age_hours, 0.0) + 2.0) ** gravity


def trending(
    store: Store, period: str = "week", limit: int = 30, offset: int = 0, *, now: dt.datetime | None = None
) -> list[tuple[Paper, int, float]]:
    """Visible papers ranked by votes in `period` decayed by age: [(paper, votes, score)]."""
    if period not in PERIODS:
        raise ValueError(f"period must be day, week or month, not {period!r}")
    now = now or _now()
    rows = store.conn.execute(
        "SELECT v.paper_rowid, COUNT(*) FROM votes v JOIN papers p ON p.rowid = v.paper_rowid "
        "WHERE v.created_at >= ? AND p.hidden = 0 GROUP BY v.paper_rowid",
        (_ts(now - PERIODS[period]),),
    ).fetchall()
    counts = {r[0]: r[1] for r in rows}
    papers = store.get_by_rowids(list(counts))
    scored = []
    for p in papers:
        t = _paper_time(p)
        age = (now - t).total_seconds() / 3600.0
        n = counts[p.rowid]
        scored.append((p, n, hn_score(n, age), t))
    scored.sort(key=lambda x: (-x[2], -x[1], -x[3].timestamp(), x[0].rowid))
    return [(p, n, s) for p, n, s, _ in scored[offset : offset + limit]]
