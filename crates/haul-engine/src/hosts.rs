//! What a whole process knows about each host: its connection budget and the connection count its downloads
//! settled on.
//!
//! A server's jobs on one host share `--max-connections-per-host` connections, so they never take all of a
//! host's slots between them and make it answer each other with 503. Without a limit, every permit is granted at
//! once. The count a download settled on (grown while it paid, or lowered by the host's refusals) is where the
//! next download from the host starts, so a host that refuses a 33rd connection is not asked for it again by
//! every file of a batch, and one that paid for 64 gets 64 from the start.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

use crate::swarm::Learned;

/// Shared by every clone of the HTTP client.
#[derive(Clone, Debug, Default)]
pub(crate) struct HostBudget {
    per_host: Option<usize>,
    hosts: Arc<parking_lot::Mutex<HashMap<String, Arc<Semaphore>>>>,
    learned: Arc<parking_lot::Mutex<HashMap<String, Learned>>>,
}

/// A held connection slot; the slot is free again when it is dropped.
#[derive(Debug)]
pub(crate) struct Slot(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl HostBudget {
    pub(crate) fn new(per_host: Option<usize>) -> Self {
        Self { per_host: per_host.filter(|n| *n > 0), ..Self::default() }
    }

    fn key(url: &Url) -> String {
        format!("{}:{}", url.host_str().unwrap_or_default(), url.port_or_known_default().unwrap_or(0))
    }

    fn semaphore(&self, url: &Url) -> Option<Arc<Semaphore>> {
        let per_host = self.per_host?;
        Some(self.hosts.lock().entry(Self::key(url)).or_insert_with(|| Arc::new(Semaphore::new(per_host))).clone())
    }

    /// The connection count the last measured download from `url`'s host ended with.
    pub(crate) fn learned(&self, url: &Url) -> Option<Learned> {
        self.learned.lock().get(&Self::key(url)).copied()
    }

    /// Keep what a download learned about `url`'s host for the next download there.
    pub(crate) fn remember(&self, url: &Url, learned: Learned) {
        self.learned.lock().insert(Self::key(url), learned);
    }

    /// `wanted` connections, or half the budget of a host when that is less: what one download starts with.
    pub(crate) fn share(&self, wanted: usize) -> usize {
        self.per_host.map_or(wanted, |per_host| wanted.min((per_host / 2).max(1)))
    }

    /// A slot on `url`'s host if one is free now.
    pub(crate) fn try_take(&self, url: &Url) -> Option<Slot> {
        match self.semaphore(url) {
            None => Some(Slot(None)),
            Some(semaphore) => semaphore.try_acquire_owned().ok().map(|permit| Slot(Some(permit))),
        }
    }

    /// A slot on `url`'s host, waiting for one to be freed.
    pub(crate) async fn take(&self, url: &Url) -> Slot {
        match self.semaphore(url) {
            None => Slot(None),
            // The semaphore is never closed, so acquiring only waits.
            Some(semaphore) => Slot(semaphore.acquire_owned().await.ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hosts_share_their_own_budget() {
        let budget = HostBudget::new(Some(2));
        let a: Url = "http://a.example/x".parse().unwrap();
        let a_other_path: Url = "http://a.example/y".parse().unwrap();
        let b: Url = "http://b.example/x".parse().unwrap();
        let first = budget.try_take(&a).unwrap();
        let _second = budget.try_take(&a_other_path).unwrap();
        assert!(budget.try_take(&a).is_none(), "the host's two slots are taken");
        assert!(budget.try_take(&b).is_some(), "another host has its own");
        drop(first);
        assert!(budget.try_take(&a).is_some(), "a dropped slot is free again");
        let learned = Learned { count: 24, settled: true };
        budget.remember(&a, learned);
        assert_eq!(budget.learned(&a_other_path), Some(learned), "kept per host, whatever the path");
        assert_eq!(budget.learned(&b), None);
        let unlimited = HostBudget::new(None);
        let held: Vec<_> = (0..100).map(|_| unlimited.try_take(&a).unwrap()).collect();
        assert_eq!(held.len(), 100);
    }
}
