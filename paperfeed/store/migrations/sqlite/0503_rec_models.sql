-- Trained recommender models (issue 13), so that a mail worker, another node or a restarted
-- process scores with the model a page view or an earlier run trained, instead of training it
-- again. One row per (user, tag_key): '' is the whole library, else the tag's id. A row is
-- valid while `version` equals the library's version (paperfeed.store.library.library_version);
-- a save changes that version, and the next use retrains and replaces the row. `seq` is the
-- corpus version it was trained on. `model` is the small arrays of the model
-- (paperfeed.search.recommend.Recommender.to_bytes: the non-zero lexical weights, the dense
-- weights, the bias and the rowids it learnt from), a few kB.
CREATE TABLE rec_models (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tag_key    TEXT NOT NULL,
    version    TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    model      BLOB NOT NULL,
    trained_at TEXT NOT NULL,
    PRIMARY KEY (user_id, tag_key)
);
