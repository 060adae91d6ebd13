//! The native API's media endpoints: a download's thumbnail, and its renditions (`audio`: an m4a made from a
//! finished video by ffmpeg, tracked with its own state and percentage).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use haul_core::media::{RenditionName, RenditionState};
use haul_engine::service::RenditionView as Rendition;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{IdPath, RenditionPath};
use crate::files::{from_holder, send_file, send_thumbnail};

/// The renditions a download can have; only for the OpenAPI document.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum RenditionNameSchema {
    /// The download's own file.
    Default,
    /// An m4a of its sound, made by ffmpeg.
    Audio,
}

/// A rendition of a download.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RenditionView {
    /// `default` (the download's own file) or `audio`.
    #[schema(value_type = String, example = "audio")]
    pub name: RenditionName,
    /// `pending` (waiting for the download to complete), `active`, `ready` or `failed`.
    #[schema(value_type = String, example = "ready")]
    pub state: RenditionState,
    /// 0-100.
    pub percent: f64,
    pub error: Option<String>,
    /// Where the finished file is served: `/v1/downloads/{id}/renditions/{name}/file`, once ready.
    pub file: Option<String>,
}

impl From<Rendition> for RenditionView {
    fn from(rendition: Rendition) -> Self {
        let ready = rendition.state == RenditionState::Ready;
        Self {
            file: ready.then(|| format!("/v1/downloads/{}/renditions/{}/file", rendition.download, rendition.name)),
            state: rendition.state,
            percent: rendition.percent,
            error: rendition.error,
            name: rendition.name,
        }
    }
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
    IdPath(id): IdPath,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let view = state.engine.get(&caller.account, id).await?;
    let none = || ApiError::not_found(format!("download {id} has no thumbnail (only media downloads have one)"));
    send_thumbnail(&state, &view, &method, &headers).await?.ok_or_else(none)
}

/// A subtitle file the download saved, by language (`lang` as `subtitle_files` lists it).
#[utoipa::path(get, path = "/v1/downloads/{id}/subtitles/{lang}", tag = "media",
    params(("id" = String, Path, format = Uuid), ("lang" = String, Path, example = "en")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The subtitle file (WebVTT or SRT)", content_type = "text/vtt"),
        (status = 404, description = "Unknown download, or no subtitles in that language", body = ErrorBody),
    ))]
pub async fn subtitle(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::Path((id, lang)): axum::extract::Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = id.parse().map_err(|_| ApiError::bad_request(format!("{id:?} is not a download id")))?;
    let view = state.engine.get(&caller.account, id).await?;
    let none = || ApiError::not_found(format!("download {id} has no subtitles in {lang:?}"));
    // On this node's downloads directory (several nodes with node-local directories: the holding node's API).
    let path = state.engine.subtitle_path(&view, &lang).await.ok_or_else(none)?;
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    send_file(&path, &name, &method, &headers).await?.ok_or_else(none)
}

/// Asks for a rendition; it is made as soon as the download is complete (`audio` needs ffmpeg). Asking again
/// answers the one there is.
#[utoipa::path(post, path = "/v1/downloads/{id}/renditions/{name}", tag = "media",
    params(("id" = String, Path, format = Uuid), ("name" = RenditionNameSchema, Path)),
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
    RenditionPath(id, name): RenditionPath,
) -> Result<Response, ApiError> {
    let rendition = state.engine.request_rendition(&caller.account, id, name).await?;
    Ok((StatusCode::ACCEPTED, Json(RenditionView::from(rendition))).into_response())
}

/// Every rendition asked for.
#[utoipa::path(get, path = "/v1/downloads/{id}/renditions", tag = "media",
    params(("id" = String, Path, format = Uuid)), security(("bearer" = [])),
    responses((status = 200, body = Vec<RenditionView>), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<Json<Vec<RenditionView>>, ApiError> {
    let renditions = state.engine.renditions(&caller.account, id).await?;
    Ok(Json(renditions.into_iter().map(RenditionView::from).collect()))
}

/// One rendition's state.
#[utoipa::path(get, path = "/v1/downloads/{id}/renditions/{name}", tag = "media",
    params(("id" = String, Path, format = Uuid), ("name" = RenditionNameSchema, Path)), security(("bearer" = [])),
    responses((status = 200, body = RenditionView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    RenditionPath(id, name): RenditionPath,
) -> Result<Json<RenditionView>, ApiError> {
    Ok(Json(state.engine.rendition(&caller.account, id, name).await?.into()))
}

/// Forgets a rendition and deletes the file it made (the `default` rendition's file is the download's own and
/// stays).
#[utoipa::path(delete, path = "/v1/downloads/{id}/renditions/{name}", tag = "media",
    params(("id" = String, Path, format = Uuid), ("name" = RenditionNameSchema, Path)), security(("bearer" = [])),
    responses((status = 200, body = RenditionView), (status = 404, body = ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    RenditionPath(id, name): RenditionPath,
) -> Result<Json<RenditionView>, ApiError> {
    let found = state.engine.rendition(&caller.account, id, name).await?;
    state.engine.delete_renditions(&caller.account, id, Some(name)).await?;
    Ok(Json(found.into()))
}

/// A ready rendition's file.
#[utoipa::path(get, path = "/v1/downloads/{id}/renditions/{name}/file", tag = "media",
    params(("id" = String, Path, format = Uuid), ("name" = RenditionNameSchema, Path)), security(("bearer" = [])),
    responses(
        (status = 200, description = "The file", content_type = "application/octet-stream"),
        (status = 404, description = "Unknown, not ready, or gone", body = ErrorBody),
    ))]
pub async fn file(
    State(state): State<AppState>,
    caller: Caller,
    RenditionPath(id, name): RenditionPath,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let found = state.engine.rendition(&caller.account, id, name).await?;
    let not_ready = || ApiError::not_found(format!("the {name} rendition of download {id} is {}", found.state));
    let Some(path) = state.engine.rendition_file(&caller.account, id, name).await? else {
        // Made on the node that holds the download, when each node has its own directory.
        let view = state.engine.get(&caller.account, id).await?;
        return from_holder(&state, &view, name.as_str(), &method, &headers).await?.ok_or_else(not_ready);
    };
    let file_name = if name == RenditionName::Default {
        crate::files::download_name(&state.engine.get(&caller.account, id).await?, &path)
    } else {
        path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
    };
    send_file(&path, &file_name, &method, &headers).await?.ok_or_else(not_ready)
}
