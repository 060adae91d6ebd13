//! The yt-dlp web app's API (its documented `/api/...` endpoints), mounted at `/api`.
//!
//! The original is a FastAPI app, so haul answers as FastAPI does: JSON, errors as `{"detail": "..."}` with the
//! app's Spanish messages, request validation failures as 422 with pydantic's list of problems, and FastAPI's own
//! `{"detail": "Not Found"}` / `{"detail": "Method Not Allowed"}` for unknown paths and methods.
//!
//! The original had no auth. haul asks for the same token as everywhere else, as `Authorization: Bearer` or
//! `?token=` (for links opened in a browser), unless the server was started with `--open-dialect ytdlp-app`, in
//! which case every request acts for the data directory's default account.
//!
//! Cancel and remove differ as the app documents them: cancel (`DELETE /downloads/{id}`) stops the download and keeps the
//! task (and any finished file and thumbnail); remove (`DELETE /downloads/{id}/remove`) forgets the task and
//! deletes its file and `thumbnails/{id}.{jpg,webp,png}`.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use haul_core::job::{AccountId, DownloadId, JobState};
use haul_core::media::Quality;
use haul_engine::service::{AddRequest, DownloadView, ListQuery, ServiceError};
use serde::Serialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{bearer_account, bearer_token, default_account};
use crate::dialects::{Mount, percent, rfc3339};
use crate::files::{send_download, send_thumbnail};

/// The video qualities, as the app takes them (audio alone is its `download_type`).
fn video_qualities() -> impl Iterator<Item = &'static str> {
    Quality::NAMES.into_iter().filter(|name| *name != Quality::Audio.to_string())
}

/// A video quality exactly as the app spells it (`720p`, `best`).
fn video_quality(text: &str) -> Option<Quality> {
    video_qualities().find(|known| *known == text).and_then(|known| known.parse().ok())
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/download", post(create))
        .route("/downloads", get(list))
        .route("/downloads/{id}", delete(cancel))
        .route("/downloads/{id}/remove", delete(remove))
        .route("/download/{id}/file", get(file))
        .route("/thumbnails/{id}", get(thumbnail))
        .route("/stream/{filename}", get(stream))
        .route("/info", post(info))
        .method_not_allowed_fallback(|| async { Detail::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed") })
        .fallback(|| async { Detail::new(StatusCode::NOT_FOUND, "Not Found") })
}

/// haul's job state as the app names it: the one place that decides.
///
/// The app has no pause: a download paused through another API is waiting, as a pending one is. The app's
/// `processing` (its post-processing step: merging streams, taking out the audio) is an active job whose
/// fetch is over, which only the running engine knows: see [`task_status`].
pub(crate) fn app_status(state: JobState) -> &'static str {
    match state {
        JobState::Queued | JobState::Paused => "pending",
        JobState::Active => "downloading",
        JobState::Completed => "completed",
        JobState::Failed => "error",
        JobState::Cancelled => "cancelled",
    }
}

/// The status of a task: [`app_status`], except that an active job past its fetch is `processing`, also in the
/// moment between the end of its work (`Done`) and its record saying completed, so the status never turns back
/// to `downloading`.
fn task_status(state: &AppState, view: &DownloadView) -> &'static str {
    let finishing = view.state == JobState::Active
        && matches!(state.engine.phase(view.id), Some(haul_engine::Phase::Verifying | haul_engine::Phase::Done));
    if finishing { "processing" } else { app_status(view.state) }
}

/// A failure as FastAPI sends it: `{"detail": ...}` with the status code. `detail` is a message, or pydantic's
/// list of problems for a request that failed validation (422).
#[derive(Debug)]
pub(crate) struct Detail(StatusCode, Value);

impl Detail {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self(status, Value::String(message.into()))
    }

    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Descarga no encontrada")
    }

    /// A 422 naming one field of the body, in pydantic v2's shape.
    fn invalid(kind: &str, field: Option<&str>, message: impl Into<String>, input: Value) -> Self {
        let loc = match field {
            Some(field) => json!(["body", field]),
            None => json!(["body"]),
        };
        Self(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!([{"type": kind, "loc": loc, "msg": message.into(), "input": input}]),
        )
    }
}

impl IntoResponse for Detail {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(json!({ "detail": self.1 }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<ServiceError> for Detail {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Invalid(message)
            | ServiceError::UnsupportedScheme(message)
            | ServiceError::RefusedDestination(message) => {
                Self::new(StatusCode::BAD_REQUEST, format!("Petición no válida: {message}"))
            }
            ServiceError::NotFound(_) => Self::not_found(),
            ServiceError::Conflict { current, message } => {
                Self::new(StatusCode::CONFLICT, format!("La descarga está {}: {message}", app_status(current)))
            }
            ServiceError::LimitReached(message) => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, format!("Demasiadas descargas: {message}"))
            }
            ServiceError::AlreadyDownloaded { message, .. } => {
                Self::new(StatusCode::CONFLICT, format!("Ya descargado: {message}"))
            }
            ServiceError::Unsupported(message) => {
                Self::new(StatusCode::NOT_IMPLEMENTED, format!("No disponible en este servidor: {message}"))
            }
            ServiceError::Internal(detail) => {
                tracing::error!(error = %haul_engine::task::chain(detail.as_ref()), "internal error answering a yt-dlp web app request");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Error interno del servidor; consulta el registro de haul")
            }
        }
    }
}

/// The account a request acts for: from its Bearer token or `?token=`, or the default account when the
/// dialect is open.
pub(crate) struct AppCaller(AccountId);

impl FromRequestParts<AppState> for AppCaller {
    type Rejection = Detail;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Detail> {
        if state.open_ytdlp_app {
            check_open_request(parts, state)?;
            return Ok(Self(default_account(state)));
        }
        let from_header = parts.headers.get(header::AUTHORIZATION).map(|value| bearer_token(value.as_bytes()));
        let from_query = parts.uri.query().and_then(|query| {
            query.split('&').filter_map(|pair| pair.split_once('=')).find(|(key, _)| *key == "token").map(|(_, v)| v)
        });
        let token: Option<Vec<u8>> = match (from_header, from_query) {
            (Some(Some(token)), _) => Some(token.to_vec()),
            (Some(None), _) => None,
            (None, Some(token)) => Some(percent_encoding::percent_decode_str(token).collect::<Vec<u8>>()),
            (None, None) => None,
        };
        let refused = || {
            Detail::new(
                StatusCode::UNAUTHORIZED,
                "No autenticado: envía Authorization: Bearer TOKEN o ?token=TOKEN (`haul token` muestra el token)",
            )
        };
        let token = token.ok_or_else(refused)?;
        match bearer_account(state, &token).await? {
            Some(account) => Ok(Self(account)),
            None => Err(refused()),
        }
    }
}

/// Without a key, a browser is the client: a page on another site must not be able to drive this API.
/// - A form or `text/plain` POST crosses origins without asking (a "simple request"), so a body must say
///   `application/json`, which a browser only sends cross-origin after a preflight haul never grants.
/// - DNS rebinding points a name the attacker owns at this server, so the browser calls it same-origin: the
///   `Host` must be an address (no name to rebind), a localhost name, or `--public-url`'s host.
fn check_open_request(parts: &Parts, state: &AppState) -> Result<(), Detail> {
    let host = parts.headers.get(header::HOST).and_then(|value| value.to_str().ok()).unwrap_or_default();
    if !served_host(host, state.public_url.as_deref()) {
        return Err(Detail::new(
            StatusCode::FORBIDDEN,
            format!("Host no permitido: {host:?} no es una dirección de este servidor (usa --public-url)"),
        ));
    }
    let has_body = parts.method == axum::http::Method::POST || parts.method == axum::http::Method::PUT;
    let json = parts.headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).is_some_and(|value| {
        value.split(';').next().is_some_and(|kind| kind.trim().eq_ignore_ascii_case("application/json"))
    });
    if has_body && !json {
        return Err(Detail::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "El cuerpo debe ser JSON: envía Content-Type: application/json",
        ));
    }
    Ok(())
}

/// Whether `host` (a `Host` header) names this server without a name that could be rebound.
fn served_host(host: &str, public_url: Option<&str>) -> bool {
    let Ok(authority) = host.parse::<axum::http::uri::Authority>() else { return false };
    let name = authority.host().trim_start_matches('[').trim_end_matches(']');
    if name.parse::<std::net::IpAddr>().is_ok() || name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let public = public_url.and_then(|url| url.parse::<axum::http::Uri>().ok());
    public.is_some_and(|url| url.host().is_some_and(|public| public.eq_ignore_ascii_case(name)))
}

/// A task, field by field as the app lists it.
#[derive(Serialize)]
struct Task {
    id: DownloadId,
    url: String,
    title: String,
    /// `/api/thumbnails/{id}` once the download has a thumbnail.
    thumbnail: Option<String>,
    status: &'static str,
    /// 0-100.
    progress: f64,
    /// `"5.2 MB/s"` while downloading.
    speed: Option<String>,
    /// `"45s"` while downloading with a known size.
    eta: Option<String>,
    filesize: Option<u64>,
    downloaded_bytes: u64,
    format_note: Option<String>,
    is_playlist: bool,
    playlist_index: Option<u32>,
    playlist_total: Option<u32>,
    filename: Option<String>,
    quality: String,
    download_type: &'static str,
    error_message: Option<String>,
    created_at: String,
    completed_at: Option<String>,
}

impl Task {
    fn new(state: &AppState, mount: &str, view: DownloadView) -> Self {
        let filename = stored_name(&view);
        let title = view
            .title
            .clone()
            .or_else(|| {
                filename
                    .as_deref()
                    .map(|name| stem(&haul_core::filename::untagged(name, &view.id.to_string())).to_owned())
            })
            .unwrap_or_else(|| view.url.clone());
        let active = view.state == JobState::Active;
        let audio = view.quality == Quality::Audio;
        Self {
            id: view.id,
            thumbnail: view.thumbnail.is_some().then(|| format!("{mount}/thumbnails/{}", view.id)),
            status: task_status(state, &view),
            progress: percent(&view),
            speed: active.then(|| format!("{}/s", decimal_size(view.speed))),
            eta: view.eta_secs.filter(|_| active).map(|secs| format!("{secs}s")),
            filesize: view.size,
            downloaded_bytes: view.bytes_done,
            format_note: None,
            is_playlist: view.playlist.is_some() || view.parent.is_some(),
            playlist_index: view.playlist_index,
            playlist_total: view.playlist.as_ref().map(|playlist| playlist.entries),
            filename,
            quality: if audio { Quality::Best.to_string() } else { view.quality.to_string() },
            download_type: if audio { "audio" } else { "video" },
            error_message: view.error.clone().filter(|_| view.state == JobState::Failed),
            created_at: rfc3339(view.created_at),
            completed_at: view.finished_at.filter(|_| view.state == JobState::Completed).map(rfc3339),
            url: view.url,
            title,
        }
    }
}

impl Task {
    /// An entry's task with its playlist's count of entries, when the playlist is known.
    fn in_playlist(mut self, total: Option<u32>) -> Self {
        if total.is_some() {
            self.playlist_total = total;
        }
        self
    }
}

/// The name of the file on disk (the last part of its path).
fn stored_name(view: &DownloadView) -> Option<String> {
    let from_path = view.path.as_deref().and_then(|path| path.rsplit('/').next()).filter(|name| !name.is_empty());
    from_path.or(view.filename.as_deref()).map(str::to_owned)
}

fn stem(name: &str) -> &str {
    match name.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => name,
    }
}

/// Bytes in the app's units (powers of 1000, one decimal): `5.2 MB`.
fn decimal_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// A JSON object body with a string `url`, checked as pydantic would (422 naming what is wrong); answers its
/// fields and the URL.
fn body_with_url(body: &[u8]) -> Result<(serde_json::Map<String, Value>, String), Detail> {
    let body: Value = serde_json::from_slice(body)
        .map_err(|error| Detail::invalid("json_invalid", None, format!("JSON decode error: {error}"), Value::Null))?;
    let Value::Object(fields) = body else {
        return Err(Detail::invalid("model_attributes_type", None, "Input should be a valid dictionary", body));
    };
    let url = match fields.get("url") {
        Some(Value::String(url)) => url.clone(),
        Some(other) => {
            return Err(Detail::invalid("string_type", Some("url"), "Input should be a valid string", other.clone()));
        }
        None => return Err(Detail::invalid("missing", Some("url"), "Field required", Value::Object(fields))),
    };
    Ok((fields, url))
}

/// `POST /download`: `{"url", "quality"?, "download_type"?}`; only `url` is required.
async fn create(
    State(state): State<AppState>,
    AppCaller(account): AppCaller,
    body: Bytes,
) -> Result<Json<Value>, Detail> {
    let (fields, url) = body_with_url(&body)?;
    let quality = match fields.get("quality") {
        None | Some(Value::Null) => Quality::Best,
        Some(Value::String(text)) if let Some(quality) = video_quality(text) => quality,
        Some(other) => {
            return Err(Detail::invalid(
                "literal_error",
                Some("quality"),
                format!(
                    "Input should be {}",
                    video_qualities().map(|q| format!("'{q}'")).collect::<Vec<_>>().join(", ")
                ),
                other.clone(),
            ));
        }
    };
    let audio = match fields.get("download_type") {
        None | Some(Value::Null) => false,
        Some(Value::String(kind)) if kind == "video" => false,
        Some(Value::String(kind)) if kind == "audio" => true,
        Some(other) => {
            return Err(Detail::invalid(
                "literal_error",
                Some("download_type"),
                "Input should be 'video' or 'audio'",
                other.clone(),
            ));
        }
    };
    let request =
        // Stored as the app stores its files, `{title}__{download_id}.{ext}`, whatever the URL turns out to be.
        AddRequest {
            url,
            quality: Some(if audio { Quality::Audio } else { quality }),
            name_with_id: true,
            ..AddRequest::default()
        };
    let view = state.engine.add(&account, request).await?;
    Ok(Json(json!({
        "download_id": view.id,
        "status": app_status(view.state),
        "message": "Descarga iniciada",
        "url": view.url,
        "quality": quality.to_string(),
        "download_type": if audio { "audio" } else { "video" },
    })))
}

/// `GET /downloads`: every task of the caller, in the order they were added (the app keeps them in a dict).
async fn list(
    State(state): State<AppState>,
    AppCaller(account): AppCaller,
    Mount(mount): Mount,
) -> Result<Json<Vec<Task>>, Detail> {
    let mut views = state.engine.list(&account, ListQuery::default()).await?;
    views.reverse();
    // A playlist's entries are tasks of their own, numbered against the playlist's count.
    let totals: std::collections::HashMap<DownloadId, u32> =
        views.iter().filter_map(|view| view.playlist.as_ref().map(|playlist| (view.id, playlist.entries))).collect();
    Ok(Json(
        views
            .into_iter()
            .map(|view| {
                let total = view.parent.and_then(|parent| totals.get(&parent).copied());
                Task::new(&state, &mount, view).in_playlist(total)
            })
            .collect(),
    ))
}

/// Task ids are the app's strings: one that is not a haul id is simply not found.
fn task_id(text: &str) -> Result<DownloadId, Detail> {
    text.parse().map_err(|_| Detail::not_found())
}

/// `DELETE /downloads/{id}`: cancel. The task stays listed as `cancelled`; a finished file is never touched.
async fn cancel(
    State(state): State<AppState>,
    AppCaller(account): AppCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Detail> {
    let id = task_id(&id)?;
    let view = state.engine.get(&account, id).await?;
    match view.state {
        // Cancelling twice is what a client retrying a timed-out request does; it is not an error.
        JobState::Cancelled => {}
        JobState::Completed | JobState::Failed => {
            return Err(Detail::new(
                StatusCode::CONFLICT,
                format!(
                    "La descarga ya terminó ({}) y no se puede cancelar; usa DELETE /api/downloads/{id}/remove \
                     para borrarla",
                    app_status(view.state)
                ),
            ));
        }
        _ => {
            state.engine.cancel(&account, id).await?;
        }
    }
    Ok(Json(json!({ "message": "Descarga cancelada" })))
}

/// `DELETE /downloads/{id}/remove`, as documented: forget the task, delete its file (finished or partial) and its
/// thumbnail; files already gone are fine.
async fn remove(
    State(state): State<AppState>,
    AppCaller(account): AppCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Detail> {
    let id = task_id(&id)?;
    state.engine.remove(&account, id, true).await?;
    Ok(Json(json!({ "message": "Descarga eliminada" })))
}

/// `GET /download/{id}/file`, as documented: the finished file, named after the task's title.
async fn file(
    State(state): State<AppState>,
    AppCaller(account): AppCaller,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, Detail> {
    let unavailable = || Detail::new(StatusCode::NOT_FOUND, "Descarga no disponible o no completada");
    let id = task_id(&id).map_err(|_| unavailable())?;
    let view = match state.engine.get(&account, id).await {
        Ok(view) if view.state == JobState::Completed => view,
        Ok(_) | Err(ServiceError::NotFound(_)) => return Err(unavailable()),
        Err(error) => return Err(error.into()),
    };
    let gone = || Detail::new(StatusCode::NOT_FOUND, "Archivo físico no encontrado");
    send_download(&state, &view, None, &method, &headers).await.map_err(detail_of)?.ok_or_else(gone)
}

/// `GET /thumbnails/{id}`: the task's thumbnail image.
async fn thumbnail(
    State(state): State<AppState>,
    AppCaller(account): AppCaller,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, Detail> {
    let missing = || Detail::new(StatusCode::NOT_FOUND, "Miniatura no encontrada");
    let id = task_id(&id).map_err(|_| missing())?;
    let view = match state.engine.get(&account, id).await {
        Ok(view) => view,
        Err(ServiceError::NotFound(_)) => return Err(missing()),
        Err(error) => return Err(error.into()),
    };
    send_thumbnail(&state, &view, &method, &headers).await.map_err(detail_of)?.ok_or_else(missing)
}

/// `GET /stream/{filename}`: a finished file by its stored name, for `<video>` players (ranges answer 206).
/// Only the caller's completed downloads are looked at, so no name reaches any other file.
async fn stream(
    State(state): State<AppState>,
    AppCaller(account): AppCaller,
    Path(filename): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, Detail> {
    let missing = || Detail::new(StatusCode::NOT_FOUND, "Archivo no encontrado");
    let filter = ListQuery { states: vec![JobState::Completed], ..ListQuery::default() };
    let view = state
        .engine
        .list(&account, filter)
        .await?
        .into_iter()
        .find(|view| stored_name(view).as_deref() == Some(filename.as_str()))
        .ok_or_else(missing)?;
    send_download(&state, &view, Some(&filename), &method, &headers).await.map_err(detail_of)?.ok_or_else(missing)
}

/// `POST /info` `{"url"}`: what yt-dlp says about a page (title, duration, thumbnail, formats), as the app
/// shows it before a download.
async fn info(State(state): State<AppState>, AppCaller(_): AppCaller, body: Bytes) -> Result<Json<Value>, Detail> {
    let (_, url) = body_with_url(&body)?;
    let info = state.engine.media_info(&url).await.map_err(|error| match error {
        ServiceError::Invalid(message) => {
            Detail::new(StatusCode::BAD_REQUEST, format!("No se pudo obtener la información: {message}"))
        }
        other => other.into(),
    })?;
    let formats: Vec<Value> = info
        .formats
        .iter()
        .map(|format| {
            json!({
                "format_id": format.format_id,
                "ext": format.ext,
                "resolution": format.height.map(|height| format!("{height}p")),
                "height": format.height,
                "width": format.width,
                "filesize": format.size(),
                "vcodec": format.vcodec,
                "acodec": format.acodec,
                "protocol": format.protocol,
            })
        })
        .collect();
    Ok(Json(json!({
        "url": url,
        "title": info.title,
        "duration": info.duration,
        "thumbnail": info.thumbnail,
        "is_playlist": info.kind.as_deref() == Some("playlist"),
        "formats": formats,
    })))
}

/// A file-serving failure (416, 500) with its message, in the app's shape.
fn detail_of(error: crate::ApiError) -> Detail {
    Detail::new(error.status, error.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_mode_serves_addresses_localhost_and_the_public_name_only() {
        for host in ["127.0.0.1:1700", "[::1]:1700", "192.168.1.5", "localhost:1700", "LOCALHOST"] {
            assert!(served_host(host, None), "{host}");
        }
        for host in ["evil.example:1700", "localhost.evil.example", "", "a b"] {
            assert!(!served_host(host, None), "{host}");
        }
        assert!(served_host("haul.example.com", Some("https://haul.example.com/")));
        assert!(!served_host("other.example.com", Some("https://haul.example.com/")));
    }

    #[test]
    fn sizes_in_decimal_units() {
        assert_eq!(decimal_size(0), "0 B");
        assert_eq!(decimal_size(999), "999 B");
        assert_eq!(decimal_size(5_200_000), "5.2 MB");
        assert_eq!(decimal_size(1_500_000_000), "1.5 GB");
    }
}
