//! VideoDB's download jobs (`POST /download` and the job endpoints around it), mounted at `/videodb` by
//! default.
//!
//! Every call carries `x-access-token: sk-...`, a key of kind `videodb` (made with
//! `haul key create --account NAME --kind videodb`), and acts for that key's account. Every answer is
//! `{"success": true|false, ...}`; failures carry a `message` and the status code (401 no or bad key, 400 bad
//! input, 404 unknown id or path, 405 wrong method, 409 illegal state, 501 unsupported, 500 internal).
//!
//! A job's `output_url` is where its outcome is polled, as VideoDB's SDK does after `POST /download` (and after
//! `GET /download/{id}` while the job is processing): `{"status": "processing"}` until it is done, then the job
//! with `success: true`, or `success: false` and the reason. Its `download_url` is a signed link to the finished
//! file (see [`crate::links`]) that works without the key for [`LINK_TTL`], so it can be handed to a browser or
//! `curl`.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, OriginalUri, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use haul_core::account::KeyKind;
use haul_core::job::{AccountId, DownloadId, JobState};
use haul_engine::service::{self, AddRequest, DownloadView, ServiceError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::AppState;
use crate::dialects::{Mount, rfc3339};
use crate::links::{self, LINK_TTL};

/// The access-token header VideoDB clients send.
const ACCESS_TOKEN: &str = "x-access-token";

/// Page size of `GET /download` when `count` is absent.
const DEFAULT_COUNT: u32 = 50;

/// The largest `count` VideoDB accepts.
const MAX_COUNT: u32 = 5000;

/// The VideoDB routes, relative to the mount.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/download", post(create).get(list).delete(delete))
        .route("/download/{download_id}", get(status))
        .route("/download/{download_id}/output", get(output))
        // The mount itself: nesting sends `/videodb` here, not to the fallback.
        .route("/", any(unknown_route))
        // Set here so that the native router's JSON 405 and 404, added later, leave this mount alone.
        .method_not_allowed_fallback(wrong_method)
        .fallback(unknown_route)
}

/// haul's job state as VideoDB names it: the one place that decides.
///
/// | haul                          | VideoDB      |
/// |-------------------------------|--------------|
/// | `queued`, `active`, `paused`  | `processing` |
/// | `completed`                   | `done`       |
/// | `failed`, `cancelled`         | `error`      |
///
/// VideoDB has no paused job: a paused haul job is still going to finish once resumed, so it is "processing".
/// A cancelled one never will, which a VideoDB client can only read as "error".
pub(crate) fn videodb_status(state: JobState) -> &'static str {
    match state {
        JobState::Queued | JobState::Active | JobState::Paused => "processing",
        JobState::Completed => "done",
        JobState::Failed | JobState::Cancelled => "error",
    }
}

/// A failure in VideoDB's shape: `{"success": false, "message"}` with the status code.
#[derive(Debug)]
pub(crate) struct VideodbError(StatusCode, String);

impl VideodbError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self(status, message.into())
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for VideodbError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"success": false, "message": self.1}))).into_response()
    }
}

impl From<ServiceError> for VideodbError {
    fn from(error: ServiceError) -> Self {
        let (status, message) = crate::error::dialect_failure(error, "VideoDB");
        Self::new(status, message)
    }
}

impl From<BytesRejection> for VideodbError {
    // Mostly 413 over the body limit; axum's status is the right one, only the shape changes.
    fn from(rejection: BytesRejection) -> Self {
        Self::new(rejection.status(), rejection.body_text())
    }
}

async fn wrong_method() -> VideodbError {
    VideodbError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed: /download takes GET, POST and DELETE; /download/{download_id} takes GET",
    )
}

async fn unknown_route(OriginalUri(uri): OriginalUri) -> VideodbError {
    VideodbError::new(
        StatusCode::NOT_FOUND,
        format!("Not found: {}; this VideoDB API serves /download and /download/{{download_id}}", uri.path()),
    )
}

/// The account of the request's `x-access-token`; a missing, unknown or revoked key (or a key of another
/// kind) is a 401 that says how to get a good one.
pub(crate) struct VideodbCaller(AccountId);

impl FromRequestParts<AppState> for VideodbCaller {
    type Rejection = VideodbError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, VideodbError> {
        const HOW: &str = "send x-access-token: sk-...; keys are made with \
                           `haul key create --account NAME --kind videodb`";
        let unauthorized = |why: &str| VideodbError::new(StatusCode::UNAUTHORIZED, format!("{why}; {HOW}"));
        let Some(value) = parts.headers.get(ACCESS_TOKEN) else {
            return Err(unauthorized("Missing x-access-token header"));
        };
        let secret = value.to_str().map(str::trim).unwrap_or_default();
        if secret.is_empty() {
            return Err(unauthorized("Invalid access token"));
        }
        match state.engine.account_for_key(secret, &[KeyKind::Videodb]).await {
            Ok(Some(account)) => Ok(Self(account)),
            Ok(None) => Err(unauthorized("Invalid access token")),
            Err(error) => Err(error.into()),
        }
    }
}

/// A JSON body, whatever the Content-Type (the seed's Node.js example sends none); 400 with serde's reason.
fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, VideodbError> {
    serde_json::from_slice(body).map_err(|error| VideodbError::bad_request(format!("Invalid JSON body: {error}")))
}

/// A download id as `POST /download` returned it; anything else cannot name a job, so it is a 400.
fn parse_id(text: &str) -> Result<DownloadId, VideodbError> {
    text.trim().parse().map_err(|_| {
        VideodbError::bad_request(format!("download_id {text:?} is not a download id (a UUID from POST /download)"))
    })
}

/// One job as VideoDB shows it, in `GET /download/{id}` and in the list.
#[derive(Debug, Serialize)]
struct Job {
    id: DownloadId,
    name: String,
    status: &'static str,
    created_at: String,
    /// Where the outcome is polled.
    output_url: String,
    /// 0-100.
    percentage: f64,
    /// Only when done.
    #[serde(skip_serializing_if = "Option::is_none")]
    download_url: Option<String>,
    /// Only on error.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Job {
    /// `base` is where the server and this API are reached, for the URLs in the job.
    fn new(state: &AppState, base: &Base, view: &DownloadView) -> Self {
        let status = videodb_status(view.state);
        let download_url = (view.state == JobState::Completed).then(|| file_link(state, base, view));
        let error = match view.state {
            JobState::Failed => Some(view.error.clone().unwrap_or_else(|| "download failed".to_owned())),
            JobState::Cancelled => Some(view.error.clone().unwrap_or_else(|| "cancelled".to_owned())),
            _ => None,
        };
        Self {
            id: view.id,
            name: name(view),
            status,
            created_at: rfc3339(view.created_at),
            output_url: output_url(base, view.id),
            percentage: crate::dialects::percent(view),
            download_url,
            error,
        }
    }
}

fn file_link(state: &AppState, base: &Base, view: &DownloadView) -> String {
    // Signed links live at the server's root, whatever this API's mount.
    state.links.link(&base.root, &view.account, view.id, links::FILE, LINK_TTL)
}

/// Where a job's outcome is polled.
fn output_url(base: &Base, id: DownloadId) -> String {
    format!("{}{}/download/{id}/output", base.root.trim_end_matches('/'), base.mount)
}

/// Where the client reached the server (`http://h:1`) and this API in it (`/videodb`).
struct Base {
    root: String,
    mount: String,
}

fn api_base(state: &AppState, headers: &HeaderMap, mount: Mount) -> Base {
    Base { root: links::base_url(state, headers), mount: mount.0 }
}

/// The client's `name`, else the file's name once haul has chosen it, else the URL's last path segment.
fn name(view: &DownloadView) -> String {
    if let Some(title) = &view.title {
        return title.clone();
    }
    let from_path = view.path.as_deref().and_then(|path| path.rsplit('/').next()).filter(|name| !name.is_empty());
    if let Some(name) = from_path.or(view.filename.as_deref()) {
        return name.to_owned();
    }
    url_name(&view.url)
}

/// `https://h/a/clip%20one.mp4?x=1` → `clip one.mp4`; the host when the path is empty.
fn url_name(url: &str) -> String {
    let without_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let without_query = without_scheme.split(['?', '#']).next().unwrap_or_default();
    let segment = without_query.rsplit('/').find(|segment| !segment.is_empty()).unwrap_or(without_query);
    percent_encoding::percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

/// `POST /download`.
#[derive(Deserialize)]
struct CreateBody {
    stream_link: Option<String>,
    name: Option<String>,
}

/// `POST /download` `{"stream_link", "name"?}`: queues the download and answers its id and the link its file
/// will be at.
async fn create(
    State(state): State<AppState>,
    VideodbCaller(account): VideodbCaller,
    headers: HeaderMap,
    mount: Mount,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, VideodbError> {
    let CreateBody { stream_link, name } = json_body(&body?)?;
    let url = stream_link
        .filter(|link| !link.trim().is_empty())
        .ok_or_else(|| VideodbError::bad_request("stream_link is required: the URL to download"))?;
    let request = AddRequest { url, title: name, ..AddRequest::default() };
    let view = state.engine.add(&account, request).await?;
    let base = api_base(&state, &headers, mount);
    Ok(Json(json!({
        "success": true,
        "status": videodb_status(view.state),
        "data": {"id": view.id, "output_url": output_url(&base, view.id)},
    })))
}

/// `GET /download/{download_id}/output`: the job's outcome as VideoDB's SDK polls it. While the job runs,
/// `{"success": true, "status": "processing", "data": {"id", "percentage"}}`; once done, the job; once failed,
/// `{"success": false, "status": "error", "message": why}`, which the SDK raises as an error.
async fn output(
    State(state): State<AppState>,
    VideodbCaller(account): VideodbCaller,
    headers: HeaderMap,
    mount: Mount,
    download_id: Result<Path<String>, PathRejection>,
) -> Result<Json<serde_json::Value>, VideodbError> {
    let Path(download_id) = download_id.map_err(|rejection| VideodbError::bad_request(rejection.body_text()))?;
    let view = state.engine.get(&account, parse_id(&download_id)?).await?;
    let job = Job::new(&state, &api_base(&state, &headers, mount), &view);
    Ok(Json(match view.state {
        JobState::Completed => json!({"success": true, "status": job.status, "data": job}),
        JobState::Failed | JobState::Cancelled => json!({
            "success": false,
            "status": job.status,
            "message": job.error.clone().unwrap_or_default(),
            "data": job,
        }),
        _ => json!({"success": true, "status": job.status, "data": {"id": job.id, "percentage": job.percentage}}),
    }))
}

/// `GET /download/{download_id}`.
async fn status(
    State(state): State<AppState>,
    VideodbCaller(account): VideodbCaller,
    headers: HeaderMap,
    mount: Mount,
    download_id: Result<Path<String>, PathRejection>,
) -> Result<Json<serde_json::Value>, VideodbError> {
    let Path(download_id) = download_id.map_err(|rejection| VideodbError::bad_request(rejection.body_text()))?;
    let view = state.engine.get(&account, parse_id(&download_id)?).await?;
    let job = Job::new(&state, &api_base(&state, &headers, mount), &view);
    Ok(Json(json!({"success": true, "status": job.status, "data": job})))
}

/// `GET /download` paging, both optional; taken as text so a bad value gets a message of ours.
#[derive(Deserialize)]
struct ListQuery {
    page_index: Option<String>,
    count: Option<String>,
}

/// `GET /download?page_index=0&count=50`: the account's jobs, newest first.
async fn list(
    State(state): State<AppState>,
    VideodbCaller(account): VideodbCaller,
    headers: HeaderMap,
    mount: Mount,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, VideodbError> {
    let Query(query) = query.map_err(|rejection| VideodbError::bad_request(rejection.body_text()))?;
    let filter = page_filter(query.page_index.as_deref(), query.count.as_deref())?;
    let views = state.engine.list(&account, filter).await?;
    let base = api_base(&state, &headers, mount);
    let downloads: Vec<Job> = views.iter().map(|view| Job::new(&state, &base, view)).collect();
    Ok(Json(json!({"success": true, "data": {"downloads": downloads}})))
}

/// The store's filter for page `page_index` (from 0) of `count` jobs (1 to [`MAX_COUNT`]).
fn page_filter(page_index: Option<&str>, count: Option<&str>) -> Result<service::ListQuery, VideodbError> {
    let page_index = match page_index.map(str::trim) {
        None | Some("") => 0,
        Some(text) => text.parse::<u32>().map_err(|_| {
            VideodbError::bad_request(format!("page_index must be a whole number from 0, got {text:?}"))
        })?,
    };
    let count = match count.map(str::trim) {
        None | Some("") => DEFAULT_COUNT,
        Some(text) => text.parse::<u32>().ok().filter(|count| (1..=MAX_COUNT).contains(count)).ok_or_else(|| {
            VideodbError::bad_request(format!("count must be a whole number from 1 to {MAX_COUNT}, got {text:?}"))
        })?,
    };
    let offset = page_index
        .checked_mul(count)
        .ok_or_else(|| VideodbError::bad_request(format!("page_index {page_index} is too large")))?;
    Ok(service::ListQuery { limit: Some(count), offset, ..service::ListQuery::default() })
}

#[derive(Deserialize)]
struct DeleteQuery {
    download_id: Option<String>,
}

#[derive(Deserialize)]
struct DeleteBody {
    download_id: Option<String>,
}

/// `DELETE /download` with `download_id` in the query or a JSON body (VideoDB's documentation shows both): stops the job if it
/// runs and removes it with its files, as VideoDB removes a deleted job's data.
async fn delete(
    State(state): State<AppState>,
    VideodbCaller(account): VideodbCaller,
    query: Result<Query<DeleteQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, VideodbError> {
    let Query(query) = query.map_err(|rejection| VideodbError::bad_request(rejection.body_text()))?;
    let body = body?;
    let from_body =
        if body.iter().all(u8::is_ascii_whitespace) { None } else { json_body::<DeleteBody>(&body)?.download_id };
    let given = |id: Option<String>| id.filter(|id| !id.trim().is_empty());
    let download_id = match (given(query.download_id), given(from_body)) {
        // A destructive call must not guess which of two ids was meant.
        (Some(in_query), Some(in_body)) if in_query.trim() != in_body.trim() => {
            return Err(VideodbError::bad_request(format!(
                "download_id is {in_query:?} in the query but {in_body:?} in the body; send one"
            )));
        }
        (Some(id), _) | (None, Some(id)) => id,
        (None, None) => {
            return Err(VideodbError::bad_request(
                "download_id is required, in the query (?download_id=) or the JSON body {\"download_id\": ...}",
            ));
        }
    };
    state.engine.remove(&account, parse_id(&download_id)?, true).await?;
    Ok(Json(json!({"success": true, "message": "Download deleted"})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_names() {
        let cases = [
            ("https://h/a/clip%20one.mp4?x=1#t", "clip one.mp4"),
            ("http://h/a/b/", "b"),
            ("http://h", "h"),
            ("http://h/", "h"),
        ];
        for (url, name) in cases {
            assert_eq!(url_name(url), name, "{url}");
        }
    }

    #[test]
    fn paging() {
        let filter = page_filter(None, None).unwrap();
        assert_eq!((filter.limit, filter.offset), (Some(DEFAULT_COUNT), 0));
        let filter = page_filter(Some("3"), Some("10")).unwrap();
        assert_eq!((filter.limit, filter.offset), (Some(10), 30));
        assert_eq!(page_filter(None, Some("5000")).unwrap().limit, Some(5000));
        for (page_index, count) in [(None, Some("5001")), (None, Some("0")), (Some("-1"), None), (Some("x"), None)] {
            let error = page_filter(page_index, count).unwrap_err();
            assert_eq!(error.0, StatusCode::BAD_REQUEST, "{page_index:?} {count:?}");
        }
        assert!(page_filter(Some("4000000"), Some("5000")).is_err());
    }
}
