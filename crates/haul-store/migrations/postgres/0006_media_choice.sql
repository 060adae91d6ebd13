-- What a media download chooses beyond its quality (container and codec preferences, a yt-dlp format selector,
-- subtitles, embedding), as JSON (`haul_core::media_choice::MediaChoice`; NULL: every default), and the subtitle
-- files it saved (a JSON list of {lang, path}, paths relative to the downloads directory; NULL: none yet).
ALTER TABLE downloads ADD COLUMN media_options TEXT;
ALTER TABLE downloads ADD COLUMN subtitles TEXT;
