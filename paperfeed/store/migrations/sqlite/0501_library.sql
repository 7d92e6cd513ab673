-- A reader's library (issue 13): saved papers, named tags over them, "not interested",
-- followed authors. Every table is keyed by the owning user, and every query of
-- paperfeed.store.library filters on it, so a guessed tag id reaches nothing of another user.

-- The papers a user saved. A paper can carry any number of the user's tags, or none.
CREATE TABLE library_papers (
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    paper_rowid INTEGER NOT NULL REFERENCES papers (rowid) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (user_id, paper_rowid)
);
CREATE INDEX library_papers_paper ON library_papers (paper_rowid);

CREATE TABLE library_tags (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,                -- as typed (trimmed)
    name_key   TEXT NOT NULL,                -- NFKC + case-folded: "ML" and "ml" are one tag
    version    INTEGER NOT NULL DEFAULT 0,   -- bumped whenever the tag's papers change (model cache key)
    feed_gen   INTEGER NOT NULL DEFAULT 0,   -- signed into the feed URL; bumping it kills the old URL
    created_at TEXT NOT NULL,
    UNIQUE (user_id, name_key)
);

-- Which saved paper carries which tag. The composite reference makes unsaving a paper drop its tags.
CREATE TABLE library_tagged (
    tag_id      INTEGER NOT NULL REFERENCES library_tags (id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL,
    paper_rowid INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (tag_id, paper_rowid),
    FOREIGN KEY (user_id, paper_rowid) REFERENCES library_papers (user_id, paper_rowid) ON DELETE CASCADE
);
CREATE INDEX library_tagged_paper ON library_tagged (user_id, paper_rowid);

-- "Not interested": a negative example for the recommender, and hidden from "For you". Undoable.
CREATE TABLE library_negatives (
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    paper_rowid INTEGER NOT NULL REFERENCES papers (rowid) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (user_id, paper_rowid)
);

-- Per-user counters: `version` changes on every edit of the library, `neg_version` when the
-- negatives change. With library_tags.version they make the recommender's cache keys.
CREATE TABLE library_state (
    user_id     INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    version     INTEGER NOT NULL DEFAULT 0,
    neg_version INTEGER NOT NULL DEFAULT 0
);

-- Followed authors: a normalised full name, optionally narrowed to papers that also list a
-- co-author or carry a category ('' = no narrowing), which is how two people of one name are
-- told apart.
CREATE TABLE author_follows (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    name_key     TEXT NOT NULL,
    coauthor     TEXT NOT NULL DEFAULT '',
    coauthor_key TEXT NOT NULL DEFAULT '',
    category     TEXT NOT NULL DEFAULT '',
    created_at   TEXT NOT NULL,
    UNIQUE (user_id, name_key, coauthor_key, category)
);
