//! The download service behind `haul serve`: durable jobs in a [`Store`], a scheduler that claims them under a
//! lease and runs at most `max_active` at once, pause / resume / cancel / remove, live progress, and events.
//!
//! [`Engine`] is a cheap `Clone` handle over shared state; HTTP handlers call it and never the store.
//! Each running download is owned by one task; the API stops it through its `CancellationToken`, after
//! recording in the store *why* (pause, cancel, remove, shutdown), so the task knows what to do with its files.

use std::collections::{HashMap, VecDeque};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use haul_core::checksum::ChecksumSpec;
use haul_core::job::{AccountId, DownloadId, JobAction, JobState};
use haul_core::media::Quality;
use haul_store::{
    DownloadPatch, DownloadRecord, ListFilter, MediaUpdate, NewDownload, ProgressUpdate, RenditionState,
    RenditionUpdate, Store, StoreError,
};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use url::Url;

use crate::download::{self, DownloadOptions, Target};
use crate::error::EngineError;
use crate::http::{ClientOptions, HttpClient};
use crate::media::{self, MediaTools};
use crate::progress::Progress;

/// How often a running download writes its progress to the store, renews its lease and emits a progress event.
const REPORT_EVERY: Duration = Duration::from_secs(1);
/// Events kept for clients that reconnect with `Last-Event-ID`.
const EVENT_HISTORY: usize = 4096;

/// Settings of the service, built by the binary from flags.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Root of every downloaded file; no file is written outside it.
    pub downloads_dir: PathBuf,
    /// Where a download's thumbnail lives, as `{id}.{jpg|webp|png}`.
    pub thumbnails_dir: PathBuf,
    pub max_active: usize,
    /// This server's name in leases; unique per node sharing a store.
    pub node: String,
    /// How long a claim holds without renewal; another node takes over a job whose lease ran out.
    pub lease: Duration,
    /// Continue downloads that were active when this node stopped.
    pub resume_on_start: bool,
    pub client: ClientOptions,
    /// yt-dlp, ffmpeg and ffprobe, where found; without them media jobs fail with a clear error.
    pub media: MediaTools,
}

/// A new download as a client asks for it; validated by [`Engine::add`].
#[derive(Clone, Debug, Default)]
pub struct AddRequest {
    pub url: String,
    pub mirrors: Vec<String>,
    pub filename: Option<String>,
    /// A directory under the downloads root.
    pub directory: Option<String>,
    pub checksum: Option<String>,
    pub headers: Vec<(String, String)>,
    pub connections: Option<u32>,
    pub speed_limit: Option<u64>,
    pub priority: i32,
    pub start_paused: bool,
    /// A display name (VideoDB `name`, Cloudflare `meta.name`); the file name is chosen separately.
    pub title: Option<String>,
    /// A [`Quality`] by name (`best`, `720p`, `audio`, ...); `None` is `best`.
    pub quality: Option<String>,
    /// One of [`KINDS`]; `None` is `auto`.
    pub kind: Option<String>,
}

/// What fetches a download: `auto` decides when it first runs (a web page yt-dlp can read is media, anything
/// else a file), `file` is haul's own HTTP engine, `media` goes through yt-dlp.
pub const KINDS: [&str; 3] = ["auto", "file", "media"];

/// The renditions a download can have made: `default` (its own file) and `audio` (an m4a made from it).
pub const RENDITIONS: [&str; 2] = ["default", "audio"];

/// A download as clients see it: the stored record with live progress laid over it while it runs.
pub type DownloadView = DownloadRecord;

/// Why a service call failed, split by what the caller (the API) answers.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed; the message says what to change.
    #[error("{0}")]
    Invalid(String),
    /// A URL whose scheme haul does not fetch.
    #[error("{0}")]
    UnsupportedScheme(String),
    #[error("{0}")]
    NotFound(String),
    /// The download is not in a state that allows this; `current` is the state it is in.
    #[error("{message}")]
    Conflict { current: JobState, message: String },
    /// Something this server cannot do (media work without media support); the message says what.
    #[error("{0}")]
    Unsupported(String),
    /// Something broke inside haul; details are logged, not shown.
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => Self::NotFound(format!("{what} not found")),
            StoreError::Conflict { current, message } => Self::Conflict { current, message },
            StoreError::Duplicate(message) => Self::Invalid(message),
            StoreError::Other(message) => Self::Internal(message),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Added,
    Started,
    Progress,
    Paused,
    Resumed,
    Completed,
    Failed,
    Cancelled,
    Removed,
}

/// Something that happened to a download, numbered so a client can resume the stream.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub id: u64,
    pub kind: EventKind,
    pub account: AccountId,
    pub download: DownloadView,
}

/// Totals for one account.
#[derive(Clone, Debug, Serialize)]
pub struct StatsView {
    pub active: u64,
    pub queued: u64,
    pub paused: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub total: u64,
    /// Bytes per second over all of the account's running downloads.
    pub speed: u64,
}

/// Why a running download was stopped; decides what happens to its files and its row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopReason {
    /// Paused by a client: keep the partial file for resume.
    Pause,
    /// Cancelled: the partial file is discarded.
    Cancel,
    /// Removed: the caller deletes the row (and the files if asked).
    Remove,
    /// The server is stopping: keep everything; the job resumes at the next start.
    Shutdown,
    /// Another node or client changed the job; stop quietly.
    LostLease,
}

struct Running {
    account: AccountId,
    cancel: CancellationToken,
    progress: Arc<Progress>,
    reason: Mutex<Option<StopReason>>,
    finished: Notify,
}

impl Running {
    fn stop(&self, reason: StopReason) {
        self.reason.lock().expect("stop reason lock").get_or_insert(reason);
        self.cancel.cancel();
    }
}

/// What one run of a job produced.
struct Fetched {
    path: PathBuf,
    size: u64,
    /// What a media job learned about its video.
    media: Option<MediaUpdate>,
}

struct Inner {
    store: Arc<dyn Store>,
    options: EngineOptions,
    client: HttpClient,
    // std Mutex: held only to look up or insert, never across an await.
    running: Mutex<HashMap<DownloadId, Arc<Running>>>,
    events: broadcast::Sender<Event>,
    history: Mutex<VecDeque<Event>>,
    next_event: AtomicU64,
    wake: Notify,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// Renditions being made, each with the token that stops it.
    making: Mutex<HashMap<(DownloadId, String), CancellationToken>>,
}

/// The handle HTTP handlers and the CLI hold; clone freely.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// Open the service on `store`: requeue what this node was running (unless told not to), then start
    /// the scheduler.
    pub async fn start(store: Arc<dyn Store>, options: EngineOptions) -> Result<Self, EngineError> {
        std::fs::create_dir_all(&options.downloads_dir).map_err(|e| EngineError::io(&options.downloads_dir, e))?;
        let client = HttpClient::new(&options.client)?;
        let released = if options.resume_on_start {
            store.requeue_node(&options.node).await
        } else {
            store.pause_node(&options.node).await
        };
        let released = released.map_err(|e| EngineError::InvalidRequest(format!("cannot read the job store: {e}")))?;
        if released > 0 {
            let what = if options.resume_on_start { "resuming" } else { "pausing (--no-resume)" };
            tracing::info!(released, "{what} downloads that were active when the server stopped");
        }
        let (events, _) = broadcast::channel(1024);
        let engine = Self {
            inner: Arc::new(Inner {
                store,
                options,
                client,
                running: Mutex::new(HashMap::new()),
                events,
                history: Mutex::new(VecDeque::new()),
                next_event: AtomicU64::new(1),
                wake: Notify::new(),
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
                making: Mutex::new(HashMap::new()),
            }),
        };
        let scheduler = engine.clone();
        engine.inner.tasks.spawn(tracing::Instrument::instrument(
            async move { scheduler.schedule().await },
            tracing::info_span!("scheduler"),
        ));
        // Renditions a stop interrupted.
        engine.make_renditions();
        Ok(engine)
    }

    /// The account a presented secret belongs to, if it is a live key of one of `kinds`.
    pub async fn account_for_key(
        &self,
        secret: &str,
        kinds: &[haul_store::KeyKind],
    ) -> Result<Option<AccountId>, ServiceError> {
        Ok(self.inner.store.account_for_key(&haul_store::hash_secret(secret), kinds).await?)
    }

    pub fn downloads_dir(&self) -> &Path {
        &self.inner.options.downloads_dir
    }

    pub async fn add(&self, account: &AccountId, request: AddRequest) -> Result<DownloadView, ServiceError> {
        let url = check_url(&request.url)?;
        let mirrors = request.mirrors.iter().map(|mirror| check_url(mirror)).collect::<Result<Vec<_>, _>>()?;
        let filename = match &request.filename {
            Some(name) => Some(haul_core::filename::sanitize(name).ok_or_else(|| {
                ServiceError::Invalid(format!("filename {name:?} has nothing usable once made safe; choose another"))
            })?),
            None => None,
        };
        let directory = request.directory.as_deref().map(check_directory).transpose()?;
        if let Some(checksum) = &request.checksum {
            checksum.parse::<ChecksumSpec>().map_err(|e| ServiceError::Invalid(e.to_string()))?;
        }
        build_headers(&request.headers)?;
        if let Some(connections) = request.connections
            && !(1..=256).contains(&connections)
        {
            return Err(ServiceError::Invalid(format!("connections must be between 1 and 256, got {connections}")));
        }
        if request.speed_limit == Some(0) {
            return Err(ServiceError::Invalid("speed_limit must be positive (bytes per second)".into()));
        }
        let quality = check_quality(request.quality.as_deref())?;
        let kind = match request.kind.as_deref().map(str::trim) {
            None | Some("") => "auto",
            Some(kind) => KINDS.into_iter().find(|known| known.eq_ignore_ascii_case(kind)).ok_or_else(|| {
                ServiceError::Invalid(format!("unknown kind {kind:?}; expected one of {}", KINDS.join(", ")))
            })?,
        };
        let tools = &self.inner.options.media;
        if quality == Quality::Audio {
            require("an audio-only download", tools.ffmpeg())?;
            require("an audio-only download", tools.ffprobe())?;
        }
        if kind == "media" {
            require("a media download (kind \"file\" fetches the URL as it is)", tools.yt_dlp())?;
        }
        let title = request.title.map(|title| title.trim().to_owned()).filter(|title| !title.is_empty());
        if let Some(title) = &title
            && (title.chars().count() > 1000 || title.chars().any(char::is_control))
        {
            return Err(ServiceError::Invalid(
                "title must be at most 1000 characters without control characters".into(),
            ));
        }
        let mut new = NewDownload::new(account.clone(), url);
        new.mirrors = mirrors;
        new.filename = filename;
        new.directory = directory;
        new.checksum = request.checksum;
        new.headers = request.headers;
        new.connections_limit = request.connections;
        new.speed_limit = request.speed_limit;
        new.priority = request.priority;
        new.start_paused = request.start_paused;
        new.title = title;
        new.quality = quality.to_string();
        new.kind = kind.to_owned();
        let record = self.inner.store.create(new).await?;
        self.emit(EventKind::Added, &record);
        self.inner.wake.notify_one();
        Ok(record)
    }

    pub async fn get(&self, account: &AccountId, id: DownloadId) -> Result<DownloadView, ServiceError> {
        let record = self.inner.store.get(account, id).await?;
        Ok(self.overlay(record))
    }

    pub async fn list(&self, account: &AccountId, filter: &ListFilter) -> Result<Vec<DownloadView>, ServiceError> {
        let records = self.inner.store.list(account, filter).await?;
        Ok(records.into_iter().map(|record| self.overlay(record)).collect())
    }

    pub async fn pause(&self, account: &AccountId, id: DownloadId) -> Result<DownloadView, ServiceError> {
        self.inner.store.apply(account, id, JobAction::Pause, None).await?;
        self.stop_running(id, StopReason::Pause).await;
        // Read again: the stopped task has written its last progress.
        let record = self.inner.store.get(account, id).await?;
        self.emit(EventKind::Paused, &record);
        Ok(record)
    }

    pub async fn resume(&self, account: &AccountId, id: DownloadId) -> Result<DownloadView, ServiceError> {
        let record = self.inner.store.apply(account, id, JobAction::Resume, None).await?;
        self.emit(EventKind::Resumed, &record);
        self.inner.wake.notify_one();
        Ok(record)
    }

    /// Stop for good and discard the partial file; the job stays listed as cancelled.
    pub async fn cancel(&self, account: &AccountId, id: DownloadId) -> Result<DownloadView, ServiceError> {
        let record = self.inner.store.apply(account, id, JobAction::Cancel, None).await?;
        if !self.stop_running(id, StopReason::Cancel).await {
            self.discard_partial(&record);
            self.fail_renditions(&record, "the download was cancelled").await;
        }
        let record = self.inner.store.get(account, id).await?;
        self.emit(EventKind::Cancelled, &record);
        Ok(record)
    }

    /// Change the URL of a paused or failed job (an expired link) or the priority of any job.
    pub async fn patch(
        &self,
        account: &AccountId,
        id: DownloadId,
        mut patch: DownloadPatch,
    ) -> Result<DownloadView, ServiceError> {
        if let Some(url) = &patch.url {
            patch.url = Some(check_url(url)?);
        }
        let record = self.inner.store.patch(account, id, &patch).await?;
        self.inner.wake.notify_one();
        Ok(self.overlay(record))
    }

    /// Forget a download; with `delete_files`, its finished and partial files go too.
    pub async fn remove(
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
                remove_file_logged(&self.inner.options.downloads_dir.join(path));
            }
            if let Some(path) = self.final_path(&record) {
                remove_file_logged(&path);
            }
            self.discard_partial(&record);
        }
        // The thumbnail and a media job's work directory are haul's, not the user's: they go with the job
        // either way.
        for thumbnail in self.thumbnail_candidates(record.id) {
            remove_file_logged(&thumbnail);
        }
        self.discard_work(record.id);
        self.emit(EventKind::Removed, &record);
        Ok(record)
    }

    /// The finished file of a completed download, when it is (still) inside the downloads directory.
    pub fn file_path(&self, view: &DownloadView) -> Option<PathBuf> {
        if view.state != JobState::Completed {
            return None;
        }
        let path = self.final_path(view)?;
        let root = self.inner.options.downloads_dir.canonicalize().ok()?;
        let path = path.canonicalize().ok()?;
        (path.starts_with(&root) && path.is_file()).then_some(path)
    }

    /// What yt-dlp says about a page (title, duration, thumbnail, formats), without downloading anything.
    pub async fn media_info(&self, url: &str) -> Result<haul_core::media::MediaInfo, ServiceError> {
        let url = check_url(url)?;
        require("reading a media page", self.inner.options.media.yt_dlp())?;
        let cancel = self.inner.shutdown.child_token();
        media::extract(&self.inner.options.media, &url, &[], &cancel).await.map_err(|error| match error {
            EngineError::Media(message) => ServiceError::Invalid(message),
            other => ServiceError::Internal(other.to_string()),
        })
    }

    /// What a running download is doing now (probing, downloading, or verifying / post-processing with
    /// ffmpeg); `None` when it is not running here.
    pub fn phase(&self, id: DownloadId) -> Option<crate::progress::Phase> {
        let running = self.inner.running.lock().expect("running lock").get(&id).cloned();
        running.map(|running| running.progress.snapshot().phase)
    }

    /// The media tools this server found.
    pub fn media_tools(&self) -> &MediaTools {
        &self.inner.options.media
    }

    /// The thumbnail of a download, when one exists: `thumbnails/{id}.jpg`, `.webp` or `.png`.
    pub fn thumbnail_path(&self, view: &DownloadView) -> Option<PathBuf> {
        self.thumbnail_candidates(view.id).into_iter().find(|path| path.is_file())
    }

    fn thumbnail_candidates(&self, id: DownloadId) -> Vec<PathBuf> {
        ["jpg", "webp", "png"].iter().map(|ext| self.inner.options.thumbnails_dir.join(format!("{id}.{ext}"))).collect()
    }

    /// Asks for the `name` rendition of a download (see [`RENDITIONS`]); asking again returns it unchanged.
    pub async fn request_rendition(
        &self,
        account: &AccountId,
        id: DownloadId,
        name: &str,
    ) -> Result<haul_store::Rendition, ServiceError> {
        check_rendition(name)?;
        if name == "audio" {
            require("an audio rendition", self.inner.options.media.ffmpeg())?;
            require("an audio rendition", self.inner.options.media.ffprobe())?;
        }
        let rendition = self.inner.store.put_rendition(account, id, name).await?;
        self.make_renditions();
        Ok(rendition)
    }

    pub async fn renditions(
        &self,
        account: &AccountId,
        id: DownloadId,
    ) -> Result<Vec<haul_store::Rendition>, ServiceError> {
        Ok(self.inner.store.renditions(account, id).await?)
    }

    /// Forgets one rendition or all, deleting the files derived ones made (the `default` rendition is the
    /// download's own file, which stays).
    pub async fn delete_renditions(
        &self,
        account: &AccountId,
        id: DownloadId,
        name: Option<&str>,
    ) -> Result<Vec<haul_store::Rendition>, ServiceError> {
        if let Some(name) = name {
            check_rendition(name)?;
        }
        let removed = self.inner.store.delete_renditions(account, id, name).await?;
        self.stop_renditions(id, name);
        for rendition in &removed {
            if let Some(path) = &rendition.path {
                remove_file_logged(&self.inner.options.downloads_dir.join(path));
            }
        }
        Ok(removed)
    }

    /// The account of a Cloudflare global API key, which only counts together with its account's email.
    pub async fn account_for_global_key(&self, email: &str, key: &str) -> Result<Option<AccountId>, ServiceError> {
        let Some(account) = self.account_for_key(key, &[haul_store::KeyKind::CloudflareGlobal]).await? else {
            return Ok(None);
        };
        let stored = self.inner.store.account(&account).await?;
        let matches = stored.email.is_some_and(|stored| stored.trim().eq_ignore_ascii_case(email.trim()));
        Ok(matches.then_some(account))
    }

    pub async fn stats(&self, account: &AccountId) -> Result<StatsView, ServiceError> {
        let counts = self.inner.store.counts(Some(account)).await?;
        let speed = {
            let running = self.inner.running.lock().expect("running lock");
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
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Events after `last_event_id` still in the history, oldest first.
    pub fn events_since(&self, last_event_id: u64) -> Vec<Event> {
        let history = self.inner.history.lock().expect("history lock");
        history.iter().filter(|event| event.id > last_event_id).cloned().collect()
    }

    /// Stop accepting work, pause every running download with its progress flushed, and wait for them
    /// (at most `grace`). Their jobs stay active in the store and resume at the next start.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.shutdown.cancel();
        let running: Vec<Arc<Running>> = self.inner.running.lock().expect("running lock").values().cloned().collect();
        for task in &running {
            task.stop(StopReason::Shutdown);
        }
        self.inner.tasks.close();
        if tokio::time::timeout(grace, self.inner.tasks.wait()).await.is_err() {
            tracing::warn!(
                ?grace,
                "some downloads did not stop in time; their last second of progress may be re-fetched"
            );
        }
    }

    async fn schedule(&self) {
        loop {
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = self.inner.shutdown.cancelled() => return,
            }
            loop {
                if self.inner.shutdown.is_cancelled()
                    || self.inner.running.lock().expect("running lock").len() >= self.inner.options.max_active
                {
                    break;
                }
                let claim = self
                    .inner
                    .store
                    .claim_next(&self.inner.options.node, self.inner.options.lease, self.inner.options.max_active)
                    .await;
                match claim {
                    Ok(Some(record)) => self.spawn_runner(record),
                    Ok(None) => break,
                    Err(error) => {
                        tracing::warn!(%error, "cannot claim queued downloads");
                        break;
                    }
                }
            }
        }
    }

    fn spawn_runner(&self, record: DownloadRecord) {
        let running = Arc::new(Running {
            account: record.account.clone(),
            cancel: self.inner.shutdown.child_token(),
            progress: Arc::new(Progress::default()),
            reason: Mutex::new(None),
            finished: Notify::new(),
        });
        self.inner.running.lock().expect("running lock").insert(record.id, running.clone());
        let engine = self.clone();
        let span = tracing::info_span!("download", id = %record.id);
        self.inner.tasks.spawn(tracing::Instrument::instrument(
            async move {
                let id = record.id;
                engine.run(record, &running).await;
                engine.inner.running.lock().expect("running lock").remove(&id);
                running.finished.notify_waiters();
                engine.inner.wake.notify_one();
            },
            span,
        ));
    }

    /// One download's life on this node, from claim to completed, failed or stopped.
    async fn run(&self, record: DownloadRecord, running: &Running) {
        self.emit(EventKind::Started, &record);
        let reporter = self.report_progress(&record, running);
        let work = self.fetch(&record, running);
        tokio::pin!(work);
        tokio::pin!(reporter);
        let result = tokio::select! {
            result = &mut work => result,
            _ = &mut reporter => work.await,
        };
        self.write_progress(&record, &running.progress).await;
        let reason = *running.reason.lock().expect("stop reason lock");
        match result {
            Ok(done) => {
                let update = ProgressUpdate {
                    bytes_done: done.size,
                    size: Some(done.size),
                    path: Some(self.relative(&done.path)),
                    filename: done.path.file_name().map(|name| name.to_string_lossy().into_owned()),
                    ..ProgressUpdate::default()
                };
                self.store_quietly(self.inner.store.record_progress(record.id, &update).await);
                if let Some(media) = &done.media {
                    self.store_quietly(self.inner.store.set_media(record.id, media).await);
                }
                match self.inner.store.apply(&record.account, record.id, JobAction::Complete, None).await {
                    Ok(record) => self.emit(EventKind::Completed, &record),
                    Err(error) => tracing::warn!(%error, "download finished but its job moved on"),
                }
                // Renditions asked for before the file was there.
                self.make_renditions();
            }
            Err(EngineError::Cancelled) => {
                if reason == Some(StopReason::Cancel) {
                    self.discard_partial_of(&running.progress);
                    self.discard_work(record.id);
                    self.fail_renditions(&record, "the download was cancelled").await;
                }
            }
            Err(error) => {
                self.finish_failed(&record, error.to_string()).await;
                self.fail_renditions(&record, "the download failed").await;
            }
        }
    }

    /// Renditions waiting for a download that will not complete: failed, with why.
    async fn fail_renditions(&self, record: &DownloadRecord, why: &str) {
        let Ok(renditions) = self.inner.store.renditions(&record.account, record.id).await else { return };
        for rendition in renditions.iter().filter(|r| r.name != "default" && r.state == RenditionState::Pending) {
            let update = RenditionUpdate {
                state: Some(RenditionState::Failed),
                error: Some(format!("{why}; resume or retry it, then ask again")),
                ..Default::default()
            };
            self.set_rendition(record.id, &rendition.name, update).await;
        }
    }

    /// Fetches the job: a plain file with the engine, or a media page through the media pipeline. A job of kind
    /// `auto` is decided here, once: a web page yt-dlp can read is media, anything else a file.
    async fn fetch(&self, record: &DownloadRecord, running: &Running) -> Result<Fetched, EngineError> {
        let tools = &self.inner.options.media;
        let audio = record.quality == "audio";
        let cancel = &running.cancel;
        let info = match record.kind.as_str() {
            "media" => Some(media::extract(tools, &record.url, &record.headers, cancel).await?),
            "auto" => {
                let headers = build_headers(&record.headers).map_err(|e| EngineError::InvalidRequest(e.to_string()))?;
                let page =
                    tools.yt_dlp.is_some() && media::is_web_page(&self.inner.client, &record.url, &headers).await;
                let info =
                    if page { media::try_extract(tools, &record.url, &record.headers, cancel).await? } else { None };
                match info {
                    Some(info) => Some(info),
                    None if audio => Some(media::direct_info(&record.url)),
                    None => {
                        let decided = MediaUpdate { kind: Some("file".into()), ..MediaUpdate::default() };
                        self.store_quietly(self.inner.store.set_media(record.id, &decided).await);
                        None
                    }
                }
            }
            // `audio` of a plain file: its sound as m4a.
            _ if audio => Some(media::direct_info(&record.url)),
            _ => None,
        };
        let Some(info) = info else {
            let options = self.download_options(record).map_err(EngineError::InvalidRequest)?;
            let done = download::download(self.inner.client.clone(), options, running.progress.clone(), cancel.clone())
                .await?;
            return Ok(Fetched { path: done.path, size: done.size, media: None });
        };
        let quality = record.quality.parse().map_err(EngineError::InvalidRequest)?;
        let mut target_dir = self.inner.options.downloads_dir.clone();
        if let Some(directory) = &record.directory {
            target_dir.push(directory);
        }
        let job = media::MediaJob {
            id: record.id,
            url: &record.url,
            quality,
            headers: &record.headers,
            title: record.title.as_deref(),
            target_dir,
            downloads_dir: &self.inner.options.downloads_dir,
            thumbnails_dir: Some(&self.inner.options.thumbnails_dir),
            rate_limit: record.speed_limit,
            connections: record.connections_limit.map(|n| n as usize),
            plain_name: false,
        };
        let store = Some(self.inner.store.as_ref());
        let done = media::run(&self.inner.client, tools, store, job, info, &running.progress, cancel).await?;
        Ok(Fetched { path: done.path, size: done.size, media: Some(done.update) })
    }

    /// Starts making every rendition that was asked for and whose download is complete (at start-up, when one is
    /// asked for, when a download completes). Each is made once at a time; a stopped one is made again later.
    fn make_renditions(&self) {
        if self.inner.shutdown.is_cancelled() {
            return;
        }
        let engine = self.clone();
        self.inner.tasks.spawn(async move {
            let todo = match engine.inner.store.renditions_to_make().await {
                Ok(todo) => todo,
                Err(error) => return tracing::warn!(%error, "cannot read the renditions to make"),
            };
            for (account, id, name) in todo {
                let cancel = engine.inner.shutdown.child_token();
                {
                    let mut making = engine.inner.making.lock().expect("making lock");
                    if making.contains_key(&(id, name.clone())) {
                        continue;
                    }
                    making.insert((id, name.clone()), cancel.clone());
                }
                let worker = engine.clone();
                engine.inner.tasks.spawn(tracing::Instrument::instrument(
                    async move {
                        worker.make_rendition(&account, id, &name, &cancel).await;
                        worker.inner.making.lock().expect("making lock").remove(&(id, name));
                    },
                    tracing::info_span!("rendition", %id),
                ));
            }
        });
    }

    /// Makes one rendition (only `audio` is made; `default` is the download's own file), recording its
    /// progress every half second.
    async fn make_rendition(&self, account: &AccountId, id: DownloadId, name: &str, cancel: &CancellationToken) {
        let store = &self.inner.store;
        let set = |update: RenditionUpdate| self.set_rendition(id, name, update);
        let source = match store.get(account, id).await {
            Ok(record) => self.file_path(&record),
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
        let making = media::make_audio(&self.inner.options.media, &source, cancel, |value| {
            percent.store((value * 10.0) as u64, Ordering::Relaxed);
        });
        tokio::pin!(making);
        let result = loop {
            tokio::select! {
                result = &mut making => break result,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
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
                    remove_file_logged(&path);
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

    async fn set_rendition(&self, id: DownloadId, name: &str, update: RenditionUpdate) {
        self.store_quietly(self.inner.store.update_rendition(id, name, &update).await);
    }

    /// Stops making the renditions of `id` (all, or the one named).
    fn stop_renditions(&self, id: DownloadId, name: Option<&str>) {
        let making = self.inner.making.lock().expect("making lock");
        for ((download, rendition), cancel) in making.iter() {
            if *download == id && name.is_none_or(|name| name == rendition) {
                cancel.cancel();
            }
        }
    }

    /// Deletes a media job's work directory (its partial formats and yt-dlp's fragments).
    fn discard_work(&self, id: DownloadId) {
        let work = media::work_dir(&self.inner.options.downloads_dir, id);
        if let Err(error) = std::fs::remove_dir_all(&work)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %work.display(), %error, "cannot delete the work directory");
        }
    }

    async fn finish_failed(&self, record: &DownloadRecord, message: String) {
        tracing::info!(%message, "download failed");
        match self.inner.store.apply(&record.account, record.id, JobAction::Fail, Some(message)).await {
            Ok(record) => self.emit(EventKind::Failed, &record),
            Err(error) => tracing::warn!(%error, "download failed but its job moved on"),
        }
    }

    /// Every second: progress to the store, lease renewed, a progress event. Ends (and stops the download)
    /// when the lease is lost: another node or a client took the job.
    async fn report_progress(&self, record: &DownloadRecord, running: &Running) {
        let mut ticker = tokio::time::interval(REPORT_EVERY);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let renewed =
                self.inner.store.renew_lease(record.id, &self.inner.options.node, self.inner.options.lease).await;
            if let Err(error) = renewed {
                tracing::info!(%error, "lost the lease; stopping");
                running.stop(StopReason::LostLease);
                return std::future::pending().await;
            }
            self.write_progress(record, &running.progress).await;
            if let Ok(current) = self.inner.store.get(&record.account, record.id).await {
                self.emit(EventKind::Progress, &self.overlay(current));
            }
        }
    }

    async fn write_progress(&self, record: &DownloadRecord, progress: &Progress) {
        let snapshot = progress.snapshot();
        let update = ProgressUpdate {
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
        };
        self.store_quietly(self.inner.store.record_progress(record.id, &update).await);
    }

    fn store_quietly(&self, result: Result<(), StoreError>) {
        if let Err(error) = result {
            tracing::warn!(%error, "cannot record progress");
        }
    }

    fn download_options(&self, record: &DownloadRecord) -> Result<DownloadOptions, String> {
        let url: Url = record.url.parse().map_err(|e| format!("stored url is invalid: {e}"))?;
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
        options.mirrors = record.mirrors.iter().filter_map(|m| m.parse().ok()).collect();
        options.connections = record.connections_limit.map(|n| n as usize);
        options.rate_limit = record.speed_limit;
        options.checksum = record.checksum.as_deref().map(str::parse).transpose().map_err(|e| format!("{e}"))?;
        options.headers = build_headers(&record.headers).map_err(|e| e.to_string())?;
        if let Target::File(path) = &options.target
            && let Some(parent) = path.parent()
        {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        Ok(options)
    }

    /// Stop the download if it runs here; true when it did (and has now finished writing).
    async fn stop_running(&self, id: DownloadId, reason: StopReason) -> bool {
        let running = self.inner.running.lock().expect("running lock").get(&id).cloned();
        let Some(running) = running else { return false };
        let finished = running.finished.notified();
        tokio::pin!(finished);
        finished.as_mut().enable();
        running.stop(reason);
        if !self.inner.running.lock().expect("running lock").contains_key(&id) {
            return true;
        }
        if tokio::time::timeout(Duration::from_secs(10), finished).await.is_err() {
            tracing::warn!(%id, "download did not stop within 10 s");
        }
        true
    }

    fn overlay(&self, mut record: DownloadRecord) -> DownloadView {
        let running = self.inner.running.lock().expect("running lock").get(&record.id).cloned();
        if let Some(running) = running
            && record.state == JobState::Active
        {
            let snapshot = running.progress.snapshot();
            record.bytes_done = snapshot.done;
            record.size = snapshot.total.or(record.size);
            record.speed = snapshot.speed;
            record.connections = snapshot.connections as u32;
            record.eta_secs = eta(record.size, record.bytes_done, record.speed);
        }
        record
    }

    /// Where a download's file is: stored paths are relative to the downloads directory, so a data directory
    /// can move without breaking its records.
    fn final_path(&self, record: &DownloadRecord) -> Option<PathBuf> {
        record.path.as_ref().map(|path| self.inner.options.downloads_dir.join(path))
    }

    fn relative(&self, path: &Path) -> String {
        let relative = path.strip_prefix(&self.inner.options.downloads_dir).unwrap_or(path);
        relative.display().to_string()
    }

    fn discard_partial(&self, record: &DownloadRecord) {
        if let Some(path) = self.final_path(record) {
            for partial in download::partial_files(&path) {
                remove_file_logged(&partial);
            }
        }
        self.discard_work(record.id);
    }

    fn discard_partial_of(&self, progress: &Progress) {
        if let Some(path) = progress.snapshot().destination {
            for partial in download::partial_files(&path) {
                remove_file_logged(&partial);
            }
        }
    }

    fn emit(&self, kind: EventKind, record: &DownloadRecord) {
        let event = Event {
            id: self.inner.next_event.fetch_add(1, Ordering::Relaxed),
            kind,
            account: record.account.clone(),
            download: record.clone(),
        };
        {
            let mut history = self.inner.history.lock().expect("history lock");
            if history.len() == EVENT_HISTORY {
                history.pop_front();
            }
            history.push_back(event.clone());
        }
        // No subscriber is not an error.
        let _ = self.inner.events.send(event);
    }
}

fn eta(total: Option<u64>, done: u64, speed: u64) -> Option<u64> {
    let total = total?;
    (speed > 0).then(|| total.saturating_sub(done).div_ceil(speed))
}

fn remove_file_logged(path: &Path) {
    if let Err(error) = std::fs::remove_file(path)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), %error, "cannot delete file");
    }
}

/// Refuses `what` when a program it needs was not found, saying which and how to get it.
fn require(what: &str, found: Result<&Path, String>) -> Result<(), ServiceError> {
    found.map(drop).map_err(|why| ServiceError::Unsupported(format!("{what} cannot be done here: {why}")))
}

fn check_quality(quality: Option<&str>) -> Result<Quality, ServiceError> {
    quality.map_or(Ok(Quality::Best), |text| text.parse().map_err(ServiceError::Invalid))
}

fn check_rendition(name: &str) -> Result<(), ServiceError> {
    if RENDITIONS.contains(&name) {
        return Ok(());
    }
    Err(ServiceError::Invalid(format!("unknown rendition {name:?}; expected one of {}", RENDITIONS.join(", "))))
}

fn check_url(text: &str) -> Result<String, ServiceError> {
    let url = Url::parse(text.trim())
        .map_err(|e| ServiceError::Invalid(format!("url is not valid ({e}): {text:?}; expected http://host/path")))?;
    download::check_url(&url).map_err(|error| match url.scheme() {
        "http" | "https" => ServiceError::Invalid(error.to_string()),
        _ => ServiceError::UnsupportedScheme(error.to_string()),
    })?;
    Ok(url.to_string())
}

/// A directory under the downloads root: relative, without `..`, each part a safe name.
fn check_directory(text: &str) -> Result<String, ServiceError> {
    let invalid =
        || ServiceError::Invalid(format!("directory must be a relative path inside downloads/, got {text:?}"));
    let mut parts = Vec::new();
    for component in Path::new(text).components() {
        match component {
            Component::Normal(part) => {
                let part = part.to_str().ok_or_else(invalid)?;
                let safe = haul_core::filename::sanitize(part).ok_or_else(invalid)?;
                if safe != part {
                    return Err(invalid());
                }
                parts.push(safe);
            }
            Component::CurDir => {}
            _ => return Err(invalid()),
        }
    }
    Ok(parts.join("/"))
}

fn build_headers(headers: &[(String, String)]) -> Result<HeaderMap, ServiceError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ServiceError::Invalid(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| ServiceError::Invalid(format!("invalid value for header {name}")))?;
        map.append(header, value);
    }
    Ok(map)
}
