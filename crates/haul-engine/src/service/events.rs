//! Events: something happened to a download. Numbered, fanned out to live subscribers on a broadcast channel,
//! and kept in a bounded history so a client that reconnects with `Last-Event-ID` misses nothing recent.
//!
//! With one node, the log numbers its events itself. When several nodes share a store
//! ([`Store::shared_by_nodes`]), every event goes through the store instead: [`EventLog::emit`] queues it for
//! [`relay_out`], which appends batches to the store (numbered there, in one sequence for all nodes), and
//! [`relay_in`] reads every node's events back into this node's channel and history. A client of any node then
//! sees every event of its account, with ids that only grow, and can resume on any node by `Last-Event-ID`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use haul_core::job::AccountId;
use haul_store::{Store, StoredEvent};
use parking_lot::Mutex;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::views::DownloadView;

/// Events kept for clients that reconnect with `Last-Event-ID`.
const HISTORY: usize = 4096;
/// Events a slow subscriber may fall behind by before it misses some (it is told, and can replay).
const CHANNEL: usize = 1024;

haul_core::named_enum! {
    /// What happened.
    pub enum EventKind as "event" {
        Added = "added",
        Started = "started",
        Progress = "progress",
        Paused = "paused",
        Resumed = "resumed",
        /// A failed or cancelled download queued again.
        Retried = "retried",
        /// A running download put back in the queue, its bytes kept (the bandwidth schedule paused the queue).
        Queued = "queued",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
        Removed = "removed",
    }
}

/// Something that happened to a download, numbered so a client can resume the stream.
#[derive(Clone, Debug)]
pub struct Event {
    pub id: u64,
    pub kind: EventKind,
    pub account: AccountId,
    pub download: DownloadView,
}

/// The numbering, the channel and the history, owned by the engine.
pub(super) struct EventLog {
    sender: broadcast::Sender<Event>,
    // parking_lot: held only to push or copy out, never across an await, and never poisoned.
    history: Mutex<VecDeque<Event>>,
    next_id: AtomicU64,
    /// With a shared store: where `emit` queues events for [`relay_out`].
    outbox: Option<mpsc::UnboundedSender<Outgoing>>,
}

/// An event on its way to the store, numbered there.
pub(super) struct Outgoing {
    kind: EventKind,
    download: DownloadView,
}

/// Events one append writes at most.
const BATCH: usize = 512;
/// How long a relay waits before trying the store again after it failed.
const RETRY: Duration = Duration::from_secs(1);
/// How long the store keeps events for `Last-Event-ID` replay, and how often the relay prunes older ones.
const KEEP: Duration = Duration::from_secs(60 * 60);
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The first event id of this process: the clock in microseconds, so ids keep growing across restarts (a
/// process emits far fewer than a million events a second). A client that reconnects to a restarted server
/// with its last id then gets every new event, instead of nothing until the count passes its old id.
fn first_id() -> u64 {
    let micros = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_micros();
    u64::try_from(micros).unwrap_or(u64::MAX / 2).max(1)
}

impl EventLog {
    /// A log that numbers its own events (one node).
    pub(super) fn new() -> Self {
        Self {
            sender: broadcast::channel(CHANNEL).0,
            history: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(first_id()),
            outbox: None,
        }
    }

    /// A log whose events go through a shared store; the receiver is [`relay_out`]'s.
    pub(super) fn shared() -> (Self, mpsc::UnboundedReceiver<Outgoing>) {
        let (outbox, receiver) = mpsc::unbounded_channel();
        (Self { outbox: Some(outbox), ..Self::new() }, receiver)
    }

    pub(super) fn emit(&self, kind: EventKind, download: &DownloadView) {
        if let Some(outbox) = &self.outbox {
            // Closed only once the engine has stopped; an event after that has no reader anyway.
            let _ = outbox.send(Outgoing { kind, download: download.clone() });
            return;
        }
        let event = Event {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            kind,
            account: download.account.clone(),
            download: download.clone(),
        };
        self.publish(event);
    }

    /// Into the history and out to live subscribers.
    fn publish(&self, event: Event) {
        self.remember(event.clone());
        // No subscriber is not an error.
        let _ = self.sender.send(event);
    }

    /// Into the history only: what happened before this node listened, for `Last-Event-ID` replay.
    fn remember(&self, event: Event) {
        let mut history = self.history.lock();
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(event);
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    pub(super) fn since(&self, last_event_id: u64) -> Vec<Event> {
        self.history.lock().iter().filter(|event| event.id > last_event_id).cloned().collect()
    }
}

/// The stored form of an event's body.
#[derive(serde::Serialize, serde::Deserialize)]
struct Payload {
    download: DownloadView,
}

/// Writes this node's events to the store in batches, in the order they were emitted, until `stop` and the
/// queue is drained. A failed append is retried (the store may be restarting), so no event is dropped while the
/// process lives.
pub(super) async fn relay_out(
    store: Arc<dyn Store>,
    mut outbox: mpsc::UnboundedReceiver<Outgoing>,
    stop: CancellationToken,
) -> Result<(), std::convert::Infallible> {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let first = tokio::select! {
            first = outbox.recv() => first,
            () = stop.cancelled() => outbox.try_recv().ok(),
        };
        let Some(first) = first else { return Ok(()) };
        batch.clear();
        batch.push(first);
        while batch.len() < BATCH
            && let Ok(next) = outbox.try_recv()
        {
            batch.push(next);
        }
        let rows: Vec<(String, String, String)> = batch
            .iter()
            .filter_map(|event| {
                let payload = serde_json::to_string(&Payload { download: event.download.clone() }).ok()?;
                Some((event.kind.as_str().to_owned(), event.download.account.to_string(), payload))
            })
            .collect();
        let mut failures = 0u32;
        while let Err(error) = store.append_events(&rows).await {
            failures += 1;
            if failures == 1 || failures.is_multiple_of(60) {
                tracing::warn!(%error, events = rows.len(), "cannot write events to the store; retrying");
            }
            if stop.is_cancelled() && failures >= 3 {
                return Ok(());
            }
            tokio::time::sleep(RETRY).await;
        }
    }
}

/// Reads every node's events from the store into this node's history and channel: first the most recent
/// [`HISTORY`] (so a client can resume here by `Last-Event-ID` whichever node it was on), then each new one as
/// it is appended. Prunes events older than [`KEEP`] now and then.
pub(super) async fn relay_in(
    store: Arc<dyn Store>,
    log: Arc<EventLog>,
    stop: CancellationToken,
) -> Result<(), std::convert::Infallible> {
    let mut pruned = tokio::time::Instant::now();
    let mut failures = 0u32;
    // Where to start: the newest HISTORY events, read (and published) in order below.
    // Events up to `backlog_until` happened before this node listened: history, not news.
    let (mut last, backlog_until) = loop {
        let read = tokio::select! {
            read = store.latest_event_id() => read,
            () = stop.cancelled() => return Ok(()),
        };
        match read {
            Ok(newest) => break (newest.saturating_sub(HISTORY as i64), newest),
            Err(error) => {
                tracing::warn!(%error, "cannot read events from the store; retrying");
                tokio::time::sleep(RETRY).await;
            }
        }
    };
    loop {
        let read = tokio::select! {
            read = store.wait_events(last, BATCH as u32, RETRY) => read,
            () = stop.cancelled() => return Ok(()),
        };
        match read {
            Ok(events) => {
                failures = 0;
                for stored in events {
                    last = stored.id;
                    match decode(stored) {
                        Ok(event) if last <= backlog_until => log.remember(event),
                        Ok(event) => log.publish(event),
                        Err(error) => tracing::warn!(%error, id = last, "skipping an event that cannot be read"),
                    }
                }
            }
            Err(error) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(60) {
                    tracing::warn!(%error, "cannot read events from the store; retrying");
                }
                tokio::time::sleep(RETRY).await;
            }
        }
        if pruned.elapsed() >= PRUNE_EVERY {
            pruned = tokio::time::Instant::now();
            if let Err(error) = store.prune_events(KEEP).await {
                tracing::debug!(%error, "cannot prune old events");
            }
        }
    }
}

fn decode(stored: StoredEvent) -> Result<Event, String> {
    let kind: EventKind = stored.kind.parse().map_err(|error| format!("{error}"))?;
    let payload: Payload = serde_json::from_str(&stored.payload).map_err(|error| error.to_string())?;
    Ok(Event {
        id: u64::try_from(stored.id).map_err(|_| format!("negative event id {}", stored.id))?,
        kind,
        account: payload.download.account.clone(),
        download: payload.download,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_a_later_process_are_higher() {
        // What a client reconnecting to a restarted server relies on: its last id is below every new one.
        let earlier = EventLog::new();
        let last_before = earlier.next_id.fetch_add(1000, Ordering::Relaxed) + 999;
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = EventLog::new();
        assert!(later.next_id.load(Ordering::Relaxed) > last_before);
        // Microseconds of the clock: after 2020 whatever the machine.
        assert!(first_id() > 1_577_836_800_000_000);
    }
}
