"""The bundled demo corpus: five saved Daily Papers pages, shipped inside the package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def demo_paths() -> list[Path]:
    """The demo corpus's seed pages, in order."""
    folder = resources.files("paperfeed.demo") / "seeds"
    return sorted(Path(str(f)) for f in folder.iterdir() if f.name.endswith(".txt"))
