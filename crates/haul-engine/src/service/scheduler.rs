//! The scheduler: claims runnable jobs from the store under a lease while this node has free slots, starts one
//! task per job, and stops running jobs when a client (or shutdown) asks.

use std::sync::Arc;
use std::time::Duration;

use haul_core::job::{AccountId, DownloadId};
use haul_store::DownloadRecord;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Engine;
use crate::limiter::RateLimiter;
use crate::progress::Progress;

/// How often the scheduler looks for work without being woken (jobs whose lease expired on another node).
const POLL_EVERY: Duration = Duration::from_millis(500);
/// How long a client's pause or cancel waits for the download to write its last progress and stop.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// Why a running download was stopped; decides what happens to its files and its row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StopReason {
    /// Paused by a client: keep the partial file for resume.
    Pause,
    /// Cancelled: the partial file is discarded.
    Cancel,
    /// Removed: the caller deletes the row (and the files if asked).
    Remove,
    /// The server is stopping: keep everything; the job resumes at the next start.
    Shutdown,
    /// The bandwidth schedule holds the queue: keep everything; the job goes back to the queue.
    Hold,
    /// Another node or client changed the job; stop quietly.
    LostLease,
}

/// A job running on this node: what the API reads (its progress) and how to stop it.
pub(super) struct Running {
    pub(super) account: AccountId,
    pub(super) cancel: CancellationToken,
    pub(super) progress: Arc<Progress>,
    reason: Mutex<Option<StopReason>>,
    /// The job's own speed limit, changed while it runs (`PATCH` `speed_limit`).
    pub(super) limit: Arc<RateLimiter>,
    finished: Notify,
    /// Bytes of this run already counted in the metrics, and slow connections replaced.
    pub(super) counted: std::sync::atomic::AtomicU64,
    pub(super) replaced: std::sync::atomic::AtomicU64,
    /// Retries of this run already counted, by cause.
    pub(super) retried: [std::sync::atomic::AtomicU64; crate::progress::RetryCause::ALL.len()],
    /// The host of the job's URL, for the metrics by host.
    pub(super) host: String,
}

impl Running {
    /// Stops the job; the first reason given wins (a pause during shutdown stays a pause).
    pub(super) fn stop(&self, reason: StopReason) {
        self.reason.lock().get_or_insert(reason);
        self.cancel.cancel();
    }

    pub(super) fn reason(&self) -> Option<StopReason> {
        *self.reason.lock()
    }
}

impl Engine {
    pub(super) async fn schedule(&self) {
        loop {
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(POLL_EVERY) => {}
                _ = self.inner.shutdown.cancelled() => return,
            }
            loop {
                if self.inner.shutdown.is_cancelled()
                    || self.inner.bandwidth.held()
                    || self.inner.running.lock().len() >= self.inner.options.max_active
                {
                    break;
                }
                let options = &self.inner.options;
                let claim = self.inner.store.claim_next(&options.node, options.lease, options.max_active);
                match self.inner.metrics.timed("claim", claim).await {
                    // A download of ours whose lease ran out while it kept running here (its renewals were held
                    // up): the claim has renewed the lease and its task goes on; a second task would fetch the
                    // same file beside it.
                    Ok(Some(record)) if self.inner.running.lock().contains_key(&record.id) => {}
                    Ok(Some(record)) => self.spawn_runner(record),
                    Ok(None) => break,
                    Err(error) => {
                        tracing::warn!(error = %crate::task::chain(&error), "cannot claim queued downloads");
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
            limit: Arc::new(match record.speed_limit {
                Some(rate) => RateLimiter::new(rate),
                None => RateLimiter::unlimited(),
            }),
            finished: Notify::new(),
            counted: Default::default(),
            replaced: Default::default(),
            retried: Default::default(),
            host: url::Url::parse(&record.url)
                .ok()
                .and_then(|url| url.host_str().map(str::to_ascii_lowercase))
                .unwrap_or_default(),
        });
        self.inner.running.lock().insert(record.id, running.clone());
        let engine = self.clone();
        self.spawn(tracing::info_span!("download", id = %record.id), async move {
            let id = record.id;
            engine.run(record, &running).await;
            engine.inner.running.lock().remove(&id);
            running.finished.notify_waiters();
            engine.inner.wake.notify_one();
        });
    }

    /// Stop the download if it runs here; true when it did (and has now finished writing).
    pub(super) async fn stop_running(&self, id: DownloadId, reason: StopReason) -> bool {
        let running = self.inner.running.lock().get(&id).cloned();
        let Some(running) = running else { return false };
        let finished = running.finished.notified();
        tokio::pin!(finished);
        finished.as_mut().enable();
        running.stop(reason);
        if !self.inner.running.lock().contains_key(&id) {
            return true;
        }
        if tokio::time::timeout(STOP_WAIT, finished).await.is_err() {
            tracing::warn!(%id, "download did not stop within {STOP_WAIT:?}");
        }
        true
    }

    /// Shutdown: every running download stops and keeps its files and its active row.
    pub(super) fn stop_all_running(&self) {
        let running: Vec<Arc<Running>> = self.inner.running.lock().values().cloned().collect();
        for task in &running {
            task.stop(StopReason::Shutdown);
        }
    }
}
