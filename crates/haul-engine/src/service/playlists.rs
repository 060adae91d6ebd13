//! Playlists and channels: a media job whose page yt-dlp reads as a playlist becomes its parent, with one
//! media job per entry ([`haul_core::playlist`] decides which). The store keeps the parent's state as its
//! children's (triggers); this module makes the children, lays their totals over the parent when it is read,
//! tells event listeners about the parent when a child changes, and hands what a client asks of the parent
//! (pause, resume, retry, cancel, remove) to each child it applies to.

use haul_core::job::{AccountId, DownloadId, JobAction, JobKind, JobState, next_state};
use haul_core::media::MediaInfo;
use haul_core::playlist::{self, PlaylistItems};
use haul_store::{DownloadRecord, ListFilter, NewDownload};

use super::Engine;
use super::archive::ArchiveKey;
use super::error::ServiceError;
use super::events::EventKind;
use super::validate::check_url;
use super::views::{DownloadView, PlaylistView};
use crate::error::EngineError;

impl Engine {
    /// The job `record` read a playlist: it becomes the playlist, parent of one job per selected entry (under
    /// its lease: a node that lost the job changes nothing). The entries are new jobs like any other, claimed
    /// by whichever node has room.
    pub(super) async fn expand_playlist(&self, record: &DownloadRecord, info: &MediaInfo) -> Result<(), EngineError> {
        let items = match record.playlist_items.as_deref() {
            Some(text) => Some(text.parse::<PlaylistItems>().map_err(|error| EngineError::Media(error.to_string()))?),
            None => None,
        };
        let cap = self.inner.options.max_playlist_entries;
        let mut planned = playlist::plan(info, &record.url, items.as_ref(), cap);
        // An entry's URL comes from the page: it is checked as a client's would be (scheme, length, the
        // destination policy's literal addresses), and one that would be refused is left out, saying why.
        planned.entries.retain(|entry| match check_url(&entry.url, self.inner.client.destinations()) {
            Ok(_) => true,
            Err(error) => {
                tracing::warn!(index = entry.index, %error, "playlist entry left out");
                false
            }
        });
        // Entries the account's archive holds are left out (a video it learns is archived only once its page is
        // read ends there, as any download does); `force` on the add fetches them all.
        let mut skipped = 0u32;
        if record.check_archive {
            let before = planned.entries.len();
            let mut kept = Vec::with_capacity(before);
            for entry in std::mem::take(&mut planned.entries) {
                if self.entry_archived(&record.account, &entry).await {
                    tracing::info!(index = entry.index, url = %entry.url, "playlist entry already downloaded; skipped");
                } else {
                    kept.push(entry);
                }
            }
            planned.entries = kept;
            skipped = u32::try_from(before - planned.entries.len()).unwrap_or(u32::MAX);
            if planned.entries.is_empty() && skipped > 0 {
                return Err(EngineError::Media(format!(
                    "every entry of this playlist that was asked for ({skipped}) is in this account's download \
                     archive already; add it with force to fetch them again"
                )));
            }
        }
        if planned.entries.is_empty() {
            return Err(EngineError::Media(match &items {
                _ if planned.total == 0 => "the page is a playlist without entries yt-dlp can read".to_owned(),
                Some(items) => format!("none of the playlist's {} entries is in `{items}`", planned.total),
                None => format!("none of the playlist's {} entries is a video yt-dlp can read", planned.total),
            }));
        }
        let counts = self.inner.store.counts(Some(&record.account)).await.map_err(store_error)?;
        let room = self.inner.options.max_jobs_per_account.saturating_sub(counts.total());
        if planned.entries.len() as u64 > room {
            return Err(EngineError::Media(format!(
                "the playlist has {} entries to add, but this account may keep only {room} more downloads; remove \
                 finished ones or choose fewer entries (playlist_items)",
                planned.entries.len()
            )));
        }
        if planned.over_cap > 0 {
            tracing::warn!(
                added = planned.entries.len(),
                left_out = planned.over_cap,
                "the playlist has more entries than the server takes from one (--max-playlist-entries)"
            );
        }
        let children: Vec<NewDownload> = planned
            .entries
            .iter()
            .map(|entry| {
                let mut child = NewDownload::new(record.account.clone(), entry.url.clone());
                child.kind = JobKind::Media;
                child.quality = record.quality;
                child.directory = record.directory.clone();
                child.headers = record.headers.clone();
                child.connections_limit = record.connections_limit;
                child.speed_limit = record.speed_limit;
                child.priority = record.priority;
                child.labels = record.labels.clone();
                child.name_with_id = record.name_with_id;
                child.title = entry.title.clone().filter(|title| !title.trim().is_empty());
                child.parent = Some(record.id);
                child.playlist_index = Some(entry.index);
                child.playlist_item = entry.item;
                child.name_template = record.name_template.clone();
                child.media = record.media.clone();
                child.check_archive = record.check_archive;
                child
            })
            .collect();
        let store = &self.inner.store;
        let node = &self.inner.options.node;
        let parent = store
            .expand_playlist(record.id, node, info.title.as_deref(), &children, skipped)
            .await
            .map_err(store_error)?;
        tracing::info!(entries = children.len(), "the page is a playlist; its entries are queued");
        let filter = ListFilter { parent: Some(record.id), oldest_first: true, ..ListFilter::default() };
        for child in store.list(&record.account, &filter).await.map_err(store_error)? {
            self.emit(EventKind::Added, &DownloadView::from(child));
        }
        let mut view = DownloadView::from(parent);
        self.with_playlists(&record.account, std::slice::from_mut(&mut view)).await;
        self.emit(EventKind::Queued, &view);
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Whether the account's archive holds `entry`: by the video the playlist names, else by its page's URL.
    async fn entry_archived(&self, account: &AccountId, entry: &playlist::Entry) -> bool {
        let store = &self.inner.store;
        let by_video = match entry.video.as_ref().and_then(|(extractor, id)| ArchiveKey::media(extractor, id)) {
            Some(key) => store.archive_entry(account, &key.extractor, &key.video_id).await.ok().flatten().is_some(),
            None => false,
        };
        by_video
            || (entry.item.is_none()
                && store.archive_by_url(account, &entry.url).await.is_ok_and(|entries| {
                    entries.iter().any(|archived| archived.extractor != super::archive::FILE_EXTRACTOR)
                }))
    }

    /// Lays each playlist's children, taken together, over its view: the entries in each state, and their
    /// bytes as the playlist's.
    pub(super) async fn with_playlists(&self, account: &AccountId, views: &mut [DownloadView]) {
        let parents: Vec<DownloadId> =
            views.iter().filter(|view| view.kind == JobKind::Playlist).map(|view| view.id).collect();
        if parents.is_empty() {
            return;
        }
        let totals = match self.inner.store.playlist_totals(account, &parents).await {
            Ok(totals) => totals,
            Err(error) => {
                tracing::warn!(%error, "cannot read the playlists' entries");
                return;
            }
        };
        for view in views.iter_mut() {
            let Some(totals) = totals.iter().find(|totals| totals.parent == view.id) else { continue };
            let (items, skipped) =
                view.playlist.take().map(|playlist| (playlist.items, playlist.skipped)).unwrap_or_default();
            view.playlist = Some(PlaylistView {
                skipped,
                entries: totals.entries,
                completed: totals.completed,
                failed: totals.failed,
                cancelled: totals.cancelled,
                items,
            });
            view.bytes_done = totals.bytes_done;
            view.size = totals.size;
        }
    }

    /// A child changed: its playlist, as it is now, goes out to event listeners too (its state is the
    /// children's, changed by the store in the same transaction).
    pub(super) fn playlist_changed(&self, child: &DownloadView, kind: EventKind) {
        let Some(parent) = child.parent else { return };
        let engine = self.clone();
        let account = child.account.clone();
        self.inner.tasks.spawn(async move {
            let Ok(record) = engine.inner.store.get(&account, parent).await else { return };
            let mut view = DownloadView::from(record);
            engine.with_playlists(&account, std::slice::from_mut(&mut view)).await;
            let kind = match (kind, view.state) {
                (EventKind::Progress, _) => EventKind::Progress,
                (_, JobState::Completed) => EventKind::Completed,
                (_, JobState::Failed) => EventKind::Failed,
                (_, JobState::Cancelled) => EventKind::Cancelled,
                (_, JobState::Paused) => EventKind::Paused,
                (_, JobState::Queued) => EventKind::Queued,
                (_, JobState::Active) => EventKind::Progress,
            };
            engine.inner.events.emit(kind, &view);
        });
    }

    /// What a client asks of a playlist, done to each of its entries it applies to (a completed entry is not
    /// paused, a running one not retried). `Conflict` when it applies to none, naming the playlist's state.
    pub(super) async fn for_each_entry(
        &self,
        account: &AccountId,
        parent: &DownloadRecord,
        action: JobAction,
    ) -> Result<DownloadView, ServiceError> {
        let filter = ListFilter { parent: Some(parent.id), oldest_first: true, ..ListFilter::default() };
        let children = self.inner.store.list(account, &filter).await?;
        let mut done = 0;
        for child in children.iter().filter(|child| next_state(child.state, action).is_ok()) {
            let result = match action {
                JobAction::Pause => self.pause_one(account, child.id).await,
                JobAction::Resume => self.resume_one(account, child.id).await,
                JobAction::Retry => self.retry_one(account, child.id).await,
                JobAction::Cancel => self.cancel_one(account, child.id).await,
                _ => continue,
            };
            match result {
                Ok(_) => done += 1,
                // Moved on between the list and the action (it completed, a client acted on it): not this call's
                // business.
                Err(ServiceError::Conflict { .. } | ServiceError::NotFound(_)) => {}
                Err(error) => return Err(error),
            }
        }
        let mut view = DownloadView::from(self.inner.store.get(account, parent.id).await?);
        if done == 0 {
            return Err(ServiceError::Conflict {
                current: view.state,
                message: format!(
                    "no entry of this playlist can be {} (it is {}, with {} entries)",
                    action_done(action),
                    view.state,
                    children.len()
                ),
            });
        }
        self.with_playlists(account, std::slice::from_mut(&mut view)).await;
        Ok(view)
    }

    /// A playlist's entries removed before it is (their files too with `delete_files`).
    pub(super) async fn remove_entries(
        &self,
        account: &AccountId,
        parent: DownloadId,
        delete_files: bool,
    ) -> Result<(), ServiceError> {
        let filter = ListFilter { parent: Some(parent), ..ListFilter::default() };
        for child in self.inner.store.list(account, &filter).await? {
            match self.remove_one(account, child.id, delete_files).await {
                Ok(_) | Err(ServiceError::NotFound(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }
}

fn action_done(action: JobAction) -> &'static str {
    match action {
        JobAction::Pause => "paused",
        JobAction::Resume => "resumed",
        JobAction::Retry => "retried",
        JobAction::Cancel => "cancelled",
        _ => "changed",
    }
}

/// A lease lost meanwhile ends this run quietly (the job is another's now); anything else fails it, saying so.
fn store_error(error: haul_store::StoreError) -> EngineError {
    match error {
        haul_store::StoreError::Conflict { .. } => EngineError::Cancelled,
        error => EngineError::Media(format!("the playlist's entries could not be recorded: {error}")),
    }
}
