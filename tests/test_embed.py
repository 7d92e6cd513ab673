"""Embedding backends with the real packaged model, on real abstracts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from paperfeed.embed import bf16_backend, get_embedder, onnx_backend, prepare, resolve_name
from tests.helpers import ARXIV_SAMPLE, CRANFIELD, run_cli

pytestmark = pytest.mark.slow  # loads every embedding backend and embeds texts with each


def _abstracts(n: int) -> list[str]:
    out = []
    with ARXIV_SAMPLE.open() as fh:
        for line in fh:
            r = json.loads(line)
            out.append(r["title"].strip() + ". " + " ".join(r["abstract"].split()))
            if len(out) == n // 2:
                break
    with (CRANFIELD / "corpus.jsonl").open() as fh:
        for line in fh:
            r = json.loads(line)
            out.append(f"{r['title']}. {r['text']}".strip())
            if len(out) == n:
                break
    return out


TEXTS = _abstracts(16)


@pytest.fixture(scope="module")
def plain() -> np.ndarray:
    return get_embedder("minilm").encode(TEXTS)


def _check_unit(v: np.ndarray, n: int, dim: int) -> None:
    assert v.dtype == np.float32 and v.shape == (n, dim)
    assert np.isfinite(v).all()
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_plain_model_loads_offline_and_normalises(plain: np.ndarray) -> None:
    emb = get_embedder("minilm")
    assert emb.name == "minilm" and emb.dim == 384
    _check_unit(plain, len(TEXTS), 384)
    np.testing.assert_allclose(emb.encode_query(TEXTS[3]), plain[3], atol=1e-5)
    assert emb.encode([]).shape == (0, 384)
    assert get_embedder("minilm") is emb  # one model per process


def test_onnx_int8_agrees_with_plain(plain: np.ndarray) -> None:
    emb = get_embedder("minilm-onnx")
    assert emb.name == "minilm-onnx-int8" and emb.dim == 384
    v = emb.encode(TEXTS, batch_size=8)  # several length-sorted batches
    _check_unit(v, len(TEXTS), 384)
    cos = (v * plain).sum(1)
    assert cos.min() > 0.98 and cos.mean() > 0.99, cos
    # the neighbourhoods agree too: each text's nearest other text is the same
    np.fill_diagonal(sims_p := plain @ plain.T, -1)
    np.fill_diagonal(sims_o := v @ v.T, -1)
    assert (sims_p.argmax(1) == sims_o.argmax(1)).mean() >= 0.9
    q = "boundary layer heat transfer at hypersonic speed"
    assert float(emb.encode_query(q) @ get_embedder("minilm").encode_query(q)) > 0.98


def test_bf16_matches_plain(plain: np.ndarray) -> None:
    # Runs (slowly, emulated) on any CPU: correctness does not depend on the bf16 units.
    emb = get_embedder("minilm-bf16")
    assert emb.name == "minilm-bf16"
    v = emb.encode(TEXTS, batch_size=64)
    _check_unit(v, len(TEXTS), 384)
    assert (v * plain).sum(1).min() > 0.999
    q = "boundary layer heat transfer at hypersonic speed"
    assert float(emb.encode_query(q) @ get_embedder("minilm").encode_query(q)) > 0.999
    toks = emb.encode_tokens(["effective rank"])
    assert toks[0].dtype == np.float32 and toks[0].shape[1] == 384


def test_onnx_fp32_matches_plain(plain: np.ndarray) -> None:
    v = get_embedder("minilm-onnx-fp32").encode(TEXTS[:8])
    assert (v * plain[:8]).sum(1).min() > 0.9999


def test_token_vectors(plain: np.ndarray) -> None:
    onnx = get_embedder("minilm-onnx")
    ref = get_embedder("minilm")
    texts = [TEXTS[0], "effective rank", ""]
    toks = onnx.encode_tokens(texts)
    ref_toks = ref.encode_tokens(texts)
    assert [t.shape for t in toks] == [t.shape for t in ref_toks]
    n_words = len(onnx.tokenizer.encode("effective rank").ids) - 2  # type: ignore[attr-defined]
    assert toks[1].shape == (n_words, 384) and toks[2].shape == (0, 384)
    for a, b in zip(toks[:2], ref_toks[:2], strict=True):
        np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
        assert (a * b).sum(1).mean() > 0.97


def test_hostile_inputs_give_unit_vectors() -> None:
    emb = get_embedder("minilm-onnx")
    texts = ["", "🙂 \u200f مرحبا <b>html</b>", "word " * 200_000]
    _check_unit(emb.encode(texts), 3, 384)


def test_default_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAPERFEED_EMBEDDER", raising=False)
    assert prepare.is_exported(), "run `paperfeed models prepare` (make does it at install)"
    # bf16 where the CPU multiplies bf16 natively (emulated bf16 is slower than fp32), else ONNX int8
    expected = "minilm-bf16" if bf16_backend.cpu_has_bf16() else "minilm-onnx-int8"
    assert resolve_name("default") == expected
    monkeypatch.setenv("PAPERFEED_EMBEDDER", "minilm")
    assert resolve_name("default") == "minilm"
    assert get_embedder().name == "minilm"
    with pytest.raises(ValueError):
        resolve_name("no-such-model")


def test_static_model(plain: np.ndarray) -> None:
    assert prepare.is_distilled(), "run `paperfeed models prepare` (make does it at install)"
    emb = get_embedder("static")
    assert emb.name == "static"
    v = emb.encode(TEXTS)
    _check_unit(v, len(TEXTS), emb.dim)
    # same similarity structure as the model it was distilled from, roughly
    iu = np.triu_indices(len(TEXTS), 1)
    corr = np.corrcoef((v @ v.T)[iu], (plain @ plain.T)[iu])[0, 1]
    assert corr > 0.6, corr
    with pytest.raises(NotImplementedError):
        emb.encode_tokens(["x"])


def test_models_cli_list() -> None:
    res = run_cli("models", "list", "--json", timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["default"] == resolve_name("default")
    assert {b["name"] for b in out["backends"]} >= {"minilm", "minilm-bf16", "minilm-onnx", "static"}
    assert run_cli("models", "prepare", "--skip-static", timeout=120).returncode == 0  # idempotent, fast


def test_onnx_parallel_sessions_match_one_session() -> None:
    """Bulk encodes run whole batches on one single-thread session per core: same vectors as one
    session doing every batch in turn, each text back in its own row."""
    from concurrent.futures import ThreadPoolExecutor

    texts = _abstracts(24) + ["", "short", "word " * 400]
    one = onnx_backend.OnnxEmbedder(threads=1)
    two = onnx_backend.OnnxEmbedder(threads=2)
    ref = one.encode(texts, batch_size=4)
    np.testing.assert_allclose(two.encode(texts, batch_size=4), ref, atol=1e-5)
    assert two._made == 2  # the second session really ran batches
    # a small encode is still split into one batch per core (int8 activations are quantised per
    # batch, so a text's vector depends slightly on its batch-mates: compare like with like)
    np.testing.assert_allclose(two.encode(texts[:3]), one.encode(texts[:3], batch_size=2), atol=1e-5)
    # token vectors: two batches of 3 against one of 6, so equal up to the per-batch quantisation
    for a, b in zip(two.encode_tokens(texts[:6]), one.encode_tokens(texts[:6]), strict=True):
        assert a.shape == b.shape
        if len(a):
            assert (a * b).sum(1).mean() > 0.98 and (a * b).sum(1).min() > 0.9
    # concurrent callers (web threads) share the sessions: never more than one per core
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda i: two.encode(texts[i:i + 8], batch_size=2), range(8)))
    for i, v in enumerate(outs):
        np.testing.assert_allclose(v, one.encode(texts[i:i + 8], batch_size=2), atol=1e-5)
    assert two._made == 2


def test_int8_export_quantises_attention_projection() -> None:
    """The recipe (EXPORT_VERSION 3): every dense MatMul and the fused attention's QKV projection
    run in int8; the fp32 export keeps the fused float kernels."""
    import onnx

    d = prepare.onnx_dir()
    ops_int8 = {n.op_type for n in onnx.load(str(d / prepare.INT8_FILE), load_external_data=False).graph.node}
    ops_fp32 = {n.op_type for n in onnx.load(str(d / prepare.FP32_FILE), load_external_data=False).graph.node}
    assert "QAttention" in ops_int8 and "Attention" not in ops_int8 and "MatMul" not in ops_int8
    assert {"Attention", "MatMul", "SkipLayerNormalization", "BiasGelu"} <= ops_fp32


def test_bf16_queries_do_not_load_torch() -> None:
    # A web worker only embeds queries: with the bf16 backend it must not pay for torch
    # (~0.45 GB of RSS); documents load it on the first bulk encode.
    import subprocess
    import sys

    code = (
        "import sys; from paperfeed.embed import get_embedder; e = get_embedder('minilm-bf16');"
        "q = e.encode_query('effective rank'); assert q.shape == (384,);"
        "print('torch' in sys.modules); e.encode(['a paper']); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]
