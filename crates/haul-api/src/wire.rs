//! The native API's JSON: request bodies, and the views it sends, converted from engine types here.
//!
//! **API boundary**: this module is the one wire contract of `/v1`. The server serialises these types and
//! `haul`'s client commands deserialise the same ones, so a field renamed on one side fails to compile on the
//! other. Keeping our own types rather than the engine's means the wire format changes only when this file
//! does, and gives the OpenAPI document a schema for each.

use std::collections::BTreeMap;

use haul_core::job::{DownloadId, JobKind, JobState};
use haul_core::media::Quality;
use haul_core::media_choice::{Container, FormatSelector, MediaChoice, VideoCodec};
use haul_engine::service::{AddRequest, DownloadView, Event, EventKind, NodeView, PatchRequest, StatsView};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;

/// One download, as the API shows it. Times are unix milliseconds.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Download {
    #[schema(value_type = String, format = Uuid)]
    pub id: DownloadId,
    pub url: String,
    pub mirrors: Vec<String>,
    /// What fetches it: `file` (haul's HTTP engine), `media` (a page read by yt-dlp), `auto` until its first
    /// run decides, or `playlist` (a page yt-dlp read as a playlist or channel: the parent of one download per
    /// entry, with their state and bytes as its own).
    #[schema(value_type = String, example = "file")]
    pub kind: JobKind,
    /// A display name given by the client, or a media page's title.
    pub title: Option<String>,
    /// The quality asked for: `best`, a height (`720p`), `worst`, or `audio`; plain files are fetched as they are.
    #[schema(value_type = String, example = "best")]
    pub quality: Quality,
    /// Media: seconds.
    pub duration: Option<f64>,
    /// Media: the video's size in pixels.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Media: the formats chosen, in yt-dlp's spelling (`v720+a1`).
    pub format: Option<String>,
    /// Whether `GET /v1/downloads/{id}/thumbnail` has an image.
    pub has_thumbnail: bool,
    #[schema(value_type = StateName)]
    pub state: JobState,
    pub priority: i32,
    pub filename: Option<String>,
    /// Relative to the server's downloads directory.
    pub directory: Option<String>,
    /// The file's path relative to the server's downloads directory, once a name is chosen.
    pub path: Option<String>,
    pub size: Option<u64>,
    pub bytes_done: u64,
    /// Bytes per second; zero unless active.
    pub speed: u64,
    pub eta_secs: Option<u64>,
    /// Connections open now; zero unless active.
    pub connections: u32,
    /// Why it failed, when it did.
    pub error: Option<String>,
    pub checksum: Option<String>,
    /// Extra request headers sent to the origin.
    pub headers: BTreeMap<String, String>,
    pub connections_limit: Option<u32>,
    /// Bytes per second.
    pub speed_limit: Option<u64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The node running it while active; once completed, the node whose downloads directory holds the file
    /// (several nodes on one database; see `GET /v1/nodes`).
    #[serde(default)]
    pub node: Option<String>,
    /// The playlist this download is an entry of (`GET /v1/downloads/{parent}`), and its position there from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub parent: Option<DownloadId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playlist_index: Option<u32>,
    /// A playlist's entries taken together (kind `playlist`); list them with `GET /v1/downloads?parent={id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playlist: Option<Playlist>,
    /// How a media file is named, as the client asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_template: Option<String>,
    /// Media: what the download chose beyond its quality (fields at their default left out, but for
    /// `embed_metadata`, which is always there).
    #[serde(default)]
    #[schema(value_type = MediaOptions)]
    pub media_options: MediaChoice,
    /// Media: the subtitle files saved beside the file, each served at its `url`.
    #[serde(default)]
    pub subtitle_files: Vec<SubtitleFileView>,
}

/// A playlist's entries taken together.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Playlist {
    /// Entries that became downloads.
    pub entries: u32,
    pub completed: u32,
    pub failed: u32,
    pub cancelled: u32,
    /// The entries asked for (`1-5,8`); every one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<String>,
    /// Entries left out because this account's download archive holds them (add with `force` to fetch them).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub skipped: u32,
}

/// A media download's choices as `GET` shows them; only for the OpenAPI document (the fields of the same
/// names that `POST /v1/downloads` takes).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MediaOptions {
    #[schema(value_type = Option<String>, example = "webm")]
    prefer: Option<String>,
    #[schema(value_type = Option<String>, example = "vp9")]
    vcodec: Option<String>,
    #[schema(value_type = Option<String>, example = "bv*+ba/b")]
    format: Option<String>,
    subtitles: Option<Vec<String>>,
    auto_subtitles: Option<bool>,
    embed_subtitles: Option<bool>,
    embed_metadata: Option<bool>,
}

/// A subtitle file a media download saved.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SubtitleFileView {
    /// The language, as the page named it (made safe for a file name).
    #[schema(example = "en")]
    pub lang: String,
    /// The file's name beside the download's (`{name}.{lang}.vtt`).
    pub name: String,
    /// Where it is served: `/v1/downloads/{id}/subtitles/{lang}`.
    pub url: String,
}

impl From<DownloadView> for Download {
    fn from(view: DownloadView) -> Self {
        Self {
            id: view.id,
            url: view.url,
            mirrors: view.mirrors,
            kind: view.kind,
            title: view.title,
            quality: view.quality,
            duration: view.duration,
            width: view.width,
            height: view.height,
            format: view.format,
            has_thumbnail: view.thumbnail.is_some(),
            state: view.state,
            priority: view.priority,
            filename: view.filename,
            directory: view.directory,
            path: view.path,
            size: view.size,
            bytes_done: view.bytes_done,
            speed: view.speed,
            eta_secs: view.eta_secs,
            connections: view.connections,
            error: view.error,
            checksum: view.checksum,
            headers: view.headers.into_iter().collect(),
            connections_limit: view.connections_limit,
            speed_limit: view.speed_limit,
            created_at: view.created_at,
            started_at: view.started_at,
            finished_at: view.finished_at,
            node: view.node,
            parent: view.parent,
            playlist_index: view.playlist_index,
            name_template: view.name_template,
            playlist: view.playlist.map(|playlist| Playlist {
                entries: playlist.entries,
                completed: playlist.completed,
                failed: playlist.failed,
                cancelled: playlist.cancelled,
                items: playlist.items,
                skipped: playlist.skipped,
            }),
            subtitle_files: view
                .subtitles
                .iter()
                .map(|file| SubtitleFileView {
                    lang: file.lang.clone(),
                    name: file.path.rsplit('/').next().unwrap_or_default().to_owned(),
                    url: format!("/v1/downloads/{}/subtitles/{}", view.id, file.lang),
                })
                .collect(),
            media_options: view.media,
        }
    }
}

/// The states of a download (see STATE.md); only for the OpenAPI document.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum StateName {
    Queued,
    Active,
    Paused,
    Completed,
    Failed,
    Cancelled,
}

/// The orders a list can take; only for the OpenAPI document.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum OrderName {
    Newest,
    Oldest,
}

/// The kinds of API key; only for the OpenAPI document.
#[derive(ToSchema)]
#[allow(dead_code)]
pub enum KeyKindName {
    #[schema(rename = "bearer")]
    Bearer,
    #[schema(rename = "videodb")]
    Videodb,
    #[schema(rename = "cloudflare-global")]
    CloudflareGlobal,
}

/// What fetches a download; only for the OpenAPI document.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum KindName {
    Auto,
    File,
    Media,
    Playlist,
}

/// The kinds of event; only for the OpenAPI document.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum EventKindName {
    Added,
    Started,
    Progress,
    Paused,
    Resumed,
    Retried,
    Queued,
    Completed,
    Failed,
    Cancelled,
    Removed,
}

/// `POST /v1/downloads`. Fields left out take their defaults (and are not sent by haul's client).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDownload {
    /// http or https.
    #[schema(format = "uri", min_length = 1, max_length = 8192, example = "https://example.com/big.iso")]
    pub url: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = mirrors_schema)]
    pub mirrors: Vec<String>,
    /// The file name to save as; reduced to one safe path component (its last one, without control characters
    /// or a leading dot), which must have something left. Default: from the server or the URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^(.*[/\\])?[^/\\]*[^\s./\\\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069][^/\\]*$")]
    pub filename: Option<String>,
    /// A directory under the downloads directory: relative, `/`-separated, each part a plain name (no `..`, no
    /// leading dot, no control or `<>:"|?*\` characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(
        pattern = r#"^(\./)*([^/.\s<>:"|?*\\\x00-\x1f\x7f-\x9f]([^/<>:"|?*\\\x00-\x1f\x7f-\x9f]*[^/.\s<>:"|?*\\\x00-\x1f\x7f-\x9f])?(/(\./)*|$))*$"#
    )]
    pub directory: Option<String>,
    /// `sha256=HEX`, `sha1=HEX` or `md5=HEX` (the name in any case, `SHA-256` too).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(
        pattern = r"^\s*(([Ss][Hh][Aa]-?256)\s*=\s*[0-9A-Fa-f]{64}|([Ss][Hh][Aa]-?1)\s*=\s*[0-9A-Fa-f]{40}|([Mm][Dd]-?5)\s*=\s*[0-9A-Fa-f]{32})\s*$"
    )]
    pub checksum: Option<String>,
    /// Extra request headers, name to value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(schema_with = headers_schema)]
    pub headers: BTreeMap<String, String>,
    /// Most connections to open; default: adaptive.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "optional_integer")]
    #[schema(minimum = 1, maximum = 256)]
    pub connections: Option<u32>,
    /// Bytes per second: an integer, or text such as `"5M"` or `"1.5 MiB"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = rate_schema)]
    pub speed_limit: Option<Rate>,
    /// Higher runs first.
    #[serde(default, skip_serializing_if = "is_zero", deserialize_with = "integer")]
    #[schema(minimum = -1000, maximum = 1000)]
    pub priority: i32,
    /// Create it paused: nothing is fetched until it is resumed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// A display name, kept with the download; the file name is chosen separately.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1000)]
    pub title: Option<String>,
    /// `best` (default), a height such as `720p` or `240` (the best at or under it, else the smallest there is),
    /// `worst` (the smallest video), or `audio` (the sound alone, as m4a).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^(best|worst|audio|[1-9][0-9]{0,4}p?)$", example = "720p")]
    pub quality: Option<String>,
    /// `auto` (default: a web page yt-dlp can read is media, anything else a file), `file` or `media`.
    /// (`playlist` is haul's to give, once it has read a page that is one.)
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<KindName>)]
    pub kind: Option<String>,
    /// Should the page be a playlist or a channel: which entries become downloads, by position from 1
    /// (`1-5,8,12-`); every one (up to the server's `--max-playlist-entries`) when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(
        pattern = r"^\s*[1-9][0-9]*(\s*-\s*([1-9][0-9]*)?)?(\s*,\s*[1-9][0-9]*(\s*-\s*([1-9][0-9]*)?)?)*\s*$",
        example = "1-5,8"
    )]
    pub playlist_items: Option<String>,
    /// How a media file is named: text with fields in braces, `{title} [{id}].{ext}` (title, id, uploader,
    /// date, height, ext, playlist, playlist_index), each value made safe and the whole one file name; a name
    /// another download has is numbered (`name (1).mp4`). Default: `{title}__{download id}.{ext}`. A
    /// playlist's entries take their playlist's.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1000, example = "{playlist_index} - {title}.{ext}")]
    pub name_template: Option<String>,
    /// Media: a container to prefer, `mp4` or `webm`: among the formats the quality allows, those in it win
    /// (WebM video and audio are then merged into WebM).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^(mp4|webm)$", example = "webm")]
    pub prefer: Option<String>,
    /// Media: a video codec to prefer, `av1`, `vp9` or `h264`: among the formats the quality allows, those in it
    /// win; the page's others when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^(av1|vp9|h264)$", example = "vp9")]
    pub vcodec: Option<String>,
    /// Media: a yt-dlp format selector (`bv*[vcodec^=av01]+ba/b`, `137+140`), which then decides alone (no
    /// `quality`, `prefer` or `vcodec` with it). One that yt-dlp cannot parse is refused with 400 and yt-dlp's
    /// message; one the page has nothing for fails the download with yt-dlp's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 500, example = "bv*[height<=720]+ba/b")]
    pub format: Option<String>,
    /// Media: subtitle languages to save beside the file as `{name}.{lang}.vtt` (or `.srt`), e.g. `["en", "de"]`;
    /// `["all"]` for every language the page has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 20, example = json!(["en"]))]
    pub subtitles: Vec<String>,
    /// Media: automatic captions count for a language the page has no subtitles in.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_subtitles: bool,
    /// Media: the subtitles also go into the file as subtitle streams (MP4, WebM, Matroska).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub embed_subtitles: bool,
    /// Media: title, artist (the uploader), date, chapters and the thumbnail as cover art go into the file where
    /// its container takes them (cover art: MP4, M4A, MP3, FLAC, Matroska; not WebM or Ogg). Default `true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embed_metadata: Option<bool>,
    /// Download it even if the account's archive says it was downloaded already (the same video, or the same
    /// version of the same file). Without it, such an add is a 409 `already_downloaded` naming the earlier
    /// download, or, when only reading the page shows it is the same video, a download that fails with that
    /// message before fetching anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

fn is_zero(value: &i32) -> bool {
    *value == 0
}

fn is_zero_u32(value: &u32) -> bool {
    *value == 0
}

/// An integer as JSON writes it, `403` or `403.0` (JSON Schema counts both as integers).
fn integer<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    let number = serde_json::Number::deserialize(deserializer)?;
    let whole =
        number.as_i64().or_else(|| number.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64));
    whole
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| serde::de::Error::custom(format!("{number} is not a whole number in range")))
}

pub(crate) fn optional_integer<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else { return Ok(None) };
    integer(number).map(Some).map_err(serde::de::Error::custom)
}

/// `headers`: names as HTTP defines them (a token), values as text.
fn headers_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, SchemaType, Type};
    let text = ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .max_length(Some(8192))
        .pattern(Some("^[^\\x00-\\x08\\x0a-\\x1f\\x7f]*$"));
    let name = ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .max_length(Some(256))
        .pattern(Some("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"));
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Object))
        .additional_properties(Some(AdditionalProperties::RefOr(text.into())))
        .property_names(Some(name))
        .build()
}

/// A rate as a number of bytes per second or as text for people.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Rate {
    BytesPerSecond(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for Rate {
    /// A whole number (`5000000`, or `5000000.0` as some JSON writers put it) or text (`"5M"`).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Number(number) => {
                integer(number).map(Rate::BytesPerSecond).map_err(serde::de::Error::custom)
            }
            serde_json::Value::String(text) => Ok(Rate::Text(text)),
            other => Err(serde::de::Error::custom(format!("a rate is a number or text such as \"5M\", not {other}"))),
        }
    }
}

/// `mirrors`: at most 16 http(s) URLs.
fn mirrors_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    let url = ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .format(Some(utoipa::openapi::SchemaFormat::Custom("uri".to_owned())))
        .min_length(Some(1))
        .max_length(Some(8192));
    ArrayBuilder::new().items(url).max_items(Some(16)).build()
}

/// `speed_limit` as the document states it: a positive integer, or a number with an optional K, M, G or T
/// (powers of 1024) and an optional `B`, `iB` or `/s`.
fn rate_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};
    Schema::OneOf(
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Null)))
            .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Integer)).minimum(Some(1)))
            .item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::String))
                    .pattern(Some("^([1-9][0-9]*(\\.[0-9]+)?|0\\.[0-9]*[1-9][0-9]*)([KMGT](i?B)?|B)?(/s)?$")),
            )
            .build(),
    )
}

impl Rate {
    /// Bytes per second, above 0; `field` names it in the error.
    pub fn checked(self, field: &str) -> Result<u64, ApiError> {
        match self {
            Rate::BytesPerSecond(0) => {
                Err(ApiError::bad_request(format!("{field} must be above 0; leave it out (or send null) for no limit")))
            }
            Rate::BytesPerSecond(rate) => Ok(rate),
            Rate::Text(text) => {
                haul_core::units::parse_rate(&text).map_err(|error| ApiError::bad_request(format!("{field}: {error}")))
            }
        }
    }
}

impl CreateDownload {
    pub fn into_request(self) -> Result<AddRequest, ApiError> {
        let speed_limit = self.speed_limit.map(|rate| rate.checked("speed_limit")).transpose()?;
        Ok(AddRequest {
            url: self.url,
            mirrors: self.mirrors,
            filename: self.filename,
            directory: self.directory,
            checksum: self.checksum,
            headers: self.headers.into_iter().collect(),
            connections: self.connections,
            speed_limit,
            priority: self.priority,
            start_paused: self.paused,
            title: self.title,
            quality: parse_name::<Quality>(self.quality.as_deref())?,
            kind: parse_name::<JobKind>(self.kind.as_deref())?,
            labels: Default::default(),
            name_with_id: false,
            playlist_items: self.playlist_items,
            name_template: self.name_template,
            media: MediaChoice {
                prefer: parse_name::<Container>(self.prefer.as_deref())?,
                vcodec: parse_name::<VideoCodec>(self.vcodec.as_deref())?,
                format: self
                    .format
                    .as_deref()
                    .map(str::parse::<FormatSelector>)
                    .transpose()
                    .map_err(|error| ApiError::bad_request(error.to_string()))?,
                subtitles: self
                    .subtitles
                    .iter()
                    .map(|lang| lang.parse())
                    .collect::<Result<_, haul_core::media_choice::BadLang>>()
                    .map_err(|error| ApiError::bad_request(error.to_string()))?,
                auto_subtitles: self.auto_subtitles,
                embed_subtitles: self.embed_subtitles,
                // The server embeds by default: a file kept in a library should say what it is.
                embed_metadata: self.embed_metadata.unwrap_or(true),
            },
            check_archive: !self.force,
        })
    }
}

/// A name from a request (`quality`, `kind`), trimmed and in any case; absent or empty is the default.
pub fn parse_name<T>(text: Option<&str>) -> Result<Option<T>, ApiError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => {
            text.to_ascii_lowercase().parse().map(Some).map_err(|error| ApiError::bad_request(format!("{error}")))
        }
    }
}

/// `PATCH /v1/downloads/{id}`: fields left out are unchanged.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchDownload {
    /// Only while paused or failed: a running fetch would mix two origins' bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = "uri", min_length = 1, max_length = 8192)]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "optional_integer")]
    #[schema(minimum = -1000, maximum = 1000)]
    pub priority: Option<i32>,
    /// A new speed limit (bytes per second: an integer, or text such as `"5M"`), or `null` to lift it. A running
    /// download takes it up within a second.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    #[schema(schema_with = rate_schema)]
    pub speed_limit: Option<Option<Rate>>,
}

impl PatchDownload {
    pub fn into_request(self) -> Result<PatchRequest, ApiError> {
        let speed_limit =
            self.speed_limit.map(|rate| rate.map(|rate| rate.checked("speed_limit")).transpose()).transpose()?;
        Ok(PatchRequest { url: self.url, priority: self.priority, speed_limit, ..PatchRequest::default() })
    }
}

/// A field that may be `null`: `Some(None)` when it is, `None` (by `default`) when it is left out.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `GET /v1/downloads`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DownloadList {
    /// Newest first.
    pub downloads: Vec<Download>,
    /// How many of the caller's downloads match the state filter, ignoring `limit` and `offset`, for paging.
    pub total: u64,
    /// The path of the next page (`/v1/downloads?limit=100&offset=100`), absent on the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Downloads per state for the caller, and their combined speed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Stats {
    pub active: u64,
    pub queued: u64,
    pub paused: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub total: u64,
    /// Bytes per second, over the active downloads (of every node).
    pub speed: u64,
    /// The node that answered.
    #[serde(default)]
    pub node: String,
    /// Where jobs are kept: `sqlite` (one node) or `postgres` (any number of nodes).
    #[serde(default)]
    pub backend: String,
}

/// `GET /v1/nodes`: the nodes sharing this server's database.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Nodes {
    /// Most recently seen first.
    pub nodes: Vec<Node>,
}

/// One node. Times are unix milliseconds.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Node {
    pub id: String,
    /// Where other nodes reach it (`--advertise-url`).
    pub advertise_url: Option<String>,
    pub version: String,
    pub started_at: i64,
    /// Its last heartbeat (every 5 seconds while it runs).
    pub last_seen: i64,
    /// Downloads it holds a live lease on.
    pub active: u64,
    /// Whether this is the node that answered.
    pub this: bool,
}

impl From<NodeView> for Node {
    fn from(node: NodeView) -> Self {
        let NodeView { id, advertise_url, version, started_at, last_seen, active, this } = node;
        Self { id, advertise_url, version, started_at, last_seen, active, this }
    }
}

impl From<StatsView> for Stats {
    fn from(stats: StatsView) -> Self {
        Self {
            node: stats.node,
            backend: stats.backend.to_owned(),
            active: stats.active,
            queued: stats.queued,
            paused: stats.paused,
            completed: stats.completed,
            failed: stats.failed,
            cancelled: stats.cancelled,
            total: stats.total,
            speed: stats.speed,
        }
    }
}

impl Stats {
    /// How many downloads are in `state`, or in any state.
    pub fn count(&self, state: Option<JobState>) -> u64 {
        match state {
            None => self.total,
            Some(JobState::Queued) => self.queued,
            Some(JobState::Active) => self.active,
            Some(JobState::Paused) => self.paused,
            Some(JobState::Completed) => self.completed,
            Some(JobState::Failed) => self.failed,
            Some(JobState::Cancelled) => self.cancelled,
        }
    }
}

/// One server-sent event of `/v1/events` as the stream carries it; only for the OpenAPI document.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SseEvent {
    /// The event's id, sent back as `Last-Event-ID`.
    #[schema(pattern = "^[0-9]+$")]
    id: String,
    /// The kind: `added`, `progress`, `completed`, ...
    event: String,
    /// `EventData` as JSON.
    #[schema(content_media_type = "application/json")]
    data: String,
}

/// The `data:` of a server-sent event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventData {
    /// Increasing; sent again as `Last-Event-ID` to resume after a reconnect.
    pub id: u64,
    #[schema(value_type = EventKindName)]
    pub kind: EventKind,
    /// The download as it is after the event.
    pub download: Download,
}

impl From<Event> for EventData {
    fn from(event: Event) -> Self {
        Self { id: event.id, kind: event.kind, download: event.download.into() }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
    /// The port the server listens on, as Surge's `/health` reports it; absent when not known.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 1700)]
    pub port: Option<u16>,
}

/// `GET /v1/settings`: the server's bandwidth settings, and what holds now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Settings {
    /// Bytes per second for every download of this node together; `null` is no limit.
    pub speed_limit: Option<u64>,
    /// Bytes per second for all downloads from one host (the host of the URL added), by host.
    pub host_limits: BTreeMap<String, u64>,
    /// Rules that switch the server's limit or pause the queue by local time, as
    /// `DAYS HH:MM-HH:MM RATE|unlimited|pause` separated by `;`; `null` is none.
    pub schedule: Option<String>,
    pub now: SettingsNow,
}

/// What the settings and the schedule make of this moment.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SettingsNow {
    /// The server-wide limit in force: the schedule's, else `speed_limit`.
    pub speed_limit: Option<u64>,
    /// The schedule pauses the queue: no download runs until its window ends.
    pub paused_by_schedule: bool,
    /// The schedule's rule in force, if any.
    pub rule: Option<String>,
}

impl From<haul_engine::service::BandwidthView> for Settings {
    fn from(view: haul_engine::service::BandwidthView) -> Self {
        Self {
            speed_limit: view.settings.speed_limit,
            host_limits: view.settings.host_limits,
            schedule: view.settings.schedule,
            now: SettingsNow {
                speed_limit: view.speed_limit_now,
                paused_by_schedule: view.paused_by_schedule,
                rule: view.schedule_now,
            },
        }
    }
}

/// `PATCH /v1/settings`: a field left out is kept; `null` removes a limit or the schedule.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchSettings {
    /// Bytes per second for every download together (an integer, or text such as `"10M"`), or `null`.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    #[schema(schema_with = rate_schema)]
    pub speed_limit: Option<Option<Rate>>,
    /// Limits to set by host (`"example.com": "2M"`); `null` removes that host's. Hosts not named are kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = BTreeMap<String, Option<String>>)]
    pub host_limits: BTreeMap<String, Option<Rate>>,
    /// A new schedule, or `null` (or `""`) for none.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub schedule: Option<Option<String>>,
}

impl PatchSettings {
    pub fn into_patch(self) -> Result<haul_engine::service::BandwidthPatch, ApiError> {
        let speed_limit =
            self.speed_limit.map(|rate| rate.map(|rate| rate.checked("speed_limit")).transpose()).transpose()?;
        let mut host_limits = BTreeMap::new();
        for (host, rate) in self.host_limits {
            let rate = rate.map(|rate| rate.checked(&format!("host_limits.{host}"))).transpose()?;
            host_limits.insert(host, rate);
        }
        let schedule = self.schedule.map(|text| text.filter(|text| !text.trim().is_empty()));
        Ok(haul_engine::service::BandwidthPatch { speed_limit, host_limits, schedule })
    }
}
/// `POST /v1/webhooks`.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where deliveries are POSTed: http or https, under the server's destination policy (as downloads are).
    #[schema(format = "uri", example = "https://example.com/haul-events")]
    pub url: String,
    /// The events to send: any of added, started, paused, resumed, retried, completed, failed, cancelled,
    /// removed; `["*"]` or absent for all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = json!(["completed", "failed"]))]
    pub events: Option<Vec<String>>,
    /// The key deliveries are signed with (16 to 256 characters); a fresh `whsec_...` one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// A webhook as listed. Times are unix milliseconds.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    /// A UUID: what `/v1/webhooks/{id}` takes.
    pub id: String,
    pub url: String,
    /// The events it is sent; `["*"]` for all.
    pub events: Vec<String>,
    pub created_at: i64,
}

impl From<haul_engine::service::WebhookView> for Webhook {
    fn from(view: haul_engine::service::WebhookView) -> Self {
        let events = if view.events.is_empty() {
            vec!["*".to_owned()]
        } else {
            view.events.iter().map(|kind| kind.as_str().to_owned()).collect()
        };
        Self { id: view.id, url: view.url, events, created_at: view.created_at }
    }
}

/// A new webhook with its secret, which is not shown again.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// Verifies `Haul-Signature` (see the README's "Webhooks").
    pub secret: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookList {
    /// Oldest first.
    pub webhooks: Vec<Webhook>,
}

/// One event's delivery to a webhook, with its attempts so far. Times are unix milliseconds.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    /// The `Haul-Delivery` header: the same on every attempt, so receivers can dedupe on it.
    pub id: String,
    #[schema(value_type = EventKindName)]
    pub event: EventKind,
    #[schema(value_type = String, format = Uuid)]
    pub download: DownloadId,
    /// `pending` (tried again at `next_attempt_at`), `delivered`, or `failed` (given up on, 25 hours after the
    /// event).
    #[schema(example = "pending")]
    pub state: String,
    pub attempts: u32,
    pub occurred_at: i64,
    pub next_attempt_at: Option<i64>,
    /// The status the last attempt was answered with, when it was answered.
    pub last_status: Option<u16>,
    /// Why the last attempt failed (a status, a network error, a refused destination).
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
}

impl From<haul_engine::service::DeliveryView> for Delivery {
    fn from(view: haul_engine::service::DeliveryView) -> Self {
        Self {
            id: view.id,
            event: view.event,
            download: view.download,
            state: view.state.as_str().to_owned(),
            attempts: view.attempts,
            occurred_at: view.occurred_at,
            next_attempt_at: view.next_attempt_at,
            last_status: view.last_status,
            last_error: view.last_error,
            delivered_at: view.delivered_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryList {
    /// Newest first.
    pub deliveries: Vec<Delivery>,
}

/// `POST /v1/rules`: at least one condition (`host`, `url_pattern`, `extensions`; every one given must hold) and
/// at least one effect (`directory`, `priority`).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRule {
    /// Where it goes among the account's rules: 1 is tried first, and the rules from there move down one; after
    /// the last when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, example = 1)]
    pub position: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "Disc images")]
    pub name: Option<String>,
    /// This host or any of its subdomains (`example.com` matches `dl.example.com`), case ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "example.com")]
    pub host: Option<String>,
    /// A glob over the whole URL, query included: `*` any run of characters, `?` one; case ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "https://*/releases/*")]
    pub url_pattern: Option<String>,
    /// File types, without or with the dot (`iso`, `.tar.gz`), case ignored: the last segment of the URL's path
    /// (never its query), or the download's `filename`, ends in one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(example = json!(["iso", "img"]))]
    pub extensions: Vec<String>,
    /// The directory a matching download goes to when its request names none: relative to the downloads
    /// directory, `/`-separated, each part a plain name (no `..`, no leading `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "isos")]
    pub directory: Option<String>,
    /// The priority a matching download gets when its request gives none (or 0): -1000 to 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 5)]
    pub priority: Option<i32>,
}

/// `PATCH /v1/rules/{id}`: rename or move a rule.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRule {
    /// A new name; `""` removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Move it there: 1 is tried first; past the end is the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub position: Option<u32>,
}

/// A rule as listed. Times are unix milliseconds.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Rule {
    /// A UUID: what `/v1/rules/{id}` takes.
    pub id: String,
    /// 1 is tried first; the first rule a new download matches is the one that applies.
    pub position: u32,
    pub name: Option<String>,
    /// Normalised: lowercase, international names in their `xn--` form.
    pub host: Option<String>,
    pub url_pattern: Option<String>,
    /// Lowercase, without the dot.
    pub extensions: Vec<String>,
    pub directory: Option<String>,
    pub priority: Option<i32>,
    pub created_at: i64,
}

impl From<haul_engine::service::RuleView> for Rule {
    fn from(view: haul_engine::service::RuleView) -> Self {
        Self {
            id: view.id,
            position: view.position,
            name: view.name,
            host: view.host,
            url_pattern: view.url_pattern,
            extensions: view.extensions,
            directory: view.directory,
            priority: view.priority,
            created_at: view.created_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RuleList {
    /// In the order they are tried.
    pub rules: Vec<Rule>,
}

/// An entry of the account's download archive: a video or file it has downloaded, which an add without `force`
/// skips. Times are unix milliseconds.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ArchiveEntry {
    /// A UUID: what `DELETE /v1/archive/{id}` takes.
    pub id: String,
    /// The site's extractor as yt-dlp names it, lowercase (`youtube`, `generic`); `http` for a plain file.
    #[schema(example = "youtube")]
    pub extractor: String,
    /// The video's id on its site; for a plain file, a digest of its URL, validator (ETag or Last-Modified) and
    /// length.
    #[schema(example = "dQw4w9WgXcQ")]
    pub video_id: String,
    /// The URL it was added with.
    pub url: String,
    pub title: Option<String>,
    /// The download that fetched it; it may have been removed since.
    pub download: Option<String>,
    pub created_at: i64,
}

impl From<haul_engine::service::ArchiveView> for ArchiveEntry {
    fn from(view: haul_engine::service::ArchiveView) -> Self {
        Self {
            id: view.id,
            extractor: view.extractor,
            video_id: view.video_id,
            url: view.url,
            title: view.title,
            download: view.download.map(|id| id.to_string()),
            created_at: view.created_at,
        }
    }
}

/// `GET /v1/archive`: a page of entries, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ArchiveList {
    pub entries: Vec<ArchiveEntry>,
    /// Entries in the whole archive.
    pub total: u64,
    /// The path of the next page, when there is one.
    pub next: Option<String>,
}

/// `DELETE /v1/archive`: how many entries were forgotten.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Forgotten {
    pub removed: u64,
}

/// One cookie of the caller's jar as `GET /v1/cookies` lists it: everything but the value, which is never sent
/// back.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct StoredCookie {
    /// Lowercase, without a leading dot.
    #[schema(example = "example.com")]
    pub domain: String,
    /// Sent to the domain's subdomains too.
    pub subdomains: bool,
    #[schema(example = "/")]
    pub path: String,
    /// Sent over https only.
    pub secure: bool,
    pub http_only: bool,
    /// Unix seconds; `null` for a session cookie.
    pub expires: Option<u64>,
    #[schema(example = "sid")]
    pub name: String,
    /// Always `***`: values are never shown back.
    #[schema(example = "***")]
    pub value: String,
    /// How long the value is, in bytes.
    pub value_length: usize,
}

impl From<haul_engine::service::CookieView> for StoredCookie {
    fn from(view: haul_engine::service::CookieView) -> Self {
        Self {
            domain: view.domain,
            subdomains: view.subdomains,
            path: view.path,
            secure: view.secure,
            http_only: view.http_only,
            expires: view.expires,
            name: view.name,
            value: "***".to_owned(),
            value_length: view.value_length,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CookieList {
    /// By domain, path and name.
    pub cookies: Vec<StoredCookie>,
}

/// `PUT /v1/cookies`: what the file put in the jar.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CookiesImported {
    pub imported: usize,
    /// The domains the file named; the jar's earlier cookies of these were replaced.
    pub domains: Vec<String>,
}
