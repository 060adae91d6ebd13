//! What clients ask of their downloads: add, read, list, pause, resume, cancel, edit, remove, totals.
//!
//! Every call names the account it acts for; another account's download is "not found", never "forbidden",
//! so ids do not leak.

use haul_core::job::{AccountId, DownloadId, JobAction, JobKind, JobState};
use haul_core::media::MediaInfo;
use haul_store::{CreatedOnce, DownloadRecord, ListFilter, NewDownload};

use super::error::ServiceError;
use super::events::EventKind;
use super::scheduler::StopReason;
use super::validate::{check_labels, check_priority, check_title, check_url, new_download, require};
use super::views::{AddRequest, AddedOnce, DownloadView, ListQuery, NodeView, PatchRequest, StatsView};
use super::{Engine, runner};
use crate::error::EngineError;
use crate::media;
use crate::progress::Phase;

/// How long an idempotency key of `add_once` holds: a day, as Stripe keeps them.
pub const IDEMPOTENCY_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

/// The text a list filters on, refused where no stored text can hold it: a NUL byte (PostgreSQL's text cannot
/// contain one, SQLite's can), so that both backends answer the same, a 400 rather than a 500.
fn check_query(query: &ListQuery) -> Result<(), ServiceError> {
    for (what, text) in [("search", &query.search), ("title", &query.title), ("creator", &query.creator)] {
        if text.as_deref().is_some_and(|text| text.contains('\0')) {
            return Err(ServiceError::Invalid(format!("{what} cannot contain a NUL character")));
        }
    }
    Ok(())
}

impl Engine {
    pub async fn add(&self, account: &AccountId, request: AddRequest) -> Result<DownloadView, ServiceError> {
        let new = self.checked_new(account, request).await?;
        let view = DownloadView::from(self.inner.metrics.timed("create", self.inner.store.create(new)).await?);
        self.added(&view);
        Ok(view)
    }

    /// [`add`](Self::add) once per idempotency `key` of the account: a client that retries an add it is unsure
    /// of (a timeout, a dropped connection) with the same key and request gets the first download back, for
    /// [`IDEMPOTENCY_WINDOW`]. `fingerprint` stands for the request (the API hashes its canonical form); the same
    /// key with another request is [`AddedOnce::KeyReused`].
    pub async fn add_once(
        &self,
        account: &AccountId,
        request: AddRequest,
        key: &str,
        fingerprint: &str,
    ) -> Result<AddedOnce, ServiceError> {
        let new = self.checked_new(account, request).await?;
        let created = self.inner.store.create_once(new, key, fingerprint, IDEMPOTENCY_WINDOW);
        Ok(match self.inner.metrics.timed("create", created).await? {
            CreatedOnce::Created(record) => {
                let view = DownloadView::from(record);
                self.added(&view);
                AddedOnce::Created(view)
            }
            CreatedOnce::Replayed(record) => AddedOnce::Replayed(self.overlay(record)),
            CreatedOnce::KeyReused { created_at } => AddedOnce::KeyReused { created_at },
        })
    }

    /// A request checked into a new row, with what the account's rules give it, within the account's cap.
    async fn checked_new(&self, account: &AccountId, request: AddRequest) -> Result<NewDownload, ServiceError> {
        let mut new = new_download(account, request, &self.inner.options.media, self.inner.client.destinations())?;
        if let Some(selector) = &new.media.format {
            // yt-dlp judges its own language, before anything is queued; nothing is fetched to do so.
            crate::media::check_selector(&self.inner.options.media, selector).await.map_err(|error| match error {
                crate::error::EngineError::InvalidRequest(message) => ServiceError::Invalid(message),
                other => ServiceError::Unsupported(other.to_string()),
            })?;
        }
        self.apply_rules(&mut new).await?;
        self.check_archive_on_add(&new).await?;
        let limit = self.inner.options.max_jobs_per_account;
        let kept = self.inner.store.counts(Some(account)).await?.total();
        if kept >= limit {
            return Err(ServiceError::LimitReached(format!(
                "this account keeps {kept} downloads, the most this server allows ({limit}); remove finished ones \
                 (DELETE /v1/downloads/ID) to add more"
            )));
        }
        Ok(new)
    }

    /// Tells the world a download was added, and the scheduler when it can run.
    fn added(&self, view: &DownloadView) {
        self.emit(EventKind::Added, view);
        // A job added paused cannot be claimed: waking the scheduler for it would only take the store's write
        // lock for a claim that finds nothing, against the next add.
        if view.state == JobState::Queued {
            self.inner.wake.notify_one();
        }
    }

    pub async fn get(&self, account: &AccountId, id: DownloadId) -> Result<DownloadView, ServiceError> {
        let record = self.inner.store.get(account, id).await?;
        let mut view = self.overlay(record);
        self.with_playlists(account, std::slice::from_mut(&mut view)).await;
        Ok(view)
    }

    pub async fn list(&self, account: &AccountId, query: ListQuery) -> Result<Vec<DownloadView>, ServiceError> {
        check_query(&query)?;
        let records = self.inner.metrics.timed("list", self.inner.store.list(account, &query.into())).await?;
        let mut views: Vec<DownloadView> = records.into_iter().map(|record| self.overlay(record)).collect();
        self.with_playlists(account, &mut views).await;
        Ok(views)
    }

    /// The playlist's own record when `id` is a playlist (whose actions go to its entries), else `None`.
    async fn playlist(&self, account: &AccountId, id: DownloadId) -> Result<Option<DownloadRecord>, ServiceError> {
        let record = self.inner.store.get(account, id).await?;
        Ok((record.kind == JobKind::Playlist).then_some(record))
    }

    /// How many of the account's downloads `query` keeps, its `limit` and `offset` aside.
    pub async fn count(&self, account: &AccountId, query: ListQuery) -> Result<u64, ServiceError> {
        check_query(&query)?;
        Ok(self.inner.store.count(account, &query.into()).await?)
    }

    /// Pause it; a playlist pauses each entry that is queued or running.
    pub async fn pause(&self, account: &AccountId, id: DownloadId) -> Result<DownloadView, ServiceError> {
        match self.playlist(account, id).await? {
            Some(playlist) => self.for_each_entry(account, &playlist, JobAction::Pause).await,
            None => self.pause_one(account, id).await,
        }
    }

    pub(super) async fn pause_one(&self, account: &AccountId, id: DownloadId) -> Result<DownloadView, ServiceError> {
        self.inner.metrics.timed("apply", self.inner.store.apply(account, id, JobAction::Pause, None)).await?;
        self.stop_running(id, StopReason::Pause).await;
        // Read again: the stopped task has written its last progress.
        let view = DownloadView::from(self.inner.store.get(account, id).await?);
        self.emit(EventKind::Paused, &view);
        Ok(view)
    }

    /// Resume it; a playlist resumes each paused entry.
    pub async fn resume(&self, account: &AccountId, id: DownloadId) -> Result<DownloadView, ServiceError> {
        match self.playlist(account, id).await? {
            Some(playlist) => self.for_each_entry(account, &playlist, JobAction::Resume).await,
            None => self.resume_one(account, id).await,
        }
    }

    pub(super) async fn resume_one(&self, account: &AccountId, id: DownloadId) -> Result<DownloadView, ServiceError> {
        let view = DownloadView::from(self.inner.store.apply(account, id, JobAction::Resume, None).await?);
        self.emit(EventKind::Resumed, &view);
        self.inner.wake.notify_one();
        Ok(view)
    }

    /// Queue a failed or cancelled download again: a failed one continues from its partial file, a cancelled
    /// one (whose partial file is gone) starts over. `PATCH url` first is the way back from an expired link.
    /// A playlist retries each failed or cancelled entry.
    pub async fn retry(&self, account: &AccountId, id: DownloadId) -> Result<DownloadView, ServiceError> {
        match self.playlist(account, id).await? {
            Some(playlist) => self.for_each_entry(account, &playlist, JobAction::Retry).await,
            None => self.retry_one(account, id).await,
        }
    }

    pub(super) async fn retry_one(&self, account: &AccountId, id: DownloadId) -> Result<DownloadView, ServiceError> {
        let view = DownloadView::from(self.inner.store.apply(account, id, JobAction::Retry, None).await?);
        self.emit(EventKind::Retried, &view);
        self.inner.wake.notify_one();
        Ok(view)
    }

    /// Stop for good and discard the partial file; the job stays listed as cancelled. A playlist cancels each
    /// entry that has not ended (completed ones are kept).
    pub async fn cancel(&self, account: &AccountId, id: DownloadId) -> Result<DownloadView, ServiceError> {
        match self.playlist(account, id).await? {
            Some(playlist) => self.for_each_entry(account, &playlist, JobAction::Cancel).await,
            None => self.cancel_one(account, id).await,
        }
    }

    pub(super) async fn cancel_one(&self, account: &AccountId, id: DownloadId) -> Result<DownloadView, ServiceError> {
        let record = self.inner.store.apply(account, id, JobAction::Cancel, None).await?;
        if !self.stop_running(id, StopReason::Cancel).await {
            self.discard_partial(&record).await;
            self.fail_renditions(&record, "the download was cancelled").await;
        }
        let view = DownloadView::from(self.inner.store.get(account, id).await?);
        self.emit(EventKind::Cancelled, &view);
        Ok(view)
    }

    /// Change the URL of a paused or failed job (an expired link) or the priority of any job.
    pub async fn patch(
        &self,
        account: &AccountId,
        id: DownloadId,
        mut patch: PatchRequest,
    ) -> Result<DownloadView, ServiceError> {
        if let Some(url) = &patch.url {
            patch.url = Some(check_url(url, self.inner.client.destinations())?);
        }
        if let Some(priority) = patch.priority {
            check_priority(priority)?;
        }
        patch.labels = patch.labels.map(check_labels).transpose()?;
        patch.title = patch.title.map(check_title).transpose()?.flatten();
        let before = self.inner.store.get(account, id).await?;
        if patch.speed_limit == Some(Some(0)) {
            return Err(ServiceError::Invalid("speed_limit must be above 0; send null for no limit".into()));
        }
        let record = self.inner.store.patch(account, id, &patch.into()).await?;
        self.inner.wake.notify_one();
        if let Some(running) = self.inner.running.lock().get(&id) {
            running.limit.set_rate(record.speed_limit);
        }
        // A finished video whose thumbnail should come from elsewhere gets that frame now; a running one takes it
        // when it finishes.
        if record.labels.thumbnail_at != before.labels.thumbnail_at
            && record.state == JobState::Completed
            && record.thumbnail.is_some()
        {
            self.remake_thumbnail(&record);
        }
        Ok(self.overlay(record))
    }

    /// Forget a download; with `delete_files`, its finished and partial files go too. A playlist goes with
    /// all its entries.
    pub async fn remove(
        &self,
        account: &AccountId,
        id: DownloadId,
        delete_files: bool,
    ) -> Result<DownloadView, ServiceError> {
        if self.playlist(account, id).await?.is_some() {
            self.remove_entries(account, id, delete_files).await?;
        }
        self.remove_one(account, id, delete_files).await
    }

    pub(super) async fn remove_one(
        &self,
        account: &AccountId,
        id: DownloadId,
        delete_files: bool,
    ) -> Result<DownloadView, ServiceError> {
        self.inner.store.get(account, id).await?;
        self.stop_running(id, StopReason::Remove).await;
        self.stop_renditions(id, None);
        // Read before the row goes: its renditions go with it (a cascading foreign key).
        let renditions = self.inner.store.renditions(account, id).await.unwrap_or_default();
        let record = self.inner.store.delete(account, id).await?;
        if delete_files {
            for path in renditions.iter().filter_map(|rendition| rendition.path.as_ref()) {
                self.remove_file(self.inner.options.downloads_dir.join(path)).await;
            }
            if let Some(path) = self.final_path(&record) {
                self.remove_file(path).await;
            }
            // The subtitle files saved beside it are part of it.
            for subtitle in &record.subtitles {
                let saved = self.inner.options.downloads_dir.join(&subtitle.path);
                if let Some(path) = self.inside_downloads(&saved).await {
                    self.remove_file(path).await;
                }
            }
            self.discard_partial(&record).await;
        }
        // The thumbnail and a media job's work directory are haul's, not the user's: they go with the job
        // either way.
        for thumbnail in self.thumbnail_candidates(record.id) {
            self.remove_file(thumbnail).await;
        }
        self.discard_work(record.id).await;
        let view = DownloadView::from(record);
        self.emit(EventKind::Removed, &view);
        Ok(view)
    }

    pub async fn stats(&self, account: &AccountId) -> Result<StatsView, ServiceError> {
        let counts = self.inner.store.counts(Some(account)).await?;
        let speed = if self.inner.store.shared_by_nodes() {
            // Other nodes' downloads too, as each last reported (every second).
            let filter = ListFilter { states: vec![JobState::Active], ..ListFilter::default() };
            self.inner.store.list(account, &filter).await?.iter().map(|record| record.speed).sum()
        } else {
            let running = self.inner.running.lock();
            running.values().filter(|r| &r.account == account).map(|r| r.progress.snapshot().speed).sum()
        };
        Ok(StatsView {
            active: counts.active,
            queued: counts.queued,
            paused: counts.paused,
            completed: counts.completed,
            failed: counts.failed,
            cancelled: counts.cancelled,
            total: counts.total(),
            speed,
            node: self.inner.options.node.clone(),
            backend: self.inner.store.backend(),
        })
    }

    /// The nodes sharing this store, with the one answering marked.
    pub async fn nodes(&self) -> Result<Vec<NodeView>, ServiceError> {
        let nodes = self.inner.store.nodes().await?;
        Ok(nodes
            .into_iter()
            .map(|node| NodeView {
                this: node.id == self.inner.options.node,
                id: node.id,
                advertise_url: node.advertise_url,
                version: node.version,
                started_at: node.started_at,
                last_seen: node.last_seen,
                active: node.active,
            })
            .collect())
    }

    /// What yt-dlp says about a page (title, duration, thumbnail, formats), without downloading anything.
    pub async fn media_info(&self, url: &str) -> Result<MediaInfo, ServiceError> {
        let url = check_url(url, self.inner.client.destinations())?;
        require("reading a media page", self.inner.options.media.yt_dlp())?;
        let cancel = self.inner.shutdown.child_token();
        media::extract(&self.inner.options.media, &url, &[], None, &cancel).await.map_err(|error| match error {
            EngineError::Media(message) => ServiceError::Invalid(message),
            EngineError::Refused(refused) => ServiceError::RefusedDestination(refused.to_string()),
            other => ServiceError::internal(other),
        })
    }

    /// What a running download is doing now (probing, downloading, or verifying / post-processing with
    /// ffmpeg); `None` when it is not running here.
    pub fn phase(&self, id: DownloadId) -> Option<Phase> {
        let running = self.inner.running.lock().get(&id).cloned();
        running.map(|running| running.progress.snapshot().phase)
    }

    /// The stored job with the live progress of its run on this node laid over it.
    pub(super) fn overlay(&self, record: DownloadRecord) -> DownloadView {
        let mut view = DownloadView::from(record);
        let running = self.inner.running.lock().get(&view.id).cloned();
        if let Some(running) = running
            && view.state == JobState::Active
        {
            let snapshot = running.progress.snapshot();
            view.bytes_done = snapshot.done;
            view.size = snapshot.total.or(view.size);
            view.speed = snapshot.speed;
            view.connections = snapshot.connections as u32;
            view.eta_secs = runner::eta(view.size, view.bytes_done, view.speed);
        }
        view
    }
}
