"""The recommender's features are saved under the index directory and read back memory-mapped:
by another process (a real second Python process, as a restarted server or a second worker is),
after a change to the corpus (caught up and saved again), and over a damaged file (built again)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from paperfeed.index.generations import read_meta
from paperfeed.search import Searcher
from paperfeed.search.rec_features import CorpusFeatures, corpus_features, features_dir, term_column
from paperfeed.store import open_store
from tests.helpers import TOPIC_TITLES, run_cli

pytestmark = pytest.mark.slow  # indexes papers with the embedding model

TITLES = TOPIC_TITLES

CHILD = """
import hashlib, json, sys
from pathlib import Path
from paperfeed.index.generations import read_meta
from paperfeed.search import Searcher
from paperfeed.search.rec_features import corpus_features, features_dir
from paperfeed.store import open_store
data = Path(sys.argv[1])
with open_store(data) as store:
    f = corpus_features(Searcher(data, auto_sync=False), store)
    digest = hashlib.sha1(f.rowids.tobytes() + f.dense.tobytes() + f.scale.tobytes()
                          + f.counts.data.tobytes() + f.counts.indices.tobytes()).hexdigest()
    print(json.dumps({"n": len(f), "mapped": f.mapped, "digest": digest,
                      "generation": read_meta(features_dir(data))["generation"]}))
"""


def _ingest(data: Path, tmp_path: Path, titles: list[str], name: str) -> None:
    src = tmp_path / f"{name}.jsonl"
    src.write_text("".join(json.dumps({"id": f"{name}{i}", "title": t, "abstract": t + ", measured."}) + "\n"
                           for i, t in enumerate(titles)))  # fmt: skip
    r = run_cli("ingest", str(src), "--no-progress", data=data)
    assert r.returncode == 0, r.stderr


def _digest(f: CorpusFeatures) -> str:
    return hashlib.sha1(f.rowids.tobytes() + f.dense.tobytes() + f.scale.tobytes()
                        + f.counts.data.tobytes() + f.counts.indices.tobytes()).hexdigest()  # fmt: skip


def _mapped(a: np.ndarray) -> bool:
    while a is not None:
        if isinstance(a, np.memmap):
            return True
        a = a.base if isinstance(a.base, np.ndarray) else None
    return False


def _in_another_process(data: Path) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, str(data)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _features(data: Path) -> CorpusFeatures:
    with open_store(data) as store:
        return corpus_features(Searcher(data, auto_sync=False), store)


def test_features_are_saved_and_opened_by_another_process(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _ingest(data, tmp_path, TITLES, "a")
    feats = _features(data)
    assert len(feats) == len(TITLES)
    assert feats.mapped  # saved, then read back from the files: no private copy
    for a in (feats.rowids, feats.dense, feats.counts.data, feats.counts.indices, feats.counts.indptr):
        assert _mapped(a), type(a)  # scipy kept the mapped arrays (or views of them), copied none
    gen = read_meta(features_dir(data))["generation"]
    child = _in_another_process(data)
    # opened, not built again: the same generation, and the same values
    assert child == {"n": len(TITLES), "mapped": True, "digest": _digest(feats), "generation": gen}

    # a change to the corpus: caught up, saved as a new generation, the old files dropped
    _ingest(data, tmp_path, ["Swarming and queen rearing in beekeeping"], "b")
    after = _features(data)
    assert len(after) == len(TITLES) + 1 and after.mapped
    gen2 = read_meta(features_dir(data))["generation"]
    assert gen2 != gen
    assert not list(features_dir(data).glob(f"*-{gen}.npy"))
    assert _in_another_process(data)["generation"] == gen2
    # the new paper's row holds its own vector, not a placeholder
    with open_store(data) as store:
        rowid = store.conn.execute("SELECT rowid FROM papers WHERE title LIKE 'Swarming%'").fetchone()[0]
    found, rows = after.rows_of([rowid])
    assert found.all() and after.scale[rows[0]] > 0 and after.counts[rows[0]].nnz > 0


def test_a_damaged_saved_generation_is_built_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _ingest(data, tmp_path, TITLES, "a")
    feats = _features(data)
    want = _digest(feats)
    gen = read_meta(features_dir(data))["generation"]
    damaged = features_dir(data) / f"dense-{gen}.npy"
    damaged.write_bytes(damaged.read_bytes()[:40])  # truncated: its header no longer fits its data
    child = _in_another_process(data)
    assert child["n"] == len(TITLES) and child["mapped"] and child["digest"] == want
    assert child["generation"] != gen  # built again and saved over the damaged one


@pytest.mark.sqlite_only("replaces the SQLite file under the saved features")
def test_features_of_a_replaced_store_are_not_reused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _ingest(data, tmp_path, TITLES, "a")
    gen = read_meta(features_dir(data))["generation"] if _features(data).mapped else None
    assert gen is not None
    for f in data.glob("paperfeed.db*"):
        f.unlink()  # a new database under the same data directory and its old index files
    # more papers than before, so the new store's seq passes the saved features' own
    other = [f"Transformer attention for machine translation, part {i}" for i in range(len(TITLES) + 2)]
    _ingest(data, tmp_path, other, "c")
    feats = _features(data)
    assert len(feats) == len(other)
    assert read_meta(features_dir(data))["generation"] != gen
    # every row is the new store's paper under that rowid, not the old store's paper
    transformer = term_column("transformer")
    assert all(transformer in feats.counts[i].indices for i in range(len(feats)))
