//! A video's downloads: `default` (the job's own file) and `audio` (an m4a made from it), each a signed link.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::HeaderMap;
use haul_core::job::{AccountId, DownloadId, JobState};
use haul_core::media::{RenditionName, RenditionState};
use haul_engine::service::{DownloadView, RenditionView};
use serde::Serialize;

use super::{Answer, DownloadType, StreamError, VideoRef, link_ttl, ok};
use crate::AppState;
use crate::dialects::percent;
use crate::links;

/// One download of a video, as Stream shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Download {
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
        Self { status, percent_complete, url: state.links.link(base, &view.account, view.id, variant, link_ttl(view)) }
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
        .filter(|rendition| super::STREAM_TYPES.contains(&rendition.name))
        .filter(|rendition| only.is_none_or(|name| rendition.name == name))
        .map(|rendition| (rendition.name.to_string(), Download::new(state, &base, &view, rendition)))
        .collect())
}

/// `GET .../stream/{identifier}/downloads`: `{"default"?: {...}, "audio"?: {...}}`.
pub(super) async fn downloads(
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
pub(super) async fn create_default_download(
    State(state): State<AppState>,
    VideoRef { account, id }: VideoRef,
    headers: HeaderMap,
) -> Answer<BTreeMap<String, Download>> {
    create(&state, &headers, &account, id, RenditionName::Default).await
}

/// `POST .../stream/{identifier}/downloads/{download_type}`.
pub(super) async fn create_download(
    State(state): State<AppState>,
    VideoRef { account, id }: VideoRef,
    DownloadType(name): DownloadType,
    headers: HeaderMap,
) -> Answer<BTreeMap<String, Download>> {
    create(&state, &headers, &account, id, name).await
}

/// `DELETE .../stream/{identifier}/downloads`: removes both downloads, answering `"ok"`.
pub(super) async fn delete_downloads(
    State(state): State<AppState>,
    VideoRef { account, id }: VideoRef,
) -> Answer<&'static str> {
    for name in super::STREAM_TYPES {
        state.engine.delete_renditions(&account, id, Some(name)).await?;
    }
    ok("ok")
}

/// `DELETE .../stream/{identifier}/downloads/{download_type}`: removes that one; a type never created is
/// already gone, so that is `"ok"` too.
pub(super) async fn delete_download(
    State(state): State<AppState>,
    VideoRef { account, id }: VideoRef,
    DownloadType(name): DownloadType,
) -> Answer<&'static str> {
    state.engine.delete_renditions(&account, id, Some(name)).await?;
    ok("ok")
}
