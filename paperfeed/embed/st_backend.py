"""The plain path: all-MiniLM-L6-v2 with sentence-transformers on PyTorch (CPU).

This is the reference the faster backends are checked against, and the fallback when ONNX is not
usable. Loaded straight from the packaged folder, so no hub access ever happens.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from paperfeed.embed.paths import default_threads, packaged_model_path

log = logging.getLogger(__name__)

MAX_TOKENS = 256  # the model card's max_seq_length; longer inputs are truncated


class SentenceTransformerEmbedder:
    name = "minilm"
    dim = 384

    def __init__(self) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(default_threads())
        path = packaged_model_path()
        log.info("loading %s from %s (sentence-transformers, CPU)", self.name, path)
        self.model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self.model.max_seq_length = MAX_TOKENS

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), np.float32)
        out = self.model.encode(
            list(texts), batch_size=batch_size, show_progress_bar=progress,
            convert_to_numpy=True, normalize_embeddings=True,
        )
        return np.ascontiguousarray(out, dtype=np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]

    def encode_tokens(self, texts: Sequence[str]) -> list[np.ndarray]:
        if len(texts) == 0:
            return []
        # output_value="token_embeddings" gives the unpooled last hidden states, already without
        # padding; drop [CLS] and [SEP] like the ONNX backend does, then normalise each token.
        raw = self.model.encode(list(texts), output_value="token_embeddings", convert_to_numpy=False)
        out = []
        for t in raw:
            v = t.detach().float().cpu().numpy()[1:-1]  # .float(): bf16 under autocast
            out.append(v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12))
        return out
