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

mod downloads;
mod videos;

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, OriginalUri, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use haul_core::job::{AccountId, DownloadId, JobState};
use haul_core::labels::SIGNED_LINK_SECS;
use haul_core::media::RenditionName;
use haul_engine::service::{DownloadView, ServiceError};
use serde::Serialize;

use crate::AppState;
use crate::auth::{bearer_account, bearer_token};
use crate::links::LINK_TTL;
use downloads::{create_default_download, create_download, delete_download, delete_downloads, downloads};
use videos::{copy, delete_video, edit, list, storage_usage, video};

/// The Cloudflare Stream routes, relative to the mount.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/accounts/{account_id}/stream", get(list))
        .route("/accounts/{account_id}/stream/copy", post(copy))
        .route("/accounts/{account_id}/stream/storage-usage", get(storage_usage))
        .route("/accounts/{account_id}/stream/{identifier}", get(video).post(edit).delete(delete_video))
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
    /// A list's counts, when asked for (`include_counts`): the videos that match, and those answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    range: Option<u64>,
}

impl<T> Envelope<T> {
    fn ok(result: T) -> Self {
        Self { success: true, errors: Vec::new(), messages: Vec::new(), result, total: None, range: None }
    }
}

#[derive(Debug, Serialize)]
struct Note {
    code: u32,
    message: String,
}

type Answer<T> = Result<Json<Envelope<T>>, StreamError>;

fn ok<T>(result: T) -> Answer<T> {
    Ok(Json(Envelope::ok(result)))
}

/// How long the links handed out for a video live: a day, or an hour when the client asked for signed URLs
/// (`requireSignedURLs`), as long as a Stream signed token lives by default.
fn link_ttl(view: &DownloadView) -> Duration {
    if view.labels.require_signed_urls { Duration::from_secs(SIGNED_LINK_SECS) } else { LINK_TTL }
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
            Envelope { success: false, errors: vec![Note { code, message: self.1 }], result: (), ..Envelope::ok(()) };
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
/// Cloudflare Stream's download types: haul's other renditions (mp3, opus, ...) are the native API's, and this
/// dialect neither lists, makes nor deletes them.
pub(super) const STREAM_TYPES: [RenditionName; 2] = [RenditionName::Default, RenditionName::Audio];

struct DownloadType(RenditionName);

impl FromRequestParts<AppState> for DownloadType {
    type Rejection = StreamError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, StreamError> {
        let params = path_params(parts, state).await?;
        let text = params.get("download_type").map(String::as_str).unwrap_or_default();
        match text.parse() {
            Ok(name) if STREAM_TYPES.contains(&name) => Ok(Self(name)),
            _ => Err(StreamError::bad_request(format!("unknown download type {text:?}; expected default or audio"))),
        }
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
