//! `GET /metrics`: Prometheus' text format, for the operator (the data directory's token, or a listener of its
//! own with `--metrics-listen`). The API's own metrics (requests by route and status, their latency, event
//! streams open) are kept here; the service's (downloads, bytes, connections) come from the engine.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

type Labels = Vec<(String, String)>;
type Durations = Family<Labels, Histogram, fn() -> Histogram>;

/// The API's metrics; clones share them, so every listener of one server counts into the same ones.
#[derive(Clone, Debug)]
pub struct ApiMetrics {
    requests: Family<Labels, Counter>,
    durations: Durations,
    streams: Gauge,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        // 1 ms to about 16 s, doubling.
        fn buckets() -> Histogram {
            Histogram::new(exponential_buckets(0.001, 2.0, 15))
        }
        Self {
            requests: Family::default(),
            durations: Family::new_with_constructor(buckets),
            streams: Gauge::default(),
        }
    }
}

impl ApiMetrics {
    /// An event stream opened; it counts as open until the guard drops.
    pub(crate) fn stream_opened(&self) -> StreamGuard {
        self.streams.inc();
        StreamGuard(self.streams.clone())
    }
}

/// Counts an open event stream while it lives.
pub(crate) struct StreamGuard(Gauge);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Middleware: counts each request by method, route (the pattern, `/v1/downloads/{id}`, never the id) and
/// status, and its time to the response head.
pub(crate) async fn track(State(metrics): State<ApiMetrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed().as_secs_f64();
    let status = response.status().as_u16().to_string();
    metrics
        .requests
        .get_or_create(&vec![
            ("method".into(), method.clone()),
            ("route".into(), route.clone()),
            ("status".into(), status),
        ])
        .inc();
    metrics.durations.get_or_create(&vec![("method".into(), method), ("route".into(), route)]).observe(elapsed);
    response
}

/// The text exposition of every metric, gauges refreshed first.
async fn render(state: &AppState) -> Result<Response, ApiError> {
    state.engine.refresh_metrics().await?;
    let mut registry = Registry::with_prefix("haul");
    state.engine.metrics().register(&mut registry);
    let api = &state.metrics;
    registry.register("http_requests", "HTTP requests answered, by method, route and status", api.requests.clone());
    registry.register(
        "http_request_duration_seconds",
        "Time to the response head, by method and route",
        api.durations.clone(),
    );
    registry.register("event_streams_open", "Server-sent event streams open now", api.streams.clone());
    let mut text = String::new();
    encode(&mut text, &registry).map_err(ApiError::internal)?;
    let content_type = HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8");
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}

/// `GET /metrics` on the API's listener: the operator's only, since the figures cover every account.
pub(crate) async fn metrics(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    if caller.account != state.default_account {
        return Err(ApiError::forbidden(
            "metrics cover every account: use the server's own token (haul token), or scrape --metrics-listen",
        ));
    }
    render(&state).await
}

/// `GET /metrics` on `--metrics-listen`, a listener the operator keeps private: no token.
pub(crate) async fn open_metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    render(&state).await
}
