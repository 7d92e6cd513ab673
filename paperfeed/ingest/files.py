"""Opening inputs: clear one-line errors for paths that are not readable text files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import orjson

from paperfeed.ingest.records import InputError, Rejection
from paperfeed.models import Paper

_CONTROL_BYTES = [b for b in range(32) if b not in (9, 10, 13)] + [127]


def check_input(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory; pass the files in it (for a BEIR collection, its corpus.jsonl)")
    try:
        with path.open("rb") as f:
            head = f.read(8192)
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}") from e
    if not head.strip():
        raise InputError(f"{path}: empty file")
    # A stray control byte inside one record is that record's problem (it gets
    # rejected with its line); many of them mean the whole file is not text.
    controls = sum(head.count(bytes([b])) for b in _CONTROL_BYTES)
    if controls > max(1, len(head) // 20):
        raise InputError(f"{path}: binary file, not a supported text format")


def numbered_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line without the newline), streaming, 1-based."""
    with path.open("rb", buffering=1 << 20) as f:
        for n, raw in enumerate(f, 1):
            yield n, raw.rstrip(b"\r\n")


def json_lines(path: Path, convert: Callable[[object], Paper]) -> Iterator[Paper | Rejection]:
    """Parse a JSON-lines file: one Paper per line via `convert` (which raises
    ValueError with a message for the user), or a Rejection naming the line."""
    for n, raw in numbered_lines(path):
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            msg = "invalid UTF-8" if "utf-8" in str(e).lower() else f"broken JSON ({e})"
            yield Rejection(str(path), n, msg)
            continue
        try:
            yield convert(obj)
        except ValueError as e:
            yield Rejection(str(path), n, str(e))
