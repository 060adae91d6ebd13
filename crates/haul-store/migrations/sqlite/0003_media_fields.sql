-- What the foreign APIs and media jobs describe a download with: a display title (VideoDB's `name`, Cloudflare's
-- `meta.name`, a video's title) and the quality asked for (`best`, `1080p`, ..., `audio`).
ALTER TABLE downloads ADD COLUMN title TEXT;
ALTER TABLE downloads ADD COLUMN quality TEXT NOT NULL DEFAULT 'best';

-- Files made from a download on request (Cloudflare Stream's per-video `default` and `audio` downloads). The
-- `default` rendition is the download's own file; others are derived from it and tracked here.
CREATE TABLE renditions (
    download_id TEXT    NOT NULL REFERENCES downloads(id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,                    -- default | audio
    state       TEXT    NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'active', 'ready', 'failed')),
    percent     REAL    NOT NULL DEFAULT 0,          -- 0-100
    path        TEXT,                                -- relative to the downloads directory, once made
    error       TEXT,
    created_at  INTEGER NOT NULL,                    -- unix milliseconds
    PRIMARY KEY (download_id, name)
);
