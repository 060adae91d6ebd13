//! Media rules without I/O: the qualities a user can ask for, the parts of yt-dlp's `-J` output haul reads, which
//! formats a quality picks, and the file name of a media download.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::media_choice::{Chapter, Container, VideoCodec};
use crate::names::UnknownName;

/// What a media download asks for: the best, the best at or under a height, the smallest, or the audio alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quality {
    Best,
    /// At most this many lines (`720` for `720p`).
    Height(u32),
    /// The smallest video there is (yt-dlp's `worst`): previews, slow links, a quick look.
    Worst,
    Audio,
}

impl Quality {
    /// The quality ladder by name, best first (what the yt-dlp web app's dialect offers).
    pub const NAMES: [&'static str; 8] = ["best", "2160p", "1440p", "1080p", "720p", "480p", "360p", "audio"];
    /// What [`FromStr`] takes, for its error.
    const ACCEPTED: [&'static str; 5] = ["best", "worst", "audio", "a height such as 720p or 240", "1 to 10000"];
}

impl FromStr for Quality {
    type Err = UnknownName;

    fn from_str(text: &str) -> Result<Self, UnknownName> {
        let text = text.trim().to_ascii_lowercase();
        match text.as_str() {
            "best" => Ok(Self::Best),
            "worst" => Ok(Self::Worst),
            "audio" => Ok(Self::Audio),
            _ => {
                let digits = text.strip_suffix('p').unwrap_or(&text);
                match digits.parse::<u32>() {
                    Ok(height) if digits.bytes().all(|b| b.is_ascii_digit()) && (1..=10_000).contains(&height) => {
                        Ok(Self::Height(height))
                    }
                    _ => Err(UnknownName { what: "quality", given: text, expected: &Self::ACCEPTED }),
                }
            }
        }
    }
}

impl serde::Serialize for Quality {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Quality {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Best => f.write_str("best"),
            Self::Height(height) => write!(f, "{height}p"),
            Self::Worst => f.write_str("worst"),
            Self::Audio => f.write_str("audio"),
        }
    }
}

/// What haul reads of `yt-dlp -J`: one video, or a playlist (`kind` `playlist`) and its `entries` (see
/// [`crate::playlist`]).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MediaInfo {
    #[serde(default)]
    pub id: Option<String>,
    /// The extractor that read the page (`Youtube`, `Generic`): with `id`, what names the video in the download
    /// archive, as in yt-dlp's `--download-archive` (lowercased there: `youtube dQw4w9WgXcQ`).
    #[serde(default)]
    pub extractor_key: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    /// Seconds.
    #[serde(default)]
    pub duration: Option<f64>,
    #[serde(default)]
    pub thumbnail: Option<String>,
    /// Who published it, as the site says.
    #[serde(default)]
    pub uploader: Option<String>,
    /// When it was published, `YYYYMMDD`.
    #[serde(default)]
    pub upload_date: Option<String>,
    #[serde(default)]
    pub formats: Vec<Format>,
    /// Subtitle tracks by language, as the page names them (any text: made safe before it names a file).
    #[serde(default)]
    pub subtitles: BTreeMap<String, Vec<SubtitleTrack>>,
    /// Captions the site made automatically, by language.
    #[serde(default)]
    pub automatic_captions: BTreeMap<String, Vec<SubtitleTrack>>,
    #[serde(default)]
    pub chapters: Option<Vec<Chapter>>,
    /// `playlist` for a page with several videos; in a playlist's entries, `url` or `url_transparent` for an
    /// entry that is a link to its own page (read with `--flat-playlist`), absent for a video read in place.
    #[serde(default, rename = "_type")]
    pub kind: Option<String>,
    /// A playlist's entry that is a link: its page, and the extractor that reads it (when the playlist says).
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub ie_key: Option<String>,
    /// A playlist's entries, in its order (`null` entries, which yt-dlp writes for ones it could not read, are
    /// kept as empty readings so positions stay right).
    #[serde(default, deserialize_with = "entries")]
    pub entries: Vec<MediaInfo>,
}

fn entries<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<MediaInfo>, D::Error> {
    let entries: Option<Vec<Option<MediaInfo>>> = Option::deserialize(deserializer)?;
    Ok(entries.unwrap_or_default().into_iter().map(Option::unwrap_or_default).collect())
}

impl MediaInfo {
    pub fn is_playlist(&self) -> bool {
        self.kind.as_deref() == Some("playlist")
    }
}

/// One subtitle file of a language: where it is and in which format (`vtt`, `srt`, `ttml`, ...).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct SubtitleTrack {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub ext: Option<String>,
    #[serde(default)]
    pub http_headers: BTreeMap<String, String>,
}

/// One way yt-dlp can fetch the video: a direct URL (`protocol` http/https) or a manifest (HLS, DASH fragments).
/// Serialised back (the fields haul reads) when yt-dlp is asked which of them a raw selector picks.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Format {
    pub format_id: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub ext: Option<String>,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub width: Option<u32>,
    #[serde(default)]
    pub height: Option<u32>,
    /// `none` when the format has no video; absent when yt-dlp does not know (plain `<video>` sources).
    #[serde(default)]
    pub vcodec: Option<String>,
    /// `none` when the format has no audio; absent when unknown.
    #[serde(default)]
    pub acodec: Option<String>,
    #[serde(default)]
    pub filesize: Option<u64>,
    #[serde(default)]
    pub filesize_approx: Option<u64>,
    /// Total bitrate, kbit/s.
    #[serde(default)]
    pub tbr: Option<f64>,
    /// Audio bitrate, kbit/s.
    #[serde(default)]
    pub abr: Option<f64>,
    /// Headers the URL needs (Referer, User-Agent, cookies).
    #[serde(default)]
    pub http_headers: BTreeMap<String, String>,
    /// The cookies of yt-dlp's jar (`--cookies`) the URL needs, as yt-dlp writes them: `name=value; Domain=...;
    /// Path=/; Secure; Expires=...`, one cookie after another.
    #[serde(default)]
    pub cookies: Option<String>,
}

impl Format {
    /// The `Cookie` header [`Format::cookies`] gives: the `name=value` pairs without their attributes.
    pub fn cookie_header(&self) -> Option<String> {
        const ATTRIBUTES: [&str; 9] =
            ["domain", "path", "secure", "expires", "version", "max-age", "httponly", "samesite", "comment"];
        let pairs: Vec<&str> = self
            .cookies
            .as_deref()?
            .split(';')
            .map(str::trim)
            .filter(|item| {
                let key = item.split_once('=').map_or(*item, |(key, _)| key).trim();
                item.contains('=') && !ATTRIBUTES.iter().any(|attribute| key.eq_ignore_ascii_case(attribute))
            })
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    /// Has a video track, or might have (unknown codecs count as a muxed file).
    pub fn has_video(&self) -> bool {
        self.vcodec.as_deref() != Some("none")
    }

    pub fn has_audio(&self) -> bool {
        self.acodec.as_deref() != Some("none")
    }

    /// Fetched as one plain HTTP(S) file, which haul's own engine does; anything else (HLS, DASH fragments)
    /// is left to yt-dlp's downloader.
    pub fn is_direct(&self) -> bool {
        matches!(self.protocol.as_deref(), Some("http" | "https")) && self.url.is_some()
    }

    pub fn size(&self) -> Option<u64> {
        self.filesize.or(self.filesize_approx)
    }
}

/// The formats a quality picks from a video's list.
#[derive(Clone, Debug, PartialEq)]
pub enum Selection {
    /// One format holds everything wanted (a muxed video, or an audio-only format for `Audio`).
    Single(Format),
    /// A video-only and an audio-only format, to be merged into one mp4.
    Merge { video: Box<Format>, audio: Box<Format> },
    /// `Audio` from a page without an audio-only format: the audio is taken out of this muxed one.
    ExtractAudio(Format),
}

impl Selection {
    /// yt-dlp's `-f` spelling of the choice (`v720+a1`), recorded with the job and passed to yt-dlp's own
    /// downloader when the engine cannot fetch a format itself.
    pub fn format_spec(&self) -> String {
        match self {
            Self::Single(format) | Self::ExtractAudio(format) => format.format_id.clone(),
            Self::Merge { video, audio } => format!("{}+{}", video.format_id, audio.format_id),
        }
    }

    pub fn formats(&self) -> Vec<&Format> {
        match self {
            Self::Single(format) | Self::ExtractAudio(format) => vec![format],
            Self::Merge { video, audio } => vec![&**video, &**audio],
        }
    }

    /// The extension of the finished file: mp4 for video, m4a for audio alone, or the format's own.
    pub fn final_ext(&self, quality: Quality) -> String {
        self.final_ext_preferring(quality, None)
    }

    /// [`final_ext`](Self::final_ext) where a merge goes into the container its two streams fit
    /// ([`merge_ext`](crate::media_choice::merge_ext)), WebM first when `prefer` says so.
    pub fn final_ext_preferring(&self, quality: Quality, prefer: Option<Container>) -> String {
        match (self, quality) {
            (_, Quality::Audio) => "m4a".to_owned(),
            (Self::Merge { video, audio }, _) => {
                crate::media_choice::merge_ext(video.vcodec.as_deref(), audio.acodec.as_deref(), prefer).to_owned()
            }
            (Self::Single(format) | Self::ExtractAudio(format), _) => {
                format.ext.clone().filter(|ext| is_safe_ext(ext)).unwrap_or_else(|| "mp4".to_owned())
            }
        }
    }
}

fn is_safe_ext(ext: &str) -> bool {
    (1..=5).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Why no format fits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoFormat(pub String);

/// The formats `quality` picks: for video, the best (tallest, then highest bitrate) at or under the height
/// (the smallest there is when every format is taller), muxed when a muxed format is as tall as the best
/// video-only one, else video-only plus the best audio-only; for `Audio`, the best audio-only format (m4a
/// preferred), else the audio of the smallest muxed format.
pub fn select(formats: &[Format], quality: Quality) -> Result<Selection, NoFormat> {
    select_preferring(formats, quality, None, None)
}

/// [`select`], where among the videos the quality allows those in `vcodec`, then those in the `prefer`
/// container, win when there are any (a preference, as yt-dlp's `-S vcodec:vp9` is: the page's other formats
/// when none is); with `prefer`, audio in the same container wins too.
pub fn select_preferring(
    formats: &[Format],
    quality: Quality,
    prefer: Option<Container>,
    vcodec: Option<VideoCodec>,
) -> Result<Selection, NoFormat> {
    let usable: Vec<&Format> =
        formats.iter().filter(|format| format.url.is_some() || format.protocol.is_some()).collect();
    if usable.is_empty() {
        return Err(NoFormat("the page offers no downloadable format".into()));
    }
    let audio_only: Vec<&Format> = usable.iter().copied().filter(|f| !f.has_video() && f.has_audio()).collect();
    let rank = |format: &Format| {
        let preferred = prefer.is_some_and(|container| format.ext.as_deref() == Some(container.as_str()));
        f64::from(u8::from(preferred)) * 1_000_000.0 + audio_rank(format)
    };
    let best_audio = audio_only.iter().copied().max_by(|a, b| rank(a).total_cmp(&rank(b))).cloned();
    if quality == Quality::Audio {
        if let Some(audio) = best_audio {
            return Ok(Selection::Single(audio));
        }
        let smallest_muxed = usable
            .iter()
            .copied()
            .filter(|f| f.has_video() && f.has_audio())
            .min_by_key(|f| (f.height.unwrap_or(0), f.size().unwrap_or(u64::MAX)));
        return smallest_muxed
            .cloned()
            .map(Selection::ExtractAudio)
            .ok_or_else(|| NoFormat("the page offers no format with audio".into()));
    }
    let limit = match quality {
        Quality::Height(height) => height,
        // Nothing fits under 0 lines: the pool below is the lowest height there is.
        Quality::Worst => 0,
        _ => u32::MAX,
    };
    let video: Vec<&Format> = usable.iter().copied().filter(|f| f.has_video()).collect();
    if video.is_empty() {
        return best_audio.map(Selection::Single).ok_or_else(|| NoFormat("the page offers no video".into()));
    }
    let fitting: Vec<&Format> = video.iter().copied().filter(|f| f.height.unwrap_or(0) <= limit).collect();
    let pool: Vec<&Format> = if fitting.is_empty() {
        // Every format is taller than asked: the smallest is the closest.
        let lowest = video.iter().map(|f| f.height.unwrap_or(0)).min().unwrap_or(0);
        video.iter().copied().filter(|f| f.height.unwrap_or(0) == lowest).collect()
    } else {
        fitting
    };
    // Preferences narrow the pool only when something in it fits them.
    fn narrow<'f>(pool: Vec<&'f Format>, keep: &dyn Fn(&Format) -> bool) -> Vec<&'f Format> {
        let kept: Vec<&Format> = pool.iter().copied().filter(|format| keep(format)).collect();
        if kept.is_empty() { pool } else { kept }
    }
    let pool = match vcodec {
        Some(wanted) => narrow(pool, &|f| f.vcodec.as_deref().and_then(VideoCodec::of) == Some(wanted)),
        None => pool,
    };
    let pool = match prefer {
        Some(container) => narrow(pool, &|f| f.ext.as_deref() == Some(container.as_str())),
        None => pool,
    };
    let worst = quality == Quality::Worst;
    // The best of a height by bitrate; for `worst`, the smallest.
    let best = |candidates: &mut dyn Iterator<Item = &Format>| {
        let order =
            |a: &&Format, b: &&Format| video_rank(a).partial_cmp(&video_rank(b)).unwrap_or(std::cmp::Ordering::Equal);
        if worst { candidates.min_by(order).cloned() } else { candidates.max_by(order).cloned() }
    };

    let best_muxed = best(&mut pool.iter().copied().filter(|f| f.has_audio()));
    let best_video_only = best(&mut pool.iter().copied().filter(|f| !f.has_audio()));
    match (best_muxed, best_video_only, best_audio) {
        (Some(muxed), Some(video), Some(audio)) if video.height.unwrap_or(0) > muxed.height.unwrap_or(0) => {
            Ok(Selection::Merge { video: Box::new(video), audio: Box::new(audio) })
        }
        (Some(muxed), _, _) => Ok(Selection::Single(muxed)),
        (None, Some(video), Some(audio)) => Ok(Selection::Merge { video: Box::new(video), audio: Box::new(audio) }),
        (None, Some(video), None) => Ok(Selection::Single(video)),
        (None, None, _) => Err(NoFormat("the page offers no video".into())),
    }
}

fn video_rank(format: &Format) -> (u32, f64) {
    (format.height.unwrap_or(0), format.tbr.unwrap_or(0.0))
}

/// m4a first (it goes into mp4 and m4a without re-encoding), then bitrate.
fn audio_rank(format: &Format) -> f64 {
    let m4a = matches!(format.ext.as_deref(), Some("m4a" | "mp4"))
        || format.acodec.as_deref().is_some_and(|c| c.starts_with("mp4a"));
    f64::from(u8::from(m4a)) * 100_000.0 + format.abr.or(format.tbr).unwrap_or(0.0)
}

/// The stored name of a media file: `{title}__{id}.{ext}`, with the title made safe for any file system (one
/// path component, no control characters, at most 150 characters) and `media` when nothing of it is left.
/// A media file's name made from a template (`--name '{title} [{id}].{ext}'`): text with fields in braces, one
/// file name (no directories). Each field's value is made safe before it goes in, and the whole name after, as
/// every file name from the network is; a template without `{ext}` gets `.{ext}` at the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameTemplate {
    parts: Vec<TemplatePart>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum TemplatePart {
    Text(String),
    Field(NameField),
}

crate::named_enum! {
    /// What a name template can say.
    pub enum NameField as "name field" {
        /// The page's title (or the title the request gave).
        Title = "title",
        /// The video's id on its site.
        Id = "id",
        Uploader = "uploader",
        /// The day it was published, `YYYY-MM-DD`.
        Date = "date",
        /// The video's height in lines (empty for the sound alone).
        Height = "height",
        /// The file's extension, without the dot.
        Ext = "ext",
        /// The title of the playlist the video is an entry of.
        Playlist = "playlist",
        /// The video's position in that playlist, from 1.
        PlaylistIndex = "playlist_index",
    }
}

/// The values of a template's fields for one download; a missing one renders as `NA`, as yt-dlp writes it.
#[derive(Clone, Debug, Default)]
pub struct NameFields<'a> {
    pub title: &'a str,
    pub id: Option<&'a str>,
    pub uploader: Option<&'a str>,
    /// `YYYYMMDD`, as yt-dlp gives it.
    pub upload_date: Option<&'a str>,
    pub height: Option<u32>,
    pub ext: &'a str,
    /// For an entry of a playlist: the playlist's title and the entry's position.
    pub playlist: Option<&'a str>,
    pub playlist_index: Option<u32>,
}

/// Why a name template was refused: what was wrong, and what to write.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "name template {template:?}: {problem}; write text with fields in braces, e.g. '{{title}} [{{id}}].{{ext}}' (fields: title, id, uploader, date, height, ext, playlist, playlist_index)"
)]
pub struct TemplateError {
    pub template: String,
    pub problem: String,
}

impl FromStr for NameTemplate {
    type Err = TemplateError;

    fn from_str(template: &str) -> Result<Self, TemplateError> {
        let error = |problem: String| TemplateError { template: template.to_owned(), problem };
        if template.contains(['/', '\\']) {
            return Err(error("it makes one file name, not a path (no / or \\)".into()));
        }
        let mut parts = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                None => {
                    parts.push(TemplatePart::Text(rest.to_owned()));
                    break;
                }
                Some(at) if rest[at..].starts_with('}') => return Err(error("a '}' without its '{'".into())),
                Some(at) => {
                    if at > 0 {
                        parts.push(TemplatePart::Text(rest[..at].to_owned()));
                    }
                    let close = rest[at..].find('}').ok_or_else(|| error("a '{' without its '}'".into()))?;
                    let name = &rest[at + 1..at + close];
                    let field = name.parse::<NameField>().map_err(|_| error(format!("unknown field {{{name}}}")))?;
                    parts.push(TemplatePart::Field(field));
                    rest = &rest[at + close + 1..];
                }
            }
        }
        if !parts.iter().any(|part| matches!(part, TemplatePart::Field(_))) {
            return Err(error("it has no field, so every download would get the same name".into()));
        }
        if !parts.iter().any(|part| matches!(part, TemplatePart::Field(NameField::Ext))) {
            parts.push(TemplatePart::Text(".".into()));
            parts.push(TemplatePart::Field(NameField::Ext));
        }
        Ok(Self { parts })
    }
}

impl NameTemplate {
    /// The file name for `fields`: never empty, never a path, at most about 200 characters.
    pub fn render(&self, fields: &NameFields<'_>) -> String {
        let mut name = String::new();
        for part in &self.parts {
            match part {
                TemplatePart::Text(text) => name.push_str(text),
                TemplatePart::Field(field) => {
                    let value = match field {
                        NameField::Title => fields.title.to_owned(),
                        NameField::Id => fields.id.unwrap_or("NA").to_owned(),
                        NameField::Uploader => fields.uploader.unwrap_or("NA").to_owned(),
                        NameField::Date => match fields.upload_date {
                            Some(date) if date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()) => {
                                format!("{}-{}-{}", &date[..4], &date[4..6], &date[6..])
                            }
                            _ => "NA".to_owned(),
                        },
                        NameField::Height => fields.height.map_or_else(|| "NA".to_owned(), |height| height.to_string()),
                        NameField::Ext => fields.ext.to_owned(),
                        NameField::Playlist => fields.playlist.unwrap_or("NA").to_owned(),
                        NameField::PlaylistIndex => {
                            fields.playlist_index.map_or_else(|| "NA".to_owned(), |index| format!("{index:02}"))
                        }
                    };
                    // A value cannot add a directory or a character a file system refuses.
                    let value: String = value
                        .chars()
                        .map(
                            |c| if matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') { '_' } else { c },
                        )
                        .filter(|c| !c.is_control())
                        .take(150)
                        .collect();
                    name.push_str(&value);
                }
            }
        }
        crate::filename::sanitize(&name).unwrap_or_else(|| format!("media.{}", fields.ext))
    }
}

pub fn media_file_name(title: &str, id: &str, ext: &str) -> String {
    let cleaned: String = title
        .chars()
        .map(|c| if matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') { '_' } else { c })
        .collect();
    let stem = crate::filename::sanitize(&cleaned).unwrap_or_default();
    let stem: String = stem.chars().take(150).collect();
    let stem = stem.trim_end_matches(['.', ' ']);
    let stem = if stem.is_empty() { "media" } else { stem };
    format!("{stem}__{id}.{ext}")
}

/// Whether a file's first bytes are those of an audio or video container haul can describe with ffprobe (MP4 /
/// MOV / M4A, Matroska / WebM, Ogg, AVI / WAV, FLV, MPEG-TS, MP3, FLAC). A downloaded file is probed only then:
/// ffprobe is not run on whatever a server sends.
pub fn looks_like_media(head: &[u8]) -> bool {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    at(4, b"ftyp")
        || at(0, &[0x1a, 0x45, 0xdf, 0xa3])
        || at(0, b"OggS")
        || (at(0, b"RIFF") && (at(8, b"AVI ") || at(8, b"WAVE")))
        || at(0, b"FLV")
        || at(0, b"fLaC")
        || at(0, b"ID3")
        || (head.len() >= 2 && head[0] == 0xff && head[1] & 0xe0 == 0xe0)
        || (head.len() > 188 && head[0] == 0x47 && head[188] == 0x47)
}

/// The image types a thumbnail is kept as, `thumbnails/{id}.{ext}`, in the order they are looked for.
pub const THUMBNAIL_EXTENSIONS: [&str; 3] = ["jpg", "webp", "png"];

crate::named_enum! {
    /// A file made from a download on request (Cloudflare Stream's downloads).
    pub enum RenditionName as "rendition" {
        /// The download's own file.
        Default = "default",
        /// An m4a of its sound, made by ffmpeg.
        Audio = "audio",
        /// Its sound as MP3 (LAME, 192 kbit/s), for players that take nothing else.
        Mp3 = "mp3",
        /// Its sound as Opus in Ogg (128 kbit/s).
        Opus = "opus",
        /// Its sound as FLAC: lossless from what the download holds.
        Flac = "flac",
        /// Its sound as 16-bit PCM WAV.
        Wav = "wav",
    }
}

crate::named_enum! {
    /// A file format for sound alone (`--audio-format`, and the audio renditions).
    pub enum AudioFormat as "audio format" {
        /// AAC in MP4 (the stream copied when it already is AAC).
        M4a = "m4a",
        Mp3 = "mp3",
        Opus = "opus",
        Flac = "flac",
        Wav = "wav",
    }
}

impl AudioFormat {
    /// The file extension, which is also the name.
    pub fn ext(self) -> &'static str {
        self.as_str()
    }
}

impl RenditionName {
    /// The sound format a derived rendition is made in; `None` for `default`.
    pub fn audio_format(self) -> Option<AudioFormat> {
        match self {
            Self::Default => None,
            Self::Audio => Some(AudioFormat::M4a),
            Self::Mp3 => Some(AudioFormat::Mp3),
            Self::Opus => Some(AudioFormat::Opus),
            Self::Flac => Some(AudioFormat::Flac),
            Self::Wav => Some(AudioFormat::Wav),
        }
    }

    /// True for renditions made from the download (with their own file, state and progress); `default` is the
    /// download's own file and shares its progress.
    pub fn is_derived(self) -> bool {
        self != Self::Default
    }
}

crate::named_enum! {
    /// Where a rendition is in its life.
    pub enum RenditionState as "rendition state" {
        /// Asked for; waiting for the download to complete or for a worker.
        Pending = "pending",
        Active = "active",
        Ready = "ready",
        Failed = "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_formats_cookies_become_one_cookie_header_without_their_attributes() {
        let cookies = "session=s3cret; Domain=127.0.0.1; Path=/; Expires=1700000000; lang=en; Domain=.example.com; \
                       Path=/; Secure; Version=0";
        let format = Format { cookies: Some(cookies.to_owned()), ..Format::default() };
        assert_eq!(format.cookie_header().as_deref(), Some("session=s3cret; lang=en"));
        assert_eq!(Format::default().cookie_header(), None);
        let attributes_only = Format { cookies: Some("Domain=x; Path=/; Secure".to_owned()), ..Format::default() };
        assert_eq!(attributes_only.cookie_header(), None);
    }

    fn format(id: &str, height: Option<u32>, vcodec: Option<&str>, acodec: Option<&str>) -> Format {
        Format {
            format_id: id.to_owned(),
            url: Some(format!("http://h/{id}")),
            ext: Some(if vcodec == Some("none") { "m4a" } else { "mp4" }.to_owned()),
            protocol: Some("http".to_owned()),
            height,
            vcodec: vcodec.map(str::to_owned),
            acodec: acodec.map(str::to_owned),
            ..Format::default()
        }
    }

    #[test]
    fn media_is_told_by_its_first_bytes() {
        assert!(looks_like_media(b"\0\0\0\x18ftypmp42rest"));
        assert!(looks_like_media(&[0x1a, 0x45, 0xdf, 0xa3, 0x01]));
        assert!(looks_like_media(b"OggS\0\x02"));
        assert!(looks_like_media(b"RIFF\0\0\0\0WAVEfmt "));
        assert!(looks_like_media(b"ID3\x04"));
        assert!(!looks_like_media(b"<!DOCTYPE html>"));
        assert!(!looks_like_media(b"%PDF-1.7"));
        assert!(!looks_like_media(b"PK\x03\x04"));
        assert!(!looks_like_media(b""));
    }

    #[test]
    fn qualities_parse_and_print() {
        for name in Quality::NAMES {
            assert_eq!(name.parse::<Quality>().unwrap().to_string(), name);
        }
        assert_eq!("720P".parse::<Quality>(), Ok(Quality::Height(720)));
        // Any height, with or without its p, and the smallest there is.
        assert_eq!("240".parse::<Quality>(), Ok(Quality::Height(240)));
        assert_eq!("999p".parse::<Quality>(), Ok(Quality::Height(999)));
        assert_eq!(" Worst ".parse::<Quality>(), Ok(Quality::Worst));
        assert_eq!(Quality::Height(240).to_string(), "240p");
        assert_eq!(Quality::Worst.to_string(), "worst");
        for bad in ["", "hd", "p", "0p", "10001", "-720", "+720", "72 0p", "720pp", "1e3"] {
            let error = bad.parse::<Quality>().unwrap_err().to_string();
            assert!(error.contains("expected one of best, worst, audio, a height such as 720p"), "{bad}: {error}");
        }
    }

    #[test]
    fn muxed_sources_pick_by_height() {
        // Plain <video> sources: codecs unknown, so each counts as muxed.
        let formats = [format("360p", Some(360), None, None), format("720p", Some(720), None, None)];
        let pick = |quality: &str| select(&formats, quality.parse().unwrap()).unwrap().format_spec();
        assert_eq!(pick("best"), "720p");
        assert_eq!(pick("1080p"), "720p");
        assert_eq!(pick("720p"), "720p");
        assert_eq!(pick("480p"), "360p");
        assert_eq!(pick("360p"), "360p");
        assert_eq!(pick("worst"), "360p");
        assert_eq!(pick("240"), "360p", "under every height: the smallest is the closest");
        assert_eq!(select(&formats, Quality::Audio).unwrap(), Selection::ExtractAudio(formats[0].clone()));
    }

    #[test]
    fn separate_streams_are_merged() {
        let formats = [
            format("a1", None, Some("none"), Some("mp4a.40.2")),
            format("v360", Some(360), Some("avc1"), Some("none")),
            format("v720", Some(720), Some("avc1"), Some("none")),
        ];
        let pick = |quality: Quality| select(&formats, quality).unwrap();
        assert_eq!(pick(Quality::Best).format_spec(), "v720+a1");
        assert_eq!(pick(Quality::Height(480)).format_spec(), "v360+a1");
        // Taller than every format asked for the smallest: the closest there is.
        assert_eq!(pick(Quality::Height(240)).format_spec(), "v360+a1");
        assert_eq!(pick(Quality::Worst).format_spec(), "v360+a1", "the smallest video, with the best audio");
        assert_eq!(pick(Quality::Audio), Selection::Single(formats[0].clone()));
        assert_eq!(pick(Quality::Best).final_ext(Quality::Best), "mp4");
        assert_eq!(pick(Quality::Audio).final_ext(Quality::Audio), "m4a");
    }

    #[test]
    fn muxed_wins_a_tie_with_video_only() {
        let formats = [
            format("a1", None, Some("none"), Some("opus")),
            format("a2", None, Some("none"), Some("mp4a.40.2")),
            format("m720", Some(720), Some("avc1"), Some("mp4a")),
            format("v720", Some(720), Some("avc1"), Some("none")),
            format("v1080", Some(1080), Some("avc1"), Some("none")),
        ];
        assert_eq!(select(&formats, Quality::Height(720)).unwrap().format_spec(), "m720");
        assert_eq!(select(&formats, Quality::Best).unwrap().format_spec(), "v1080+a2", "m4a audio preferred");
    }

    #[test]
    fn nothing_to_pick_says_why() {
        assert!(select(&[], Quality::Best).unwrap_err().0.contains("no downloadable format"));
        let video_only = [format("v", Some(360), Some("avc1"), Some("none"))];
        assert_eq!(select(&video_only, Quality::Best).unwrap().format_spec(), "v");
        assert!(select(&video_only, Quality::Audio).unwrap_err().0.contains("no format with audio"));
    }

    #[test]
    fn media_names_are_one_safe_component() {
        let id = "550e8400-e29b-41d4-a716-446655440000";
        let cases = [
            ("My clip", "My clip"),
            ("../../etc/passwd", "_._.._etc_passwd"),
            ("a/b\\c:d", "a_b_c_d"),
            ("quote \"this\" <now>", "quote _this_ _now_"),
            ("emoji 🎬 ok", "emoji 🎬 ok"),
            ("..", "media"),
            ("", "media"),
            ("tab\tand\nnewline", "tabandnewline"),
        ];
        for (title, stem) in cases {
            let name = media_file_name(title, id, "mp4");
            assert_eq!(name, format!("{stem}__{id}.mp4"), "{title:?}");
            assert!(!name.contains('/') && !name.starts_with('.'), "{name}");
        }
        assert_eq!(media_file_name(&"x".repeat(400), id, "m4a").len(), 150 + 2 + id.len() + 4);
    }
}

#[cfg(test)]
mod template_tests {
    use super::*;

    fn fields<'a>(title: &'a str, id: Option<&'a str>) -> NameFields<'a> {
        NameFields {
            title,
            id,
            uploader: Some("Ada"),
            upload_date: Some("20261203"),
            height: Some(720),
            ext: "mp4",
            ..NameFields::default()
        }
    }

    #[test]
    fn fields_fill_in_and_ext_is_added_when_missing() {
        let template: NameTemplate = "{title} [{id}] {height}p {date} by {uploader}.{ext}".parse().unwrap();
        assert_eq!(template.render(&fields("Talk", Some("abc123"))), "Talk [abc123] 720p 2026-12-03 by Ada.mp4");
        let bare: NameTemplate = "{title}".parse().unwrap();
        assert_eq!(bare.render(&fields("Talk", None)), "Talk.mp4");
        let missing: NameTemplate = "{id}-{title}".parse().unwrap();
        let none = NameFields { uploader: None, upload_date: None, height: None, ..fields("T", None) };
        assert_eq!(missing.render(&none), "NA-T.mp4");
        let entry: NameTemplate = "{playlist}/{playlist_index} - {title}".replace('/', " ").parse().unwrap();
        let of_playlist =
            NameFields { playlist: Some("Talks: 2026"), playlist_index: Some(3), ..fields("Intro", None) };
        assert_eq!(entry.render(&of_playlist), "Talks_ 2026 03 - Intro.mp4");
        assert_eq!(entry.render(&fields("Alone", None)), "NA NA - Alone.mp4");
    }

    #[test]
    fn hostile_values_stay_one_file_name() {
        let template: NameTemplate = "{title} {uploader}".parse().unwrap();
        let hostile = NameFields { uploader: Some("../../etc"), ..fields("../../x\u{7}\nname", None) };
        let name = template.render(&hostile);
        assert!(!name.contains('/') && !name.chars().any(char::is_control), "{name:?}");
        assert!(name.ends_with(".mp4"), "{name}");
        let dots: NameTemplate = "{title}".parse().unwrap();
        let name = dots.render(&fields("..", None));
        assert!(name != ".." && name.ends_with("mp4") && !name.contains('/'), "{name:?}");
    }

    #[test]
    fn mistakes_say_what_to_write() {
        for (template, needle) in [
            ("{title", "a '{' without its '}'"),
            ("title}", "a '}' without its '{'"),
            ("{name}", "unknown field {name}"),
            ("plain", "it has no field"),
            ("dir/{title}", "one file name, not a path"),
        ] {
            let error = template.parse::<NameTemplate>().unwrap_err().to_string();
            assert!(error.contains(needle), "{template}: {error}");
            assert!(error.contains("fields: title, id"), "{error}");
        }
    }
}

#[cfg(test)]
mod preference_tests {
    use super::*;

    fn stream(id: &str, height: Option<u32>, ext: &str, vcodec: &str, acodec: &str) -> Format {
        Format {
            format_id: id.to_owned(),
            url: Some(format!("http://h/{id}")),
            ext: Some(ext.to_owned()),
            protocol: Some("http".to_owned()),
            height,
            vcodec: Some(vcodec.to_owned()),
            acodec: Some(acodec.to_owned()),
            ..Format::default()
        }
    }

    fn page() -> Vec<Format> {
        vec![
            stream("aac", None, "m4a", "none", "mp4a.40.2"),
            stream("opus", None, "webm", "none", "opus"),
            stream("h264-720", Some(720), "mp4", "avc1.64001f", "none"),
            stream("h264-360", Some(360), "mp4", "avc1.64001e", "none"),
            stream("vp9-360", Some(360), "webm", "vp9", "none"),
            stream("av1-360", Some(360), "mp4", "av01.0.04M.08", "none"),
        ]
    }

    #[test]
    fn preferences_win_within_the_quality() {
        let pick = |quality, prefer, vcodec| {
            let selection = select_preferring(&page(), quality, prefer, vcodec).unwrap();
            (selection.format_spec(), selection.final_ext_preferring(quality, prefer))
        };
        assert_eq!(pick(Quality::Best, None, None), ("h264-720+aac".into(), "mp4".into()), "as before");
        assert_eq!(pick(Quality::Best, None, Some(VideoCodec::Vp9)), ("vp9-360+aac".into(), "mp4".into()));
        assert_eq!(
            pick(Quality::Best, Some(Container::Webm), None),
            ("vp9-360+opus".into(), "webm".into()),
            "WebM video and audio, merged into WebM"
        );
        assert_eq!(pick(Quality::Best, None, Some(VideoCodec::Av1)), ("av1-360+aac".into(), "mp4".into()));
        let (spec, ext) = pick(Quality::Height(360), Some(Container::Mp4), None);
        assert!(spec != "vp9-360+aac" && spec.ends_with("+aac") && ext == "mp4", "an MP4 video: {spec}");
        // Nothing in the codec: the page's other formats, as without the preference.
        let no_av1: Vec<Format> = page().into_iter().filter(|f| !f.format_id.starts_with("av1")).collect();
        let selection = select_preferring(&no_av1, Quality::Best, None, Some(VideoCodec::Av1)).unwrap();
        assert_eq!(selection.format_spec(), "h264-720+aac");
    }
}
