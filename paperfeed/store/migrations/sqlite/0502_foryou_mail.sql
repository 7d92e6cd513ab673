-- The "For you" mail of an account (issue 13): its subscriptions row (kind 'foryou') carries the
-- address, period, status and unsubscribe epoch like every other mail; this row says whose
-- library ranks it, from which tag (NULL: all), and how many papers it lists. One per account.
CREATE TABLE foryou_subscriptions (
    subscription_id INTEGER PRIMARY KEY REFERENCES subscriptions (id) ON DELETE CASCADE,
    user_id         INTEGER NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    tag_id          INTEGER REFERENCES library_tags (id) ON DELETE SET NULL,
    size            INTEGER NOT NULL DEFAULT 10
);
