//! Events: something happened to a download. Numbered, fanned out to live subscribers on a broadcast channel,
//! and kept in a bounded history so a client that reconnects with `Last-Event-ID` misses nothing recent.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use haul_core::job::AccountId;
use parking_lot::Mutex;
use tokio::sync::broadcast;

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
}

/// The first event id of this process: the clock in microseconds, so ids keep growing across restarts (a
/// process emits far fewer than a million events a second). A client that reconnects to a restarted server
/// with its last id then gets every new event, instead of nothing until the count passes its old id.
fn first_id() -> u64 {
    let micros = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_micros();
    u64::try_from(micros).unwrap_or(u64::MAX / 2).max(1)
}

impl EventLog {
    pub(super) fn new() -> Self {
        Self {
            sender: broadcast::channel(CHANNEL).0,
            history: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(first_id()),
        }
    }

    pub(super) fn emit(&self, kind: EventKind, download: &DownloadView) {
        let event = Event {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            kind,
            account: download.account.clone(),
            download: download.clone(),
        };
        {
            let mut history = self.history.lock();
            if history.len() == HISTORY {
                history.pop_front();
            }
            history.push_back(event.clone());
        }
        // No subscriber is not an error.
        let _ = self.sender.send(event);
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    pub(super) fn since(&self, last_event_id: u64) -> Vec<Event> {
        self.history.lock().iter().filter(|event| event.id > last_event_id).cloned().collect()
    }
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
