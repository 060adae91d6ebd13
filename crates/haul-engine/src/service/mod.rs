//! The download service behind `haul serve`: durable jobs in a [`Store`], a scheduler that claims them under a
//! lease and runs at most `max_active` at once, pause / resume / cancel / remove, live progress, and events.
//!
//! [`Engine`] is a cheap `Clone` handle over shared state; HTTP handlers call it and never the store, and see
//! only the service's own types ([`views`]). Each running download is owned by one task; the API stops it
//! through its `CancellationToken`, after recording in the store *why* (pause, cancel, remove, shutdown), so
//! the task knows what to do with its files.
//!
//! One file per responsibility: `downloads` (what clients ask of a job), `validate` (turning a request into a
//! job), `scheduler` (claims and stops), `runner` (one job's run), `renditions`, `events`, `files` (where a
//! job's files are, and removing them), `accounts` (keys).

mod accounts;
mod archive;
mod bandwidth;
mod cookies;
mod downloads;
mod error;
mod events;
mod files;
mod metrics;
mod playlists;
mod renditions;
mod retention;
mod rules;
mod runner;
mod scheduler;
mod validate;
mod views;
mod webhooks;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use haul_core::job::DownloadId;
use haul_core::media::RenditionName;
use haul_store::Store;
use parking_lot::Mutex;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::EngineError;
use crate::http::{ClientOptions, HttpClient};
use crate::media::MediaTools;

pub use accounts::SessionView;
pub use archive::{ArchiveKey, ArchiveView, FILE_EXTRACTOR, MAX_ARCHIVE_PAGE};
pub use bandwidth::{BandwidthPatch, BandwidthSettings, BandwidthView, LocalClock};
pub use cookies::{CookieView, CookiesImported, MAX_COOKIES};
pub use downloads::IDEMPOTENCY_WINDOW;
pub use error::ServiceError;
pub use events::{Event, EventKind};
pub use metrics::EngineMetrics;
pub use retention::Retention;
pub use rules::{MAX_RULES, RulePatchRequest, RuleRequest, RuleView};
pub use views::{
    AddRequest, AddedOnce, DownloadView, KeyView, ListQuery, NodeView, PatchRequest, PlaylistView, RenditionView,
    StatsView, TransferView,
};
pub use webhooks::{
    DeliveryState, DeliveryView, MAX_DELIVERIES_LISTED, WebhookOptions, WebhookRequest, WebhookView, signature,
    webhook_events,
};

use events::EventLog;
use scheduler::Running;

/// How often a node records that it is alive (`GET /v1/nodes` shows the last time).
const HEARTBEAT: Duration = Duration::from_secs(5);

/// Settings of the service, built by the binary from flags.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Root of every downloaded file; no file is written outside it.
    pub downloads_dir: PathBuf,
    /// Where a download's thumbnail lives, as `{id}.{jpg|webp|png}`.
    pub thumbnails_dir: PathBuf,
    pub max_active: usize,
    /// Downloads one account may keep (in any state); adding past it is refused until some are removed.
    pub max_jobs_per_account: u64,
    /// Entries of one playlist that become downloads at most (`--max-playlist-entries`); the rest are left
    /// out, with a warning in the log.
    pub max_playlist_entries: usize,
    /// This server's name in leases; unique per node sharing a store.
    pub node: String,
    /// How long a claim holds without renewal; another node takes over a job whose lease ran out.
    pub lease: Duration,
    /// Continue downloads that were active when this node stopped.
    pub resume_on_start: bool,
    /// Where other nodes reach this one's API (`--advertise-url`), to fetch the files it holds when downloads
    /// directories are node-local.
    pub advertise_url: Option<String>,
    pub client: ClientOptions,
    /// yt-dlp, ffmpeg and ffprobe, where found; without them media jobs fail with a clear error.
    pub media: MediaTools,
    /// Bandwidth settings given at start (flags, the config file): put over the stored ones, and stored.
    pub bandwidth: BandwidthPatch,
    /// Where the bandwidth schedule reads the local time.
    pub clock: LocalClock,
    /// Forget downloads that ended long ago (`--forget-after`); `None` keeps them all.
    pub retention: Option<Retention>,
    /// How webhook deliveries are retried.
    pub webhooks: WebhookOptions,
}

struct Inner {
    store: Arc<dyn Store>,
    options: EngineOptions,
    client: HttpClient,
    // parking_lot mutexes: held only to look up, insert or remove, never across an await, and never poisoned,
    // so a panic in one request cannot take every later one down with it.
    running: Mutex<HashMap<DownloadId, Arc<Running>>>,
    events: Arc<EventLog>,
    metrics: EngineMetrics,
    bandwidth: bandwidth::Bandwidth,
    /// With a shared store: stops the event relays once the last event of a shutdown is queued, and the task
    /// writing them out, waited for then.
    relay: Mutex<Option<(CancellationToken, tokio::task::JoinHandle<()>)>>,
    /// Wakes the scheduler when a job may have become runnable.
    wake: Notify,
    /// Wakes the webhook delivery task when this node changed a state (and so the store wrote deliveries).
    webhooks_wake: Notify,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// Renditions being made, each with the token that stops it.
    making: Mutex<HashMap<(DownloadId, RenditionName), CancellationToken>>,
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
        tokio::fs::create_dir_all(&options.downloads_dir)
            .await
            .map_err(|e| EngineError::io(&options.downloads_dir, e))?;
        let client = HttpClient::new(&options.client)?;
        // yt-dlp's requests obey the same destinations as the engine's own.
        let mut options = options;
        options.media.destinations = options.client.destinations.clone();
        let released = if options.resume_on_start {
            store.requeue_node(&options.node).await
        } else {
            store.pause_node(&options.node).await
        };
        let released = released.map_err(|e| EngineError::InvalidRequest(format!("cannot read the job store: {e}")))?;
        if released > 0 {
            let what = if options.resume_on_start { "resuming" } else { "pausing" };
            tracing::info!(released, "{what} downloads that were active when the server stopped");
        }
        let (events, outbox) = if store.shared_by_nodes() {
            let (log, outbox) = EventLog::shared();
            (Arc::new(log), Some(outbox))
        } else {
            (Arc::new(EventLog::new()), None)
        };
        let relay = outbox.map(|outbox| {
            let stop = CancellationToken::new();
            crate::task::spawn(
                tracing::info_span!("events_in"),
                events::relay_in(store.clone(), events.clone(), stop.clone()),
            );
            let out = crate::task::spawn(
                tracing::info_span!("events_out"),
                events::relay_out(store.clone(), outbox, stop.clone()),
            );
            (stop, out)
        });
        let clock = options.clock.clone();
        let engine = Self {
            inner: Arc::new(Inner {
                store,
                options,
                client,
                running: Mutex::new(HashMap::new()),
                events,
                metrics: EngineMetrics::default(),
                bandwidth: bandwidth::Bandwidth::new(clock),
                relay: Mutex::new(relay),
                wake: Notify::new(),
                webhooks_wake: Notify::new(),
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
                making: Mutex::new(HashMap::new()),
            }),
        };
        engine
            .load_bandwidth(&engine.inner.options.bandwidth)
            .await
            .map_err(|error| EngineError::InvalidRequest(format!("bandwidth settings: {error}")))?;
        let watching = engine.clone();
        engine.spawn(tracing::info_span!("bandwidth"), async move { watching.watch_bandwidth().await });
        if let Some(retention) = engine.inner.options.retention.clone() {
            let keeping = engine.clone();
            engine.spawn(tracing::info_span!("retention"), async move { keeping.keep_house(retention).await });
        }
        let scheduler = engine.clone();
        engine.spawn(tracing::info_span!("scheduler"), async move { scheduler.schedule().await });
        let beating = engine.clone();
        engine.spawn(tracing::info_span!("heartbeat"), async move { beating.heartbeat().await });
        let delivering = engine.clone();
        engine.spawn(tracing::info_span!("webhooks"), async move { delivering.deliver_webhooks().await });
        // Renditions a stop interrupted.
        engine.make_renditions();
        Ok(engine)
    }

    /// Opens the store at `database` (`sqlite:///path/haul.db`, or a file path), then [`start`](Self::start)s
    /// on it.
    pub async fn open(database: &str, options: EngineOptions) -> Result<Self, EngineError> {
        let store = haul_store::open(database).await.map_err(|error| {
            EngineError::InvalidRequest(format!(
                "cannot open the database {}: {}",
                haul_store::shown_url(database),
                crate::task::chain(&error)
            ))
        })?;
        Self::start(store, options).await
    }

    /// Stop accepting work, pause every running download with its progress flushed, and wait for them
    /// (at most `grace`). Their jobs stay active in the store and resume at the next start.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.shutdown.cancel();
        self.stop_all_running();
        self.inner.tasks.close();
        let stopped = tokio::time::timeout(grace, self.inner.tasks.wait()).await.is_ok();
        if !stopped {
            tracing::warn!(
                ?grace,
                "some downloads did not stop in time; their last second of progress may be re-fetched"
            );
        }
        let relay = self.inner.relay.lock().take();
        if let Some((stop, out)) = relay {
            // Other nodes carry on with this node's downloads now rather than when their leases run out; but
            // not while some may still be writing, when the leases must run out first.
            let requeued = if stopped { self.inner.store.requeue_node(&self.inner.options.node).await } else { Ok(0) };
            match requeued {
                Ok(0) => {}
                Ok(requeued) => tracing::info!(requeued, "handed this node's downloads back to the queue"),
                Err(error) => {
                    tracing::warn!(%error, "cannot hand this node's downloads back; their leases will run out")
                }
            }
            stop.cancel();
            if tokio::time::timeout(grace, out).await.is_err() {
                tracing::warn!("the last events could not be written to the store in time");
            }
        }
    }

    /// Tells the store this node is alive, every [`HEARTBEAT`], until shutdown; with other nodes, also looks
    /// for renditions they were asked for that this node must make.
    async fn heartbeat(&self) -> Result<(), std::convert::Infallible> {
        let beat = haul_store::NodeBeat {
            node: self.inner.options.node.clone(),
            advertise_url: self.inner.options.advertise_url.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let mut ticker = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = self.inner.shutdown.cancelled() => return Ok(()),
            }
            if let Err(error) = self.inner.store.heartbeat(&beat).await {
                tracing::warn!(%error, "cannot record this node's heartbeat");
            }
            // Renditions asked for through another node, of files this node holds.
            if self.inner.store.shared_by_nodes() {
                self.make_renditions();
            }
        }
    }

    pub fn downloads_dir(&self) -> &Path {
        &self.inner.options.downloads_dir
    }

    /// The media tools this server found.
    pub fn media_tools(&self) -> &MediaTools {
        &self.inner.options.media
    }

    /// Live events of every account; callers filter by account.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Events after `last_event_id` still in the history, oldest first.
    pub fn events_since(&self, last_event_id: u64) -> Vec<Event> {
        self.inner.events.since(last_event_id)
    }

    /// A background task of this engine: traced in `span`, its error logged, and waited for at shutdown.
    fn spawn<F>(&self, span: tracing::Span, future: F)
    where
        F: std::future::Future + Send + 'static,
        F::Output: crate::task::TaskOutcome,
    {
        crate::task::spawn(span, self.inner.tasks.track_future(future));
    }

    fn emit(&self, kind: EventKind, view: &DownloadView) {
        self.inner.events.emit(kind, view);
        self.playlist_changed(view, kind);
        // A change of state wrote its webhook deliveries with it; progress writes none.
        if kind != EventKind::Progress {
            self.inner.webhooks_wake.notify_one();
        }
    }
}
