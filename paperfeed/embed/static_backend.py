"""`static`: a model2vec distillation of the packaged all-MiniLM-L6-v2.

model2vec.distill runs every vocabulary token through the transformer once, keeps its output
vector, reduces the table with PCA (256 dims) and applies SIF/Zipf weighting. Encoding a text is
then a tokenise + table lookup + mean: no network, no attention. That is one to two orders of
magnitude faster than the transformer and meant for laptops embedding millions of papers, at a
quality cost (figures in the report / `paperfeed models list`).

The distillation is done offline from the local folder (no hub) by `paperfeed models prepare`, or
lazily the first time this backend is used (a few minutes on 2 cores).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from paperfeed.embed.paths import model_dir, packaged_model_path

log = logging.getLogger(__name__)

DISTILL_VERSION = 1
PCA_DIMS = 256
MANIFEST = "paperfeed-manifest.json"


def static_dir() -> Path:
    return model_dir() / "static"


def is_distilled(directory: Path | None = None) -> bool:
    d = directory or static_dir()
    try:
        manifest = json.loads((d / MANIFEST).read_text())
        size = (packaged_model_path() / "model.safetensors").stat().st_size
    except (OSError, ValueError):
        return False
    return manifest.get("version") == DISTILL_VERSION and manifest.get("size") == size


def distill(directory: Path | None = None, *, force: bool = False,
            say: Callable[[str], None] | None = None) -> Path:
    """Distil the packaged model into `directory` (idempotent, built aside then renamed in)."""
    from paperfeed.embed.onnx_backend import _export_lock

    say = say or log.info
    d = directory or static_dir()
    if not force and is_distilled(d):
        say(f"static: up to date in {d}")
        return d
    with _export_lock(d.parent):
        if not force and is_distilled(d):
            return d
        from model2vec.distill import distill as m2v_distill

        src = packaged_model_path()
        say(f"static: distilling {src} with model2vec (pca_dims={PCA_DIMS}); takes a few minutes")
        t0 = time.perf_counter()
        model = m2v_distill(model_name=str(src), pca_dims=PCA_DIMS, device="cpu")
        tmp = Path(tempfile.mkdtemp(prefix=".static-", dir=d.parent))
        tmp.chmod(0o755)
        try:
            model.save_pretrained(str(tmp))
            size = (src / "model.safetensors").stat().st_size
            (tmp / MANIFEST).write_text(json.dumps({"version": DISTILL_VERSION, "size": size}))
            old = d.with_name(d.name + ".old")
            if d.exists():
                shutil.rmtree(old, ignore_errors=True)
                d.rename(old)
            tmp.rename(d)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        say(f"static: ready in {d} ({time.perf_counter() - t0:.1f} s)")
    return d


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
