//! `/v1/archive`: the caller's download archive, listed and forgotten. An add without `force` of a video or file
//! the archive holds is a 409 `already_downloaded` (`downloads.rs`); entries are recorded when downloads
//! complete. Another account's entries are neither listed nor removable (404).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use haul_engine::service::MAX_ARCHIVE_PAGE;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{QueryParams, listed_id};
use crate::wire::{ArchiveEntry, ArchiveList, Forgotten};

/// Entries a page holds when the client does not say.
const DEFAULT_PAGE: u32 = 100;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ArchiveQuery {
    /// At most this many: 1 to 1000, 100 when absent.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Skip this many (newest first).
    #[param(minimum = 0, maximum = 2147483647)]
    offset: Option<u32>,
}

/// The caller's download archive, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/archive", tag = "archive", params(ArchiveQuery), security(("bearer" = [])),
    responses((status = 200, body = ArchiveList), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ArchiveQuery>,
) -> Result<Json<ArchiveList>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_ARCHIVE_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be between 1 and {MAX_ARCHIVE_PAGE}, got {limit}")));
    }
    let offset = query.offset.unwrap_or(0);
    let (entries, total) = state.engine.archive(&caller.account, limit, offset).await?;
    let shown = u64::from(offset) + entries.len() as u64;
    let next = (shown < total && !entries.is_empty())
        .then(|| format!("/v1/archive?limit={limit}&offset={}", offset.saturating_add(limit)));
    Ok(Json(ArchiveList { entries: entries.into_iter().map(ArchiveEntry::from).collect(), total, next }))
}

/// Forgets one entry: its video or file is downloaded again the next time it is added.
#[utoipa::path(delete, path = "/v1/archive/{id}", tag = "archive", params(("id" = String, Path, format = Uuid)),
    security(("bearer" = [])),
    responses((status = 200, body = ArchiveEntry, description = "The entry forgotten"), (status = 404, body = ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ArchiveEntry>, ApiError> {
    let id = listed_id(id, "archive entry", "/v1/archive")?;
    Ok(Json(state.engine.forget_archived(&caller.account, &id).await?.into()))
}

/// Forgets the caller's whole archive.
#[utoipa::path(delete, path = "/v1/archive", tag = "archive", security(("bearer" = [])),
    responses((status = 200, body = Forgotten)))]
pub async fn clear(State(state): State<AppState>, caller: Caller) -> Result<(StatusCode, Json<Forgotten>), ApiError> {
    let removed = state.engine.clear_archive(&caller.account).await?;
    Ok((StatusCode::OK, Json(Forgotten { removed })))
}
