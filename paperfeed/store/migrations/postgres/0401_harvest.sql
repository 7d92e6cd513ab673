-- PostgreSQL twin of migrations/sqlite/0401_harvest.sql: same tables, columns and index names (tests/test_pg_schema.py).
-- Live harvesting (OAI-PMH). One row per (source, set): where the next incremental run starts,
-- and the run in progress, so a killed run resumes from the page after the last one applied.
-- A page of records and the row's new resumption point are written in one transaction.
CREATE TABLE harvest_sets (
    source          TEXT NOT NULL,              -- 'arxiv'
    set_spec        TEXT NOT NULL,              -- 'cs', 'physics:astro-ph', '' = everything
    harvested_until TEXT,                       -- YYYY-MM-DD: last day fully harvested; next run asks from it
    run_from        TEXT,                       -- window of the last (or current) run
    run_until       TEXT,
    run_token       TEXT,                       -- resumptionToken of the next page; NULL when none is pending
    run_cursor      BIGINT,
    run_total       BIGINT,                    -- completeListSize, when the server gave it
    run_response_day TEXT,                      -- server's day at the first page: the run's upper bound
    status          TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'failed')),
    added           BIGINT NOT NULL DEFAULT 0, -- counts of the last (or current) run
    revised         BIGINT NOT NULL DEFAULT 0,
    deleted         BIGINT NOT NULL DEFAULT 0,
    unchanged       BIGINT NOT NULL DEFAULT 0,
    pages           BIGINT NOT NULL DEFAULT 0,
    started_at      TEXT,
    finished_at     TEXT,
    last_error      TEXT,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (source, set_spec)
);

-- What arXiv says about a paper beyond the Paper record: the datestamp and dates of the
-- first and latest version (the paper page shows "revised"), and whether arXiv deleted it
-- (a deleted paper is hidden; only such a paper is shown again if arXiv lists it again,
-- never one an admin hid).
CREATE TABLE arxiv_records (
    arxiv_id    TEXT PRIMARY KEY,
    paper_rowid BIGINT REFERENCES papers (rowid) ON DELETE CASCADE,
    datestamp   TEXT NOT NULL,
    created     TEXT,
    updated     TEXT,
    comments    TEXT,
    journal_ref TEXT,
    license     TEXT,
    deleted     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX arxiv_records_paper ON arxiv_records (paper_rowid);
