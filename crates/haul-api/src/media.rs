//! The native API's media endpoints: a download's thumbnail, and its renditions (`audio`: an m4a made from a
//! finished video by ffmpeg, tracked with its own state and percentage).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use haul_core::job::DownloadId;
use haul_store::{Rendition, RenditionState};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::files::{send_file, send_thumbnail};

/// A rendition of a download.
#[derive(Debug, Serialize, ToSchema)]
pub struct RenditionView {
    /// `default` (the download's own file) or `audio`.
    pub name: String,
    /// `pending` (waiting for the download to complete), `active`, `ready` or `failed`.
    #[schema(example = "ready")]
    pub state: String,
    /// 0-100.
    pub percent: f64,
    pub error: Option<String>,
    /// Where the finished file is served: `/v1/downloads/{id}/renditions/{name}/file`, once ready.
    pub file: Option<String>,
}

impl RenditionView {
    fn new(rendition: Rendition) -> Self {
        let ready = rendition.state == RenditionState::Ready;
        Self {
            file: ready.then(|| format!("/v1/downloads/{}/renditions/{}/file", rendition.download, rendition.name)),
            state: rendition.state.as_str().to_owned(),
            percent: rendition.percent,
            error: rendition.error,
            name: rendition.name,
        }
    }
}

fn parse_id(text: &str) -> Result<DownloadId, ApiError> {
    text.parse().map_err(|error: haul_core::job::IdError| ApiError::bad_request(error.to_string()))
}

/// The download's thumbnail: the page's image, or a frame of the video.
#[utoipa::path(get, path = "/v1/downloads/{id}/thumbnail", tag = "media",
    params(("id" = String, Path, format = Uuid)), security(("bearer" = [])),
    responses(
        (status = 200, description = "The image (JPEG, WebP or PNG)", content_type = "image/jpeg"),
        (status = 404, description = "Unknown download, or no thumbnail", body = ErrorBody),
    ))]
pub async fn thumbnail(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let view = state.engine.get(&caller.account, id).await?;
    let none = || ApiError::not_found(format!("download {id} has no thumbnail (only media downloads have one)"));
    send_thumbnail(&state.engine, &view, &method, &headers).await?.ok_or_else(none)
}

/// Asks for a rendition; it is made as soon as the download is complete (`audio` needs ffmpeg). Asking again
/// answers the one there is.
#[utoipa::path(post, path = "/v1/downloads/{id}/renditions/{name}", tag = "media",
    params(("id" = String, Path, format = Uuid), ("name" = String, Path, description = "`default` or `audio`")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Accepted; poll it", body = RenditionView),
        (status = 400, description = "Unknown rendition name", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 501, description = "ffmpeg is missing", body = ErrorBody),
    ))]
pub async fn request(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let rendition = state.engine.request_rendition(&caller.account, id, &name).await?;
    Ok((StatusCode::ACCEPTED, Json(RenditionView::new(rendition))).into_response())
}

/// Every rendition asked for.
#[utoipa::path(get, path = "/v1/downloads/{id}/renditions", tag = "media",
    params(("id" = String, Path, format = Uuid)), security(("bearer" = [])),
    responses((status = 200, body = Vec<RenditionView>), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<RenditionView>>, ApiError> {
    let id = parse_id(&id)?;
    let renditions = state.engine.renditions(&caller.account, id).await?;
    Ok(Json(renditions.into_iter().map(RenditionView::new).collect()))
}

async fn find(state: &AppState, caller: &Caller, id: &str, name: &str) -> Result<Rendition, ApiError> {
    let id = parse_id(id)?;
    state
        .engine
        .renditions(&caller.account, id)
        .await?
        .into_iter()
        .find(|rendition| rendition.name == name)
        .ok_or_else(|| ApiError::not_found(format!("download {id} has no {name} rendition; POST to ask for one")))
}

/// One rendition's state.
#[utoipa::path(get, path = "/v1/downloads/{id}/renditions/{name}", tag = "media",
    params(("id" = String, Path, format = Uuid), ("name" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = RenditionView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
) -> Result<Json<RenditionView>, ApiError> {
    Ok(Json(RenditionView::new(find(&state, &caller, &id, &name).await?)))
}

/// Forgets a rendition and deletes the file it made (the `default` rendition's file is the download's own and
/// stays).
#[utoipa::path(delete, path = "/v1/downloads/{id}/renditions/{name}", tag = "media",
    params(("id" = String, Path, format = Uuid), ("name" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = RenditionView), (status = 404, body = ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
) -> Result<Json<RenditionView>, ApiError> {
    let found = find(&state, &caller, &id, &name).await?;
    state.engine.delete_renditions(&caller.account, found.download, Some(&name)).await?;
    Ok(Json(RenditionView::new(found)))
}

/// A ready rendition's file.
#[utoipa::path(get, path = "/v1/downloads/{id}/renditions/{name}/file", tag = "media",
    params(("id" = String, Path, format = Uuid), ("name" = String, Path)), security(("bearer" = [])),
    responses(
        (status = 200, description = "The file", content_type = "application/octet-stream"),
        (status = 404, description = "Unknown, not ready, or gone", body = ErrorBody),
    ))]
pub async fn file(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let found = find(&state, &caller, &id, &name).await?;
    let not_ready = || {
        ApiError::not_found(format!("the {name} rendition of download {} is {}", found.download, found.state.as_str()))
    };
    if found.name == "default" {
        let view = state.engine.get(&caller.account, found.download).await?;
        let path = state.engine.file_path(&view).ok_or_else(not_ready)?;
        let download_name = crate::files::download_name(&view, &path);
        return send_file(&path, &download_name, &method, &headers).await?.ok_or_else(not_ready);
    }
    let relative = found.path.clone().filter(|_| found.state == RenditionState::Ready).ok_or_else(not_ready)?;
    let path = state.engine.downloads_dir().join(&relative);
    let file_name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    send_file(&path, &file_name, &method, &headers).await?.ok_or_else(not_ready)
}
