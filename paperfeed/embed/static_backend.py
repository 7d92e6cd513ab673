"""`static`: a model2vec distillation of the packaged all-MiniLM-L6-v2.

model2vec.distill runs every vocabulary token through the transformer once, keeps its output
vector, reduces the table with PCA (256 dims) and applies SIF/Zipf weighting. Encoding a text is
then a tokenise + table lookup + mean: no network, no attention. That is one to two orders of
magnitude faster than the transformer and meant for laptops embedding millions of papers, at a
quality cost (figures in the report / `paperfeed models list`).

The distillation (`paperfeed.embed.prepare.distill`) is done offline from the local folder (no
hub) by `paperfeed models prepare`, or lazily the first time this backend is used (a few minutes
on 2 cores).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from paperfeed.embed.prepare import distill, is_distilled, static_dir

log = logging.getLogger(__name__)

class StaticEmbedder:
    name = "static"

    def __init__(self, directory: Path | None = None) -> None:
        from model2vec import StaticModel

        d = directory or static_dir()
        if not is_distilled(d):
            log.info("static: no distilled model in %s yet, making it now", d)
            distill(d)
        self.model = StaticModel.from_pretrained(str(d))
        self.dim = int(self.model.dim)
        log.info("loaded static (model2vec, %d dims) from %s", self.dim, d)

    def encode(self, texts: Sequence[str], *, batch_size: int = 1024, progress: bool = False) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), np.float32)
        # a static model has no context window: 512 tokens covers any abstract
        out = self.model.encode(list(texts), max_length=512, batch_size=max(batch_size, 256),
                                show_progress_bar=progress)
        out = np.ascontiguousarray(out, dtype=np.float32)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]

    def encode_tokens(self, texts: Sequence[str]) -> list[np.ndarray]:
        raise NotImplementedError("the static model has no contextual token vectors")
