"""Sliding-window rate limits kept in the store, so every worker shares them.

Plain functions over a Store, like the other SQL modules.
"""

from __future__ import annotations

import time

from paperfeed.store.papers import Store

MAX_WINDOW = 3600.0  # the longest window any caller uses; older rows are pruned
PRUNE_EVERY = 60.0


def _wait(store: Store, bucket: str, key: str, limit: int, window: float, now: float) -> float | None:
    """Seconds until one more hit fits, or None when it fits now."""
    rows = store.conn.execute(
        "SELECT at FROM rate_hits WHERE bucket = ? AND key = ? AND at > ? ORDER BY at DESC LIMIT ?",
        (bucket, key, now - window, limit),
    ).fetchall()
    if len(rows) < limit:
        return None
    return max(rows[-1][0] + window - now, 0.001)


def hit(store: Store, bucket: str, key: str, limit: int, window: float = 60.0) -> float | None:
    """Record a hit unless `limit` hits were let through in the last `window` seconds.
    None when allowed, else the seconds to wait."""
    now = time.time()
    with store.write() as c:
        wait = _wait(store, bucket, key, limit, window, now)
        if wait is None:
            c.execute("INSERT INTO rate_hits (bucket, key, at) VALUES (?, ?, ?)", (bucket, key, now))
            _prune(store, now)
        return wait


def check(store: Store, bucket: str, key: str, limit: int, window: float) -> float | None:
    """Like hit() without recording: for limits counted by a later note() (failed logins)."""
    return _wait(store, bucket, key, limit, window, time.time())


def note(store: Store, bucket: str, key: str) -> None:
    """Count one event against `key` whatever the limit (a failed login)."""
    now = time.time()
    with store.write() as c:
        c.execute("INSERT INTO rate_hits (bucket, key, at) VALUES (?, ?, ?)", (bucket, key, now))
        _prune(store, now)


def _prune(store: Store, now: float) -> None:
    # Rows outlive their window only until the next prune, so a flood of distinct keys
    # (rotating client addresses) cannot grow the table without bound.
    last = store.conn.execute("SELECT value FROM meta WHERE key = 'rate_hits.pruned'").fetchone()
    if last is None or now - float(last[0]) > PRUNE_EVERY:
        store.conn.execute("DELETE FROM rate_hits WHERE at < ?", (now - MAX_WINDOW,))
        store.meta_set("rate_hits.pruned", repr(now))
