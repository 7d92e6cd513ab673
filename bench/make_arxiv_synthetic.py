"""Write a synthetic arXiv OAI metadata snapshot (JSON lines), deterministic from a seed.

The records vary the arXiv sample's: new unique ids, titles and abstracts
recombined from word-trigram statistics of the sample and the seed pages,
Zipfian authors built from the sample's names, its categories, and first-version
dates spread over 1995-2025 with arXiv's growth. Same code as `paperfeed bench`
(`paperfeed.bench.synth`), so no development data is needed.

    python bench/make_arxiv_synthetic.py --records 1000000 --out /tmp/arxiv-1m.jsonl
    paperfeed --data /tmp/pf ingest /tmp/arxiv-1m.jsonl --no-index
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from paperfeed.bench.synth import write_arxiv_jsonl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if args.records < 1:
        ap.error("--records must be at least 1")
    t0 = time.monotonic()
    write_arxiv_jsonl(args.out, args.records, args.seed, progress=sys.stderr.isatty())
    secs = time.monotonic() - t0
    print(f"wrote {args.records:,} records to {args.out} ({args.out.stat().st_size:,} bytes, {secs:.1f}s)",
          file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main()
