//! Where a job's files are (the finished file, its thumbnail, a media job's work directory) and removing them.
//!
//! Stored paths are relative to the downloads directory, so a data directory can move without breaking its
//! records. Every filesystem call here runs off the runtime's worker threads (`tokio::fs`, `spawn_blocking`):
//! a slow or network disk must not stall the requests of other clients.

use std::path::{Path, PathBuf};

use haul_core::job::{AccountId, DownloadId, JobState};
use haul_core::media::THUMBNAIL_EXTENSIONS;
use haul_store::DownloadRecord;

use super::Engine;
use super::error::ServiceError;
use super::views::{DownloadView, TransferView};
use crate::download;
use crate::media;
use crate::progress::Progress;

impl Engine {
    /// The finished file of a completed download, when it is (still) inside the downloads directory.
    pub async fn file_path(&self, view: &DownloadView) -> Option<PathBuf> {
        if view.state != JobState::Completed {
            return None;
        }
        let path = self.inner.options.downloads_dir.join(view.path.as_ref()?);
        self.inside_downloads(&path).await
    }

    /// Where to fetch what this node does not hold of a download (its file, thumbnail or renditions, with
    /// node-local directories): the advertised URL of the node that runs it or completed it, when that is
    /// another node.
    pub async fn holder_url(&self, view: &DownloadView) -> Option<String> {
        // One node (SQLite) holds everything itself, whatever name a download records.
        if !self.inner.store.shared_by_nodes() {
            return None;
        }
        let holder = view.node.as_deref().filter(|node| *node != self.inner.options.node)?;
        let nodes = match self.inner.store.nodes().await {
            Ok(nodes) => nodes,
            Err(error) => {
                tracing::warn!(%error, "cannot look up the node holding a file");
                return None;
            }
        };
        let url = nodes.into_iter().find(|node| node.id == holder)?.advertise_url?;
        // Its address is this node's own: asking it would be asking ourselves.
        (self.inner.options.advertise_url.as_deref() != Some(url.as_str())).then_some(url)
    }

    /// What the resume record of an unfinished download says: the validators it resumes against and the byte
    /// ranges already on disk. `None` when there is no record (not started, finished, a media job, or cancelled).
    pub async fn transfer(&self, account: &AccountId, id: DownloadId) -> Result<Option<TransferView>, ServiceError> {
        let record = self.inner.store.get(account, id).await?;
        let Some(path) = self.final_path(&record) else { return Ok(None) };
        let [_, control] = crate::download::partial_files(&path);
        let loaded = tokio::task::spawn_blocking(move || crate::control::load(&control)).await.ok().flatten();
        Ok(loaded.map(|control| TransferView {
            size: control.size,
            etag: control.etag,
            last_modified: control.last_modified,
            done: control.done.ranges().to_vec(),
        }))
    }

    /// The thumbnail of a download, when one exists: `thumbnails/{id}.jpg`, `.webp` or `.png`, resolved, and
    /// only when it is a file inside the thumbnails directory (a symlink to elsewhere is not served).
    pub async fn thumbnail_path(&self, view: &DownloadView) -> Option<PathBuf> {
        let root = tokio::fs::canonicalize(&self.inner.options.thumbnails_dir).await.ok()?;
        for candidate in self.thumbnail_candidates(view.id) {
            let Ok(resolved) = tokio::fs::canonicalize(&candidate).await else { continue };
            if resolved.starts_with(&root) && tokio::fs::metadata(&resolved).await.is_ok_and(|meta| meta.is_file()) {
                return Some(resolved);
            }
        }
        None
    }

    /// A subtitle file the download saved in `lang`, when it is a regular file inside the downloads directory.
    pub async fn subtitle_path(&self, view: &DownloadView, lang: &str) -> Option<PathBuf> {
        let file = view.subtitles.iter().find(|file| file.lang == lang)?;
        self.inside_downloads(&self.inner.options.downloads_dir.join(&file.path)).await
    }

    pub(super) fn thumbnail_candidates(&self, id: DownloadId) -> Vec<PathBuf> {
        let dir = &self.inner.options.thumbnails_dir;
        THUMBNAIL_EXTENSIONS.iter().map(|ext| dir.join(format!("{id}.{ext}"))).collect()
    }

    /// `path` resolved, when it is a regular file inside the downloads directory.
    pub(super) async fn inside_downloads(&self, path: &Path) -> Option<PathBuf> {
        let root = tokio::fs::canonicalize(&self.inner.options.downloads_dir).await.ok()?;
        let path = tokio::fs::canonicalize(path).await.ok()?;
        let is_file = tokio::fs::metadata(&path).await.is_ok_and(|meta| meta.is_file());
        (path.starts_with(&root) && is_file).then_some(path)
    }

    /// Where a download's file is (or will be), once a name was chosen.
    pub(super) fn final_path(&self, record: &DownloadRecord) -> Option<PathBuf> {
        record.path.as_ref().map(|path| self.inner.options.downloads_dir.join(path))
    }

    pub(super) fn relative(&self, path: &Path) -> String {
        let relative = path.strip_prefix(&self.inner.options.downloads_dir).unwrap_or(path);
        relative.display().to_string()
    }

    /// Deletes a job's partial file, resume record and work directory.
    pub(super) async fn discard_partial(&self, record: &DownloadRecord) {
        if let Some(path) = self.final_path(record) {
            for partial in download::partial_files(&path) {
                self.remove_file(partial).await;
            }
        }
        self.discard_work(record.id).await;
    }

    /// Deletes the partial file of a run that was cancelled, by where its progress says it was writing.
    pub(super) async fn discard_partial_of(&self, progress: &Progress) {
        if let Some(path) = progress.snapshot().destination {
            for partial in download::partial_files(&path) {
                self.remove_file(partial).await;
            }
        }
    }

    /// Deletes a media job's work directory (its partial formats and yt-dlp's fragments).
    pub(super) async fn discard_work(&self, id: DownloadId) {
        let work = media::work_dir(&self.inner.options.downloads_dir, id);
        if let Err(error) = tokio::fs::remove_dir_all(&work).await
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %work.display(), %error, "cannot delete the work directory");
        }
    }

    /// Deletes a file haul made; one that is already gone is fine.
    pub(super) async fn remove_file(&self, path: PathBuf) {
        if let Err(error) = tokio::fs::remove_file(&path).await
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), %error, "cannot delete file");
        }
    }
}
