//! The Surge download manager's HTTP API (its documented `/download`, `/list`, `/pause`, ... on port 1700),
//! mounted at the root.
//!
//! Same bearer token as `/v1` (checked by [`Caller`], the native extractor), but every failure answers in
//! Surge's shape: plain text with the status code (`Unauthorized` 401, 400 missing `id`, 404 unknown id,
//! 405 wrong method, 409 for an action the job's state does not allow).
//!
//! `GET /health` is not served here: the native `/health` owns the route (see [`routes`]).
//!
//! Units on the wire: `speed` in MB/s with MB = 1024 * 1024 bytes, `eta` in seconds, `added_at` and
//! `completed_at` in unix seconds, `time_taken` in milliseconds, `avg_speed` in bytes per second (those two
//! are 0 until the download has completed, as in Surge, whose TUI shows `avg_speed` instead of `speed` when it is
//! not 0).
//!
//! What the real client (Surge's TUI connected to a remote server, `internal/core/remote_service.go`) needs,
//! beyond the documented API:
//! - `/events`: it decodes each `data:` into the Go struct of the event (`internal/engine/events`), whose fields
//!   have no json tags, so the keys are the Go field names (matched ignoring case, not underscores) with Go's
//!   types: `Elapsed` an integer of nanoseconds, `Speed` and `AvgSpeed` bytes per second, `Err` a string. A
//!   value of the wrong type for one of those fields makes the client drop the whole event. Each event carries
//!   the status object first (for haul's other clients) and then those fields ([`GoEvent`]); Go keeps the last
//!   of two keys that match one field, so `Speed` (bytes/s) wins over the status object's `speed` (MB/s).
//! - `POST /download`: the TUI sends `path` absolute. One inside haul's downloads directory is used relative to
//!   it; one outside is a 400 saying to send a path relative to the downloads directory. It sends no mirrors or
//!   headers as `null`, which is taken as none.
//! - `POST /resume`: the TUI resumes every queued download at start-up, so resuming a queued or downloading one
//!   answers 200 and changes nothing (as Surge does), and resuming a failed one retries it. Pausing a paused one
//!   answers 200 too.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use haul_core::clock::unix_millis;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures_util::Stream;
use haul_core::job::{AccountId, DownloadId, JobState};
use haul_engine::service::{AddRequest, DownloadView, Engine, EventKind, ListQuery, PatchRequest, ServiceError};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Caller;
use crate::events::Feed;

/// Bytes in Surge's "MB" (its speeds are MB/s).
const MB: f64 = 1024.0 * 1024.0;

/// The Surge routes, to be merged into the root router. `/health` is absent: the native one already answers
/// Surge's `{"status": "ok", "port": N}` on every listener.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/download", post(create).get(status))
        .route("/list", get(list))
        .route("/pause", post(pause))
        .route("/resume", post(resume))
        .route("/delete", post(delete).delete(delete))
        .route("/update-url", put(update_url))
        .route("/history", get(history))
        .route("/events", get(events))
        // Set on these routes now, so the native router's JSON 405 (added later, to routes without one) skips them.
        .method_not_allowed_fallback(wrong_method)
}

/// haul's job state as Surge names it: the one place that decides.
///
/// Surge has no "cancelled": a cancelled haul job is stopped for good and cannot be resumed, which is what a
/// Surge client expects of "error" (it offers delete, not resume), so it maps there, with `error` saying
/// "cancelled" when the job carries no other reason.
pub(crate) fn surge_status(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "queued",
        JobState::Active => "downloading",
        JobState::Paused => "paused",
        JobState::Completed => "completed",
        JobState::Failed | JobState::Cancelled => "error",
    }
}

/// A failure in Surge's shape: plain text and the status code.
#[derive(Debug)]
pub(crate) struct SurgeError(StatusCode, String);

impl SurgeError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self(status, message.into())
    }
}

impl IntoResponse for SurgeError {
    fn into_response(self) -> Response {
        // A `String` body is sent as `text/plain; charset=utf-8`.
        (self.0, self.1).into_response()
    }
}

impl From<ServiceError> for SurgeError {
    fn from(error: ServiceError) -> Self {
        match crate::error::dialect_failure(error, "Surge") {
            // Surge's own words for an unknown id, which its clients match on.
            (StatusCode::NOT_FOUND, _) => Self::new(StatusCode::NOT_FOUND, "Download not found"),
            (status, message) => Self::new(status, message),
        }
    }
}

/// 404 for paths Surge does not have, when Surge has a listener of its own.
pub(crate) async fn unknown_route() -> SurgeError {
    SurgeError::new(StatusCode::NOT_FOUND, "Not found")
}

async fn wrong_method() -> SurgeError {
    SurgeError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
}

/// The authenticated account, by the native token check; any failure is Surge's plain `Unauthorized`.
pub(crate) struct SurgeCaller(AccountId);

impl FromRequestParts<AppState> for SurgeCaller {
    type Rejection = SurgeError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, SurgeError> {
        match Caller::from_request_parts(parts, state).await {
            Ok(caller) => Ok(Self(caller.account)),
            // A store failure while looking up a key is not the caller's fault (the native error logged it).
            Err(error) if error.status.is_server_error() => {
                Err(SurgeError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error"))
            }
            Err(_) => Err(SurgeError::new(StatusCode::UNAUTHORIZED, "Unauthorized")),
        }
    }
}

/// `?id=`; unknown parameters are ignored, as Surge does.
#[derive(Deserialize)]
pub(crate) struct IdQuery {
    id: Option<String>,
}

/// The download `?id=` names: 400 when absent, 404 when it is not an id of ours (a malformed one included).
fn download_id(query: Result<Query<IdQuery>, QueryRejection>) -> Result<DownloadId, SurgeError> {
    let Query(query) = query.map_err(|rejection| SurgeError::new(StatusCode::BAD_REQUEST, rejection.body_text()))?;
    let text = query.id.filter(|id| !id.trim().is_empty());
    let text = text.ok_or_else(|| SurgeError::new(StatusCode::BAD_REQUEST, "Missing id parameter"))?;
    text.trim().parse().map_err(|_| SurgeError::new(StatusCode::NOT_FOUND, "Download not found"))
}

/// A JSON body, whatever the Content-Type (curl's `-d` sends form-urlencoded); 400 with serde's reason.
fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, SurgeError> {
    serde_json::from_slice(body)
        .map_err(|error| SurgeError::new(StatusCode::BAD_REQUEST, format!("Invalid JSON: {error}")))
}

/// `POST /download`.
#[derive(Deserialize)]
pub(crate) struct AddBody {
    url: String,
    filename: Option<String>,
    /// A directory under haul's downloads directory: relative to it, or absolute inside it (Surge's TUI sends
    /// absolute paths); one outside it, or a `..`, is a 400.
    path: Option<String>,
    /// Accepted and ignored: a relative `path` is always relative to the downloads directory.
    #[serde(default)]
    #[allow(dead_code)]
    relative_to_default_dir: Option<bool>,
    /// `null` as well as absent: Surge's TUI sends Go's nil slice and nil map that way.
    mirrors: Option<Vec<String>>,
    /// Accepted and ignored: haul has no approval step.
    #[serde(default)]
    #[allow(dead_code)]
    skip_approval: Option<bool>,
    headers: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Serialize)]
struct Queued {
    status: &'static str,
    message: &'static str,
    id: DownloadId,
}

async fn create(
    State(state): State<AppState>,
    SurgeCaller(account): SurgeCaller,
    body: Bytes,
) -> Result<Json<Queued>, SurgeError> {
    let body: AddBody = json_body(&body)?;
    let directory = match body.path.as_deref() {
        None => None,
        Some(path) => confined(path, &downloads_roots(state.engine.downloads_dir()).await)?,
    };
    let request = AddRequest {
        url: body.url,
        mirrors: body.mirrors.unwrap_or_default(),
        filename: body.filename.filter(|name| !name.is_empty()),
        directory,
        headers: body.headers.unwrap_or_default().into_iter().collect(),
        ..AddRequest::default()
    };
    let view = state.engine.add(&account, request).await?;
    Ok(Json(Queued { status: "queued", message: "Download queued successfully", id: view.id }))
}

/// The spellings of the downloads directory an absolute `path` may start with: as configured, made absolute,
/// and with symbolic links resolved (a client may name it either way).
async fn downloads_roots(dir: &Path) -> Vec<PathBuf> {
    let mut roots = vec![dir.to_path_buf()];
    roots.extend(std::path::absolute(dir).ok());
    roots.extend(tokio::fs::canonicalize(dir).await.ok());
    roots.dedup();
    roots
}

/// A client's `path` as a directory relative to the downloads directory, or `None` for the directory itself:
/// relative, or absolute inside one of `roots` (the engine checks the result again). Anything that would leave
/// the downloads directory is a 400 saying what to send instead.
fn confined(path: &str, roots: &[PathBuf]) -> Result<Option<String>, SurgeError> {
    let path = path.trim();
    let relative = if path.starts_with('/') {
        let inside = roots.iter().find_map(|root| Path::new(path).strip_prefix(root).ok());
        let Some(inside) = inside else {
            let root = roots.iter().find(|root| root.is_absolute()).map(|root| root.display().to_string());
            let root = root.unwrap_or_default();
            return Err(SurgeError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "path {path:?} is outside haul's downloads directory ({root}): send a path relative to the \
                     downloads directory instead (such as \"music\"), or an absolute path inside it"
                ),
            ));
        };
        inside.to_str().unwrap_or(path).to_owned()
    } else {
        path.to_owned()
    };
    let escapes = relative.starts_with(['/', '\\'])
        || relative.contains(':')
        || relative.split(['/', '\\']).any(|part| part == "..");
    if escapes {
        return Err(SurgeError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "path {path:?} would leave haul's downloads directory: send a path relative to the downloads \
                 directory (such as \"music\"), without \"..\" or a drive"
            ),
        ));
    }
    Ok(match relative.as_str() {
        "" | "." => None,
        _ => Some(relative),
    })
}

/// Surge's status object.
#[derive(Debug, Serialize)]
pub(crate) struct SurgeStatus {
    id: DownloadId,
    url: String,
    filename: String,
    dest_path: String,
    total_size: u64,
    downloaded: u64,
    /// 0-100.
    progress: f64,
    /// MB/s.
    speed: f64,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Seconds.
    eta: u64,
    connections: u32,
    /// Unix seconds.
    added_at: i64,
    /// Milliseconds from its first start to its completion; 0 until it has completed.
    time_taken: i64,
    /// Bytes per second over `time_taken`; 0 until it has completed.
    avg_speed: u64,
}

/// Milliseconds since it first started, up to now while it has not finished.
fn elapsed_ms(view: &DownloadView) -> i64 {
    match view.started_at {
        Some(started) => (view.finished_at.unwrap_or_else(|| unix_millis(SystemTime::now())) - started).max(0),
        None => 0,
    }
}

/// Surge's `time_taken`: only a completed download has one.
fn time_taken_ms(view: &DownloadView) -> i64 {
    if view.state == JobState::Completed { elapsed_ms(view) } else { 0 }
}

/// Surge's `avg_speed` in bytes per second: only a completed download has one.
fn avg_speed(view: &DownloadView) -> u64 {
    match u64::try_from(time_taken_ms(view)) {
        Ok(ms) if ms > 0 => view.bytes_done.saturating_mul(1000) / ms,
        _ => 0,
    }
}

fn dest_path(engine: &Engine, view: &DownloadView) -> String {
    let relative = view.path.clone().or_else(|| {
        let name = view.filename.as_deref()?;
        Some(match view.directory.as_deref() {
            Some(directory) if !directory.is_empty() => format!("{directory}/{name}"),
            _ => name.to_owned(),
        })
    });
    relative.map(|path| engine.downloads_dir().join(path).display().to_string()).unwrap_or_default()
}

fn filename(view: &DownloadView) -> String {
    let from_path = view.path.as_deref().and_then(|path| path.rsplit('/').next()).filter(|name| !name.is_empty());
    from_path.or(view.filename.as_deref()).unwrap_or_default().to_owned()
}

/// A name to show before haul has chosen one (an event of a download not yet probed): the file name, else the
/// last segment of the URL's path, else the URL.
fn display_name(view: &DownloadView) -> String {
    let name = filename(view);
    if !name.is_empty() {
        return name;
    }
    last_url_segment(&view.url).unwrap_or_else(|| view.url.clone())
}

/// The last non-empty segment of a URL's path, percent-decoded.
fn last_url_segment(url: &str) -> Option<String> {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let path = url.split_once("://").map_or(url, |(_, rest)| rest.split_once('/').map_or("", |(_, path)| path));
    let segment = path.rsplit('/').find(|segment| !segment.is_empty())?;
    Some(percent_encoding::percent_decode_str(segment).decode_utf8_lossy().into_owned())
}

impl SurgeStatus {
    pub(crate) fn new(engine: &Engine, view: &DownloadView) -> Self {
        let total_size = view.size.unwrap_or(0);
        let progress = if view.state == JobState::Completed {
            100.0
        } else if total_size > 0 {
            (view.bytes_done as f64 * 100.0 / total_size as f64).min(100.0)
        } else {
            0.0
        };
        let error = match view.state {
            JobState::Cancelled => Some(view.error.clone().unwrap_or_else(|| "cancelled".to_owned())),
            _ => view.error.clone(),
        };
        Self {
            id: view.id,
            url: view.url.clone(),
            filename: filename(view),
            dest_path: dest_path(engine, view),
            total_size,
            downloaded: view.bytes_done,
            progress,
            speed: view.speed as f64 / MB,
            status: surge_status(view.state),
            error,
            eta: view.eta_secs.unwrap_or(0),
            connections: view.connections,
            added_at: view.created_at.div_euclid(1000),
            time_taken: time_taken_ms(view),
            avg_speed: avg_speed(view),
        }
    }
}

/// `GET /download?id=`.
async fn status(
    State(state): State<AppState>,
    SurgeCaller(account): SurgeCaller,
    query: Result<Query<IdQuery>, QueryRejection>,
) -> Result<Json<SurgeStatus>, SurgeError> {
    let id = download_id(query)?;
    let view = state.engine.get(&account, id).await?;
    Ok(Json(SurgeStatus::new(&state.engine, &view)))
}

/// `GET /list`: every download of the account, newest first.
async fn list(
    State(state): State<AppState>,
    SurgeCaller(account): SurgeCaller,
) -> Result<Json<Vec<SurgeStatus>>, SurgeError> {
    let views = state.engine.list(&account, ListQuery::default()).await?;
    Ok(Json(views.iter().map(|view| SurgeStatus::new(&state.engine, view)).collect()))
}

/// The answer of pause, resume and delete.
#[derive(Serialize)]
struct Done {
    status: &'static str,
    id: DownloadId,
}

/// `POST /pause?id=`: one already paused answers the same, as Surge does; a completed, failed or cancelled one is a
/// 409.
async fn pause(
    State(state): State<AppState>,
    SurgeCaller(account): SurgeCaller,
    query: Result<Query<IdQuery>, QueryRejection>,
) -> Result<Json<Done>, SurgeError> {
    let id = download_id(query)?;
    unless_already(state.engine.pause(&account, id).await, &[JobState::Paused])?;
    Ok(Json(Done { status: "paused", id }))
}

/// `POST /resume?id=`: a paused download is queued again and a failed one retried (from its partial file); one
/// already queued or downloading is left as it is, with the same answer, as Surge does (its TUI resumes every
/// queued download at start-up). A completed or cancelled one is a 409.
async fn resume(
    State(state): State<AppState>,
    SurgeCaller(account): SurgeCaller,
    query: Result<Query<IdQuery>, QueryRejection>,
) -> Result<Json<Done>, SurgeError> {
    let id = download_id(query)?;
    let result = match state.engine.resume(&account, id).await {
        Err(ServiceError::Conflict { current: JobState::Failed, .. }) => state.engine.retry(&account, id).await,
        other => other,
    };
    unless_already(result, &[JobState::Queued, JobState::Active])?;
    Ok(Json(Done { status: "resumed", id }))
}

/// An action's outcome, also `Ok` when it was refused because the download is already in one of `states`:
/// there the action has nothing to do, and Surge answers it as done.
fn unless_already(result: Result<DownloadView, ServiceError>, states: &[JobState]) -> Result<(), ServiceError> {
    match result {
        Err(ServiceError::Conflict { current, .. }) if states.contains(&current) => Ok(()),
        other => other.map(drop),
    }
}

/// `DELETE` or `POST /delete?id=` (as Surge documents it): stops the download, forgets it, keeps its file on disk.
async fn delete(
    State(state): State<AppState>,
    SurgeCaller(account): SurgeCaller,
    query: Result<Query<IdQuery>, QueryRejection>,
) -> Result<Json<Done>, SurgeError> {
    let id = download_id(query)?;
    state.engine.remove(&account, id, false).await?;
    Ok(Json(Done { status: "deleted", id }))
}

#[derive(Deserialize)]
struct UrlBody {
    url: String,
}

#[derive(Serialize)]
struct Updated {
    status: &'static str,
    id: DownloadId,
    url: String,
}

/// `PUT /update-url?id=` with `{"url"}`: only while paused or failed (409 otherwise, naming the state).
async fn update_url(
    State(state): State<AppState>,
    SurgeCaller(account): SurgeCaller,
    query: Result<Query<IdQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Json<Updated>, SurgeError> {
    let id = download_id(query)?;
    let UrlBody { url } = json_body(&body)?;
    let patch = PatchRequest { url: Some(url), ..PatchRequest::default() };
    let view = state.engine.patch(&account, id, patch).await?;
    Ok(Json(Updated { status: "updated", id, url: view.url }))
}

/// One entry of `GET /history`.
#[derive(Serialize)]
struct HistoryEntry {
    id: DownloadId,
    url: String,
    dest_path: String,
    filename: String,
    status: &'static str,
    total_size: u64,
    downloaded: u64,
    /// Unix seconds.
    completed_at: i64,
    /// Milliseconds.
    time_taken: i64,
    /// Bytes per second.
    avg_speed: u64,
    /// Other URLs serving the same bytes.
    mirrors: Vec<String>,
}

/// `GET /history`: completed downloads, newest first.
async fn history(
    State(state): State<AppState>,
    SurgeCaller(account): SurgeCaller,
) -> Result<Json<Vec<HistoryEntry>>, SurgeError> {
    let filter = ListQuery { states: vec![JobState::Completed], ..ListQuery::default() };
    let views = state.engine.list(&account, filter).await?;
    let entries = views
        .iter()
        .map(|view| HistoryEntry {
            id: view.id,
            url: view.url.clone(),
            dest_path: dest_path(&state.engine, view),
            filename: filename(view),
            status: surge_status(view.state),
            total_size: view.size.unwrap_or(view.bytes_done),
            downloaded: view.bytes_done,
            completed_at: view.finished_at.unwrap_or(0).div_euclid(1000),
            time_taken: time_taken_ms(view),
            avg_speed: avg_speed(view),
            mirrors: view.mirrors.clone(),
        })
        .collect();
    Ok(Json(entries))
}

/// haul's event kind as Surge names it; a cancel is an "error", like the cancelled state.
pub(crate) fn surge_event(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Added => "queued",
        EventKind::Started => "started",
        EventKind::Progress => "progress",
        EventKind::Paused => "paused",
        EventKind::Resumed => "resumed",
        EventKind::Retried | EventKind::Queued => "queued",
        EventKind::Completed => "complete",
        EventKind::Failed | EventKind::Cancelled => "error",
        EventKind::Removed => "removed",
    }
}

/// The fields of the Go struct Surge's client decodes one event into (`internal/engine/events`: `ProgressMsg`,
/// `DownloadStartedMsg`, ...), under their Go names: those structs have no json tags, and Go matches a key to a
/// field ignoring case but not underscores. Only the fields of the event's struct are set.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
struct GoEvent {
    #[serde(rename = "DownloadID")]
    download_id: String,
    #[serde(rename = "URL", skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    filename: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    downloaded: Option<u64>,
    /// Bytes; 0 while unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
    /// Bytes per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    speed: Option<f64>,
    /// Nanoseconds (a Go `time.Duration`), since it first started.
    #[serde(skip_serializing_if = "Option::is_none")]
    elapsed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    active_connections: Option<u32>,
    /// The absolute path of the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    dest_path: Option<String>,
    /// Bytes per second over `Elapsed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    avg_speed: Option<f64>,
    /// Why it failed, never empty (the client takes an empty one for no error).
    #[serde(skip_serializing_if = "Option::is_none")]
    err: Option<String>,
}

impl GoEvent {
    fn new(engine: &Engine, kind: EventKind, view: &DownloadView) -> Self {
        let base = Self { download_id: view.id.to_string(), filename: Some(display_name(view)), ..Self::default() };
        let elapsed_ns = || elapsed_ms(view).saturating_mul(1_000_000);
        match kind {
            EventKind::Progress => Self {
                filename: None,
                downloaded: Some(view.bytes_done),
                total: Some(view.size.unwrap_or(0)),
                speed: Some(view.speed as f64),
                elapsed: Some(elapsed_ns()),
                active_connections: Some(view.connections),
                ..base
            },
            EventKind::Started => Self {
                url: Some(view.url.clone()),
                total: Some(view.size.unwrap_or(0)),
                dest_path: Some(dest_path(engine, view)),
                ..base
            },
            EventKind::Completed => {
                let ms = elapsed_ms(view);
                let avg_speed = if ms > 0 { view.bytes_done as f64 * 1000.0 / ms as f64 } else { 0.0 };
                Self {
                    elapsed: Some(elapsed_ns()),
                    total: Some(view.size.unwrap_or(view.bytes_done)),
                    avg_speed: Some(avg_speed),
                    ..base
                }
            }
            EventKind::Failed | EventKind::Cancelled => {
                let fallback = if kind == EventKind::Cancelled { "cancelled" } else { "failed" };
                let err = view.error.clone().filter(|error| !error.is_empty()).unwrap_or_else(|| fallback.to_owned());
                Self { err: Some(err), ..base }
            }
            EventKind::Paused => Self { downloaded: Some(view.bytes_done), ..base },
            EventKind::Added | EventKind::Resumed | EventKind::Retried | EventKind::Queued | EventKind::Removed => base,
        }
    }
}

/// One event's `data`: the status object, then the Go client's fields. Go keeps the last of two keys matching
/// one field, so `Speed` (bytes/s) comes after the status object's `speed` (MB/s).
#[derive(Serialize)]
struct EventData {
    #[serde(flatten)]
    status: SurgeStatus,
    #[serde(flatten)]
    go: GoEvent,
}

/// `GET /events`: the account's events, `event: <kind>` with [`EventData`] as `data`, each with an `id:` so a
/// client that reconnects with `Last-Event-ID` first gets what it missed (as far as the engine's history goes),
/// the same feed as the native `/v1/events`.
async fn events(
    State(state): State<AppState>,
    SurgeCaller(account): SurgeCaller,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let feed = Feed::new(state.engine.clone(), account, &headers);
    let stream = futures_util::stream::unfold((state.engine, feed), |(engine, mut feed)| async move {
        let event = feed.next().await?;
        let data = EventData {
            status: SurgeStatus::new(&engine, &event.download),
            go: GoEvent::new(&engine, event.kind, &event.download),
        };
        let data = serde_json::to_string(&data).unwrap_or_else(|error| {
            tracing::error!(%error, "serialising a Surge event");
            "{}".to_owned()
        });
        let sse = SseEvent::default().id(event.id.to_string()).event(surge_event(event.kind)).data(data);
        Some((Ok(sse), (engine, feed)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_kind_has_one_surge_name() {
        let cases = [
            (EventKind::Added, "queued"),
            (EventKind::Started, "started"),
            (EventKind::Progress, "progress"),
            (EventKind::Paused, "paused"),
            (EventKind::Resumed, "resumed"),
            (EventKind::Completed, "complete"),
            (EventKind::Failed, "error"),
            (EventKind::Cancelled, "error"),
            (EventKind::Removed, "removed"),
        ];
        for (kind, name) in cases {
            assert_eq!(surge_event(kind), name, "{kind:?}");
        }
    }

    #[test]
    fn path_is_confined_to_the_downloads_directory() {
        let roots = [PathBuf::from("/srv/haul/downloads")];
        for bad in [
            "/etc",
            "/srv/haul",
            "/srv/haul/downloads-other/x",
            "/srv/haul/downloads/../x",
            "../x",
            "a/../../b",
            "a/..",
            "\\\\server\\share",
            "C:\\x",
            "..\\x",
        ] {
            let error = confined(bad, &roots).unwrap_err();
            assert!(error.1.contains("relative to the downloads directory"), "{bad}: {}", error.1);
        }
        for (good, relative) in [
            ("music", Some("music")),
            ("a/b", Some("a/b")),
            ("a/./b", Some("a/./b")),
            ("x..y", Some("x..y")),
            ("", None),
            (".", None),
            ("/srv/haul/downloads", None),
            ("/srv/haul/downloads/", None),
            ("/srv/haul/downloads/music", Some("music")),
            ("/srv/haul/downloads/a/b/", Some("a/b")),
        ] {
            assert_eq!(confined(good, &roots).unwrap().as_deref(), relative, "{good}");
        }
    }

    #[test]
    fn names_from_urls_for_events_before_a_name_is_chosen() {
        let cases = [
            ("http://h/a/b%20c.iso?x=1#f", Some("b c.iso")),
            ("http://h/dir/", Some("dir")),
            ("http://h", None),
            ("http://h/?q=/x", None),
        ];
        for (url, name) in cases {
            assert_eq!(last_url_segment(url).as_deref(), name, "{url}");
        }
    }
}
