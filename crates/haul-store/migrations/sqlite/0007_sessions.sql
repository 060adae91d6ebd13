-- Signed-in browser sessions of the web page: a random secret (only its hash kept) standing for the key it was
-- opened with, until it expires, is signed out, or that key is revoked or deleted.
CREATE TABLE sessions (
    secret_hash  TEXT PRIMARY KEY NOT NULL,           -- hex sha256 of the cookie's secret
    key_id       TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,                    -- unix milliseconds
    expires_at   INTEGER NOT NULL
);

CREATE INDEX sessions_expiry ON sessions (expires_at);
