"""Persisted recommender models (paperfeed.store.rec_models, ModelCache(persist=True)) and the
many-readers path of the mail (for_you_many): a model trained once is used by another store
handle and another process, a library change makes it stale, and the mail ranks exactly as the
page does without training unchanged libraries."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from paperfeed.config import Settings
from paperfeed.digest.sender import DryRunSender
from paperfeed.eval import build, load_collection
from paperfeed.models import Paper
from paperfeed.search import Searcher
from paperfeed.search import recommend as rec
from paperfeed.search.foryou import Request, for_you, for_you_many
from paperfeed.search.rec_features import corpus_features
from paperfeed.search.recommend import ModelCache, Recommender, train
from paperfeed.store import accounts as acc
from paperfeed.store import library as lib
from paperfeed.store import open_store, rec_models
from tests.test_recommend import _rowids, _write_collection

# one database for the module under --engine postgres: the indexed corpus is built once
PG_SCOPE = "module"
pytestmark = pytest.mark.slow  # embeds a corpus


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    coll = _write_collection(tmp_path_factory.mktemp("recm") / "topics")
    data = tmp_path_factory.mktemp("recmdata") / "data"
    build(load_collection(coll), data)
    return data


_n = iter(range(10_000))


def _user(store) -> int:  # noqa: ANN001
    u = acc.create_user(store, f"reader{next(_n)}-{os.getpid()}@example.org", "correct horse 1")
    acc.mark_email_verified(store, u.id)
    return u.id


def _items(result) -> list[tuple]:  # noqa: ANN001
    return [(i.paper.rowid, i.nearest.rowid if i.nearest else None, i.shared_terms) for i in result.items]


def test_a_model_survives_to_bytes(indexed: Path):
    ids = _rowids(indexed)
    with open_store(indexed) as store:
        s = Searcher(indexed, auto_sync=False)
        model = train(s, store, [ids["sail0"], ids["sail1"]], [ids["bees3"]])
        feats = corpus_features(s, store)
        back = Recommender.from_bytes(model.to_bytes(), feats)
    assert back is not None
    for name in ("positives", "negatives", "lex_index", "lex_weight", "dense_weight", "pos_dense", "neg_dense"):
        assert np.array_equal(getattr(back, name), getattr(model, name)), name
    assert (back.bias, back.seq) == (model.bias, model.seq)
    assert Recommender.from_bytes(b"junk", feats) is None
    # a model stored before the centroid blend ranks the old way: trained again, not used
    assert Recommender.from_bytes(b"PFR1" + model.to_bytes()[4:], feats) is None


def test_a_stored_model_is_used_by_another_handle_and_process_until_the_library_changes(indexed: Path):
    ids = _rowids(indexed)
    with open_store(indexed) as store:
        s = Searcher(indexed, auto_sync=False)
        uid = _user(store)
        lib.save(store, uid, [ids["sail0"], ids["sail1"]])
        first = ModelCache(persist=True)
        page = for_you(store, s, first, uid, window="month", k=5)
        assert (first.trained, first.loaded) == (1, 0) and page.items
        (row,) = [m for (u, _), m in rec_models.load_many(store, [uid]).items() if u == uid]
        assert row.version == lib.library_version(store, uid)
    with open_store(indexed) as store2:  # another handle, a cache that has never seen the model
        s2 = Searcher(indexed, auto_sync=False)
        second = ModelCache(persist=True)
        again = for_you(store2, s2, second, uid, window="month", k=5)
        assert (second.trained, second.loaded) == (0, 1)
        assert _items(again) == _items(page)
    # another process (as `digest send` is): it scores with the stored model, trains nothing
    code = (
        "import json,sys; from pathlib import Path; from paperfeed.search import Searcher; "
        "from paperfeed.search.foryou import for_you; from paperfeed.search.recommend import ModelCache; "
        "from paperfeed.store import open_store\n"
        f"d = Path({str(indexed)!r}); c = ModelCache(persist=True)\n"
        f"with open_store(d) as st: r = for_you(st, Searcher(d, auto_sync=False), c, {uid}, window='month', k=5)\n"
        "print(json.dumps([c.trained, c.loaded, [i.paper.rowid for i in r.items]]))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    trained, loaded, rowids = json.loads(out.stdout.strip().splitlines()[-1])
    assert (trained, loaded) == (0, 1) and rowids == [i.paper.rowid for i in page.items]
    # a save changes the library's version: the stored model is stale, retrained and replaced
    with open_store(indexed) as store:
        s = Searcher(indexed, auto_sync=False)
        lib.save(store, uid, [ids["bake0"]])
        third = ModelCache(persist=True)
        changed = for_you(store, s, third, uid, window="month", k=5)
        assert (third.trained, third.loaded) == (1, 0) and changed.trained_on == 3
        (row,) = [m for (u, _), m in rec_models.load_many(store, [uid]).items() if u == uid]
        assert row.version == lib.library_version(store, uid)
        # a tag is a model of its own, kept beside the library's
        tag = lib.create_tag(store, uid, "boats")
        lib.save(store, uid, [ids["sail2"]], [tag.id])
        for_you(store, s, third, uid, tag_id=tag.id, window="month", k=5)
        assert {k for (u, k) in rec_models.load_many(store, [uid]) if u == uid} == {"", str(tag.id)}


def test_for_you_many_ranks_as_for_you_does(indexed: Path):
    ids = _rowids(indexed)
    with open_store(indexed) as store:
        s = Searcher(indexed, auto_sync=False)
        a, b, c = _user(store), _user(store), _user(store)
        lib.save(store, a, [ids["sail0"]])
        lib.save(store, b, [ids["bees0"], ids["bees1"]])
        lib.set_not_interested(store, b, ids["bees3"])  # pushes its near copy dup3 down
        tag = lib.create_tag(store, c, "bread")
        lib.save(store, c, [ids["bake1"]], [tag.id])
        lib.save(store, c, [ids["sail4"]])
        reqs = [Request(a, None, 4), Request(b, None, 6), Request(c, tag.id, 3), Request(c, None, 5)]
        many = for_you_many(store, s, ModelCache(persist=True), reqs, window="month")
        single = [for_you(store, s, ModelCache(), q.user_id, tag_id=q.tag_id, window="month", k=q.k) for q in reqs]
        for got, want in zip(many, single, strict=True):
            assert got.items and _items(got) == _items(want)
            assert [i.score for i in got.items] == pytest.approx([i.score for i in want.items], rel=1e-4, abs=1e-5)
            assert got.trained_on == want.trained_on
        assert ids["dup3"] not in [i.paper.rowid for i in many[1].items[:3]]
        with pytest.raises(LookupError):
            for_you_many(store, s, ModelCache(), [Request(a, tag.id, 3)], window="month")


def test_the_mail_trains_only_missing_or_stale_models(indexed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from paperfeed.digest import foryou as mail

    ids = _rowids(indexed)
    calls: list[int] = []
    real_train = rec.train

    def counting(*a, **kw):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        return real_train(*a, **kw)

    monkeypatch.setattr(rec, "train", counting)
    settings = Settings(data_dir=indexed, base_url="https://papers.example.org", secret_key="k")
    now = dt.datetime(2030, 1, 7, 6, tzinfo=dt.UTC)
    with open_store(indexed) as store:
        s = Searcher(indexed, auto_sync=False)
        uid = _user(store)
        lib.save(store, uid, [ids["bees2"]])
        user = acc.get_user(store, uid)
        assert user is not None
        mail.enable(store, user, "daily", size=5)
        run = mail.compose_period(store, settings, "daily", now, DryRunSender(tmp_path / "d1"), searcher=s)
        assert run.composed == 1 and len(calls) == 1  # no model stored yet: trained once, and kept
        # the next day: the library did not change, so the mail scores with the stored model
        run = mail.compose_period(store, settings, "daily", now + dt.timedelta(days=1), None, searcher=s)
        assert run.composed == 1 and len(calls) == 1
        lib.save(store, uid, [ids["bees4"]])  # a save: the model is stale, the next mail retrains
        latest = store.conn.execute("SELECT MAX(feed_date) FROM papers").fetchone()[0]
        store.upsert_papers([Paper(title="Bees in winter", abstract="honey bee colonies", feed_date=latest,
                                   sources=["csv"])])  # fmt: skip
        run = mail.compose_period(store, settings, "daily", now + dt.timedelta(days=2), None, searcher=s)
        assert run.composed == 1 and len(calls) == 2
