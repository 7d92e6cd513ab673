"""Shared fixtures. Every test gets real files in its own temporary data directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import SEEDS_DIR


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(scope="session")
def seed_paths() -> list[Path]:
    return sorted(SEEDS_DIR.glob("*.txt"))
