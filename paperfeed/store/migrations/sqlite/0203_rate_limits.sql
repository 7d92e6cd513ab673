-- Rate limits live in the store so that every web worker counts against the same
-- budget (per process, N workers gave a client N times the limit). One row per
-- request let through in the last window: a sliding window, exact, and bounded
-- by the limit per (bucket, key).
CREATE TABLE rate_hits (
    bucket TEXT NOT NULL,   -- login, signup, subscribe, login-failed, ...
    key    TEXT NOT NULL,   -- a client address, or an account's address key
    at     REAL NOT NULL    -- unix time
);
CREATE INDEX rate_hits_key ON rate_hits (bucket, key, at);
CREATE INDEX rate_hits_at ON rate_hits (at);
