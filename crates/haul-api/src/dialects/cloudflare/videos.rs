//! Stream videos: copy one from a URL, read, list (with Stream's filters), edit, delete, and the account's
//! storage usage.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use haul_core::job::{DownloadId, JobState};
use haul_core::labels::Labels;
use haul_engine::service::{AddRequest, DownloadView, ListQuery, PatchRequest};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Answer, Envelope, StreamAccount, StreamError, VideoRef, link_ttl, ok, parse_uid, stream_state, uid};
use crate::AppState;
use crate::dialects::{percent, rfc3339};
use crate::links::{self, THUMBNAIL};

/// The most videos one list answers, and how many when the client does not say (Stream's own default).
const MAX_LIST: u32 = 1000;

/// A video as Stream shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Video {
    uid: String,
    status: VideoStatus,
    /// The client's `meta`, with `name` (the client's, else the file's once chosen) and, as Stream records a
    /// copy, `downloaded-from`.
    meta: Map<String, Value>,
    creator: Option<String>,
    /// A signed link to the thumbnail of a video; empty while there is none.
    thumbnail: String,
    thumbnail_timestamp_pct: f64,
    ready_to_stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    ready_to_stream_at: Option<String>,
    /// haul's links to a video are always signed; with this set they live an hour instead of a day.
    #[serde(rename = "requireSignedURLs")]
    require_signed_urls: bool,
    /// Accepted and not kept: haul serves files, not an embeddable player.
    allowed_origins: [String; 0],
    /// Seconds; -1 (as Cloudflare writes it, an integer) while unknown: a file that is not media, or a video
    /// not read yet.
    duration: Value,
    /// Bytes; 0 while unknown.
    size: u64,
    input: Input,
    created: String,
    modified: String,
    /// When the file was complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    uploaded: Option<String>,
    scheduled_deletion: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VideoStatus {
    state: &'static str,
    /// As Cloudflare sends it: a string, "45.5".
    pct_complete: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_reason_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_reason_text: Option<String>,
}

/// The source's dimensions: -1 while unknown.
#[derive(Debug, Serialize)]
struct Input {
    width: i64,
    height: i64,
}

impl Video {
    pub(super) fn new(state: &AppState, base: &str, view: &DownloadView) -> Self {
        let (error_reason_code, error_reason_text) = match view.state {
            // Stream's code for a copy whose fetch failed, which is what a failed haul job is.
            JobState::Failed => {
                (Some("ERR_FETCH_ORIGIN_ERROR"), Some(view.error.clone().unwrap_or_else(|| "download failed".into())))
            }
            JobState::Cancelled => (None, Some(view.error.clone().unwrap_or_else(|| "cancelled".into()))),
            _ => (None, None),
        };
        let file_name = view.path.as_deref().and_then(|path| path.rsplit('/').next()).filter(|name| !name.is_empty());
        let completed = view.state == JobState::Completed;
        let mut meta = view.labels.meta.clone();
        if !meta.contains_key("name")
            && let Some(name) = view.title.as_deref().or(file_name).or(view.filename.as_deref())
        {
            meta.insert("name".into(), Value::from(name));
        }
        meta.entry("downloaded-from").or_insert_with(|| Value::from(view.url.clone()));
        let finished = view.finished_at.filter(|_| completed).map(rfc3339);
        Self {
            uid: uid(view.id),
            status: VideoStatus {
                state: stream_state(view.state),
                pct_complete: percent(view).to_string(),
                error_reason_code,
                error_reason_text,
            },
            meta,
            creator: view.labels.creator.clone(),
            thumbnail: if view.thumbnail.is_some() {
                state.links.link(base, &view.account, view.id, THUMBNAIL, link_ttl(view))
            } else {
                String::new()
            },
            thumbnail_timestamp_pct: view.labels.thumbnail_at.unwrap_or(0.0),
            ready_to_stream: completed,
            ready_to_stream_at: finished.clone(),
            require_signed_urls: view.labels.require_signed_urls,
            allowed_origins: [],
            duration: view.duration.map_or(Value::from(-1), Value::from),
            size: view.size.unwrap_or(0),
            input: Input { width: view.width.map_or(-1, i64::from), height: view.height.map_or(-1, i64::from) },
            created: rfc3339(view.created_at),
            modified: rfc3339(view.finished_at.or(view.started_at).unwrap_or(view.created_at)),
            uploaded: finished,
            scheduled_deletion: None,
        }
    }
}

/// The fields of a copy or an edit that haul keeps; Stream's others (`allowedOrigins`, `watermark`,
/// `scheduledDeletion`, `maxDurationSeconds`, ...) are accepted and not kept.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VideoFields {
    meta: Option<Value>,
    /// A display name; Stream keeps it as `meta.name`.
    name: Option<String>,
    /// `null` clears it, so a present `null` is `Some(Value::Null)`.
    #[serde(default, deserialize_with = "present")]
    creator: Option<Value>,
    #[serde(rename = "requireSignedURLs")]
    require_signed_urls: Option<bool>,
    thumbnail_timestamp_pct: Option<f64>,
}

/// A field that was sent, `null` included.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

impl VideoFields {
    /// These fields laid over `labels` (a video's own, or none for a copy); the display name they give.
    fn apply(self, labels: &mut Labels) -> Result<Option<String>, StreamError> {
        match self.meta {
            Some(Value::Object(meta)) => labels.meta = meta,
            Some(Value::Null) | None => {}
            Some(_) => return Err(StreamError::bad_request("meta must be a JSON object of keys and values")),
        }
        if let Some(name) = self.name {
            labels.meta.insert("name".into(), Value::from(name));
        }
        if labels.meta.get("name").is_some_and(|name| !name.is_string()) {
            return Err(StreamError::bad_request("meta.name must be text: it is the video's name"));
        }
        match self.creator {
            Some(Value::String(creator)) => labels.creator = Some(creator),
            Some(Value::Null) => labels.creator = None,
            None => {}
            Some(_) => return Err(StreamError::bad_request("creator must be text (or null to clear it)")),
        }
        if let Some(required) = self.require_signed_urls {
            labels.require_signed_urls = required;
        }
        if let Some(pct) = self.thumbnail_timestamp_pct {
            labels.thumbnail_at = Some(pct);
        }
        // The name in meta is the video's display name, the one the other APIs show too.
        Ok(labels.meta.get("name").and_then(Value::as_str).map(str::to_owned))
    }
}

/// `POST .../stream/copy`: the source as `input` (what Stream prefers) or `url`.
#[derive(Deserialize)]
struct CopyBody {
    input: Option<String>,
    url: Option<String>,
    #[serde(flatten)]
    fields: VideoFields,
}

/// A JSON body whatever the Content-Type: curl's `--data` sends form-urlencoded, as Cloudflare's own examples do.
fn json_body<T: for<'de> Deserialize<'de>>(
    body: Result<Bytes, BytesRejection>,
    expected: &str,
) -> Result<T, StreamError> {
    serde_json::from_slice(&body?)
        .map_err(|error| StreamError::bad_request(format!("invalid JSON body: {error}; expected {expected}")))
}

/// `POST /accounts/{account_id}/stream/copy` `{"input" | "url", "meta"?, "name"?, "creator"?,
/// "requireSignedURLs"?, "thumbnailTimestampPct"?}`: queues the download.
pub(super) async fn copy(
    State(state): State<AppState>,
    StreamAccount(account): StreamAccount,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<Video> {
    let CopyBody { input, url, fields } = json_body(body, "{\"input\": URL, \"meta\"?: {...}}")?;
    let url = match (input, url) {
        (Some(input), Some(url)) if input != url => {
            return Err(StreamError::bad_request("input and url name different sources; send only input"));
        }
        (Some(source), _) | (None, Some(source)) => source,
        (None, None) => return Err(StreamError::bad_request("send the video's URL as input")),
    };
    let mut labels = Labels::default();
    let title = fields.apply(&mut labels)?;
    // Stream's header for the creator of a direct upload; a body's creator wins.
    if labels.creator.is_none()
        && let Some(creator) = headers.get("upload-creator").and_then(|value| value.to_str().ok())
    {
        labels.creator = Some(creator.to_owned());
    }
    let request = AddRequest { url, title, labels, ..AddRequest::default() };
    let view = state.engine.add(&account, request).await?;
    ok(Video::new(&state, &links::base_url(&state, &headers), &view))
}

/// `POST /accounts/{account_id}/stream/{identifier}`: edits what the client keeps with a video (`meta` replaces
/// the old one whole, as Stream does), answering the video.
pub(super) async fn edit(
    State(state): State<AppState>,
    VideoRef { account, id }: VideoRef,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<Video> {
    let view = state.engine.get(&account, id).await?;
    let fields: VideoFields = json_body(body, "{\"meta\"?: {...}, \"creator\"?, \"requireSignedURLs\"?}")?;
    let mut labels = view.labels;
    let title = fields.apply(&mut labels)?;
    let patch = PatchRequest { title, labels: Some(labels), ..PatchRequest::default() };
    let view = state.engine.patch(&account, id, patch).await?;
    ok(Video::new(&state, &links::base_url(&state, &headers), &view))
}

/// `GET /accounts/{account_id}/stream/{identifier}`.
pub(super) async fn video(
    State(state): State<AppState>,
    VideoRef { account, id }: VideoRef,
    headers: HeaderMap,
) -> Answer<Video> {
    let view = state.engine.get(&account, id).await?;
    ok(Video::new(&state, &links::base_url(&state, &headers), &view))
}

/// `DELETE /accounts/{account_id}/stream/{identifier}`: stops the job and removes it with its file and its
/// downloads. Cloudflare answers an empty 200; haul answers the envelope with `"ok"`, like Stream's delete of
/// downloads, so that every answer of this API parses the same way.
pub(super) async fn delete_video(
    State(state): State<AppState>,
    VideoRef { account, id }: VideoRef,
) -> Answer<&'static str> {
    state.engine.remove(&account, id, true).await?;
    ok("ok")
}

/// `GET /accounts/{account_id}/stream`: the account's videos, newest first, filtered as Stream filters:
///
/// | parameter | keeps |
/// |---|---|
/// | `status` | videos in that state (`queued`, `inprogress`, `ready`, `error`; Stream's others match none) |
/// | `creator` | videos with that creator |
/// | `search` | videos whose name (or file name, or URL) contains the text, case ignored |
/// | `video_name` | videos with exactly that name |
/// | `id`, `name` | the videos with these uids, comma-separated (`name` also takes one exact name) |
/// | `after`/`start`, `before`/`end` | videos created after, before (RFC 3339) |
/// | `asc` | oldest first when `true` |
/// | `limit` | at most this many, 1-1000 (1000) |
/// | `include_counts` | adds `total` (matching videos) and `range` (answered) to the envelope |
/// | `type`, `live_input_id` | `live` and a live input match none; haul has no live videos |
pub(super) async fn list(
    State(state): State<AppState>,
    StreamAccount(account): StreamAccount,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<Envelope<Vec<Video>>>, StreamError> {
    let params = query_params(&uri)?;
    let (query, include_counts) = list_query(&params)?;
    let base = links::base_url(&state, &headers);
    let views = match &query {
        Some(query) => state.engine.list(&account, query.clone()).await?,
        None => Vec::new(),
    };
    let mut envelope = Envelope::ok(views.iter().map(|view| Video::new(&state, &base, view)).collect::<Vec<_>>());
    if include_counts {
        let total = match query {
            Some(query) if views.len() == query.limit.unwrap_or(MAX_LIST) as usize => {
                let all = ListQuery { limit: None, offset: 0, ..query };
                state.engine.list(&account, all).await?.len()
            }
            _ => views.len(),
        };
        envelope.total = Some(total as u64);
        envelope.range = Some(views.len() as u64);
    }
    Ok(Json(envelope))
}

/// The query string as names and values; a name given twice keeps its last value.
fn query_params(uri: &Uri) -> Result<HashMap<String, String>, StreamError> {
    let Query(params) =
        Query::try_from_uri(uri).map_err(|rejection| StreamError::bad_request(rejection.body_text()))?;
    Ok(params)
}

/// Stream's list parameters as haul's list; `None` when they match nothing haul can hold (a live video, a
/// state haul's videos are never in).
fn list_query(params: &HashMap<String, String>) -> Result<(Option<ListQuery>, bool), StreamError> {
    let known = [
        "status",
        "creator",
        "search",
        "video_name",
        "id",
        "name",
        "after",
        "start",
        "before",
        "end",
        "asc",
        "limit",
        "include_counts",
        "type",
        "live_input_id",
    ];
    if let Some(unknown) = params.keys().find(|name| !known.contains(&name.as_str())) {
        return Err(StreamError::bad_request(format!(
            "unknown list parameter {unknown:?}; this Stream API filters on {}",
            known.join(", ")
        )));
    }
    let flag = |name: &str| -> Result<bool, StreamError> {
        match params.get(name).map(String::as_str) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(StreamError::bad_request(format!("{name} must be true or false, got {other:?}"))),
        }
    };
    let include_counts = flag("include_counts")?;
    let mut query = ListQuery { oldest_first: flag("asc")?, limit: Some(MAX_LIST), ..ListQuery::default() };
    let mut matches_nothing = false;
    if let Some(status) = params.get("status") {
        query.states = match status.as_str() {
            "queued" => vec![JobState::Queued, JobState::Paused],
            "inprogress" => vec![JobState::Active],
            "ready" => vec![JobState::Completed],
            "error" => vec![JobState::Failed, JobState::Cancelled],
            "pendingupload" | "downloading" | "live-inprogress" => {
                matches_nothing = true;
                Vec::new()
            }
            other => {
                return Err(StreamError::bad_request(format!(
                    "unknown status {other:?}; expected queued, inprogress, ready or error (or pendingupload, \
                     downloading, live-inprogress, which no haul video is in)"
                )));
            }
        };
    }
    query.creator = params.get("creator").cloned();
    query.search = params.get("search").filter(|text| !text.is_empty()).cloned();
    query.title = params.get("video_name").cloned();
    if let Some(ids) = params.get("id") {
        query.ids = uids(ids)?;
    }
    if let Some(names) = params.get("name") {
        match uids(names) {
            Ok(ids) => query.ids.extend(ids),
            Err(_) if !names.contains(',') => query.title = Some(names.clone()),
            Err(_) => {
                return Err(StreamError::bad_request(
                    "name takes one video name, or uids separated by commas; filter several names with search",
                ));
            }
        }
    }
    for (name, from) in [("after", true), ("start", true), ("before", false), ("end", false)] {
        let Some(text) = params.get(name) else { continue };
        let millis = parse_time(text).ok_or_else(|| {
            StreamError::bad_request(format!(
                "{name} must be an RFC 3339 time such as 2026-12-01T00:00:00Z, got {text:?}"
            ))
        })?;
        if from {
            // Strictly after: a video created in the very millisecond given is not after it.
            let after = millis.saturating_add(1);
            query.created_from = Some(query.created_from.map_or(after, |known| known.max(after)));
        } else {
            query.created_before = Some(query.created_before.map_or(millis, |known| known.min(millis)));
        }
    }
    if let Some(text) = params.get("limit") {
        query.limit = Some(text.parse().ok().filter(|limit| (1..=MAX_LIST).contains(limit)).ok_or_else(|| {
            StreamError::bad_request(format!("limit must be a whole number from 1 to {MAX_LIST}, got {text:?}"))
        })?);
    }
    if params.get("type").is_some_and(|kind| kind == "live") || params.contains_key("live_input_id") {
        matches_nothing = true;
    }
    Ok((Some(query).filter(|_| !matches_nothing), include_counts))
}

/// Comma-separated uids.
fn uids(text: &str) -> Result<Vec<DownloadId>, StreamError> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            parse_uid(item)
                .ok_or_else(|| StreamError::bad_request(format!("{item:?} is not a video uid (32 hex digits)")))
        })
        .collect()
}

/// An RFC 3339 time (or a plain date, or a time without an offset, taken as UTC) as unix milliseconds. Python's
/// `isoformat()`, which the official SDK sends, writes `+00:00` rather than `Z`.
fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    let (local, offset_secs) = match text.len().checked_sub(6).map(|at| text.split_at(at)) {
        Some((local, offset)) if local.len() > 10 && (offset.starts_with('+') || offset.starts_with('-')) => {
            let (hours, minutes) = offset[1..].split_once(':')?;
            let secs = hours.parse::<i64>().ok()? * 3600 + minutes.parse::<i64>().ok()? * 60;
            (local, if offset.starts_with('-') { -secs } else { secs })
        }
        _ => (text, 0),
    };
    let local = if local.len() == 10 { format!("{local}T00:00:00Z") } else { local.to_owned() };
    let time = humantime::parse_rfc3339_weak(&local).ok()?;
    let millis = i64::try_from(time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis()).ok()?;
    Some(millis - offset_secs * 1000)
}

/// `GET /accounts/{account_id}/stream/storage-usage?creator=`: how many videos the account (or that creator)
/// keeps and their minutes. haul sets no limit, so `totalStorageMinutesLimit` is null.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StorageUsage {
    creator: Option<String>,
    total_storage_minutes: f64,
    total_storage_minutes_limit: Option<u64>,
    video_count: u64,
}

pub(super) async fn storage_usage(
    State(state): State<AppState>,
    StreamAccount(account): StreamAccount,
    uri: Uri,
) -> Answer<StorageUsage> {
    let params = query_params(&uri)?;
    if let Some(unknown) = params.keys().find(|name| name.as_str() != "creator") {
        return Err(StreamError::bad_request(format!("unknown parameter {unknown:?}; storage-usage takes creator")));
    }
    let creator = params.get("creator").cloned();
    let views = state.engine.list(&account, ListQuery { creator: creator.clone(), ..ListQuery::default() }).await?;
    let seconds: f64 = views.iter().filter_map(|view| view.duration).filter(|secs| secs.is_finite()).sum();
    ok(StorageUsage {
        creator,
        total_storage_minutes: (seconds / 60.0 * 100.0).round() / 100.0,
        total_storage_minutes_limit: None,
        video_count: views.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn times_are_rfc3339_with_any_offset() {
        let noon = 1_795_867_200_000; // 2026-11-28T12:00:00Z
        assert_eq!(parse_time("2026-11-28T12:00:00Z"), Some(noon));
        assert_eq!(parse_time("2026-11-28T12:00:00+00:00"), Some(noon));
        assert_eq!(parse_time("2026-11-28T12:00:00"), Some(noon));
        assert_eq!(parse_time("2026-11-28T14:00:00+02:00"), Some(noon));
        assert_eq!(parse_time("2026-11-28T07:30:00-04:30"), Some(noon));
        assert_eq!(parse_time("2026-11-28T12:00:00.250Z"), Some(noon + 250));
        assert_eq!(parse_time("2026-11-28"), Some(noon - 12 * 3600 * 1000));
        for bad in ["", "yesterday", "2026-13-01T00:00:00Z", "2026-11-28T12:00:00+2:0x"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn list_parameters_become_a_query() {
        let params = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
        };
        let (query, counts) = list_query(&params(&[])).unwrap();
        assert_eq!(query, Some(ListQuery { limit: Some(1000), ..ListQuery::default() }));
        assert!(!counts);
        let (query, counts) = list_query(&params(&[
            ("status", "queued"),
            ("asc", "true"),
            ("limit", "5"),
            ("creator", "ann"),
            ("include_counts", "true"),
        ]))
        .unwrap();
        let query = query.unwrap();
        assert_eq!(query.states, [JobState::Queued, JobState::Paused]);
        assert!(query.oldest_first && counts);
        assert_eq!((query.limit, query.creator.as_deref()), (Some(5), Some("ann")));
        assert_eq!(list_query(&params(&[("status", "downloading")])).unwrap().0, None);
        assert_eq!(list_query(&params(&[("type", "live")])).unwrap().0, None);
        for bad in
            [("status", "done"), ("limit", "0"), ("limit", "1001"), ("asc", "yes"), ("after", "soon"), ("id", "x")]
        {
            assert!(list_query(&params(&[bad])).is_err(), "{bad:?}");
        }
        let error = list_query(&params(&[("colour", "red")])).unwrap_err();
        assert_eq!(error.0, StatusCode::BAD_REQUEST);
    }
}
