"""Keep the lexical and vector indexes in step with the store, by `seq`.

Every insert or update of a paper takes a new, larger `seq` in the store. The indexes remember,
in their own small SQLite file (`<data>/index/state.sqlite`), the last seq each of them has
absorbed, and catch up from there. The order of operations makes every crash heal on the next run:

1. apply a batch to the index and make it durable (tantivy commit / vector save);
2. only then record the batch's last seq (and, for vectors, the hash of each embedded text).

A crash between 1 and 2 replays the batch next time; both steps are idempotent (tantivy deletes
by rowid before adding, vectors upsert by rowid), so the replay converges. A crash before 1
loses nothing: the store still has the papers with seq above the recorded one.

Vectors are computed once per text: the hash of the embedded text (title + abstract) is kept
per rowid, so a paper re-ingested or updated without a text change (a new source, a new feed
date) is re-indexed lexically but not re-embedded.

Hidden papers are removed from both indexes; showing them again re-adds them.

A `.lock` file (flock) serialises syncs across processes (`ingest` and `serve` may both run one).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from paperfeed.config import Settings
from paperfeed.index.damage import IndexDamaged
from paperfeed.index.lexical import SCHEMA_VERSION, LexicalIndex
from paperfeed.models import Paper
from paperfeed.store import Store
from paperfeed.store.engine import in_chunks

log = logging.getLogger(__name__)

STATE_FILE = "state.sqlite"
LOCK_FILE = ".lock"
LEXICAL_DIR = "lexical"
VECTORS_DIR = "vectors"
# Passages of long texts: the model reads 256 tokens (about 190 words) and drops the rest,
# so a text of more than PASSAGE_MIN_WORDS words also gets a vector per window of
# PASSAGE_WORDS words (title in front), and a paper's dense score is its best vector (MaxP).
# Measured on the suite (replica of the pipeline, mean nDCG@10 ratio to the plain pipeline
# 1.022 -> 1.029; the product 1.032 -> 1.038): time (magazine articles, 620 words on average)
# +3.5%, the others within +-0.005. The threshold is past the model's window, not at it: a
# 200-250-word abstract loses a sentence at most, and modern ML abstracts are that long (at
# 200 words, 265 of the 402 seed papers would double their embedding cost for nothing).
PASSAGES_DIR = "passages"
PASSAGE_MIN_WORDS = 300
PASSAGE_WORDS = 200
PASSAGE_STRIDE = 150
PASSAGE_SLOTS = 64  # passage ids are rowid * PASSAGE_SLOTS + window number
PASSAGES_VERSION = "2"  # 2: only texts over PASSAGE_MIN_WORDS
# How many papers go into one tantivy commit during a catch-up (a commit fsyncs; fewer is faster,
# but a crash replays at most this many).
LEX_COMMIT_EVERY = 50_000
# Save the vector index (and record progress) at least this often while embedding, so a stopped
# `paperfeed index` resumes without redoing more than this much work.
VEC_SAVE_SECONDS = 30.0
# A save rewrites the whole vector index (codes + HNSW graph: ~1 GB at a million papers, several
# seconds with fsync), so with a fixed interval a bulk catch-up of a large index spends a growing
# share of its time saving. The interval stretches so that saving stays under ~1/SAVE_SHARE of the
# work: at most about a tenth of the time since the last save is redone after a crash.
VEC_SAVE_SHARE = 10
STORE_TOKEN_KEY = "index.token"


def index_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "index"


def embed_text(p: Paper) -> str:
    """What the dense model sees: the title, then the abstract (truncated by the model)."""
    title = (p.title or "").strip()
    abstract = (p.abstract or "").strip()
    if title and abstract:
        return f"{title}. {abstract}" if not title.endswith((".", "?", "!")) else f"{title} {abstract}"
    return title or abstract


def passages(p: Paper) -> list[str]:
    """The windows of a text longer than one window (else none), each with the title."""
    words = (p.abstract or "").split()
    title = (p.title or "").strip()
    if len(words) + len(title.split()) <= PASSAGE_MIN_WORDS:
        return []
    out = []
    for start in range(0, max(len(words) - PASSAGE_WORDS // 3, 1), PASSAGE_STRIDE):
        chunk = " ".join(words[start : start + PASSAGE_WORDS])
        out.append(f"{title}. {chunk}" if title else chunk)
    return out[:PASSAGE_SLOTS]


def passage_owner(passage_id: int) -> int:
    return int(passage_id) // PASSAGE_SLOTS


def _slots(rowids: Sequence[int]) -> np.ndarray:
    return (np.asarray(rowids, dtype=np.int64)[:, None] * PASSAGE_SLOTS + np.arange(PASSAGE_SLOTS)).ravel()


def _embed_passages(pvec: Any, emb: Any, papers: Sequence[Paper]) -> int:
    """Replace the passages of `papers` (old ones go, long texts get new ones); how many."""
    if not papers:
        return 0
    pvec.remove(_slots([p.rowid for p in papers]))
    ids: list[int] = []
    texts: list[str] = []
    for p in papers:
        for j, text in enumerate(passages(p)):
            ids.append(p.rowid * PASSAGE_SLOTS + j)
            texts.append(text)
    if texts:
        pvec.upsert(np.asarray(ids, dtype=np.int64), emb.encode(texts, batch_size=64))
    return len(texts)


def text_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=10).hexdigest()


@dataclass
class SyncReport:
    lexical_indexed: int = 0
    lexical_removed: int = 0
    embedded: int = 0
    embed_skipped: int = 0  # text unchanged: vector kept
    vectors_removed: int = 0
    rebuilt: list[str] = field(default_factory=list)
    lex_seq: int = 0
    vec_seq: int = 0
    seconds: float = 0.0
    skipped_busy: bool = False  # another process held the lock and wait=False

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class IndexState:
    """The indexes' own bookkeeping, in `<data>/index/state.sqlite`."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(directory / STATE_FILE, timeout=30, isolation_level=None)
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS embedded (rowid INTEGER PRIMARY KEY, hash TEXT NOT NULL)"
            )
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            raise IndexDamaged(directory / STATE_FILE, str(exc)) from None

    def close(self) -> None:
        self.conn.close()

    def get(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def get_int(self, key: str) -> int:
        v = self.get(key)
        return int(v) if v and v.lstrip("-").isdigit() else 0

    def set(self, **values: object) -> None:
        with self.tx():
            for k, v in values.items():
                self.conn.execute(
                    "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (k, str(v)),
                )

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def hashes(self, rowids: Sequence[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        ids = list(rowids)
        for i in range(0, len(ids), 900):
            chunk = ids[i : i + 900]
            q = ",".join("?" * len(chunk))
            out.update(
                self.conn.execute(f"SELECT rowid, hash FROM embedded WHERE rowid IN ({q})", chunk).fetchall()
            )
        return out

    def reset(self, *, vectors: bool = True) -> None:
        with self.tx() as c:
            c.execute("DELETE FROM meta")
            if vectors:
                c.execute("DELETE FROM embedded")


@contextlib.contextmanager
def index_lock(directory: Path, *, wait: bool = True) -> Iterator[bool]:
    """Exclusive lock over the index directory. Yields False when busy and wait=False."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _embedder_named(built_with: str | None) -> Any:
    """The embedder that built the vectors (`built_with`), while it is available and
    $PAPERFEED_EMBEDDER does not ask for another: a new default (another backend, or a machine
    with other CPU features) must not silently re-embed a million papers. Else the default."""
    from paperfeed.embed import BACKENDS, get_embedder

    if built_with in BACKENDS and not Settings.from_env().embedder:
        try:
            return get_embedder(built_with)
        except Exception as exc:  # noqa: BLE001 - e.g. no bf16 on this CPU: re-embed with the default
            log.warning("embedder %s unavailable here (%s): using the default", built_with, exc)
    return get_embedder()


def embedder_for(data_dir: Path) -> Any:
    """The embedder for queries against this data directory's vectors (see _embedder_named)."""
    root = index_dir(data_dir)
    built_with = None
    if (root / STATE_FILE).exists():
        st = IndexState(root)
        try:
            built_with = st.get("embedder")
        finally:
            st.close()
    return _embedder_named(built_with)


def open_vectors(directory: Path, embedder: Any) -> Any:
    from paperfeed.index.vectors import VectorIndex

    return VectorIndex.open(directory, embedder.dim, embedder.name)


def sync(
    store: Store,
    data_dir: Path,
    progress: bool = False,
    *,
    embedder: Any = None,
    vectors: bool = True,
    rebuild: bool = False,
    wait: bool = True,
) -> SyncReport:
    """Bring `<data>/index/` up to date with `store`: lexical first (fast), then vectors.

    `rebuild` wipes both indexes and recreates them from the store. `vectors=False` only
    catches up the lexical index (the dense side can follow later: it resumes where it stopped).
    `wait=False` returns at once (skipped_busy=True) if another process is syncing.
    """
    t0 = time.perf_counter()
    report = SyncReport()
    root = index_dir(data_dir)
    with index_lock(root, wait=wait) as got:
        if not got:
            report.skipped_busy = True
            return report
        if rebuild:
            # opened first, a garbage state file would stop the very command that repairs it
            for suffix in ("", "-wal", "-shm"):
                (root / (STATE_FILE + suffix)).unlink(missing_ok=True)
        state = IndexState(root)
        try:
            _check_identity(store, root, state, report, force=rebuild)
            lex = open_lexical(root)
            _sync_lexical(store, lex, state, report, progress)
            if vectors:
                emb = embedder or _embedder_named(state.get("embedder"))
                if state.get("embedder") not in (None, emb.name):
                    # Vectors of two models are not comparable: start the dense side over.
                    log.info("embedder changed (%s -> %s): re-embedding", state.get("embedder"), emb.name)
                    _wipe_vectors(root, state)
                    report.rebuilt.append("vectors")
                vec = open_vectors(root / VECTORS_DIR, emb)
                _check_vectors(store, root, vec, state)
                state.set(embedder=emb.name)
                pvec = open_vectors(root / PASSAGES_DIR, emb)
                if state.get("passages") != PASSAGES_VERSION:
                    _backfill_passages(store, pvec, emb, state, progress)
                _sync_vectors(store, vec, pvec, emb, state, report, progress)
            report.lex_seq = state.get_int("lex_seq")
            report.vec_seq = state.get_int("vec_seq")
        finally:
            state.close()
    report.seconds = time.perf_counter() - t0
    return report


def rebuild(store: Store, data_dir: Path, progress: bool = True, *, embedder: Any = None) -> SyncReport:
    return sync(store, data_dir, progress, embedder=embedder, rebuild=True)


def status(store: Store, data_dir: Path) -> dict[str, Any]:
    """How far behind the store each index is (for `paperfeed index --status`), and `problems`:
    damage that needs `paperfeed index --rebuild` (empty when there is none)."""
    root = index_dir(data_dir)
    found = problems(data_dir, deep=True)
    max_seq = store.max_seq()
    try:
        state = IndexState(root)
    except IndexDamaged:
        return {"store_seq": max_seq, "problems": found}
    try:
        lex_seq, vec_seq = state.get_int("lex_seq"), state.get_int("vec_seq")
        pending = {
            name: store.conn.execute("SELECT COUNT(*) FROM papers WHERE seq > ?", (s,)).fetchone()[0]
            for name, s in (("lexical", lex_seq), ("vectors", vec_seq))
        }
        return {
            "store_seq": max_seq,
            "lex_seq": lex_seq,
            "vec_seq": vec_seq,
            "lexical_pending": pending["lexical"],
            "vectors_pending": pending["vectors"],
            "embedder": state.get("embedder"),
            "embedded": state.conn.execute("SELECT COUNT(*) FROM embedded").fetchone()[0],
            "problems": found,
        }
    finally:
        state.close()


def open_lexical(root: Path) -> LexicalIndex:
    """The lexical index; IndexDamaged when tantivy cannot open it (a corrupt segment)."""
    try:
        return LexicalIndex(root / LEXICAL_DIR)
    except ValueError as exc:
        raise IndexDamaged(root / LEXICAL_DIR, str(exc)) from None


def problems(data_dir: Path, *, deep: bool = False) -> list[str]:
    """Damage under <data>/index/ that only a rebuild repairs, in words naming the fix. Cheap
    enough for /healthz: counts and file headers, nothing loaded. The vector check compares the
    papers recorded as embedded with the vectors really stored, so lost vectors show here even
    though every file still reads. `deep` also opens the lexical index (every segment)."""
    root = index_dir(data_dir)
    path = root / STATE_FILE
    if not path.exists():
        return []
    found = []
    if deep and (root / LEXICAL_DIR).exists():
        try:
            open_lexical(root)
        except IndexDamaged as exc:
            found.append(str(exc))
    return found + _state_and_vector_problems(root)


def _state_and_vector_problems(root: Path) -> list[str]:
    path = root / STATE_FILE
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            recorded = conn.execute("SELECT COUNT(*) FROM embedded").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return [str(IndexDamaged(path, str(exc)))]
    from paperfeed.index.vectors import stored_count

    try:
        stored = stored_count(root / VECTORS_DIR)
    except IndexDamaged as exc:
        return [str(exc)]
    if stored < recorded:
        return [str(IndexDamaged(root / VECTORS_DIR, f"{recorded} papers are recorded as embedded, "
                                                     f"{stored} vectors are stored"))]  # fmt: skip
    return []


# ---- internals ----------------------------------------------------------------


def _wipe_vectors(root: Path, state: IndexState) -> None:
    import shutil

    shutil.rmtree(root / VECTORS_DIR, ignore_errors=True)
    shutil.rmtree(root / PASSAGES_DIR, ignore_errors=True)
    with state.tx() as c:
        c.execute("DELETE FROM embedded")
        c.execute("DELETE FROM meta WHERE key IN ('vec_seq', 'embedder', 'passages')")


def _check_vectors(store: Store, root: Path, vec: Any, state: IndexState) -> None:
    """Raise IndexDamaged when papers recorded as embedded have no vector.

    Carrying on would record more progress on top of the hole, and the missing papers would
    never be embedded again (only papers changed since vec_seq are looked at). One case is not
    damage: a crash after a save that removed hidden papers' vectors and before the state
    forgot them; those papers changed after vec_seq, so the catch-up replays them.
    """
    recorded = state.conn.execute("SELECT COUNT(*) FROM embedded").fetchone()[0]
    if recorded <= len(vec):
        return
    ids = [r[0] for r in state.conn.execute("SELECT rowid FROM embedded")]
    missing = [r for r, have in zip(ids, vec.has(ids), strict=True) if not have]
    vec_seq = state.get_int("vec_seq")
    replayed = sum(
        store.conn.execute(f"SELECT COUNT(*) FROM papers WHERE rowid {cond} AND seq > ?", (*args, vec_seq)).fetchone()[0]
        for cond, args in in_chunks(store.conn, missing)
    )
    lost = len(missing) - replayed
    if lost:
        raise IndexDamaged(root / VECTORS_DIR, f"{lost} of the {recorded} papers recorded as embedded have no vector")


def _check_identity(store: Store, root: Path, state: IndexState, report: SyncReport, *, force: bool) -> None:
    """Start over when the indexes do not belong to this store (a new or replaced database),
    when the lexical schema changed, or when asked to."""
    token = store.meta_get(STORE_TOKEN_KEY)
    mine = state.get("store_token")
    stale = force or token is None or token != mine
    if not stale and state.get_int("lex_seq") > store.max_seq():
        stale = True  # the store went back in time (restored from a backup): trust nothing
    if stale:
        LexicalIndex.wipe(root / LEXICAL_DIR)
        _wipe_vectors(root, state)
        state.reset()
        if token is None or force:
            token = secrets.token_hex(8)
            store.meta_set(STORE_TOKEN_KEY, token)
        state.set(store_token=token, schema=SCHEMA_VERSION, lex_seq=0, vec_seq=0)
        report.rebuilt += ["lexical", "vectors"]
        return
    if state.get_int("schema") != SCHEMA_VERSION:
        LexicalIndex.wipe(root / LEXICAL_DIR)
        state.set(schema=SCHEMA_VERSION, lex_seq=0)
        report.rebuilt.append("lexical")


def _pending(store: Store, since: int) -> int:
    return store.conn.execute("SELECT COUNT(*) FROM papers WHERE seq > ?", (since,)).fetchone()[0]


def _bar(progress: bool, total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="paper", disable=not progress or total == 0, leave=True)


def _sync_lexical(
    store: Store, lex: LexicalIndex, state: IndexState, report: SyncReport, progress: bool
) -> None:
    since = state.get_int("lex_seq")
    total = _pending(store, since)
    if total == 0:
        return
    batches = store.iter_changed(since, batch=2000)
    with _bar(progress, total, "lexical index") as bar:
        done = False
        while not done:
            last_seq = None
            n = 0
            with lex.writer() as w:
                for batch in batches:
                    shown = [p for p in batch if not p.hidden]
                    hidden = [p.rowid for p in batch if p.hidden]
                    report.lexical_indexed += w.upsert(shown)
                    if hidden:
                        w.remove(hidden)
                        report.lexical_removed += len(hidden)
                    last_seq = batch[-1].seq
                    n += len(batch)
                    bar.update(len(batch))
                    if n >= LEX_COMMIT_EVERY:
                        break
                else:
                    done = True
            if last_seq is not None:
                state.set(lex_seq=last_seq)  # after the commit: a crash in between replays the batch


def _backfill_passages(store: Store, pvec: Any, emb: Any, state: IndexState, progress: bool) -> None:
    """Passages for the papers embedded before passages existed (an index of an older
    version): only long texts are embedded again, never the whole collection."""
    done = state.get_int("vec_seq")
    if done > 0:
        with _bar(progress, _pending(store, 0) - _pending(store, done), "passages") as bar:
            for batch in store.iter_changed(0, batch=512):
                old = [p for p in batch if p.seq <= done]
                _embed_passages(pvec, emb, [p for p in old if not p.hidden])
                bar.update(len(old))
                if len(old) < len(batch):
                    break
        pvec.save()
    state.set(passages=PASSAGES_VERSION)


def _sync_vectors(
    store: Store, vec: Any, pvec: Any, emb: Any, state: IndexState, report: SyncReport, progress: bool
) -> None:
    since = state.get_int("vec_seq")
    total = _pending(store, since)
    if total == 0:
        return
    last_save = time.monotonic()
    save_every = VEC_SAVE_SECONDS
    pending_hashes: dict[int, str] = {}
    pending_removed: list[int] = []
    last_seq = since
    dirty = False

    def checkpoint() -> None:
        nonlocal pending_hashes, pending_removed, dirty
        if dirty:
            vec.save()
            pvec.save()
        with state.tx() as c:
            c.executemany(
                "INSERT INTO embedded(rowid, hash) VALUES (?, ?) ON CONFLICT(rowid) DO UPDATE SET hash = excluded.hash",
                list(pending_hashes.items()),
            )
            c.executemany("DELETE FROM embedded WHERE rowid = ?", [(r,) for r in pending_removed])
            c.execute(
                "INSERT INTO meta(key, value) VALUES ('vec_seq', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (str(last_seq),),
            )
        pending_hashes, pending_removed, dirty = {}, [], False

    with _bar(progress, total, "embedding") as bar:
        for batch in store.iter_changed(since, batch=512):
            hidden = [p.rowid for p in batch if p.hidden]
            shown = [p for p in batch if not p.hidden]
            if hidden:
                present = [r for r, h in zip(hidden, vec.has(hidden), strict=True) if h]
                if present:
                    vec.remove(present)
                    dirty = True
                pvec.remove(_slots(hidden))
                pending_removed += hidden
                report.vectors_removed += len(present)
            known = state.hashes([p.rowid for p in shown])
            texts = {p.rowid: embed_text(p) for p in shown}
            hashes = {r: text_hash(t) for r, t in texts.items()}
            have = (
                dict(zip([p.rowid for p in shown], vec.has([p.rowid for p in shown]), strict=True))
                if shown
                else {}
            )
            todo = [p.rowid for p in shown if known.get(p.rowid) != hashes[p.rowid] or not have.get(p.rowid)]
            report.embed_skipped += len(shown) - len(todo)
            if todo:
                vecs = emb.encode([texts[r] for r in todo], batch_size=64)
                vec.upsert(todo, vecs)
                by_id = {p.rowid: p for p in shown}
                _embed_passages(pvec, emb, [by_id[r] for r in todo])
                dirty = True
                pending_hashes.update({r: hashes[r] for r in todo})
                report.embedded += len(todo)
            last_seq = batch[-1].seq
            bar.update(len(batch))
            if time.monotonic() - last_save >= save_every:
                t_save = time.monotonic()
                checkpoint()
                last_save = time.monotonic()
                save_every = max(VEC_SAVE_SECONDS, VEC_SAVE_SHARE * (last_save - t_save))
    checkpoint()
