"""A readable table of a bench result, for a terminal."""

from __future__ import annotations


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def _rows(prefix: str, value: object) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        if value and set(value) <= {"p50", "p95", "p99", "mean", "n"}:
            cells = "  ".join(f"{k} {_fmt(value[k])}" for k in ("p50", "p95", "p99") if k in value)
            return [(prefix, cells)]
        out: list[tuple[str, str]] = []
        for k, v in value.items():
            out += _rows(f"{prefix}.{k}" if prefix else k, v)
        return out
    if isinstance(value, list):
        return [(prefix, ", ".join(_fmt(v) for v in value))]
    return [(prefix, _fmt(value))]


def table(result: dict) -> str:
    rows = _rows("", result)
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
