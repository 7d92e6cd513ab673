"""The store: the system of record (SQLite by default)."""

from paperfeed.store.papers import Store, UpsertCounts, open_store, store_exists

__all__ = ["Store", "UpsertCounts", "open_store", "store_exists"]
