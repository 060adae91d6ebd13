//! The native API's JSON: request bodies, and the views it sends, converted from engine types here.
//!
//! **API boundary**: this module is the one wire contract of `/v1`. The server serialises these types and
//! `haul`'s client commands deserialise the same ones, so a field renamed on one side fails to compile on the
//! other. Keeping our own types rather than the engine's means the wire format changes only when this file
//! does, and gives the OpenAPI document a schema for each.

use std::collections::BTreeMap;

use haul_core::job::{DownloadId, JobKind, JobState};
use haul_core::media::Quality;
use haul_engine::service::{AddRequest, DownloadView, Event, EventKind, PatchRequest, StatsView};
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
    /// What fetches it: `file` (haul's HTTP engine), `media` (a page read by yt-dlp), or `auto` until its
    /// first run decides.
    #[schema(value_type = String, example = "file")]
    pub kind: JobKind,
    /// A display name given by the client, or a media page's title.
    pub title: Option<String>,
    /// The quality asked for: `best`, `2160p` ... `360p`, or `audio`; plain files are fetched as they are.
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
    pub url: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<String>,
    /// The file name to save as; reduced to one safe path component. Default: from the server or the URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// A directory under the downloads directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// `sha256=HEX`, `sha1=HEX` or `md5=HEX`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Extra request headers, name to value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Most connections to open; default: adaptive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
    /// Bytes per second: an integer, or text such as `"5M"` or `"1.5 MiB"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed_limit: Option<Rate>,
    /// Higher runs first.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i32,
    /// Create it paused: nothing is fetched until it is resumed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// A display name, kept with the download; the file name is chosen separately.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// `best` (default), `2160p`, `1440p`, `1080p`, `720p`, `480p`, `360p` (the best at or under that height),
    /// or `audio` (the sound alone, as m4a).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<String>,
    /// `auto` (default: a web page yt-dlp can read is media, anything else a file), `file` or `media`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

fn is_zero(value: &i32) -> bool {
    *value == 0
}

/// A rate as a number of bytes per second or as text for people.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Rate {
    BytesPerSecond(u64),
    Text(String),
}

impl CreateDownload {
    pub fn into_request(self) -> Result<AddRequest, ApiError> {
        let speed_limit = match self.speed_limit {
            None => None,
            Some(Rate::BytesPerSecond(0)) => {
                return Err(ApiError::bad_request("speed_limit must be above 0; leave it out for no limit"));
            }
            Some(Rate::BytesPerSecond(rate)) => Some(rate),
            Some(Rate::Text(text)) => Some(
                haul_core::units::parse_rate(&text)
                    .map_err(|error| ApiError::bad_request(format!("speed_limit: {error}")))?,
            ),
        };
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
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

impl From<PatchDownload> for PatchRequest {
    fn from(patch: PatchDownload) -> Self {
        Self { url: patch.url, priority: patch.priority }
    }
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
    /// Bytes per second, over the active downloads.
    pub speed: u64,
}

impl From<StatsView> for Stats {
    fn from(stats: StatsView) -> Self {
        Self {
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
