-- Password reset by mail. Only a hash of each token is kept, as for sessions: a copy
-- of the database gives no working link. A token works once, until expires_at.
CREATE TABLE password_resets (
    token_hash TEXT PRIMARY KEY,                -- sha256 of the token in the mailed link
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
);
CREATE INDEX password_resets_user ON password_resets (user_id);
CREATE INDEX password_resets_expires ON password_resets (expires_at);
