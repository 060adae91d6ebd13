//! One job's run on this node, from claim to completed, failed or stopped: fetch it (a plain file with the
//! engine, a page through the media pipeline), report its progress every second while renewing the lease,
//! and record how it ended.

use std::path::PathBuf;
use std::time::Duration;

use haul_core::job::{JobAction, JobKind, JobState};
use haul_core::media::{NameTemplate, Quality};
use haul_store::{DownloadRecord, MediaUpdate, ProgressUpdate, StoreError};
use url::Url;

use super::Engine;
use super::archive::ArchiveKey;
use super::events::EventKind;
use super::scheduler::{Running, StopReason};
use super::views::DownloadView;
use crate::download::{self, DownloadOptions, Target};
use crate::error::EngineError;
use crate::media;
use crate::progress::{MediaFacts, Progress};
use crate::task::chain;

/// How often a running download writes its progress to the store, renews its lease and emits a progress event.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// How long one try of a download's last writes may wait for the store.
const STORE_ANSWER: Duration = Duration::from_secs(10);

/// What one run of a job produced.
struct Fetched {
    path: PathBuf,
    size: u64,
    /// What names it in the account's download archive, recorded once the job is complete; `None` when nothing
    /// can tell it from another (a file without validators).
    archive: Option<ArchiveKey>,
    /// The title to show in the archive: the page's, or the file's name.
    title: Option<String>,
}

impl Engine {
    /// One download's life on this node, from claim to completed, failed or stopped.
    pub(super) async fn run(&self, record: DownloadRecord, running: &Running) {
        self.emit(EventKind::Started, &DownloadView::from(record.clone()));
        let work = self.fetch(&record, running);
        tokio::pin!(work);
        // The reporter is dropped at the end of this block, before the last writes below: stopped between two
        // polls it may hold a pooled database connection (a query it had started), and kept alive it would hold
        // it while this task waits for another; with as many downloads ending at once as the pool has
        // connections, every connection was held that way and the server stopped answering.
        let result = {
            let reporter = self.report_progress(&record, running);
            tokio::pin!(reporter);
            tokio::select! {
                result = &mut work => result,
                _ = &mut reporter => work.await,
            }
        };
        self.write_progress(&record, &running.progress).await;
        self.count_fetched(running);
        let outcome = match (&result, running.reason()) {
            (Ok(None), _) => "playlist",
            (Ok(_), _) => "completed",
            (Err(EngineError::Cancelled), Some(StopReason::Pause)) => "paused",
            (Err(EngineError::Cancelled), Some(StopReason::Cancel)) => "cancelled",
            (Err(EngineError::Cancelled), Some(StopReason::Remove)) => "removed",
            (Err(EngineError::Cancelled), Some(StopReason::LostLease)) => "lost_lease",
            (Err(EngineError::Cancelled), Some(StopReason::Hold)) => "held",
            (Err(EngineError::Cancelled), _) => "stopped",
            (Err(EngineError::InUse(_)), _) if self.inner.store.shared_by_nodes() => "in_use",
            (Err(_), _) => "failed",
        };
        self.inner.metrics.finished(outcome);
        match result {
            // The page was a playlist: the job is its entries' parent now, and the entries are queued.
            Ok(None) => {}
            Ok(Some(done)) => {
                let update = ProgressUpdate {
                    bytes_done: done.size,
                    size: Some(done.size),
                    path: Some(self.relative(&done.path)),
                    filename: done.path.file_name().map(|name| name.to_string_lossy().into_owned()),
                    ..ProgressUpdate::default()
                };
                let store = &self.inner.store;
                let (node, lease) = (&self.inner.options.node, self.inner.options.lease);
                // Recorded and completed under the lease: after an outage, another node may have taken the job
                // over, and a completion from here would end its run and name this node's disk for its file.
                match self.stored(|| store.report_progress(record.id, node, lease, &update)).await {
                    Err(StoreError::Conflict { current: JobState::Active, .. }) => {
                        tracing::warn!("download finished, but another node took the job over meanwhile");
                        return;
                    }
                    // Paused, cancelled or removed at the last moment: the file's place is still worth keeping.
                    Err(StoreError::Conflict { .. }) => {
                        self.store_quietly(store.record_progress(record.id, &update).await);
                    }
                    other => self.store_quietly(other.map(drop)),
                }
                match self.stored(|| store.complete_leased(record.id, node)).await {
                    Ok(completed) => {
                        if let Some(key) = &done.archive {
                            let title = record.title.as_deref().or(done.title.as_deref());
                            if let Err(error) =
                                self.record_archive(&record.account, key, &record.url, title, Some(record.id)).await
                            {
                                tracing::warn!(%error, "download completed but cannot be recorded in the archive");
                            }
                        }
                        self.emit(EventKind::Completed, &completed.into());
                    }
                    Err(error) => tracing::warn!(%error, "download finished but its job moved on"),
                }
                // Renditions asked for before the file was there.
                self.make_renditions();
            }
            Err(EngineError::Cancelled) => {
                if running.reason() == Some(StopReason::Cancel) {
                    self.discard_partial_of(&running.progress).await;
                    self.discard_work(record.id).await;
                    self.fail_renditions(&record, "the download was cancelled").await;
                }
            }
            // Several nodes on a shared directory: the part file is locked by a node that had this job before and
            // has not stopped yet (its fence has not passed). Not the download's fault: the job stays leased
            // here untouched, and is claimed again when the lease runs out, by when that node has stopped.
            Err(EngineError::InUse(path)) if self.inner.store.shared_by_nodes() => {
                tracing::warn!(
                    path = %self.without_root(&path.display().to_string()),
                    "another process still holds the part file; trying again when this lease runs out"
                );
            }
            Err(EngineError::Io { source, .. })
                if matches!(source.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded) =>
            {
                self.pause_for_space(&record, &running.progress).await;
            }
            Err(error) => {
                self.finish_failed(&record, self.without_root(&error.to_string())).await;
                self.fail_renditions(&record, "the download failed").await;
            }
        }
    }

    /// A full disk is not the download's fault: it is paused with every recorded range kept, and a resume
    /// (once there is room) continues it.
    async fn pause_for_space(&self, record: &DownloadRecord, progress: &Progress) {
        let snapshot = progress.snapshot();
        let needed = match snapshot.total {
            Some(total) => format!(
                "{} more are needed ({} of {} are here)",
                haul_core::units::format_bytes(total.saturating_sub(snapshot.done)),
                haul_core::units::format_bytes(snapshot.done),
                haul_core::units::format_bytes(total)
            ),
            None => "the download's size is not known".to_owned(),
        };
        let message = format!("paused: the disk is full; {needed}; free some space, then resume it");
        tracing::warn!(%message, "download paused");
        match self.inner.store.apply(&record.account, record.id, JobAction::Pause, Some(message)).await {
            Ok(record) => self.emit(EventKind::Paused, &record.into()),
            Err(error) => tracing::warn!(%error, "the disk filled up but the job moved on"),
        }
    }

    /// An engine message as a client may see it: paths relative to the downloads directory, which is the
    /// server's business.
    fn without_root(&self, message: &str) -> String {
        let root = self.inner.options.downloads_dir.display().to_string();
        message.replace(&format!("{root}/"), "").replace(&root, "downloads")
    }

    /// Fetches the job: a plain file with the engine, or a media page through the media pipeline. A job of kind
    /// `auto` is decided here, once: a web page yt-dlp can read is media, anything else a file. A page that is a
    /// playlist makes the job its entries' parent (`Ok(None)`).
    async fn fetch(&self, record: &DownloadRecord, running: &Running) -> Result<Option<Fetched>, EngineError> {
        let tools = &self.inner.options.media;
        let audio = record.quality == Quality::Audio;
        let cancel = &running.cancel;
        // The account's own client: its cookie jar goes with its requests, to the hosts each cookie names.
        let client = self.client_for(&record.account).await;
        // yt-dlp reads the page with the account's cookies too, from a file of them that lives as long as this
        // run (a plain file never needs it).
        let jar_file = match (record.kind, audio) {
            (JobKind::File, false) => None,
            _ => self.cookies_file(&record.account).await?,
        };
        let cookies = jar_file.as_ref().map(|file| file.path());
        let info = match record.kind {
            JobKind::Media => Some(media::extract(tools, &record.url, &record.headers, cookies, cancel).await?),
            JobKind::Auto => {
                let headers = pairs_to_map(&record.headers)?;
                // yt-dlp starts beside the look at the URL, as for `haul get`.
                let info = media::read_if_page(&client, tools, &record.url, &headers, &record.headers, cookies, cancel)
                    .await?;
                match info {
                    Some(info) => Some(info),
                    None if audio => Some(media::direct_info(&record.url)),
                    None => {
                        let decided = MediaUpdate { kind: Some(JobKind::File), ..MediaUpdate::default() };
                        self.store_quietly(self.inner.store.set_media(record.id, &decided).await);
                        None
                    }
                }
            }
            // `audio` of a plain file: its sound as m4a.
            JobKind::File if audio => Some(media::direct_info(&record.url)),
            JobKind::File => None,
            JobKind::Playlist => {
                return Err(EngineError::Media("a playlist is fetched through its entries, not on its own".into()));
            }
        };
        let info = match info {
            // An entry of a playlist: its page, or its place on the playlist's page.
            Some(info) if record.parent.is_some() => {
                Some(haul_core::playlist::entry_of(info, record.playlist_item).map_err(EngineError::Media)?)
            }
            Some(info) if info.is_playlist() => {
                self.expand_playlist(record, &info).await?;
                return Ok(None);
            }
            other => other,
        };
        // Already downloaded (another URL of the same video, or two adds that raced): the job ends here, having
        // fetched nothing, with a message naming the earlier download.
        if record.check_archive {
            let hit = match &info {
                Some(info) => self.archived_page(&record.account, record.id, info).await,
                None => self.archived_file_at_run(&record.account, record.id, &record.url, &record.headers).await,
            };
            if let Some(hit) = hit {
                return Err(EngineError::InvalidRequest(hit.to_string()));
            }
        }
        let Some(info) = info else {
            let options = self.download_options(record, running).await?;
            let done = download::download(client.clone(), options, running.progress.clone(), cancel.clone()).await?;
            // A plain file that is audio or video is described as media is (duration, size, a thumbnail frame),
            // before the job is complete, so whoever sees it complete sees that too.
            running.progress.set_phase(crate::progress::Phase::Verifying);
            let described = media::describe_file(
                tools,
                &done.path,
                &self.inner.options.thumbnails_dir,
                record.id,
                record.labels.thumbnail_at,
                cancel,
            )
            .await?;
            if let Some(facts) = described {
                let update = MediaUpdate { kind: None, ..self.media_update(facts) };
                self.store_quietly(self.inner.store.set_media(record.id, &update).await);
            }
            let archive = ArchiveKey::file(&record.url, &done.validators, Some(done.size));
            let title = done.path.file_name().map(|name| name.to_string_lossy().into_owned());
            return Ok(Some(Fetched { path: done.path, size: done.size, archive, title }));
        };
        let archive = ArchiveKey::of_page(&info);
        let title = info.title.clone();
        let mut target_dir = self.inner.options.downloads_dir.clone();
        if let Some(directory) = &record.directory {
            target_dir.push(directory);
        }
        // Checked when the download was added; a template stored by an older haul that no longer parses is the
        // job's error.
        let template = match record.name_template.as_deref() {
            Some(text) => Some(text.parse::<NameTemplate>().map_err(|error| EngineError::Media(error.to_string()))?),
            None => None,
        };
        let playlist_title = match (&template, record.parent) {
            (Some(_), Some(parent)) => {
                self.inner.store.get(&record.account, parent).await.ok().and_then(|playlist| playlist.title)
            }
            _ => None,
        };
        let job = media::MediaJob {
            id: record.id,
            url: &record.url,
            quality: record.quality,
            headers: &record.headers,
            cookies,
            title: record.title.as_deref(),
            target_dir,
            downloads_dir: &self.inner.options.downloads_dir,
            thumbnails_dir: Some(&self.inner.options.thumbnails_dir),
            limits: self.limits_of(record, running),
            connections: record.connections_limit.map(|n| n as usize),
            plain_name: false,
            name_template: template.as_ref(),
            thumbnail_at: record.labels.thumbnail_at,
            playlist: record.playlist_index.map(|index| (playlist_title.as_deref().unwrap_or("NA"), index)),
            choice: &record.media,
        };
        let done = media::run(&client, tools, job, info, &running.progress, cancel).await?;
        Ok(Some(Fetched { path: done.path, size: done.size, archive, title }))
    }

    pub(super) async fn finish_failed(&self, record: &DownloadRecord, message: String) {
        tracing::info!(%message, "download failed");
        match self.inner.store.apply(&record.account, record.id, JobAction::Fail, Some(message)).await {
            Ok(record) => self.emit(EventKind::Failed, &record.into()),
            Err(error) => tracing::warn!(%error, "download failed but its job moved on"),
        }
    }

    /// Every second: lease renewed and progress recorded (one write, which also reads the job back for the
    /// progress event), and what a media job has learned. Ends (and stops the download) when the lease is lost:
    /// another node or a client took the job.
    async fn report_progress(&self, record: &DownloadRecord, running: &Running) {
        let options = &self.inner.options;
        let mut ticker = tokio::time::interval(REPORT_EVERY);
        ticker.tick().await;
        // The lease holds until `lease` after the last renewal, counted by the store from a moment after this
        // node sent it; this node stops writing a margin before that, since another node may take the job over
        // once it runs out. The deadline bounds each renewal too: one stuck on a silent network (no answer, no
        // error, for as long as TCP retries) stops the download as surely as one that fails.
        let fence = options.lease.saturating_sub(options.lease / 4);
        let mut deadline = tokio::time::Instant::now() + fence;
        loop {
            ticker.tick().await;
            self.count_fetched(running);
            let update = self.progress_update(&running.progress);
            let sent = tokio::time::Instant::now();
            let renewal = self.inner.metrics.timed(
                "report_progress",
                self.inner.store.report_progress(record.id, &options.node, options.lease, &update),
            );
            let mut current = match tokio::time::timeout_at(deadline, renewal).await {
                Ok(Ok(current)) => {
                    deadline = sent + fence;
                    current
                }
                Ok(Err(error @ (StoreError::Conflict { .. } | StoreError::NotFound(_)))) => {
                    tracing::info!(%error, "lost the lease; stopping");
                    running.stop(StopReason::LostLease);
                    return std::future::pending().await;
                }
                // The store cannot be reached (restarting, a network cut): the lease still holds for a while,
                // so the download goes on, and stops only when the lease may have run out.
                Ok(Err(error)) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(error = %crate::task::chain(&error), "cannot renew the lease; going on while it holds");
                    continue;
                }
                Ok(Err(error)) => {
                    tracing::warn!(
                        error = %crate::task::chain(&error),
                        "cannot renew the lease before it runs out; stopping so that no other node writes beside us"
                    );
                    running.stop(StopReason::LostLease);
                    return std::future::pending().await;
                }
                Err(_) => {
                    tracing::warn!(
                        "no answer from the store before the lease could run out; stopping so that no other node \
                         writes beside us"
                    );
                    running.stop(StopReason::LostLease);
                    return std::future::pending().await;
                }
            };
            // A new limit for this job, from a client of any node.
            running.limit.set_rate(current.speed_limit);
            // Rarely (once or twice in a media job): read again so that the event shows what was learned.
            if self.write_media_change(record, &running.progress).await
                && let Ok(fresh) = self.inner.store.get(&record.account, record.id).await
            {
                current = fresh;
            }
            self.emit(EventKind::Progress, &self.overlay(current));
        }
    }

    /// Adds what the run fetched, and the connections it replaced, since the last count to the metrics.
    fn count_fetched(&self, running: &Running) {
        use std::sync::atomic::Ordering;
        let snapshot = running.progress.snapshot();
        let before = running.counted.swap(snapshot.fetched_this_run(), Ordering::Relaxed);
        let retries: [u64; crate::progress::RetryCause::ALL.len()] = std::array::from_fn(|i| {
            snapshot.retries[i].saturating_sub(running.retried[i].swap(snapshot.retries[i], Ordering::Relaxed))
        });
        self.inner.metrics.fetched(&running.host, snapshot.fetched_this_run().saturating_sub(before), &retries);
        let before = running.replaced.swap(snapshot.replaced_connections, Ordering::Relaxed);
        self.inner.metrics.connections_replaced.inc_by(snapshot.replaced_connections.saturating_sub(before));
    }

    /// A store write that must not be lost to a moment's outage (a download's end): retried while the store
    /// cannot be reached, for as long as the lease would hold. A conflict or a missing row is an answer, not an
    /// outage, and is returned at once.
    async fn stored<T, F, W>(&self, write: W) -> Result<T, StoreError>
    where
        W: Fn() -> F,
        F: std::future::Future<Output = Result<T, StoreError>>,
    {
        let started = tokio::time::Instant::now();
        loop {
            // Each try bounded: a store that does not answer at all is an outage too.
            let attempt = tokio::time::timeout(STORE_ANSWER, write()).await.unwrap_or_else(|_| {
                Err(StoreError::other(format!("the store did not answer within {}s", STORE_ANSWER.as_secs())))
            });
            match attempt {
                Err(error @ StoreError::Other { .. }) if started.elapsed() < self.inner.options.lease => {
                    tracing::warn!(error = %chain(&error), "cannot write to the store; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                result => return result,
            }
        }
    }

    /// Writes what the run reports: its progress, and what a media job has learned since the last write.
    async fn write_progress(&self, record: &DownloadRecord, progress: &Progress) {
        let update = self.progress_update(progress);
        self.store_quietly(self.inner.store.record_progress(record.id, &update).await);
        self.write_media_change(record, progress).await;
    }

    fn progress_update(&self, progress: &Progress) -> ProgressUpdate {
        let snapshot = progress.snapshot();
        ProgressUpdate {
            bytes_done: snapshot.done,
            size: snapshot.total,
            speed: snapshot.speed,
            eta_secs: eta(snapshot.total, snapshot.done, snapshot.speed),
            connections: snapshot.connections as u32,
            filename: snapshot
                .destination
                .as_ref()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned()),
            path: snapshot.destination.as_ref().map(|p| self.relative(p)),
        }
    }

    /// Writes what a media job has learned since the last write; true when there was something.
    async fn write_media_change(&self, record: &DownloadRecord, progress: &Progress) -> bool {
        let Some(facts) = progress.take_media_change() else { return false };
        let update = self.media_update(facts);
        self.store_quietly(self.inner.store.set_media(record.id, &update).await);
        true
    }

    /// What a media job learned, as the store keeps it (subtitle paths relative to the downloads directory).
    fn media_update(&self, facts: MediaFacts) -> MediaUpdate {
        let subtitles = facts.subtitles.map(|saved| {
            saved
                .into_iter()
                .map(|(lang, path)| haul_core::media_choice::SubtitleFile { lang, path: self.relative(&path) })
                .collect()
        });
        MediaUpdate {
            kind: Some(JobKind::Media),
            title: facts.title,
            duration: facts.duration,
            width: facts.width,
            height: facts.height,
            format: facts.format,
            thumbnail: facts.thumbnail,
            subtitles,
        }
    }

    pub(super) fn store_quietly(&self, result: Result<(), haul_store::StoreError>) {
        if let Err(error) = result {
            tracing::warn!(error = %chain(&error), "cannot record progress");
        }
    }

    /// The buckets a job takes from: its own, its host's and the server's.
    fn limits_of(&self, record: &DownloadRecord, running: &Running) -> crate::limiter::Limits {
        crate::limiter::Limits::new(vec![running.limit.clone()]).and(self.inner.bandwidth.shared_limits(&record.url))
    }

    async fn download_options(
        &self,
        record: &DownloadRecord,
        running: &Running,
    ) -> Result<DownloadOptions, EngineError> {
        let url: Url =
            record.url.parse().map_err(|e| EngineError::InvalidRequest(format!("stored url is invalid: {e}")))?;
        let mut dir = self.inner.options.downloads_dir.clone();
        if let Some(directory) = &record.directory {
            dir.push(directory);
        }
        // Once the engine has chosen a name, later runs use it, so a resumed job finds its partial file.
        let target = match (&record.path, &record.filename) {
            (Some(path), _) => Target::File(self.inner.options.downloads_dir.join(path)),
            (None, Some(name)) => Target::File(dir.join(name)),
            (None, None) => Target::Dir(dir),
        };
        let mut options = DownloadOptions::new(url, target);
        options.root = Some(self.inner.options.downloads_dir.clone());
        options.mirrors = record.mirrors.iter().filter_map(|m| m.parse().ok()).collect();
        options.connections = record.connections_limit.map(|n| n as usize);
        options.limits = self.limits_of(record, running);
        options.checksum = record
            .checksum
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e| EngineError::InvalidRequest(format!("{e}")))?;
        options.headers = pairs_to_map(&record.headers)?;
        options.name_tag = record.name_with_id.then(|| record.id.to_string());
        if let Target::File(path) = &options.target
            && let Some(parent) = path.parent()
        {
            tokio::fs::create_dir_all(parent).await.map_err(|e| EngineError::io(parent, e))?;
        }
        Ok(options)
    }
}

/// Seconds left at `speed`, when the size is known and something is moving.
pub(super) fn eta(total: Option<u64>, done: u64, speed: u64) -> Option<u64> {
    let total = total?;
    (speed > 0).then(|| total.saturating_sub(done).div_ceil(speed))
}

fn pairs_to_map(headers: &[(String, String)]) -> Result<reqwest::header::HeaderMap, EngineError> {
    crate::http::header_map(headers.iter().map(|(name, value)| (name.as_str(), value.as_str())))
        .map_err(EngineError::InvalidRequest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_needs_a_size_and_a_speed() {
        assert_eq!(eta(Some(100), 40, 20), Some(3));
        assert_eq!(eta(Some(100), 41, 20), Some(3));
        assert_eq!(eta(None, 40, 20), None);
        assert_eq!(eta(Some(100), 40, 0), None);
        assert_eq!(eta(Some(10), 40, 5), Some(0));
    }
}
