//! What the service measures for Prometheus: counters kept as downloads run, and gauges read from the store and
//! the running downloads at each scrape ([`Engine::refresh_metrics`]). The API registers these beside its own
//! (HTTP requests) and serves the text format at `/metrics`.

use haul_core::job::JobState;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Engine;
use super::error::ServiceError;

/// One label, as a (name, value) pair.
pub type Labels = Vec<(String, String)>;

/// The service's metrics; cheap to clone (each is a shared handle).
#[derive(Clone, Debug, Default)]
pub struct EngineMetrics {
    /// Bytes received from origins by this node's downloads (resumed bytes already on disk not counted).
    pub bytes_fetched: Counter,
    /// Runs that ended here, by `outcome`: completed, failed, paused, cancelled, removed, lost_lease, stopped
    /// (the server stopping), in_use (another node still held the part file).
    pub finished: Family<Labels, Counter>,
    /// Slow connections this node replaced with fresh ones.
    pub connections_replaced: Counter,
    /// Downloads in each state, in the whole store (every node).
    jobs: Family<Labels, Gauge>,
    /// Downloads running on this node, their open connections and their combined speed.
    running: Gauge,
    connections: Gauge,
    speed: Gauge,
}

impl EngineMetrics {
    /// Adds every metric to `registry` (names get the registry's `haul_` prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register("jobs", "Downloads in each state, across every node", self.jobs.clone());
        registry.register("downloads_running", "Downloads running on this node", self.running.clone());
        registry.register("connections_open", "Connections open to origins on this node", self.connections.clone());
        registry.register(
            "download_speed_bytes",
            "Bytes per second over the downloads running on this node",
            self.speed.clone(),
        );
        registry.register("bytes_fetched", "Bytes received from origins by this node", self.bytes_fetched.clone());
        registry.register(
            "downloads_finished",
            "Downloads whose run on this node ended, by outcome",
            self.finished.clone(),
        );
        registry.register(
            "connections_replaced",
            "Slow connections replaced by fresh ones on this node",
            self.connections_replaced.clone(),
        );
    }

    /// Counts a run that ended with `outcome`.
    pub(super) fn finished(&self, outcome: &str) {
        self.finished.get_or_create(&vec![("outcome".to_owned(), outcome.to_owned())]).inc();
    }
}

impl Engine {
    /// The service's metrics, to register and to serve.
    pub fn metrics(&self) -> &EngineMetrics {
        &self.inner.metrics
    }

    /// Sets the gauges to what is true now: the store's counts and this node's running downloads.
    pub async fn refresh_metrics(&self) -> Result<(), ServiceError> {
        let metrics = &self.inner.metrics;
        let counts = self.inner.store.counts(None).await?;
        for state in JobState::ALL {
            let n = i64::try_from(counts.get(state)).unwrap_or(i64::MAX);
            metrics.jobs.get_or_create(&vec![("state".to_owned(), state.as_str().to_owned())]).set(n);
        }
        let (mut running, mut connections, mut speed) = (0i64, 0i64, 0i64);
        for job in self.inner.running.lock().values() {
            let snapshot = job.progress.snapshot();
            running += 1;
            connections += i64::try_from(snapshot.connections).unwrap_or(0);
            speed = speed.saturating_add(i64::try_from(snapshot.speed).unwrap_or(i64::MAX));
        }
        metrics.running.set(running);
        metrics.connections.set(connections);
        metrics.speed.set(speed);
        Ok(())
    }
}
