"""`paperfeed bench embed`: embedding throughput, product embedder vs plain sentence-transformers.

The two encoders run on the same real-text sample (`run.embed_sample`: the seed-page and arXiv
sample abstracts first), alternately in one process, round after round. On a shared, noisy
machine a single pair of timings can be off by 2x; alternating and taking the median of the
per-round ratios keeps the figure about the encoders rather than about what else was running.
The product's vectors are also compared text by text with the plain model's (cosine).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def _say(msg: str) -> None:
    print(f"[bench embed {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _timed(encode: Callable[[Sequence[str]], np.ndarray], texts: Sequence[str]) -> tuple[np.ndarray, float, float]:
    """Vectors, wall seconds, and CPU seconds of this process (all threads)."""
    c0, w0 = time.process_time(), time.perf_counter()
    v = encode(texts)
    return v, time.perf_counter() - w0, time.process_time() - c0


def bench_embed(docs: int = 2000, rounds: int = 2, embedder: str = "default", seed: int = 0) -> dict[str, Any]:
    """Embed `docs` real-text abstracts with `embedder` and with plain sentence-transformers,
    alternately for `rounds` rounds; docs/s of both (median), their ratio, and the cosine of the
    product's vectors to the plain ones."""
    from paperfeed.bench.baseline import plain_encoder
    from paperfeed.bench.run import embed_sample
    from paperfeed.bench.synth import SyntheticCorpus
    from paperfeed.embed import get_embedder
    from paperfeed.embed.paths import default_threads

    emb = get_embedder(embedder)  # first: an unknown name fails before the slow setup
    texts = embed_sample(SyntheticCorpus(100, seed), docs)
    plain = plain_encoder()
    # load and warm up both outside the clock (first-call allocations, thread pools)
    emb.encode(texts[:16])
    plain(texts[:16])
    fast_dps: list[float] = []
    plain_dps: list[float] = []
    ratios: list[float] = []
    cpu_ratios: list[float] = []
    fast = ref = None
    load_before = os.getloadavg()
    for r in range(rounds):
        # alternate which one goes first, so a load change mid-round hits both sides alike
        order = ("fast", "plain") if r % 2 == 0 else ("plain", "fast")
        times: dict[str, tuple[float, float]] = {}
        for which in order:
            if which == "fast":
                fast, wall, cpu = _timed(lambda t: emb.encode(t), texts)
            else:
                ref, wall, cpu = _timed(plain, texts)
            times[which] = (wall, cpu)
        fast_dps.append(len(texts) / times["fast"][0])
        plain_dps.append(len(texts) / times["plain"][0])
        ratios.append(times["plain"][0] / times["fast"][0])
        cpu_ratios.append(times["plain"][1] / times["fast"][1])
        _say(f"round {r + 1}/{rounds}: {emb.name} {fast_dps[-1]:.1f} docs/s, plain {plain_dps[-1]:.1f} docs/s, "
             f"ratio {ratios[-1]:.2f}x (CPU time {cpu_ratios[-1]:.2f}x), load {os.getloadavg()[0]:.2f}")  # fmt: skip
    assert fast is not None and ref is not None
    cos = np.sum(fast * ref, axis=1) / (np.linalg.norm(fast, axis=1) * np.linalg.norm(ref, axis=1))
    return {
        "embedder": emb.name,
        "docs": len(texts),
        "rounds": rounds,
        "threads": default_threads(),
        "embed_dps": round(statistics.median(fast_dps), 1),
        "baseline_embed_dps": round(statistics.median(plain_dps), 1),
        "embed_speedup": round(statistics.median(ratios), 2),
        "embed_speedup_rounds": [round(x, 2) for x in ratios],
        # CPU seconds of the whole process: less sensitive to other processes than wall time
        "embed_cpu_speedup": round(statistics.median(cpu_ratios), 2),
        "embed_cosine_vs_plain": {"mean": round(float(cos.mean()), 4), "min": round(float(cos.min()), 4),
                                  "p01": round(float(np.quantile(cos, 0.01)), 4)},  # fmt: skip
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }


def bench_embed_report(docs: int, rounds: int, embedder: str, as_json: bool) -> None:
    """Embedding docs/s: the product embedder vs plain sentence-transformers, same texts,
    alternating runs in one process, with the cosine of their vectors."""
    import click
    import orjson

    from paperfeed.bench.report import table

    try:
        result = bench_embed(docs, rounds, embedder)
    except ValueError as e:  # unknown embedder name
        raise click.BadParameter(str(e), param_hint="--embedder") from None
    except (ImportError, RuntimeError, OSError) as e:
        raise click.ClickException(str(e)) from e
    if as_json:
        click.echo(orjson.dumps(result).decode())
    if sys.stderr.isatty() or not as_json:
        click.echo(table(result), err=as_json)
