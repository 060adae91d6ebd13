-- Idempotent adds: the download an account's `Idempotency-Key` made, and a fingerprint of the request it came
-- with, so that a client retrying an add it is unsure of gets the first download back instead of a second. A key
-- goes with its download, and is forgotten after a day (the store's callers pass the window).
CREATE TABLE idempotency (
    account      TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,                   -- hex sha256 of the request, as the API canonicalises it
    download_id  TEXT    NOT NULL REFERENCES downloads(id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,                   -- unix milliseconds
    PRIMARY KEY (account, key)
);
CREATE INDEX idempotency_by_download ON idempotency (download_id);
