//! `/v1/downloads`: create, list, read, pause, resume, cancel, edit and delete downloads.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use haul_core::job::{DownloadId, JobState};
use haul_engine::service::AddedOnce;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{IdPath, JsonBody, QueryParams};
use crate::wire::{CreateDownload, Download, DownloadList, PatchDownload, Stats};

/// Starts a download (or creates it paused); answers with the new job and its `Location`.
///
/// With an `Idempotency-Key` header, the add happens once: a retry with the same key and the same body (within
/// 24 hours, on any node) answers with the download the first request made, marked `Idempotent-Replayed: true`,
/// however many arrive at once; the same key with another body is a 422.
#[utoipa::path(post, path = "/v1/downloads", tag = "downloads", request_body = CreateDownload,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255,
        description = "A key of the client's choosing (a UUID) that makes retries of this add safe")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created, or replayed for a key used before with this body", body = Download,
            headers(("Location" = String, description = "/v1/downloads/{id}"),
                ("Idempotent-Replayed" = String, description = "`true` when the download was made by an earlier request with this key"))),
        (status = 400, description = "Invalid field, or an Idempotency-Key that is not 1-255 visible characters",
            body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 403, description = "A literal address the server does not fetch from (loopback, private, ...)",
            body = ErrorBody),
        (status = 409, description = "`already_downloaded`: the account's archive holds this video or this version \
            of this file; `error.download` names the earlier download. Send `\"force\": true` to download it again",
            body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 422, description = "URL scheme other than http(s), or an Idempotency-Key used for another body",
            body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateDownload>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    // The body as parsed, written back: the same fields give the same fingerprint whatever their order or spacing.
    let fingerprint = key
        .as_ref()
        .map(|_| serde_json::to_vec(&body).map(|bytes| hex::encode(Sha256::digest(bytes))))
        .transpose()
        .map_err(ApiError::internal)?;
    let request = body.into_request()?;
    let (view, replayed) = match (key, fingerprint) {
        (Some(key), Some(fingerprint)) => {
            match state.engine.add_once(&caller.account, request, &key, &fingerprint).await? {
                AddedOnce::Created(view) => (view, false),
                AddedOnce::Replayed(view) => (view, true),
                AddedOnce::KeyReused { created_at } => {
                    return Err(ApiError::unprocessable(
                        "idempotency_key_reused",
                        format!(
                            "the Idempotency-Key {key:?} was used at {} for a different request; send the same body \
                             to get that download back, or use a new key for a new download",
                            httpdate::fmt_http_date(
                                std::time::UNIX_EPOCH
                                    + std::time::Duration::from_millis(u64::try_from(created_at).unwrap_or_default())
                            )
                        ),
                    ));
                }
            }
        }
        _ => (state.engine.add(&caller.account, request).await?, false),
    };
    let location = HeaderValue::from_str(&format!("/v1/downloads/{}", view.id)).map_err(ApiError::internal)?;
    let mut response =
        (StatusCode::CREATED, [(header::LOCATION, location)], Json(Download::from(view))).into_response();
    if replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The most characters an `Idempotency-Key` may have (Stripe's limit).
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The request's `Idempotency-Key`: absent, or 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let valid = value.to_str().ok().filter(|text| {
        !text.is_empty() && text.len() <= MAX_IDEMPOTENCY_KEY && text.bytes().all(|b| b.is_ascii_graphic())
    });
    match valid {
        Some(text) => Ok(Some(text.to_owned())),
        None => Err(ApiError::bad_request(format!(
            "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters (a UUID is a good key)"
        ))),
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only downloads in this state, or in any of several separated by commas (`failed,cancelled`).
    #[param(value_type = Option<String>, example = "queued,active",
        pattern = "^((queued|active|paused|completed|failed|cancelled)(,(queued|active|paused|completed|failed|cancelled))*)?$")]
    state: Option<String>,
    /// Only downloads whose title, file name or URL contains this text (case ignored), up to 200 characters.
    #[param(max_length = 200)]
    search: Option<String>,
    /// `newest` (the default) or `oldest` first, by when they were added.
    #[param(value_type = Option<crate::wire::OrderName>)]
    order: Option<String>,
    /// Only the entries of this playlist (a download of kind `playlist`).
    #[param(value_type = Option<String>, format = Uuid)]
    parent: Option<String>,
    /// At most this many: 1 to 1000, 100 when absent.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Skip this many (newest first).
    #[param(minimum = 0, maximum = 2147483647)]
    offset: Option<u32>,
}

/// Downloads a page holds when the client does not say.
const DEFAULT_PAGE: u32 = 100;
/// The most one page may hold: the answer for thousands of jobs stays small and fast.
const MAX_PAGE: u32 = 1000;

/// The caller's downloads, newest first, a page at a time, with the number matching the filter and the path
/// of the next page.
#[utoipa::path(get, path = "/v1/downloads", tag = "downloads", params(ListQuery), security(("bearer" = [])),
    responses(
        (status = 200, body = DownloadList),
        (status = 400, description = "Bad query parameter", body = ErrorBody),
        (status = 401, body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<DownloadList>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be between 1 and {MAX_PAGE}, got {limit}")));
    }
    let offset = query.offset.unwrap_or(0);
    if offset > i32::MAX as u32 {
        return Err(ApiError::bad_request(format!("offset must be at most {}, got {offset}", i32::MAX)));
    }
    let states = match query.state.as_deref().map(str::trim).filter(|text| !text.is_empty()) {
        Some(text) => text
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| {
                name.to_ascii_lowercase().parse::<JobState>().map_err(|error| ApiError::bad_request(error.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let search = query.search.as_deref().map(str::trim).filter(|text| !text.is_empty()).map(str::to_owned);
    if search.as_ref().is_some_and(|text| text.chars().count() > 200) {
        return Err(ApiError::bad_request("search must be at most 200 characters"));
    }
    let oldest_first = match query.order.as_deref().map(str::trim) {
        None | Some("" | "newest") => false,
        Some("oldest") => true,
        Some(other) => return Err(ApiError::bad_request(format!("order must be newest or oldest, got {other:?}"))),
    };
    let parent = match query.parent.as_deref().map(str::trim).filter(|text| !text.is_empty()) {
        Some(text) => Some(
            text.parse::<DownloadId>()
                .map_err(|_| ApiError::bad_request(format!("parent must be a download's id (a UUID), got {text:?}")))?,
        ),
        None => None,
    };
    let filter = haul_engine::service::ListQuery {
        states: states.clone(),
        search: search.clone(),
        parent,
        oldest_first,
        limit: Some(limit),
        offset,
        ..Default::default()
    };
    let views = state.engine.list(&caller.account, filter.clone()).await?;
    // With one state or none, counted from the per-state totals (an index read) rather than a second query: a
    // download changing state between the two calls can make `total` off by one for a moment, which paging
    // tolerates.
    let total = match (states.as_slice(), &search) {
        _ if parent.is_some() => state.engine.count(&caller.account, filter).await?,
        ([], None) => Stats::from(state.engine.stats(&caller.account).await?).count(None),
        ([one], None) => Stats::from(state.engine.stats(&caller.account).await?).count(Some(*one)),
        _ => state.engine.count(&caller.account, filter).await?,
    };
    let end = u64::from(offset) + views.len() as u64;
    let next = (end < total && !views.is_empty()).then(|| {
        let mut path = format!("/v1/downloads?limit={limit}&offset={end}");
        if !states.is_empty() {
            let names: Vec<&str> = states.iter().map(|state| state.as_str()).collect();
            path.push_str(&format!("&state={}", names.join(",")));
        }
        if let Some(text) = &search {
            let encoded = percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC);
            path.push_str(&format!("&search={encoded}"));
        }
        if let Some(parent) = parent {
            path.push_str(&format!("&parent={parent}"));
        }
        if oldest_first {
            path.push_str("&order=oldest");
        }
        path
    });
    Ok(Json(DownloadList { downloads: views.into_iter().map(Download::from).collect(), total, next }))
}

/// One download.
#[utoipa::path(get, path = "/v1/downloads/{id}", tag = "downloads", params(("id" = String, Path, format = Uuid)),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Download),
        (status = 400, description = "id is not a UUID", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<Json<Download>, ApiError> {
    Ok(Json(state.engine.get(&caller.account, id).await?.into()))
}

/// Stops fetching, keeping the partial file; from queued or active.
#[utoipa::path(post, path = "/v1/downloads/{id}/pause", tag = "downloads",
    params(("id" = String, Path, format = Uuid)), security(("bearer" = [])),
    responses(
        (status = 200, body = Download),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not pausable; the message names the current state", body = ErrorBody),
    ))]
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<Json<Download>, ApiError> {
    Ok(Json(state.engine.pause(&caller.account, id).await?.into()))
}

/// Queues a paused download again; it continues from its partial file.
#[utoipa::path(post, path = "/v1/downloads/{id}/resume", tag = "downloads",
    params(("id" = String, Path, format = Uuid)), security(("bearer" = [])),
    responses(
        (status = 200, body = Download),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not paused; the message names the current state", body = ErrorBody),
    ))]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<Json<Download>, ApiError> {
    Ok(Json(state.engine.resume(&caller.account, id).await?.into()))
}

/// Queues a failed or cancelled download again (a failed one continues from its partial file). After an
/// expired link, `PATCH` a fresh `url` first.
#[utoipa::path(post, path = "/v1/downloads/{id}/retry", tag = "downloads",
    params(("id" = String, Path, format = Uuid)), security(("bearer" = [])),
    responses(
        (status = 200, body = Download),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Neither failed nor cancelled; the message names the current state",
            body = ErrorBody),
    ))]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<Json<Download>, ApiError> {
    Ok(Json(state.engine.retry(&caller.account, id).await?.into()))
}

/// Stops a download for good and frees its partial file.
#[utoipa::path(post, path = "/v1/downloads/{id}/cancel", tag = "downloads",
    params(("id" = String, Path, format = Uuid)), security(("bearer" = [])),
    responses(
        (status = 200, body = Download),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Already finished; the message names the current state", body = ErrorBody),
    ))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<Json<Download>, ApiError> {
    Ok(Json(state.engine.cancel(&caller.account, id).await?.into()))
}

/// Changes the URL (while paused or failed) and the priority (any time).
#[utoipa::path(patch, path = "/v1/downloads/{id}", tag = "downloads", request_body = PatchDownload,
    params(("id" = String, Path, format = Uuid)), security(("bearer" = [])),
    responses(
        (status = 200, body = Download),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "URL change while the download runs or after it finished", body = ErrorBody),
        (status = 422, description = "URL scheme other than http(s)", body = ErrorBody),
    ))]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
    JsonBody(body): JsonBody<PatchDownload>,
) -> Result<Json<Download>, ApiError> {
    Ok(Json(state.engine.patch(&caller.account, id, body.into_request()?).await?.into()))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Also delete the finished file (partial files are always removed). Default false.
    delete_files: Option<bool>,
}

/// Stops the download if it runs and forgets it; answers with the job as it was.
#[utoipa::path(delete, path = "/v1/downloads/{id}", tag = "downloads",
    params(("id" = String, Path, format = Uuid), DeleteQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "The removed download", body = Download),
        (status = 404, body = ErrorBody),
    ))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
    QueryParams(query): QueryParams<DeleteQuery>,
) -> Result<Json<Download>, ApiError> {
    let delete_files = query.delete_files.unwrap_or(false);
    Ok(Json(state.engine.remove(&caller.account, id, delete_files).await?.into()))
}

/// What an unfinished download's resume record holds.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Transfer {
    /// Whether a resume record is on disk: false before the first byte, once finished, for media pages (yt-dlp
    /// keeps its own) and after a cancel.
    resumable: bool,
    size: Option<u64>,
    /// The validators a resumed fetch must still match; a changed file on the server starts over.
    etag: Option<String>,
    last_modified: Option<String>,
    /// Byte ranges on disk, `[start, end)`, in order.
    #[schema(value_type = Vec<Vec<u64>>)]
    done: Vec<(u64, u64)>,
}

/// The resume record of an unfinished download: validators and the byte ranges already fetched.
#[utoipa::path(get, path = "/v1/downloads/{id}/transfer", tag = "downloads",
    params(("id" = String, Path, format = Uuid)), security(("bearer" = [])),
    responses((status = 200, body = Transfer), (status = 404, body = ErrorBody)))]
pub async fn transfer(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<Json<Transfer>, ApiError> {
    let found = state.engine.transfer(&caller.account, id).await?;
    Ok(Json(match found {
        Some(record) => Transfer {
            resumable: true,
            size: record.size,
            etag: record.etag,
            last_modified: record.last_modified,
            done: record.done,
        },
        None => Transfer { resumable: false, size: None, etag: None, last_modified: None, done: Vec::new() },
    }))
}
