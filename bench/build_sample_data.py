"""Derive paperfeed/bench/data/arxiv_sample.jsonl.gz from the arXiv OAI sample.

The synthetic corpora are generated on users' machines, which have no copy of
the development data in ../shared. This keeps only what the generators read
(title, abstract, authors_parsed, categories, first-version date, whether a DOI
exists), gzipped, so the package carries ~70 KB instead of the raw sample.

    python bench/build_sample_data.py [--sample ../shared/arxiv/oai-snapshot-sample.jsonl]
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SAMPLE = ROOT.parent / "shared" / "arxiv" / "oai-snapshot-sample.jsonl"
OUT = ROOT / "paperfeed" / "bench" / "data" / "arxiv_sample.jsonl.gz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    rows = []
    with args.sample.open("rb") as f:
        for line in f:
            if not line.strip():
                continue
            r = orjson.loads(line)
            rows.append(
                {
                    "title": " ".join(r["title"].split()),
                    "abstract": " ".join(r["abstract"].split()),
                    "authors_parsed": r.get("authors_parsed") or [],
                    "categories": r.get("categories") or "",
                    "created": (r.get("versions") or [{}])[0].get("created"),
                    "has_doi": bool(r.get("doi")),
                }
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0 keeps the file byte-identical across rebuilds
    with gzip.GzipFile(args.out, "wb", compresslevel=9, mtime=0) as f:
        for r in rows:
            f.write(orjson.dumps(r) + b"\n")
    print(f"wrote {len(rows)} records to {args.out} ({args.out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
