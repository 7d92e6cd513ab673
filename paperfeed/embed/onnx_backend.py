"""all-MiniLM-L6-v2 on onnxruntime: the fast default backend. How the model files are made,
and why that recipe, is in `paperfeed.embed.prepare`.

Truncation is the one large lever left, and it changes the vectors (int8, 1 thread, 300 of the
bench abstracts spread over all lengths; cosine to the plain model at 256 tokens):
       max tokens   256      224      192      160      128
       CPU time     1.00x    0.82x    0.71x    0.57x    0.45x
       cosine mean  0.993    0.982    0.964    0.932    0.881
       cosine min   0.987    0.916    0.764    0.684    0.628   (0.476 over all 2,000)
   Cranfield documents are short, so Cranfield does not notice (t128: best 0.4483, dense 0.3795),
   but 42% of the arXiv abstracts exceed 256 tokens and 87% exceed 128: their vectors would move
   well away from the plain model's. Even at 128 tokens the measured ratio was 3.6x, not 4x. 256 is
   kept; PAPERFEED_EMBED_MAX_TOKENS changes it (and the backend name, so indexes never mix).

How it runs (`OnnxEmbedder`):
- the Rust `tokenizers` fast tokenizer straight from tokenizer.json, batch-encoded in parallel;
- texts sorted by token length and batched, each batch padded only to its own longest text, so
  little work is spent on padding (batch 32/64/128 measured within noise of each other);
- truncation at 256 tokens (the model's training length and sentence-transformers' setting);
- one single-thread session per core, each running whole batches from a shared queue: measured
  against one session with 2 intra-op threads on 400 abstracts, 3 runs each, ~15% less wall time
  and ~12% less CPU (per-op thread hand-offs cost more than the small ops gain). Thread spinning
  on was no faster and burns CPU the web server or the lexical indexer beside it need, so off.
- int8 activations are quantised per batch (dynamic quantisation), so a text's vector depends very
  slightly on its batch-mates (cosine ~0.999 between batchings); the plain model's does not.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from paperfeed.config import Settings
from paperfeed.embed.paths import default_threads, packaged_model_path
from paperfeed.embed.prepare import FP32_FILE, HIDDEN, INT8_FILE, export, is_exported, onnx_dir

log = logging.getLogger(__name__)

DEFAULT_VARIANT = "minilm-onnx-int8"
MAX_TOKENS = Settings.from_env().embed_max_tokens
# Characters kept before tokenising: 256 tokens never need more than this (word pieces average
# ~4-5 characters), and it keeps a megabyte-long "abstract" from costing a megabyte of tokenising.
MAX_CHARS = MAX_TOKENS * 16


def available() -> bool:
    """Can the ONNX backend run here (exported already, or exportable offline right now)?"""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    if is_exported():
        return True
    try:
        import onnx  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401

        packaged_model_path()
    except (ImportError, FileNotFoundError):
        return False
    return True


class OnnxEmbedder:
    dim = HIDDEN

    def __init__(self, quantized: bool = True, directory: Path | None = None, threads: int | None = None) -> None:
        from tokenizers import Tokenizer

        d = directory or onnx_dir()
        if not is_exported(d):
            log.info("minilm-onnx: no export in %s yet, making it now from the packaged weights", d)
            export(d)
        self.name = "minilm-onnx-int8" if quantized else "minilm-onnx-fp32"
        if MAX_TOKENS != 256:
            # vectors of differently truncated texts must not be mixed in one index
            self.name += f"-t{MAX_TOKENS}"
        self.path = d / (INT8_FILE if quantized else FP32_FILE)
        self.threads = threads or default_threads()
        # One single-threaded session per core, each running whole batches, rather than one
        # session splitting every op over the cores: the many small ops of a batch (attention
        # per head, LayerNorm, GELU) parallelise poorly, and on 2 cores the per-op hand-offs cost
        # ~12% more CPU and ~15% more wall time (see the module docstring). The first session
        # serves queries; the others are made on the first bulk encode, so a web worker that only
        # embeds queries holds one copy of the weights.
        self._sessions: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._made = 0
        self._make_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self.session = self._new_session()
        self._sessions.put(self.session)
        self.tokenizer = Tokenizer.from_file(str(d / "tokenizer.json"))
        # tokenizer.json ships with fixed padding to 128 and truncation at 128: padding is done
        # per batch below instead, and truncation follows the model's 256.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        log.info("loaded %s from %s (%d single-thread sessions at most)", self.name, self.path, self.threads)

    # -- internals -------------------------------------------------------------------------------
    def _new_session(self) -> Any:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3
        self._made += 1
        return ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])

    def _tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch([t[:MAX_CHARS] for t in texts])]

    def _batches(self, ids: list[list[int]], batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yield (positions, input_ids, attention_mask), longest texts first, each batch padded to
        its own longest member."""
        order = np.argsort([-len(x) for x in ids], kind="stable")
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            width = len(ids[idx[0]])
            input_ids = np.zeros((len(idx), width), np.int64)
            mask = np.zeros((len(idx), width), np.int64)
            for row, j in enumerate(idx):
                n = len(ids[j])
                input_ids[row, :n] = ids[j]
                mask[row, :n] = 1
            yield idx, input_ids, mask

    def _run(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        try:
            sess = self._sessions.get_nowait()
        except queue.Empty:
            with self._make_lock:
                sess = self._new_session() if self._made < self.threads else None
            if sess is None:  # all in use (concurrent callers): wait, never more than one per core
                sess = self._sessions.get()
        try:
            return sess.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]
        finally:
            self._sessions.put(sess)

    def _run_all(self, ids: list[list[int]], batch_size: int,
                 each: Callable[[np.ndarray, np.ndarray, np.ndarray], None]) -> Iterator[int]:
        """Run every batch through the model, `each(positions, mask, hidden)` on the result; yields
        batch sizes as they finish (for a progress bar). Several batches run at once, one per
        core, when there is more than one batch."""
        n_batches = -(-len(ids) // batch_size)
        if self.threads == 1 or n_batches == 1:
            for idx, input_ids, mask in self._batches(ids, batch_size):
                each(idx, mask, self._run(input_ids, mask))
                yield len(idx)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="minilm-onnx")

        def job(idx: np.ndarray, input_ids: np.ndarray, mask: np.ndarray) -> int:
            each(idx, mask, self._run(input_ids, mask))
            return len(idx)

        # submitted longest first, so the short tail of batches evens out the cores at the end
        futures = [self._pool.submit(job, *b) for b in self._batches(ids, batch_size)]
        for f in as_completed(futures):
            yield f.result()

    def _batch_size(self, n: int, batch_size: int) -> int:
        # a small bulk encode still gets one batch per core
        if self.threads > 1 and n > 1:
            return max(1, min(batch_size, -(-n // self.threads)))
        return max(1, batch_size)

    # -- Embedder --------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        if len(texts) == 0:
            return out
        ids = self._tokenize(texts)

        def pool(idx: np.ndarray, mask: np.ndarray, hidden: np.ndarray) -> None:
            m = mask.astype(np.float32)
            out[idx] = np.einsum("btd,bt->bd", hidden, m) / m.sum(axis=1, keepdims=True)

        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(texts), unit="doc", desc=f"embedding ({self.name})")
        for done in self._run_all(ids, self._batch_size(len(texts), batch_size), pool):
            if bar is not None:
                bar.update(done)
        if bar is not None:
            bar.close()
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]

    def encode_tokens(self, texts: Sequence[str]) -> list[np.ndarray]:
        res: list[np.ndarray] = [np.zeros((0, self.dim), np.float32)] * len(texts)
        if len(texts) == 0:
            return res
        ids = self._tokenize(texts)

        def split(idx: np.ndarray, mask: np.ndarray, hidden: np.ndarray) -> None:
            for row, j in enumerate(idx):
                v = hidden[row, 1:int(mask[row].sum()) - 1].astype(np.float32)  # drop [CLS], [SEP]
                res[j] = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

        for _ in self._run_all(ids, self._batch_size(len(texts), 32), split):
            pass
        return res
