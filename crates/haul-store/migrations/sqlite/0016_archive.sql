-- The download archive: per account, what was downloaded, so that adding it again is skipped unless forced. A
-- video is known by its extractor and id (as yt-dlp's --download-archive keeps them: `youtube dQw4w9WgXcQ`), a
-- plain file by a digest of its URL, validator and length. An entry outlives its download, as a line of
-- yt-dlp's archive file outlives the file it stands for.
CREATE TABLE archive (
    id          TEXT PRIMARY KEY NOT NULL,
    account     TEXT    NOT NULL,
    extractor   TEXT    NOT NULL,
    video_id    TEXT    NOT NULL,
    url         TEXT    NOT NULL,
    title       TEXT,
    download    TEXT,                                 -- the download that fetched it; it may be gone since
    created_at  INTEGER NOT NULL,                     -- unix milliseconds
    UNIQUE (account, extractor, video_id)
);
CREATE INDEX archive_by_url ON archive (account, url);

-- Whether a download looks in its account's archive before fetching (set by an add that did not say `force`).
ALTER TABLE downloads ADD COLUMN check_archive INTEGER NOT NULL DEFAULT 0;
