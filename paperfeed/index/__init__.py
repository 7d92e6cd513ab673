"""Search indexes derived from the store: lexical (tantivy) and dense vectors.

`sync(store, data_dir, progress=False)` brings both up to date (ingest and serve call it);
`rebuild(store, data_dir)` recreates them from scratch; `status(store, data_dir)` says how far
behind they are. See sync.py for the crash-safety argument.
"""

from paperfeed.index.sync import SyncReport, index_dir, rebuild, status, sync

__all__ = ["SyncReport", "index_dir", "rebuild", "status", "sync"]
