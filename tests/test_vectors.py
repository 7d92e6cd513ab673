"""The vector store on real files: exact and HNSW paths, filters, persistence, crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from paperfeed.index.vectors import VectorIndex, measure_recall, quantization_recall

DIM = 64


def clustered(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """Embedding-like unit vectors: clusters in a low-dimensional subspace plus noise."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((50, 16))
    proj = rng.standard_normal((16, dim))
    z = centers[rng.integers(0, 50, n)] + rng.standard_normal((n, 16))
    x = z @ proj + 0.5 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute(x: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    return ids[np.argsort(-(x @ q), kind="stable")[:k]]


def test_upsert_search_get_remove(tmp_path: Path) -> None:
    x = clustered(500)
    ids = np.arange(1000, 1500, dtype=np.int64)
    idx = VectorIndex.open(tmp_path / "v", DIM, "m")
    assert len(idx) == 0
    assert idx.search(x[0], 5)[0].size == 0
    idx.upsert(ids, x)
    assert len(idx) == 500

    got, scores = idx.search(x[7], 10)
    assert got[0] == 1007 and abs(scores[0] - 1.0) < 1e-3
    assert np.all(np.diff(scores) <= 1e-7)
    # int8 storage: scores within quantisation error of the float32 cosines
    np.testing.assert_allclose(scores, x[got - 1000] @ x[7], atol=1e-2)
    assert len(np.intersect1d(got, brute(x, ids, x[7], 10))) >= 9

    v = idx.get(np.array([1000, 1499]))
    assert v.dtype == np.float32 and v.shape == (2, DIM)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert (v * x[[0, 499]]).sum(1).min() > 0.999
    with pytest.raises(KeyError):
        idx.get(np.array([1000, 5]))
    assert idx.has(np.array([1000, 5, 1499])).tolist() == [True, False, True]

    # replace: the new vector wins, the count does not change
    idx.upsert(np.array([1007]), x[8:9])
    assert len(idx) == 500
    assert (idx.get(np.array([1007]))[0] @ x[8]) > 0.999

    idx.remove(np.array([1008, 1007, 424242]))
    assert len(idx) == 498
    got, _ = idx.search(x[8], 10)
    assert 1008 not in got and 1007 not in got
    assert not idx.has(np.array([1008]))[0]

    # filter
    allowed = np.arange(1100, 1200)
    got, _ = idx.search(x[3], 5, allowed=allowed)
    assert set(got) <= set(allowed) and len(got) == 5
    np.testing.assert_array_equal(got, brute(x[100:200], ids[100:200], x[3], 5)[: len(got)])
    assert idx.search(x[3], 5, allowed=np.array([7, 8]))[0].size == 0


def test_save_reload_and_model_change(tmp_path: Path) -> None:
    x = clustered(300, seed=1)
    d = tmp_path / "v"
    idx = VectorIndex.open(d, DIM, "model-a")
    idx.upsert(np.arange(300), x)
    idx.remove(np.arange(0, 300, 3))
    idx.save()
    files = sorted(p.name for p in d.iterdir())
    assert "meta.json" in files and not any(f.endswith(".tmp") for f in files)

    again = VectorIndex.open(d, DIM, "model-a")
    assert len(again) == 200
    np.testing.assert_array_equal(again.ids(), idx.ids())
    np.testing.assert_allclose(again.get(np.array([1, 2, 299])), idx.get(np.array([1, 2, 299])))
    assert again.search(x[5], 3)[0][0] == 5

    # after reload: add more, save again; the old generation's files are gone
    again.upsert(np.array([1000, 1001]), x[:2])
    again.save()
    assert len(VectorIndex.open(d, DIM, "model-a")) == 202
    assert sum(1 for p in d.iterdir() if p.name.startswith("codes-")) == 1

    # vectors from another model (or dimension) are never mixed in
    assert len(VectorIndex.open(d, DIM, "model-b")) == 0
    assert len(VectorIndex.open(d, DIM * 2, "model-a")) == 0


def test_ann_path_recall_incremental_and_filters(tmp_path: Path) -> None:
    n = 4000
    x = clustered(n, seed=2)
    ids = np.arange(n, dtype=np.int64) * 7  # ids are not row numbers
    d = tmp_path / "v"
    idx = VectorIndex.open(d, DIM, "m", ann_threshold=1000)
    idx.upsert(ids, x)
    assert idx.uses_ann
    stats = measure_recall(idx, sample=100)
    assert stats["uses_ann"] == 1.0
    assert stats["recall"] >= 0.95, stats
    # queries that are not stored vectors
    q = clustered(100, seed=3)
    assert measure_recall(idx, queries=q)["recall"] >= 0.95
    idx.save()
    assert json.loads((d / "meta.json").read_text())["ann"]

    # a day's papers: appended to the loaded graph, not rebuilt
    idx = VectorIndex.open(d, DIM, "m", ann_threshold=1000)
    graph = idx._ann
    assert graph is not None and len(graph) == n
    new = clustered(200, seed=4)
    new_ids = np.arange(10**6, 10**6 + 200)
    idx.upsert(new_ids, new)
    assert idx._ann is graph and len(graph) == n + 200
    assert idx.search(new[17], 1)[0][0] == new_ids[17]
    idx.remove(new_ids[:100])
    assert new_ids[5] not in idx.search(new[5], 10)[0]
    idx.save()
    idx = VectorIndex.open(d, DIM, "m", ann_threshold=1000)
    assert len(idx) == n + 100 and len(idx._ann) == n + 100

    # filters: a small whitelist is scanned exactly, a large one goes through the graph
    for allowed in (ids[::50], ids[: n // 2]):
        for qi in q[:20]:
            got, _ = idx.search(qi, 10, allowed=allowed)
            assert set(got.tolist()) <= set(allowed.tolist())
            sel = np.isin(ids, allowed)
            want = brute(x[sel], ids[sel], qi, 10)
            assert len(np.intersect1d(got, want)) >= 8


def test_quantization_loss_is_small() -> None:
    x = clustered(5000, dim=384, seed=5)
    q = clustered(200, dim=384, seed=6)
    assert quantization_recall(x, q, k=10) >= 0.97


def test_damaged_ann_file_is_rebuilt(tmp_path: Path) -> None:
    x = clustered(1500, seed=7)
    d = tmp_path / "v"
    idx = VectorIndex.open(d, DIM, "m", ann_threshold=1000)
    idx.upsert(np.arange(1500), x)
    idx.save()
    ann_file = d / json.loads((d / "meta.json").read_text())["ann"]
    ann_file.write_bytes(b"garbage")
    idx = VectorIndex.open(d, DIM, "m", ann_threshold=1000)
    assert idx._ann is None
    assert idx.search(x[10], 1)[0][0] == 10  # rebuilt on demand
    assert measure_recall(idx, sample=50)["recall"] >= 0.95


CHILD = r"""
import sys, numpy as np
from paperfeed.index.vectors import VectorIndex
d = sys.argv[1]
rng = np.random.default_rng(int(sys.argv[2]))
idx = VectorIndex.open(d, 64, "m", ann_threshold=2000)
while True:
    n = len(idx)
    v = rng.standard_normal((500, 64)).astype(np.float32)
    # each batch points mostly along its own axis, so a vector read back tells which write it was
    v[:, 1 + (n // 500) % 63] = 100.0
    idx.upsert(np.arange(n, n + 500), v)
    idx.save()
    print(len(idx), flush=True)
"""


def test_crash_during_save_leaves_a_consistent_index(tmp_path: Path) -> None:
    d = tmp_path / "v"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    rng = np.random.default_rng(0)
    for round_ in range(4):
        proc = subprocess.Popen([sys.executable, str(script), str(d), str(round_)], stdout=subprocess.PIPE,
                                env=env, text=True)
        assert proc.stdout is not None
        proc.stdout.readline()  # at least one save done in this round
        time.sleep(float(rng.uniform(0.0, 0.6)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        idx = VectorIndex.open(d, 64, "m", ann_threshold=2000)
        n = len(idx)
        assert n > 0 and n % 500 == 0
        ids = idx.ids()
        np.testing.assert_array_equal(ids, np.arange(n))
        # ids, codes and factors all come from one generation: every vector is its batch's
        np.testing.assert_array_equal(idx.get(ids).argmax(axis=1), 1 + (ids // 500) % 63)
        if n >= 2000:  # the HNSW file of that generation is loaded and matches
            assert idx.uses_ann and idx._ann is not None and len(idx._ann) == n
            got, _ = idx.search(idx.get(ids[-1:])[0], 5)
            assert np.all(got // 500 == ids[-1] // 500)


def test_ann_index_then_onnx_embedder_in_one_process(tmp_path: Path) -> None:
    # Regression: importing onnxruntime after usearch segfaults the process, which
    # a server that opens its vector index before its embedder would hit.
    code = f"""
import numpy as np
from pathlib import Path
from paperfeed.index.vectors import VectorIndex
idx = VectorIndex.open(Path({str(tmp_path / 'v')!r}), 8, "t", ann_threshold=1)
x = np.random.default_rng(0).standard_normal((50, 8)).astype("float32")
idx.upsert(np.arange(50), x / np.linalg.norm(x, axis=1, keepdims=True))
assert len(idx.search(x[0], 5)[0]) == 5
from paperfeed.embed import get_embedder
v = get_embedder("minilm-onnx-int8").encode(["effective rank"])
print("ok", v.shape)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ok (1, 384)" in r.stdout


def test_unreadable_files_raise_instead_of_reading_as_empty(tmp_path: Path) -> None:
    """Read as empty, a damaged index was replaced by the next save: the vectors were deleted."""
    from paperfeed.index.damage import IndexDamaged
    from paperfeed.index.vectors import stored_count

    d = tmp_path / "v"
    idx = VectorIndex.open(d, DIM, "m")
    idx.upsert(np.arange(50), clustered(50))
    idx.save()
    assert stored_count(d) == 50
    meta = (d / "meta.json").read_text()
    files = sorted(p.name for p in d.iterdir())

    (d / "meta.json").write_text(meta[: len(meta) // 2])
    with pytest.raises(IndexDamaged, match="index --rebuild"):
        VectorIndex.open(d, DIM, "m")
    with pytest.raises(IndexDamaged):
        stored_count(d)
    assert sorted(p.name for p in d.iterdir()) == files  # nothing was deleted

    (d / "meta.json").write_text(meta)
    [codes] = d.glob("codes-*.npy")
    codes.write_bytes(codes.read_bytes()[:-200])  # truncated
    with pytest.raises(IndexDamaged, match="codes|inconsistent"):
        VectorIndex.open(d, DIM, "m")
    codes.unlink()
    with pytest.raises(IndexDamaged, match="missing"):
        VectorIndex.open(d, DIM, "m")
