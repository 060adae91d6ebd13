//! What a media download chooses beyond its quality, kept with the job so a resume makes the same file: a
//! container and a video codec to prefer, a raw yt-dlp format selector, subtitles, and whether title, artist,
//! date, chapters and cover art go into the file. Also the pure parts of carrying them out: codec families
//! from yt-dlp's codec strings, the container a merge is written in, subtitle file names, and ffmpeg's
//! metadata file.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

crate::named_enum! {
    /// A container to prefer (`--prefer`): among the formats a quality allows, those in it win.
    pub enum Container as "container" {
        Mp4 = "mp4",
        Webm = "webm",
    }
}

crate::named_enum! {
    /// A video codec to prefer (`--vcodec`): among the formats a quality allows, those in it win.
    pub enum VideoCodec as "video codec" {
        Av1 = "av1",
        Vp9 = "vp9",
        H264 = "h264",
    }
}

impl VideoCodec {
    /// The family of a codec as yt-dlp or ffprobe writes it (`avc1.64001f`, `h264`, `vp09.00.10.08`, `vp9`,
    /// `av01.0.04M.08`, `av1`); `None` for anything else or unknown.
    pub fn of(codec: &str) -> Option<Self> {
        let codec = codec.trim().to_ascii_lowercase();
        let family = codec.split('.').next().unwrap_or_default();
        match family {
            "avc1" | "avc2" | "avc3" | "avc4" | "h264" => Some(Self::H264),
            "vp9" | "vp09" => Some(Self::Vp9),
            "av01" | "av1" => Some(Self::Av1),
            _ => None,
        }
    }
}

/// The audio codec families a container decision needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioCodec {
    Aac,
    Opus,
    Vorbis,
    Mp3,
}

impl AudioCodec {
    /// From yt-dlp's or ffprobe's spelling (`mp4a.40.2`, `aac`, `opus`, `vorbis`, `mp3`, `mp4a.40.34`).
    pub fn of(codec: &str) -> Option<Self> {
        let codec = codec.trim().to_ascii_lowercase();
        match codec.as_str() {
            "mp3" | "mp4a.40.34" | "mp4a.6b" => Some(Self::Mp3),
            "opus" => Some(Self::Opus),
            "vorbis" => Some(Self::Vorbis),
            "aac" => Some(Self::Aac),
            _ if codec.starts_with("mp4a") => Some(Self::Aac),
            _ => None,
        }
    }
}

/// The container two separate streams are merged into: WebM when `--prefer webm` and both fit it, MP4 when
/// both fit it (unknown codecs are taken to, as the muxed sources of plain `<video>` pages are H.264 and AAC;
/// VP8, Theora and Vorbis do not), else WebM when both fit that, else Matroska, which takes anything.
pub fn merge_ext(video: Option<&str>, audio: Option<&str>, prefer: Option<Container>) -> &'static str {
    let family = |codec: Option<&str>| {
        codec.filter(|codec| *codec != "none").map(|codec| codec.trim().to_ascii_lowercase()).unwrap_or_default()
    };
    let (video, audio) = (family(video), family(audio));
    let webm_video =
        matches!(VideoCodec::of(&video), Some(VideoCodec::Vp9 | VideoCodec::Av1)) || video.starts_with("vp8");
    let webm_audio = matches!(AudioCodec::of(&audio), Some(AudioCodec::Opus | AudioCodec::Vorbis));
    if prefer == Some(Container::Webm) && webm_video && webm_audio {
        return "webm";
    }
    let mp4_video = !(video.starts_with("vp8") || video.starts_with("theora"));
    let mp4_audio = AudioCodec::of(&audio) != Some(AudioCodec::Vorbis);
    if mp4_video && mp4_audio {
        "mp4"
    } else if webm_video && webm_audio {
        "webm"
    } else {
        "mkv"
    }
}

/// A raw yt-dlp format selector (`--format 'bv*[vcodec^=av01]+ba/b'`) as kept: one line of printable text, at
/// most [`FormatSelector::MAX`] characters. Its meaning is yt-dlp's: haul asks yt-dlp whether it parses and
/// which formats it picks, and never reads it itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FormatSelector(String);

impl FormatSelector {
    pub const MAX: usize = 500;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a format selector was refused before yt-dlp saw it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("format {given:?}: {problem}")]
pub struct SelectorError {
    pub given: String,
    pub problem: &'static str,
}

impl FromStr for FormatSelector {
    type Err = SelectorError;

    fn from_str(text: &str) -> Result<Self, SelectorError> {
        let error = |problem| SelectorError { given: text.chars().take(80).collect(), problem };
        let text = text.trim();
        if text.is_empty() {
            return Err(error("empty; leave it out for the quality's choice"));
        }
        if text.chars().count() > Self::MAX {
            return Err(error("longer than 500 characters"));
        }
        if text.chars().any(char::is_control) {
            return Err(error("control characters are not part of a selector"));
        }
        if text == "-" {
            return Err(error("'-' asks yt-dlp to prompt for a choice, which a download here cannot answer"));
        }
        if has_top_level_comma(text) {
            return Err(error(
                "',' asks for several downloads; haul makes one file per download (join formats with '+')",
            ));
        }
        Ok(Self(text.to_owned()))
    }
}

/// A `,` outside `[...]` filters and quotes: yt-dlp's "download each of these".
fn has_top_level_comma(text: &str) -> bool {
    let (mut depth, mut quote) = (0usize, None);
    for c in text.chars() {
        match (quote, c) {
            (Some(open), c) if c == open => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => depth = depth.saturating_sub(1),
            (None, ',') if depth == 0 => return true,
            _ => {}
        }
    }
    false
}

impl TryFrom<String> for FormatSelector {
    type Error = SelectorError;
    fn try_from(text: String) -> Result<Self, SelectorError> {
        text.parse()
    }
}

impl From<FormatSelector> for String {
    fn from(selector: FormatSelector) -> Self {
        selector.0
    }
}

impl fmt::Display for FormatSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A subtitle language asked for (`en`, `pt-BR`, `zh-Hans`) or `all`: letters, digits, `-` and `_`, at most
/// 35 characters, so it is a safe part of a file name as it is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SubtitleLang(String);

impl SubtitleLang {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Every language the page has.
    pub fn is_all(&self) -> bool {
        self.0 == "all"
    }

    /// Whether a track the page calls `lang` is one this asks for (`all`, or the same code in any case).
    pub fn matches(&self, lang: &str) -> bool {
        self.is_all() || self.0.eq_ignore_ascii_case(lang)
    }
}

/// Why a subtitle language was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "subtitle language {0:?} is not a language code; write codes such as en, de, pt-BR (letters, digits, - and _), or all"
)]
pub struct BadLang(pub String);

impl FromStr for SubtitleLang {
    type Err = BadLang;

    fn from_str(text: &str) -> Result<Self, BadLang> {
        let trimmed = text.trim();
        let valid = (1..=35).contains(&trimmed.len())
            && trimmed.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !trimmed.starts_with('-');
        if valid { Ok(Self(trimmed.to_owned())) } else { Err(BadLang(text.to_owned())) }
    }
}

impl TryFrom<String> for SubtitleLang {
    type Error = BadLang;
    fn try_from(text: String) -> Result<Self, BadLang> {
        text.parse()
    }
}

impl From<SubtitleLang> for String {
    fn from(lang: SubtitleLang) -> Self {
        lang.0
    }
}

/// A comma-separated list of languages (`en,de`), each checked; duplicates dropped, order kept.
pub fn parse_langs(text: &str) -> Result<Vec<SubtitleLang>, BadLang> {
    let mut langs: Vec<SubtitleLang> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
        let lang: SubtitleLang = part.parse()?;
        if !langs.contains(&lang) {
            langs.push(lang);
        }
    }
    Ok(langs)
}

/// How many subtitle languages one download may ask for.
pub const MAX_SUBTITLE_LANGS: usize = 20;

/// What a media download chooses beyond its quality. Stored with the job as JSON; every field has its
/// default when absent, so an older row or a client that sends none of them gets today's behaviour.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaChoice {
    /// A container to prefer among the formats the quality allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefer: Option<Container>,
    /// A video codec to prefer among the formats the quality allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcodec: Option<VideoCodec>,
    /// A yt-dlp format selector, which then decides alone (no quality, container or codec with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<FormatSelector>,
    /// Subtitle languages to save beside the file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subtitles: Vec<SubtitleLang>,
    /// Automatic captions count as subtitles of their language when the page has no subtitles in it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_subtitles: bool,
    /// The subtitles also go into the file, as subtitle streams.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub embed_subtitles: bool,
    /// Title, artist (the uploader), date, chapters and the thumbnail as cover art go into the file. Always
    /// written out: its default differs between a server's API (on) and this type (off).
    #[serde(default)]
    pub embed_metadata: bool,
}

impl MediaChoice {
    /// Whether nothing beyond the defaults is chosen (stored as no value).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Whether any subtitles are wanted.
    pub fn wants_subtitles(&self) -> bool {
        !self.subtitles.is_empty()
    }
}

/// A subtitle file a download saved: its language as the page named it (made safe) and its path relative to
/// the downloads directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtitleFile {
    pub lang: String,
    pub path: String,
}

/// A page's name for a subtitle language as a safe part of a file name: letters, digits, `-` and `_` kept,
/// anything else `_`, at most 35 characters, `und` when nothing is left. Page-given names (`../../x`, control
/// characters) cannot add a directory or hide a character.
pub fn safe_lang(lang: &str) -> String {
    let cleaned: String = lang
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .take(35)
        .collect();
    let cleaned = cleaned.trim_matches(|c| c == '_' || c == '-').to_owned();
    if cleaned.is_empty() { "und".to_owned() } else { cleaned }
}

/// The subtitle file beside a media file named `media_name`: `{stem}.{lang}.{ext}`, one safe path component.
pub fn subtitle_file_name(media_name: &str, lang: &str, ext: &str) -> String {
    let stem = media_name.rsplit_once('.').map_or(media_name, |(stem, _)| stem);
    let ext = if ext.eq_ignore_ascii_case("srt") { "srt" } else { "vtt" };
    let name = format!("{stem}.{}.{ext}", safe_lang(lang));
    crate::filename::sanitize(&name).unwrap_or_else(|| format!("subtitles.{}.{ext}", safe_lang(lang)))
}

/// The ISO 639-2 code a container's language tag takes (MP4 keeps three letters, and drops anything else) for
/// a page's language (`en`, `en-US`, `deu`): the two-letter codes of widely used languages mapped, a
/// three-letter one kept; `None` when unknown.
pub fn iso639_2(lang: &str) -> Option<&'static str> {
    const CODES: [(&str, &str); 24] = [
        ("ar", "ara"),
        ("cs", "ces"),
        ("da", "dan"),
        ("de", "deu"),
        ("el", "ell"),
        ("en", "eng"),
        ("es", "spa"),
        ("fi", "fin"),
        ("fr", "fra"),
        ("he", "heb"),
        ("hi", "hin"),
        ("hu", "hun"),
        ("it", "ita"),
        ("ja", "jpn"),
        ("ko", "kor"),
        ("nl", "nld"),
        ("no", "nor"),
        ("pl", "pol"),
        ("pt", "por"),
        ("ru", "rus"),
        ("sv", "swe"),
        ("tr", "tur"),
        ("uk", "ukr"),
        ("zh", "zho"),
    ];
    let base = lang.split(['-', '_']).next().unwrap_or_default().to_ascii_lowercase();
    CODES.iter().find(|(two, three)| base == *two || base == *three).map(|(_, three)| *three)
}

/// One chapter, in seconds.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Chapter {
    #[serde(default)]
    pub start_time: Option<f64>,
    #[serde(default)]
    pub end_time: Option<f64>,
    #[serde(default)]
    pub title: Option<String>,
}

/// What goes into a file's metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileTags<'a> {
    pub title: Option<&'a str>,
    /// The uploader.
    pub artist: Option<&'a str>,
    /// `YYYYMMDD`, as yt-dlp gives it; written `YYYY-MM-DD`.
    pub upload_date: Option<&'a str>,
    /// The page's address.
    pub comment: Option<&'a str>,
    pub chapters: &'a [Chapter],
}

/// ffmpeg's metadata file (`;FFMETADATA1`) for `tags`: the global tags, then each chapter with a start, an end
/// (the next chapter's start, or `duration`) and a title. Chapters without a usable start, or that end before
/// they start, are left out. Values are escaped as the format asks (`=`, `;`, `#`, `\` and line breaks).
pub fn ffmetadata(tags: &FileTags<'_>, duration: Option<f64>) -> String {
    let mut out = String::from(";FFMETADATA1\n");
    let date = tags.upload_date.filter(|date| date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()));
    let date = date.map(|date| format!("{}-{}-{}", &date[..4], &date[4..6], &date[6..]));
    for (key, value) in
        [("title", tags.title), ("artist", tags.artist), ("date", date.as_deref()), ("comment", tags.comment)]
    {
        if let Some(value) = value.filter(|value| !value.trim().is_empty()) {
            out.push_str(&format!("{key}={}\n", escape_metadata(value)));
        }
    }
    let starts: Vec<Option<f64>> =
        tags.chapters.iter().map(|chapter| chapter.start_time.filter(|t| t.is_finite() && *t >= 0.0)).collect();
    for (index, chapter) in tags.chapters.iter().enumerate() {
        let Some(start) = starts[index] else { continue };
        let end = chapter
            .end_time
            .filter(|t| t.is_finite())
            .or_else(|| starts.get(index + 1).copied().flatten())
            .or(duration)
            .filter(|end| *end > start);
        let Some(end) = end else { continue };
        out.push_str("[CHAPTER]\nTIMEBASE=1/1000\n");
        out.push_str(&format!("START={}\nEND={}\n", (start * 1000.0).round() as u64, (end * 1000.0).round() as u64));
        let title = chapter.title.clone().unwrap_or_else(|| format!("Chapter {}", index + 1));
        out.push_str(&format!("title={}\n", escape_metadata(&title)));
    }
    out
}

fn escape_metadata(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '=' | ';' | '#' | '\\' | '\n' => {
                out.push('\\');
                out.push(c);
            }
            '\r' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Whether a container takes a cover picture, and if not, why.
pub fn cover_art_support(ext: &str) -> Result<(), &'static str> {
    match ext {
        "mp4" | "m4a" | "mov" | "mp3" | "flac" | "mkv" => Ok(()),
        "webm" => Err("WebM has no cover art (its muxer takes no picture streams or attachments)"),
        "opus" | "ogg" => Err("Ogg keeps cover art only as a base64 tag, which ffmpeg does not write"),
        "wav" => Err("WAV has no cover art"),
        _ => Err("this container has no cover art haul knows how to write"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_by_family() {
        for (codec, family) in [
            ("avc1.64001f", Some(VideoCodec::H264)),
            ("h264", Some(VideoCodec::H264)),
            ("vp9", Some(VideoCodec::Vp9)),
            ("vp09.00.10.08", Some(VideoCodec::Vp9)),
            ("av01.0.04M.08", Some(VideoCodec::Av1)),
            ("AV1", Some(VideoCodec::Av1)),
            ("hev1", None),
            ("none", None),
        ] {
            assert_eq!(VideoCodec::of(codec), family, "{codec}");
        }
        assert_eq!(AudioCodec::of("mp4a.40.2"), Some(AudioCodec::Aac));
        assert_eq!(AudioCodec::of("opus"), Some(AudioCodec::Opus));
    }

    #[test]
    fn merges_go_where_both_streams_fit() {
        assert_eq!(merge_ext(Some("avc1.64001f"), Some("mp4a.40.2"), None), "mp4");
        assert_eq!(merge_ext(None, None, None), "mp4", "unknown codecs: as before");
        assert_eq!(merge_ext(Some("vp9"), Some("opus"), Some(Container::Webm)), "webm");
        assert_eq!(merge_ext(Some("vp9"), Some("opus"), None), "mp4", "MP4 holds VP9 and Opus");
        assert_eq!(merge_ext(Some("vp9"), Some("vorbis"), None), "webm");
        assert_eq!(merge_ext(Some("avc1"), Some("opus"), Some(Container::Webm)), "mp4", "H.264 is not WebM's");
        assert_eq!(merge_ext(Some("avc1"), Some("vorbis"), None), "mkv");
        assert_eq!(merge_ext(Some("vp8"), Some("vorbis"), None), "webm");
        assert_eq!(merge_ext(Some("hev1.1.6.L93.B0"), Some("ec-3"), None), "mp4", "HEVC and E-AC-3 go into MP4");
    }

    #[test]
    fn selectors_are_one_line_and_one_download() {
        for good in
            ["bv*+ba/b", "bv*[vcodec^=av01]+ba", "best[height<=720][ext=mp4]", "137+140", "b[format_note*='a,b']"]
        {
            assert_eq!(good.parse::<FormatSelector>().unwrap().as_str(), good);
        }
        for (bad, why) in
            [("", "empty"), ("-", "prompt"), ("137,140", "several downloads"), ("b\nrm", "control characters")]
        {
            let error = bad.parse::<FormatSelector>().unwrap_err().to_string();
            assert!(error.contains(why), "{bad:?}: {error}");
        }
        assert!("b".repeat(501).parse::<FormatSelector>().is_err());
    }

    #[test]
    fn languages_are_codes() {
        assert_eq!(parse_langs("en, de,en,pt-BR").unwrap().len(), 3);
        assert!(parse_langs("all").unwrap()[0].is_all());
        for bad in ["../../x", "en/../../x", "e\u{7}n", "-en", "a b", &"x".repeat(36)] {
            let error = parse_langs(bad).unwrap_err().to_string();
            assert!(error.contains("not a language code"), "{bad:?}: {error}");
        }
        assert!("EN".parse::<SubtitleLang>().unwrap().matches("en"));
    }

    #[test]
    fn subtitle_names_from_the_page_stay_one_component() {
        assert_eq!(subtitle_file_name("Talk.mp4", "en", "vtt"), "Talk.en.vtt");
        assert_eq!(subtitle_file_name("Talk.mp4", "pt-BR", "srt"), "Talk.pt-BR.srt");
        for hostile in ["../../x", "..", "/etc/passwd", "a\u{0}b\u{1b}[31m", "\u{202e}gpj", ""] {
            let name = subtitle_file_name("Talk.mp4", hostile, "../vtt");
            assert!(!name.contains('/') && !name.chars().any(char::is_control), "{hostile:?}: {name:?}");
            assert!(name.starts_with("Talk.") && name.ends_with(".vtt"), "{hostile:?}: {name:?}");
        }
        assert_eq!(safe_lang("../../x"), "x");
        assert_eq!(safe_lang(".."), "und");
    }

    #[test]
    fn languages_map_to_three_letters() {
        assert_eq!(iso639_2("en"), Some("eng"));
        assert_eq!(iso639_2("pt-BR"), Some("por"));
        assert_eq!(iso639_2("deu"), Some("deu"));
        assert_eq!(iso639_2("x"), None);
    }

    #[test]
    fn metadata_file_escapes_and_times_chapters() {
        let chapters = [
            Chapter { start_time: Some(0.0), end_time: None, title: Some("Intro; =#\\".into()) },
            Chapter { start_time: Some(1.5), end_time: None, title: None },
            Chapter { start_time: None, end_time: Some(3.0), title: Some("broken".into()) },
        ];
        let tags = FileTags {
            title: Some("A\nB"),
            artist: Some("Ada"),
            upload_date: Some("20261130"),
            comment: None,
            chapters: &chapters,
        };
        let text = ffmetadata(&tags, Some(2.0));
        assert_eq!(
            text,
            ";FFMETADATA1\ntitle=A\\\nB\nartist=Ada\ndate=2026-11-30\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1500\n\
             title=Intro\\; \\=\\#\\\\\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=1500\nEND=2000\ntitle=Chapter 2\n"
        );
        let no_date = FileTags { upload_date: Some("2026"), ..FileTags::default() };
        assert_eq!(ffmetadata(&no_date, None), ";FFMETADATA1\n");
    }

    #[test]
    fn choices_default_to_nothing_stored() {
        assert!(MediaChoice::default().is_default());
        let choice: MediaChoice = serde_json::from_str(r#"{"prefer":"webm","subtitles":["en"]}"#).unwrap();
        assert_eq!(choice.prefer, Some(Container::Webm));
        assert_eq!(
            serde_json::to_string(&choice).unwrap(),
            r#"{"prefer":"webm","subtitles":["en"],"embed_metadata":false}"#
        );
        assert!(serde_json::from_str::<MediaChoice>(r#"{"subtitles":["../x"]}"#).is_err());
    }
}
