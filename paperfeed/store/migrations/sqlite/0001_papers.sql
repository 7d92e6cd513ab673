-- The system of record for papers. Indexes are derived from this table and
-- follow it by `seq`: every insert or update of a paper takes a new, larger seq.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE papers (
    rowid        INTEGER PRIMARY KEY,          -- internal key, used by the indexes
    id           TEXT NOT NULL UNIQUE,         -- public, stable id (URLs, API)
    arxiv_id     TEXT UNIQUE,
    doi          TEXT,
    title        TEXT NOT NULL,
    title_key    TEXT NOT NULL,                -- normalised title, for dedup
    abstract     TEXT NOT NULL DEFAULT '',
    authors      TEXT NOT NULL DEFAULT '[]',   -- JSON array, in author order
    categories   TEXT NOT NULL DEFAULT '[]',   -- JSON array
    published    TEXT,                         -- YYYY-MM-DD
    feed_date    TEXT,                         -- YYYY-MM-DD, first day in the feed
    links        TEXT NOT NULL DEFAULT '{}',
    hidden       INTEGER NOT NULL DEFAULT 0,
    rank         INTEGER NOT NULL DEFAULT 0,   -- trust of the best source that wrote it
    content_hash TEXT NOT NULL,
    seq          INTEGER NOT NULL,             -- last change
    added_seq    INTEGER NOT NULL,             -- first insert; alerts use it
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX papers_title_key ON papers (title_key);
CREATE INDEX papers_feed_date ON papers (feed_date);
CREATE INDEX papers_published ON papers (published);
CREATE UNIQUE INDEX papers_seq ON papers (seq);
CREATE INDEX papers_added_seq ON papers (added_seq);

-- Where each paper came from: a seed page (with its position, so the page can be
-- reproduced), an arXiv snapshot, a BEIR collection (with its _id), ...
CREATE TABLE paper_sources (
    paper_rowid INTEGER NOT NULL REFERENCES papers (rowid) ON DELETE CASCADE,
    source      TEXT NOT NULL,
    ext_id      TEXT,
    position    INTEGER,
    PRIMARY KEY (paper_rowid, source)
) WITHOUT ROWID;
CREATE INDEX paper_sources_ext ON paper_sources (source, ext_id) WHERE ext_id IS NOT NULL;
CREATE INDEX paper_sources_source ON paper_sources (source, position);
