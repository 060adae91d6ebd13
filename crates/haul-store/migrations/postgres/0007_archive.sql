-- The download archive, as SQLite's 0016. URLs may be 8 KiB long, more than a B-tree entry takes, so the URL
-- index is a hash index.
CREATE TABLE archive (
    id          TEXT PRIMARY KEY,
    account     TEXT   NOT NULL,
    extractor   TEXT   NOT NULL,
    video_id    TEXT   NOT NULL,
    url         TEXT   NOT NULL,
    title       TEXT,
    download    TEXT,
    created_at  BIGINT NOT NULL,
    UNIQUE (account, extractor, video_id)
);
CREATE INDEX archive_by_url ON archive USING hash (url);

ALTER TABLE downloads ADD COLUMN check_archive BOOLEAN NOT NULL DEFAULT FALSE;
