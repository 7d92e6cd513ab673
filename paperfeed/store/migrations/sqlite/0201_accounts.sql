-- Accounts, server-side sessions, votes and the moderation log (issue 4).
-- Sessions live in the database, not in a worker's memory, so any number of
-- stateless web workers can serve the same signed-in user.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    email         TEXT NOT NULL,
    email_key     TEXT NOT NULL UNIQUE,         -- case-folded email, for login and uniqueness
    password_hash TEXT NOT NULL,                -- argon2id
    is_admin      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,                -- sha256 of the cookie value; a DB leak gives no live cookies
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE votes (
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    paper_rowid INTEGER NOT NULL REFERENCES papers (rowid) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (user_id, paper_rowid)           -- one vote per user per paper
) WITHOUT ROWID;
CREATE INDEX votes_paper ON votes (paper_rowid);
CREATE INDEX votes_created ON votes (created_at);

CREATE TABLE moderation_log (
    id          INTEGER PRIMARY KEY,
    paper_rowid INTEGER NOT NULL REFERENCES papers (rowid) ON DELETE CASCADE,
    user_id     INTEGER REFERENCES users (id) ON DELETE SET NULL,
    action      TEXT NOT NULL,                  -- hide | show
    at          TEXT NOT NULL
);
