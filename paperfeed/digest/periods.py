"""Period keys: the name of the day or ISO week a digest belongs to (UTC)."""

from __future__ import annotations

import datetime as dt


def period_key(period: str, now: dt.datetime) -> str:
    day = now.astimezone(dt.UTC).date()
    if period == "daily":
        return day.isoformat()
    if period == "weekly":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    raise ValueError(f"period must be daily or weekly, not {period!r}")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
