-- What a client attaches to a download for its own bookkeeping (haul_core::labels): Cloudflare Stream's `meta`,
-- `creator`, `thumbnailTimestampPct` and `requireSignedURLs`.
ALTER TABLE downloads ADD COLUMN meta               TEXT;     -- a JSON object; NULL when empty
ALTER TABLE downloads ADD COLUMN creator            TEXT;
ALTER TABLE downloads ADD COLUMN thumbnail_at       REAL;     -- a fraction of the duration, 0-1
ALTER TABLE downloads ADD COLUMN require_signed_urls INTEGER NOT NULL DEFAULT 0;
-- Name the file `{name}__{id}.{ext}`, the yt-dlp web app's layout, rather than as the server offers it.
ALTER TABLE downloads ADD COLUMN name_with_id       INTEGER NOT NULL DEFAULT 0;
