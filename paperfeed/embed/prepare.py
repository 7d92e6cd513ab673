"""Building the embedding models at install time (`paperfeed models prepare`), apart from
running them: the ONNX export of all-MiniLM-L6-v2 and the model2vec distillation.

Both are built in a temp dir beside their final place and swapped in (`build_then_swap`), under
one inter-process lock, so several web workers starting together build once and a crash never
leaves a half-written model where a backend would load it.

How it is made (offline, from the packaged safetensors; `export()`):
1. torch.onnx.export of the transformers BertModel (eager attention, so onnxruntime's fusion
   patterns match), inputs input_ids + attention_mask, output the last hidden states (token vectors:
   pooling is done here in NumPy so the same graph also serves encode_tokens).
2. onnxruntime.transformers.optimizer (model_type="bert"): fuses embeddings+LayerNorm, the 6
   attention blocks, bias+GELU and skip+LayerNorm into single kernels -> "model-fp32.onnx".
3. onnxruntime.quantization.quantize_dynamic, int8 (s8) weights *per channel*, the 18 dense
   MatMuls (attention output, FFN in/out) and the 6 fused Attention ops (their QKV projection ->
   QAttention) -> "model-int8.onnx".

Measured (EXPORT_VERSION 3; 2 cores shared with other jobs, load average 2-4; 2,000 real-text
abstracts from the bench sample; plain sentence-transformers, 256 tokens, = 1.00x; Cranfield
nDCG@10 plain: best mode 0.4453, dense 0.3802):
    `paperfeed bench embed --docs 2000 --rounds 3`      product vs plain, alternating, same process
        this backend                         2.6x wall    2.5x CPU    cosine to plain 0.992 mean, 0.985 min
    `paperfeed eval /work/shared/ir/cranfield --all-modes`
        this backend                         best 0.4452 (-0.0%)     dense 0.3780 (-0.6%)
    scratch runs, 1 thread, CPU time, 300 abstracts (relative to the fp32-Attention int8 graph of
    EXPORT_VERSION 2, which measured 2.0-2.1x plain wall in the same setting):
        MatMuls only (v2)                    1.00x        cosine 0.994 mean   best 0.4435
        + Attention -> QAttention (used)     1.18-1.21x   cosine 0.993 mean   best 0.4433-0.4452
        + Attention, unfused to MultiHeadAttention + 3 int8 MatMuls   1.15x  (same quality)
        + Attention, u8 weights              0.55x        (U8U8 kernels are slow here)
        + GELU tanh approximation (FastGelu) 1.03x        (not worth a numeric change)
        fp32 fused                           0.61x        cosine 1.000
   Earlier, quantising the Attention op looked like -2% nDCG@10; re-measured on the current
   pipeline it is within 0.5% in both modes (per-batch activation scales make +-0.4% noise).
   Where the int8 time goes (ORT profiler, 1 thread): attention (scores/softmax/context, i.e. the
   QAttention kernel minus its small int8 projection) ~40%, int8 MatMuls ~25%, SkipLayerNorm ~18%,
   BiasGelu ~11%. The attention core is fp32 and quadratic in length, so it is what remains.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from paperfeed.embed.paths import model_dir, packaged_model_path

log = logging.getLogger(__name__)

# Bump when the export recipe changes: existing exports are then redone by `models prepare`.
EXPORT_VERSION = 3
FP32_FILE = "model-fp32.onnx"
INT8_FILE = "model-int8.onnx"
MANIFEST = "manifest.json"
HEADS, HIDDEN = 12, 384

DISTILL_VERSION = 1
PCA_DIMS = 256
STATIC_MANIFEST = "paperfeed-manifest.json"


def onnx_dir() -> Path:
    return model_dir() / "minilm-onnx"


def static_dir() -> Path:
    return model_dir() / "static"


@contextlib.contextmanager
def _export_lock(directory: Path) -> Iterator[None]:
    """One exporter at a time across processes (several web workers may start together)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".export.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_then_swap(directory: Path, build: Callable[[Path], None], *,
                    ready: Callable[[Path], bool] | None = None) -> bool:
    """Build a model folder with `build(tmp)` in a temp dir beside `directory`, then swap it into
    place. Returns False, building nothing, when `ready(directory)` turns true while waiting for
    another process's build (None: always build)."""
    with _export_lock(directory.parent):
        if ready is not None and ready(directory):
            return False
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
        tmp.chmod(0o755)
        try:
            build(tmp)
            old = directory.with_name(directory.name + ".old")
            if directory.exists():
                shutil.rmtree(old, ignore_errors=True)
                directory.rename(old)
            tmp.rename(directory)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return True


def _source_fingerprint() -> dict:
    src = packaged_model_path() / "model.safetensors"
    st = src.stat()
    return {"source": str(src), "size": st.st_size, "export_version": EXPORT_VERSION}


def is_exported(directory: Path | None = None) -> bool:
    """True when a complete export matching the installed weights and recipe is present."""
    d = directory or onnx_dir()
    try:
        manifest = json.loads((d / MANIFEST).read_text())
        fp = _source_fingerprint()
    except (OSError, ValueError):
        return False
    return (
        manifest.get("size") == fp["size"]
        and manifest.get("export_version") == EXPORT_VERSION
        and all((d / f).is_file() for f in (FP32_FILE, INT8_FILE, "tokenizer.json"))
    )


def export(directory: Path | None = None, *, force: bool = False,
           say: Callable[[str], None] | None = None) -> Path:
    """Export + optimise + quantise the packaged model into `directory`. Idempotent: returns at
    once when a matching export exists. Crash-safe: built in a temp dir, then swapped into place."""
    say = say or log.info
    d = directory or onnx_dir()
    if not force and is_exported(d):
        say(f"minilm-onnx: up to date in {d}")
        return d
    t0 = time.perf_counter()

    def build(tmp: Path) -> None:
        _export_into(tmp, say)
        (tmp / MANIFEST).write_text(json.dumps({**_source_fingerprint(), "created": time.time()}))

    if build_then_swap(d, build, ready=None if force else is_exported):
        say(f"minilm-onnx: ready in {d} ({time.perf_counter() - t0:.1f} s)")
    return d


def _export_into(out: Path, say: Callable[[str], None]) -> None:
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoModel

    src = packaged_model_path()
    say(f"minilm-onnx: exporting {src} to ONNX")
    model = AutoModel.from_pretrained(str(src), attn_implementation="eager", local_files_only=True).eval()

    class TokenVectors(torch.nn.Module):
        """input_ids, attention_mask -> last hidden states; token_type_ids are always 0 here."""

        def __init__(self, bert: torch.nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=torch.zeros_like(input_ids)).last_hidden_state

    raw = out / "raw.onnx"
    ids = torch.randint(1000, 2000, (2, 16))
    with torch.no_grad(), _quiet_warnings():
        torch.onnx.export(
            TokenVectors(model), (ids, torch.ones_like(ids)), str(raw),
            input_names=["input_ids", "attention_mask"], output_names=["token_vectors"],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in ("input_ids", "attention_mask", "token_vectors")},
            opset_version=17, dynamo=False,
        )
    say("minilm-onnx: fusing attention / GELU / LayerNorm kernels")
    with _quiet_logs():
        opt = optimize_model(str(raw), model_type="bert", num_heads=HEADS, hidden_size=HIDDEN,
                             opt_level=1, use_gpu=False)
        opt.save_model_to_file(str(out / FP32_FILE))
    raw.unlink()
    say("minilm-onnx: int8 dynamic quantisation (per channel)")
    with _quiet_logs():
        quantize_dynamic(
            str(out / FP32_FILE), str(out / INT8_FILE), weight_type=QuantType.QInt8, per_channel=True,
            # the dense MatMuls and the fused Attention's QKV projection (-> QAttention): 18% less
            # CPU than MatMuls alone, Cranfield nDCG@10 (best mode) -0.45% vs plain (see docstring).
            # u8 weights (U8U8 kernels) were 1.8x slower than s8 here.
            op_types_to_quantize=["MatMul", "Attention"],
            # fused contrib ops defeat the quantiser's shape inference; their outputs are float
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    shutil.copy2(src / "tokenizer.json", out / "tokenizer.json")


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """onnxruntime's optimizer and quantiser log hundreds of INFO lines (and advice) through the
    root logger: keep them out of the CLI's output."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


@contextlib.contextmanager
def _quiet_warnings() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def is_distilled(directory: Path | None = None) -> bool:
    d = directory or static_dir()
    try:
        manifest = json.loads((d / STATIC_MANIFEST).read_text())
        size = (packaged_model_path() / "model.safetensors").stat().st_size
    except (OSError, ValueError):
        return False
    return manifest.get("version") == DISTILL_VERSION and manifest.get("size") == size


def distill(directory: Path | None = None, *, force: bool = False,
            say: Callable[[str], None] | None = None) -> Path:
    """Distil the packaged model into `directory` with model2vec (idempotent, built aside then
    swapped in): every vocabulary token through the transformer once, PCA to 256 dims, SIF/Zipf
    weighting."""
    say = say or log.info
    d = directory or static_dir()
    if not force and is_distilled(d):
        say(f"static: up to date in {d}")
        return d
    t0 = time.perf_counter()

    def build(tmp: Path) -> None:
        from model2vec.distill import distill as m2v_distill

        src = packaged_model_path()
        say(f"static: distilling {src} with model2vec (pca_dims={PCA_DIMS}); takes a few minutes")
        model = m2v_distill(model_name=str(src), pca_dims=PCA_DIMS, device="cpu")
        model.save_pretrained(str(tmp))
        size = (src / "model.safetensors").stat().st_size
        (tmp / STATIC_MANIFEST).write_text(json.dumps({"version": DISTILL_VERSION, "size": size}))

    if build_then_swap(d, build, ready=None if force else is_distilled):
        say(f"static: ready in {d} ({time.perf_counter() - t0:.1f} s)")
    return d
