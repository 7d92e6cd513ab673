"""Benchmarks: synthetic corpora and the runners behind `paperfeed bench`."""

from paperfeed.bench.synth import (
    SyntheticCorpus,
    TextModel,
    query_vectors,
    synthetic_vectors,
    write_arxiv_jsonl,
)

__all__ = ["SyntheticCorpus", "TextModel", "query_vectors", "synthetic_vectors", "write_arxiv_jsonl"]
