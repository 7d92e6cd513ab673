"""The one error every index reader raises for a damaged file under <data>/index/."""

from __future__ import annotations

from pathlib import Path

REBUILD_HINT = "run `paperfeed index --rebuild` to rebuild it from the store"


class IndexDamaged(RuntimeError):
    """An index file cannot be read, or disagrees with the index's own records.

    Treating it as empty would let the next save delete what is still there and record
    progress on top of the hole, so readers stop instead, and the message names the fix.
    """

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"the search index at {path} is damaged ({problem}); {REBUILD_HINT}")
