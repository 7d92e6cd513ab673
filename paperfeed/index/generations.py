"""Arrays saved as generations: the crash-safe file protocol of the derived indexes on disk.

A save writes each array as `<name>-<generation>.npy` beside the previous generation's files,
fsyncs them, then atomically replaces `meta.json`, which names the generation in use; only then
are older files deleted. A crash at any point leaves the previous or the new generation, never a
mix. Readers memory-map the files, so several processes on one machine share one copy in the
page cache, and a reader that mapped a generation keeps it even after a newer save unlinks it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from paperfeed.index.damage import IndexDamaged

META = "meta.json"
LOCK = ".lock"


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())


def load_npy(path: Path, mmap_mode: str | None) -> np.ndarray:
    """np.load, with damage (truncated, garbage) raised as IndexDamaged naming the file."""
    try:
        return np.load(path, mmap_mode=mmap_mode)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise IndexDamaged(path, str(exc)) from None


def read_meta(directory: Path) -> dict | None:
    """The saved index's meta.json; None when nothing was ever saved there. Raises IndexDamaged."""
    try:
        meta = json.loads((Path(directory) / META).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise IndexDamaged(directory, f"unreadable {META}: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("generation"), str):
        raise IndexDamaged(directory, f"{META} names no generation")
    return meta


def write_meta(directory: Path, meta: dict) -> None:
    """Switch to the generation `meta` names: durable once this returns."""
    tmp = Path(directory) / f"{META}.tmp"
    with open(tmp, "w") as fh:
        json.dump(meta, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, Path(directory) / META)
    fsync_dir(Path(directory))


@contextlib.contextmanager
def writer_lock(directory: Path) -> Iterator[None]:
    """One writer at a time per directory, across processes."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    with open(Path(directory) / LOCK, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def drop_stale(directory: Path, keep: Iterable[str], prefixes: Iterable[str]) -> None:
    """Delete the files of older generations (names starting with one of `prefixes` and a dash)
    and leftover temporaries, keeping the names in `keep`."""
    keep = set(keep) | {META, LOCK}
    prefixes = tuple(prefixes)
    for f in Path(directory).iterdir():
        if f.name not in keep and (f.name.split("-")[0] in prefixes or f.name.endswith(".tmp")):
            with contextlib.suppress(OSError):
                f.unlink()
