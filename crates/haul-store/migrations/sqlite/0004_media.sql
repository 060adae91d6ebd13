-- Media downloads: what yt-dlp said about the video and which formats were chosen. `kind` (from 0001) is now
-- `auto` (decided when the job first runs), `file` or `media`.
ALTER TABLE downloads ADD COLUMN duration  REAL;     -- seconds
ALTER TABLE downloads ADD COLUMN width     INTEGER;
ALTER TABLE downloads ADD COLUMN height    INTEGER;
ALTER TABLE downloads ADD COLUMN format    TEXT;     -- yt-dlp's format ids, `v720+a1`
ALTER TABLE downloads ADD COLUMN thumbnail TEXT;     -- file name under thumbnails/, `{id}.jpg`
