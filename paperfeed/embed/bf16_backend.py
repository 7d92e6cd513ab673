"""all-MiniLM-L6-v2 in bfloat16 on CPUs with native bf16 matrix units (Intel AMX, AVX-512 BF16).

The plain sentence-transformers model, run under `torch.autocast("cpu", torch.bfloat16)`: the
matrix products run in bf16 on the AMX tiles (oneDNN picks them), while autocast keeps the
numerically sensitive ops (softmax, LayerNorm, the pooling) in float32. So it is the same model
and the same code path as the plain one, only with faster arithmetic.

Measured on this machine's Xeon (AMX), 2 cores, 800-2,000 real abstracts, same process:
    plain fp32 (sentence-transformers)       1.00x   cosine 1.0
    onnxruntime int8 (minilm-onnx-int8)      ~2.0x   cosine 0.992 mean, 0.985 min
    bf16 autocast, batch 16                  ~3.1-3.2x   cosine 0.99998 mean, 0.99997 min
    bf16 weights (no autocast)               2.9x    cosine 0.9965 min   (rejected: less exact)
    OpenVINO bf16 (2 streams, batch 16)      3.5-3.7x  cosine 0.99998 (a 180 MB dependency more
                                             for ~12%; int8 weight compression made it slower)
Batch 16 beat 32/64/128 (3.21/3.11/2.70/2.06x): AMX tiles are small and short batches pad less.

Queries are embedded by the fused fp32 ONNX graph when it is there (numerically the plain model;
2.4 ms a query against 8.6 ms through sentence-transformers, whose per-call overhead dominates
for one short text), so search latency does not pay for the bulk backend.

Without bf16 hardware, bf16 is emulated and slower than fp32, so `available()` checks the CPU
flags and the default embedder only picks this backend where it pays.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from functools import cache

import numpy as np

from paperfeed.embed.st_backend import SentenceTransformerEmbedder

log = logging.getLogger(__name__)

BATCH = 16
_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@cache
def cpu_has_bf16() -> bool:
    """True when the CPU multiplies bf16 natively (Linux /proc/cpuinfo flags)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return any(f in flags for f in _BF16_FLAGS)
    except OSError:
        pass
    return False


def available() -> bool:
    # find_spec, not import: resolving the default embedder must not load torch (~0.4 GB) into
    # processes that only embed queries
    import importlib.util

    if not cpu_has_bf16():
        return False
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "sentence_transformers"))


class Bf16Embedder:
    """Documents through sentence-transformers under bf16 autocast, loaded on the first bulk
    encode; queries through the fp32 ONNX graph. A web worker that only embeds queries never
    loads torch: at a million papers that keeps ~0.45 GB out of the serving RSS."""

    name = "minilm-bf16"
    dim = 384

    def __init__(self) -> None:
        self._plain: SentenceTransformerEmbedder | None = None
        self._query_model: object | None = None
        self._lock = threading.Lock()

    @property
    def plain(self) -> SentenceTransformerEmbedder:
        if self._plain is None:
            with self._lock:
                if self._plain is None:
                    self._plain = SentenceTransformerEmbedder()
        return self._plain

    @contextlib.contextmanager
    def _bf16(self) -> Iterator[None]:
        import torch

        with torch.autocast("cpu", dtype=torch.bfloat16):
            yield

    def encode(self, texts: Sequence[str], *, batch_size: int = BATCH, progress: bool = False) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), np.float32)
        model = self.plain
        # callers' batch sizes are tuned for other backends; this one is fastest at 16
        with self._bf16():
            return model.encode(texts, batch_size=min(batch_size, BATCH), progress=progress)

    def encode_tokens(self, texts: Sequence[str]) -> list[np.ndarray]:
        model = self.plain
        with self._bf16():
            return model.encode_tokens(texts)

    def encode_query(self, text: str) -> np.ndarray:
        if self._query_model is None:
            with self._lock:
                if self._query_model is None:
                    self._query_model = self._make_query_model()
        if self._query_model is self:
            return self.encode([text])[0]
        return self._query_model.encode_query(text)  # type: ignore[attr-defined]

    def _make_query_model(self) -> object:
        try:
            from paperfeed.embed import onnx_backend

            if onnx_backend.is_exported():
                return onnx_backend.OnnxEmbedder(quantized=False, threads=1)
        except Exception as exc:  # noqa: BLE001 - queries then go through torch: slower, same vectors
            log.warning("fp32 ONNX query model unavailable, embedding queries with torch: %s", exc)
        return self
