-- Idempotent adds (see SQLite's 0011). `download_id` is NULL only inside the transaction that claims the key
-- and inserts its download.
CREATE TABLE idempotency (
    account      TEXT   NOT NULL,
    key          TEXT   NOT NULL,
    fingerprint  TEXT   NOT NULL,
    download_id  TEXT   REFERENCES downloads(id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (account, key)
);
CREATE INDEX idempotency_by_download ON idempotency (download_id);
