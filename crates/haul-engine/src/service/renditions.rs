//! Renditions: files made from a finished download on request (the `audio` m4a), each tracked with its own
//! state and percentage, made at start-up, on request and when a download completes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use haul_core::job::{AccountId, DownloadId, JobState};
use haul_core::media::{RenditionName, RenditionState};
use haul_store::{DownloadRecord, MediaUpdate, RenditionUpdate};
use tokio_util::sync::CancellationToken;

use super::Engine;
use super::error::ServiceError;
use super::validate::require;
use super::views::RenditionView;
use crate::error::EngineError;
use crate::media;

/// How often a rendition being made records its percentage.
const REPORT_EVERY: Duration = Duration::from_millis(500);

impl Engine {
    /// Asks for the `name` rendition of a download; asking again returns it unchanged.
    pub async fn request_rendition(
        &self,
        account: &AccountId,
        id: DownloadId,
        name: RenditionName,
    ) -> Result<RenditionView, ServiceError> {
        if name.is_derived() {
            require("an audio rendition", self.inner.options.media.ffmpeg())?;
            require("an audio rendition", self.inner.options.media.ffprobe())?;
        }
        let rendition = self.inner.store.put_rendition(account, id, name).await?;
        // Asked of a download that will not complete (unless retried): failed now, rather than waiting for ever.
        let record = self.inner.store.get(account, id).await?;
        let why = match record.state {
            JobState::Failed => Some("the download failed"),
            JobState::Cancelled => Some("the download was cancelled"),
            _ => None,
        };
        if let Some(why) = why {
            self.fail_renditions(&record, why).await;
            return self.rendition(account, id, name).await;
        }
        self.make_renditions();
        Ok(rendition.into())
    }

    pub async fn renditions(&self, account: &AccountId, id: DownloadId) -> Result<Vec<RenditionView>, ServiceError> {
        Ok(self.inner.store.renditions(account, id).await?.into_iter().map(RenditionView::from).collect())
    }

    /// One rendition of a download, or `NotFound` saying how to ask for it.
    pub async fn rendition(
        &self,
        account: &AccountId,
        id: DownloadId,
        name: RenditionName,
    ) -> Result<RenditionView, ServiceError> {
        self.renditions(account, id)
            .await?
            .into_iter()
            .find(|rendition| rendition.name == name)
            .ok_or_else(|| ServiceError::NotFound(format!("download {id} has no {name} rendition; ask for it first")))
    }

    /// The file of a ready rendition, when it is (still) inside the downloads directory. The `default`
    /// rendition's file is the download's own.
    pub async fn rendition_file(
        &self,
        account: &AccountId,
        id: DownloadId,
        name: RenditionName,
    ) -> Result<Option<PathBuf>, ServiceError> {
        let stored = self.inner.store.renditions(account, id).await?;
        if name == RenditionName::Default {
            // Only while the rendition is asked for: once it is deleted, links handed out for it stop working.
            if !stored.iter().any(|rendition| rendition.name == RenditionName::Default) {
                return Ok(None);
            }
            let view = self.get(account, id).await?;
            return Ok(self.file_path(&view).await);
        }
        let relative = stored
            .into_iter()
            .find(|rendition| rendition.name == name && rendition.state == RenditionState::Ready)
            .and_then(|rendition| rendition.path);
        match relative {
            Some(relative) => Ok(self.inside_downloads(&self.inner.options.downloads_dir.join(relative)).await),
            None => Ok(None),
        }
    }

    /// Forgets one rendition or all, deleting the files derived ones made (the `default` rendition is the
    /// download's own file, which stays).
    pub async fn delete_renditions(
        &self,
        account: &AccountId,
        id: DownloadId,
        name: Option<RenditionName>,
    ) -> Result<Vec<RenditionView>, ServiceError> {
        let removed = self.inner.store.delete_renditions(account, id, name).await?;
        self.stop_renditions(id, name);
        for rendition in &removed {
            if let Some(path) = &rendition.path {
                self.remove_file(self.inner.options.downloads_dir.join(path)).await;
            }
        }
        Ok(removed.into_iter().map(RenditionView::from).collect())
    }

    /// Starts making every rendition that was asked for and whose download is complete (at start-up, when one is
    /// asked for, when a download completes). Each is made once at a time; a stopped one is made again later.
    pub(super) fn make_renditions(&self) {
        if self.inner.shutdown.is_cancelled() {
            return;
        }
        let engine = self.clone();
        self.spawn(tracing::info_span!("renditions"), async move {
            let todo = engine.inner.store.renditions_to_make().await?;
            for (account, id, name) in todo {
                // The node that holds the file makes its renditions (several nodes: the others may not have the
                // file, and two making one would write one file at once).
                let holder = engine.inner.store.get(&account, id).await.ok().and_then(|record| record.held_by);
                if holder.is_some_and(|holder| holder != engine.inner.options.node) {
                    continue;
                }
                let cancel = engine.inner.shutdown.child_token();
                {
                    let mut making = engine.inner.making.lock();
                    if making.contains_key(&(id, name)) {
                        continue;
                    }
                    making.insert((id, name), cancel.clone());
                }
                let worker = engine.clone();
                engine.spawn(tracing::info_span!("rendition", %id, %name), async move {
                    worker.make_rendition(&account, id, name, &cancel).await;
                    worker.inner.making.lock().remove(&(id, name));
                });
            }
            Ok::<(), haul_store::StoreError>(())
        });
    }

    /// Takes a finished video's thumbnail frame again, where its `thumbnail_at` label now says; in the
    /// background, since a client that edits a video does not wait for its picture.
    pub(super) fn remake_thumbnail(&self, record: &DownloadRecord) {
        let engine = self.clone();
        let record = record.clone();
        self.spawn(tracing::info_span!("thumbnail", id = %record.id), async move {
            let Some(file) = engine.file_path(&record.clone().into()).await else { return Ok(()) };
            let cancel = engine.inner.shutdown.child_token();
            let options = &engine.inner.options;
            let at = record.labels.thumbnail_at;
            if let Some(facts) =
                media::describe_file(&options.media, &file, &options.thumbnails_dir, record.id, at, &cancel).await?
                && facts.thumbnail.is_some()
            {
                let update = MediaUpdate { thumbnail: facts.thumbnail, ..MediaUpdate::default() };
                engine.store_quietly(engine.inner.store.set_media(record.id, &update).await);
            }
            Ok::<(), EngineError>(())
        });
    }

    /// Makes one rendition (only `audio` is made; `default` is the download's own file), recording its
    /// progress every half second.
    async fn make_rendition(
        &self,
        account: &AccountId,
        id: DownloadId,
        name: RenditionName,
        cancel: &CancellationToken,
    ) {
        let store = &self.inner.store;
        let set = |update: RenditionUpdate| self.set_rendition(id, name, update);
        let source = match store.get(account, id).await {
            Ok(record) => self.file_path(&record.into()).await,
            Err(_) => return,
        };
        let Some(source) = source else {
            let error = "the download's file is no longer in the downloads directory".to_owned();
            return set(RenditionUpdate {
                state: Some(RenditionState::Failed),
                error: Some(error),
                ..Default::default()
            })
            .await;
        };
        set(RenditionUpdate { state: Some(RenditionState::Active), percent: Some(0.0), ..Default::default() }).await;
        let percent = AtomicU64::new(0);
        // `default` is the download's own file and never made; every other rendition is a sound format.
        let format = name.audio_format().unwrap_or(haul_core::media::AudioFormat::M4a);
        let making = media::make_audio(&self.inner.options.media, &source, format, cancel, |value| {
            percent.store((value * 10.0) as u64, Ordering::Relaxed);
        });
        tokio::pin!(making);
        let result = loop {
            tokio::select! {
                result = &mut making => break result,
                _ = tokio::time::sleep(REPORT_EVERY) => {
                    let value = percent.load(Ordering::Relaxed) as f64 / 10.0;
                    set(RenditionUpdate { percent: Some(value), ..Default::default() }).await;
                }
            }
        };
        match result {
            Ok(path) => {
                let update = RenditionUpdate {
                    state: Some(RenditionState::Ready),
                    percent: Some(100.0),
                    path: Some(self.relative(&path)),
                    error: None,
                };
                set(update).await;
                // Removed while it was being made: the file has no row to be found by.
                if !store.renditions(account, id).await.is_ok_and(|all| all.iter().any(|r| r.name == name)) {
                    self.remove_file(path).await;
                }
            }
            // Stopped by shutdown or deletion: made again at the next start, or gone with its row.
            Err(EngineError::Cancelled) => {}
            Err(error) => {
                tracing::info!(%error, "rendition failed");
                let update = RenditionUpdate {
                    state: Some(RenditionState::Failed),
                    error: Some(error.to_string()),
                    ..Default::default()
                };
                set(update).await;
            }
        }
    }

    async fn set_rendition(&self, id: DownloadId, name: RenditionName, update: RenditionUpdate) {
        self.store_quietly(self.inner.store.update_rendition(id, name, &update).await);
    }

    /// Stops making the renditions of `id` (all, or the one named).
    pub(super) fn stop_renditions(&self, id: DownloadId, name: Option<RenditionName>) {
        let making = self.inner.making.lock();
        for ((download, rendition), cancel) in making.iter() {
            if *download == id && name.is_none_or(|name| name == *rendition) {
                cancel.cancel();
            }
        }
    }

    /// Renditions waiting for a download that will not complete: failed, with why.
    pub(super) async fn fail_renditions(&self, record: &DownloadRecord, why: &str) {
        let Ok(renditions) = self.inner.store.renditions(&record.account, record.id).await else { return };
        for rendition in renditions.iter().filter(|r| r.name.is_derived() && r.state == RenditionState::Pending) {
            let update = RenditionUpdate {
                state: Some(RenditionState::Failed),
                error: Some(format!("{why}; resume or retry it, then ask again")),
                ..Default::default()
            };
            self.set_rendition(record.id, rendition.name, update).await;
        }
    }
}
