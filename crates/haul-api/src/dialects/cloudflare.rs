//! Cloudflare Stream's videos and their per-video downloads (`default` and `audio`), mounted at `/client/v4`
//! by default.
//!
//! A Stream video is a haul download job: `POST .../stream/copy` queues one, its `uid` is the job's id as 32
//! hex digits (the hyphenated form is accepted too), and its downloads are the job's renditions: `default` is the
//! job's own file, handed out as a signed link (see [`crate::links`]) that works without credentials for
//! [`LINK_TTL`].
//!
//! Credentials: `Authorization: Bearer TOKEN` (a haul bearer key) or `X-Auth-Email` + `X-Auth-Key` (a
//! `cloudflare-global` key of the account with that email). A key acts for one account, which must be the path's
//! `{account_id}`.
//!
//! Every answer, failures included, is Cloudflare's envelope `{"success", "errors": [{"code", "message"}],
//! "messages": [], "result"}`; a failure's `result` is `null`. The error codes, in one place ([`StreamError`]):
//!
//! | status | code  | when                                                                         |
//! |--------|-------|------------------------------------------------------------------------------|
//! | 401    | 10000 | no credentials; a bad or revoked key; an email that does not go with the key |
//! | 403    | 10000 | a key of another account than the path's `{account_id}`                      |
//! | 400    | 10400 | a malformed body, `url` or identifier; an unknown download type              |
//! | 404    | 10404 | an unknown video (another account's included) or path                        |
//! | 405    | 10405 | a method the path does not take                                              |
//! | 409    | 10409 | an action the job's state does not allow                                     |
//! | 413    | 10413 | a body over [`crate::MAX_JSON_BODY`]                                         |
//! | 501    | 10501 | an `audio` download on a server without ffmpeg                               |
//! | 500    | 10500 | something broke inside haul (logged, not sent)                               |
//!
//! 10000 is what Cloudflare answers for every authentication failure; the others are haul's own, 10000 plus the
//! status, so that a client can tell them apart without this table.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, OriginalUri, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use haul_core::job::{AccountId, DownloadId, JobState};
use haul_core::media::{RenditionName, RenditionState};
use haul_engine::service::{AddRequest, DownloadView, ListQuery, RenditionView, ServiceError};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::{bearer_account, bearer_token};
use crate::dialects::{percent, rfc3339};
use crate::links::{self, LINK_TTL};

/// The Cloudflare Stream routes, relative to the mount.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/accounts/{account_id}/stream", get(list))
        .route("/accounts/{account_id}/stream/copy", post(copy))
        .route("/accounts/{account_id}/stream/{identifier}", get(video).delete(delete_video))
        .route(
            "/accounts/{account_id}/stream/{identifier}/downloads",
            get(downloads).post(create_default_download).delete(delete_downloads),
        )
        .route(
            "/accounts/{account_id}/stream/{identifier}/downloads/{download_type}",
            post(create_download).delete(delete_download),
        )
        // Set here so that the native router's JSON 405 and 404, added later, leave this mount alone.
        .method_not_allowed_fallback(wrong_method)
        .fallback(unknown_route)
}

/// haul's job state as a Stream video's `status.state`: the one place that decides.
///
/// | haul                    | Stream       |
/// |-------------------------|--------------|
/// | `queued`, `paused`      | `queued`     |
/// | `active`                | `inprogress` |
/// | `completed`             | `ready`      |
/// | `failed`, `cancelled`   | `error`      |
///
/// Stream has no paused video. A paused job is not progressing but will once resumed, which is what a Stream
/// client reads from "queued" (keep polling); a cancelled one never will, which it can only read as "error".
pub(crate) fn stream_state(state: JobState) -> &'static str {
    match state {
        JobState::Queued | JobState::Paused => "queued",
        JobState::Active => "inprogress",
        JobState::Completed => "ready",
        JobState::Failed | JobState::Cancelled => "error",
    }
}

/// Cloudflare's envelope around every answer.
#[derive(Debug, Serialize)]
struct Envelope<T> {
    success: bool,
    errors: Vec<Note>,
    messages: Vec<Note>,
    result: T,
}

#[derive(Debug, Serialize)]
struct Note {
    code: u32,
    message: String,
}

type Answer<T> = Result<Json<Envelope<T>>, StreamError>;

fn ok<T>(result: T) -> Answer<T> {
    Ok(Json(Envelope { success: true, errors: Vec::new(), messages: Vec::new(), result }))
}

/// A failure in the envelope: the status, and the message for people. The envelope's code follows from the
/// status (see the module docs).
#[derive(Debug)]
pub(crate) struct StreamError(StatusCode, String);

impl StreamError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self(status, message.into())
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn unauthenticated(why: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            format!("Authentication error: {why}; send Authorization: Bearer TOKEN, or X-Auth-Email and X-Auth-Key"),
        )
    }

    fn code(&self) -> u32 {
        match self.0 {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => 10000,
            status => 10000 + u32::from(status.as_u16()),
        }
    }
}

impl IntoResponse for StreamError {
    fn into_response(self) -> Response {
        let code = self.code();
        let body =
            Envelope { success: false, errors: vec![Note { code, message: self.1 }], messages: vec![], result: () };
        (self.0, Json(body)).into_response()
    }
}

impl From<ServiceError> for StreamError {
    fn from(error: ServiceError) -> Self {
        let (status, message) = crate::error::dialect_failure(error, "Cloudflare Stream");
        Self::new(status, message)
    }
}

impl From<BytesRejection> for StreamError {
    // Mostly 413 over the body limit; axum's status is the right one, only the shape changes.
    fn from(rejection: BytesRejection) -> Self {
        Self::new(rejection.status(), rejection.body_text())
    }
}

async fn wrong_method(OriginalUri(uri): OriginalUri) -> StreamError {
    StreamError::new(StatusCode::METHOD_NOT_ALLOWED, format!("Method not allowed for {}", uri.path()))
}

async fn unknown_route(OriginalUri(uri): OriginalUri) -> StreamError {
    StreamError::new(
        StatusCode::NOT_FOUND,
        format!(
            "No route for {}; this Stream API serves /accounts/{{account_id}}/stream, .../stream/copy, \
             .../stream/{{identifier}} and .../stream/{{identifier}}/downloads[/{{download_type}}]",
            uri.path()
        ),
    )
}

/// The account the request's credentials act for; which path it names is checked by [`StreamAccount`].
async fn authenticate(headers: &HeaderMap, state: &AppState) -> Result<AccountId, StreamError> {
    // A request with both kinds is judged by its token alone, as the preferred scheme.
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = bearer_token(value.as_bytes())
            .ok_or_else(|| StreamError::unauthenticated("Authorization must use the Bearer scheme"))?;
        return bearer_account(state, token).await?.ok_or_else(|| StreamError::unauthenticated("invalid API token"));
    }
    let text = |name: &str| headers.get(name).map(|value| value.to_str().map(str::trim).unwrap_or_default());
    match (text("x-auth-email"), text("x-auth-key")) {
        (Some(email), Some(key)) if !email.is_empty() && !key.is_empty() => state
            .engine
            .account_for_global_key(email, key)
            .await?
            .ok_or_else(|| StreamError::unauthenticated("unknown X-Auth-Key for this X-Auth-Email")),
        (None, None) => Err(StreamError::unauthenticated("no credentials")),
        _ => Err(StreamError::unauthenticated("X-Auth-Email and X-Auth-Key must be sent together, neither empty")),
    }
}

/// The path's parameters by name; they are plain text, so only bad percent-encoding can fail.
async fn path_params(parts: &mut Parts, state: &AppState) -> Result<HashMap<String, String>, StreamError> {
    let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map_err(|rejection| StreamError::bad_request(rejection.body_text()))?;
    Ok(params)
}

/// The caller's account, authenticated and checked to be the path's `{account_id}`.
struct StreamAccount(AccountId);

impl FromRequestParts<AppState> for StreamAccount {
    type Rejection = StreamError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, StreamError> {
        let account = authenticate(&parts.headers, state).await?;
        let params = path_params(parts, state).await?;
        let in_path = params.get("account_id").map(String::as_str).unwrap_or_default();
        if in_path != account.as_str() {
            return Err(StreamError::new(
                StatusCode::FORBIDDEN,
                format!("Authentication error: this key does not belong to account {in_path:?}"),
            ));
        }
        Ok(Self(account))
    }
}

/// A video of the caller's account, as the path's `{identifier}` names it. Whether it exists is the engine's
/// answer (404, for another account's video too).
struct VideoRef {
    account: AccountId,
    id: DownloadId,
}

impl FromRequestParts<AppState> for VideoRef {
    type Rejection = StreamError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, StreamError> {
        let StreamAccount(account) = StreamAccount::from_request_parts(parts, state).await?;
        let params = path_params(parts, state).await?;
        let identifier = params.get("identifier").map(String::as_str).unwrap_or_default();
        // Not a uid is not a video: a 404, as Cloudflare answers it (its SDK raises NotFoundError).
        let id = parse_uid(identifier).ok_or_else(|| {
            StreamError::new(
                StatusCode::NOT_FOUND,
                format!("video {identifier:?} not found; a uid is the 32 hex digits .../stream/copy answered"),
            )
        })?;
        Ok(Self { account, id })
    }
}

/// A `{download_type}`: `default` or `audio`.
struct DownloadType(RenditionName);

impl FromRequestParts<AppState> for DownloadType {
    type Rejection = StreamError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, StreamError> {
        let params = path_params(parts, state).await?;
        let text = params.get("download_type").map(String::as_str).unwrap_or_default();
        text.parse().map(Self).map_err(|_| {
            StreamError::bad_request(format!(
                "unknown download type {text:?}; expected {}",
                RenditionName::NAMES.join(" or ")
            ))
        })
    }
}

/// A video's uid: the job id as 32 hex digits, or hyphenated as the native API writes it.
fn parse_uid(text: &str) -> Option<DownloadId> {
    if text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let (a, rest) = text.split_at(8);
        let (b, rest) = rest.split_at(4);
        let (c, rest) = rest.split_at(4);
        let (d, e) = rest.split_at(4);
        return format!("{a}-{b}-{c}-{d}-{e}").parse().ok();
    }
    text.parse().ok()
}

fn uid(id: DownloadId) -> String {
    id.as_uuid().simple().to_string()
}

/// A video as Stream shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Video {
    uid: String,
    status: VideoStatus,
    meta: Meta,
    /// A signed link to the thumbnail of a media video; empty for a plain file, which has none.
    thumbnail: String,
    ready_to_stream: bool,
    /// Seconds; -1 (as Cloudflare writes it, an integer) while unknown: a plain file, or a video not read yet.
    duration: serde_json::Value,
    /// Bytes; 0 while unknown.
    size: u64,
    input: Input,
    created: String,
    modified: String,
    /// When the file was complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    uploaded: Option<String>,
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

#[derive(Debug, Serialize)]
struct Meta {
    /// The client's `meta.name`, else the file's name once haul has chosen it.
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// Stream records where a copied video came from under this key.
    #[serde(rename = "downloaded-from")]
    downloaded_from: String,
}

/// The source's dimensions: -1 while unknown.
#[derive(Debug, Serialize)]
struct Input {
    width: i64,
    height: i64,
}

impl Video {
    fn new(state: &AppState, base: &str, view: &DownloadView) -> Self {
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
        Self {
            uid: uid(view.id),
            status: VideoStatus {
                state: stream_state(view.state),
                pct_complete: percent(view).to_string(),
                error_reason_code,
                error_reason_text,
            },
            meta: Meta {
                name: view.title.clone().or_else(|| file_name.or(view.filename.as_deref()).map(str::to_owned)),
                downloaded_from: view.url.clone(),
            },
            thumbnail: if view.thumbnail.is_some() {
                state.links.link(base, &view.account, view.id, links::THUMBNAIL, LINK_TTL)
            } else {
                String::new()
            },
            ready_to_stream: completed,
            duration: view.duration.map_or(serde_json::Value::from(-1), serde_json::Value::from),
            size: view.size.unwrap_or(0),
            input: Input { width: view.width.map_or(-1, i64::from), height: view.height.map_or(-1, i64::from) },
            created: rfc3339(view.created_at),
            modified: rfc3339(view.finished_at.or(view.started_at).unwrap_or(view.created_at)),
            uploaded: view.finished_at.filter(|_| completed).map(rfc3339),
        }
    }
}

/// `POST .../stream/copy`; Stream's other options (`requireSignedURLs`, `allowedOrigins`, `creator`, ...) are
/// accepted and ignored, as are `meta` keys other than `name`.
#[derive(Deserialize)]
struct CopyBody {
    url: String,
    meta: Option<CopyMeta>,
}

#[derive(Deserialize)]
struct CopyMeta {
    name: Option<String>,
}

/// `POST /accounts/{account_id}/stream/copy` `{"url", "meta": {"name"}?}`: queues the download.
async fn copy(
    State(state): State<AppState>,
    StreamAccount(account): StreamAccount,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<Video> {
    // Whatever the Content-Type: curl's `--data` sends form-urlencoded, as Cloudflare's own examples do.
    let CopyBody { url, meta } = serde_json::from_slice(&body?)
        .map_err(|error| StreamError::bad_request(format!("invalid JSON body: {error}; expected {{\"url\": ...}}")))?;
    let request = AddRequest { url, title: meta.and_then(|meta| meta.name), ..AddRequest::default() };
    let view = state.engine.add(&account, request).await?;
    ok(Video::new(&state, &links::base_url(&state, &headers), &view))
}

/// `GET /accounts/{account_id}/stream`: the account's videos, newest first.
async fn list(
    State(state): State<AppState>,
    StreamAccount(account): StreamAccount,
    headers: HeaderMap,
) -> Answer<Vec<Video>> {
    let views = state.engine.list(&account, ListQuery::default()).await?;
    let base = links::base_url(&state, &headers);
    ok(views.iter().map(|view| Video::new(&state, &base, view)).collect())
}

/// `GET /accounts/{account_id}/stream/{identifier}`.
async fn video(State(state): State<AppState>, VideoRef { account, id }: VideoRef, headers: HeaderMap) -> Answer<Video> {
    let view = state.engine.get(&account, id).await?;
    ok(Video::new(&state, &links::base_url(&state, &headers), &view))
}

/// `DELETE /accounts/{account_id}/stream/{identifier}`: stops the job and removes it with its file and its
/// downloads. Cloudflare answers an empty 200; haul answers the envelope with `"ok"`, like Stream's delete of downloads,
/// so that every answer of this API parses the same way.
async fn delete_video(State(state): State<AppState>, VideoRef { account, id }: VideoRef) -> Answer<&'static str> {
    state.engine.remove(&account, id, true).await?;
    ok("ok")
}

/// One download of a video, as Stream shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Download {
    /// `inprogress`, `ready` or `error`.
    status: &'static str,
    /// 0-100.
    percent_complete: f64,
    /// A signed link to the file; it answers 404 until the download is ready.
    url: String,
}

impl Download {
    /// `default` is the job's own file, so its progress is the job's; others carry their own.
    fn new(state: &AppState, base: &str, view: &DownloadView, rendition: &RenditionView) -> Self {
        let (status, percent_complete, variant) = if rendition.name == RenditionName::Default {
            let status = match view.state {
                JobState::Completed => "ready",
                JobState::Failed | JobState::Cancelled => "error",
                JobState::Queued | JobState::Active | JobState::Paused => "inprogress",
            };
            (status, percent(view), RenditionName::Default.as_str())
        } else {
            let status = match rendition.state {
                RenditionState::Ready => "ready",
                RenditionState::Failed => "error",
                RenditionState::Pending | RenditionState::Active => "inprogress",
            };
            (status, rendition.percent, rendition.name.as_str())
        };
        Self { status, percent_complete, url: state.links.link(base, &view.account, view.id, variant, LINK_TTL) }
    }
}

/// The video's downloads by type, each present only once created.
async fn download_map(
    state: &AppState,
    headers: &HeaderMap,
    account: &AccountId,
    id: DownloadId,
    only: Option<RenditionName>,
) -> Result<BTreeMap<String, Download>, StreamError> {
    let view = state.engine.get(account, id).await?;
    let base = links::base_url(state, headers);
    let renditions = state.engine.renditions(account, id).await?;
    Ok(renditions
        .iter()
        .filter(|rendition| only.is_none_or(|name| rendition.name == name))
        .map(|rendition| (rendition.name.to_string(), Download::new(state, &base, &view, rendition)))
        .collect())
}

/// `GET .../stream/{identifier}/downloads`: `{"default"?: {...}, "audio"?: {...}}`.
async fn downloads(
    State(state): State<AppState>,
    VideoRef { account, id }: VideoRef,
    headers: HeaderMap,
) -> Answer<BTreeMap<String, Download>> {
    ok(download_map(&state, &headers, &account, id, None).await?)
}

/// Creates the `name` download (asking again changes nothing) and answers `{name: {...}}`.
async fn create(
    state: &AppState,
    headers: &HeaderMap,
    account: &AccountId,
    id: DownloadId,
    name: RenditionName,
) -> Answer<BTreeMap<String, Download>> {
    state.engine.request_rendition(account, id, name).await?;
    ok(download_map(state, headers, account, id, Some(name)).await?)
}

/// `POST .../stream/{identifier}/downloads`: the `default` download.
async fn create_default_download(
    State(state): State<AppState>,
    VideoRef { account, id }: VideoRef,
    headers: HeaderMap,
) -> Answer<BTreeMap<String, Download>> {
    create(&state, &headers, &account, id, RenditionName::Default).await
}

/// `POST .../stream/{identifier}/downloads/{download_type}`.
async fn create_download(
    State(state): State<AppState>,
    VideoRef { account, id }: VideoRef,
    DownloadType(name): DownloadType,
    headers: HeaderMap,
) -> Answer<BTreeMap<String, Download>> {
    create(&state, &headers, &account, id, name).await
}

/// `DELETE .../stream/{identifier}/downloads`: removes every download, answering `"ok"`.
async fn delete_downloads(State(state): State<AppState>, VideoRef { account, id }: VideoRef) -> Answer<&'static str> {
    state.engine.delete_renditions(&account, id, None).await?;
    ok("ok")
}

/// `DELETE .../stream/{identifier}/downloads/{download_type}`: removes that one; a type never created is
/// already gone, so that is `"ok"` too.
async fn delete_download(
    State(state): State<AppState>,
    VideoRef { account, id }: VideoRef,
    DownloadType(name): DownloadType,
) -> Answer<&'static str> {
    state.engine.delete_renditions(&account, id, Some(name)).await?;
    ok("ok")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_32_hex_digits_or_hyphenated() {
        let id: DownloadId = "550e8400-e29b-41d4-a716-446655440000".parse().unwrap();
        assert_eq!(uid(id), "550e8400e29b41d4a716446655440000");
        for text in ["550e8400e29b41d4a716446655440000", "550e8400-e29b-41d4-a716-446655440000"] {
            assert_eq!(parse_uid(text), Some(id), "{text}");
        }
        for bad in [
            "",
            "copy",
            "550e8400e29b41d4a71644665544000",
            "550e8400e29b41d4a716446655440000a",
            "550e8400e29b41d4a71644665544000g",
            "{550e8400-e29b-41d4-a716-446655440000}",
        ] {
            assert_eq!(parse_uid(bad), None, "{bad}");
        }
    }

    #[test]
    fn codes_follow_the_status() {
        let code = |status| StreamError::new(status, "x").code();
        assert_eq!(code(StatusCode::UNAUTHORIZED), 10000);
        assert_eq!(code(StatusCode::FORBIDDEN), 10000);
        assert_eq!(code(StatusCode::BAD_REQUEST), 10400);
        assert_eq!(code(StatusCode::NOT_FOUND), 10404);
        assert_eq!(code(StatusCode::NOT_IMPLEMENTED), 10501);
    }
}
