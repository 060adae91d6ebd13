//! The origin HTTP server: routes, the knobs applied per request, and the handles that tests use
//! to start, steer and inspect a running origin.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{
    ACCEPT_RANGES, ALLOW, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_RANGE,
    LAST_MODIFIED, LOCATION, RANGE, RETRY_AFTER,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::{IncomingStream, Listener};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::body::{BodyPlan, body};
use crate::content::{ContentBlock, file_seed, mix};
use crate::options::{OriginOptions, pick};
use crate::pacing::TokenBucket;
use crate::range::{RangeOutcome, if_range_matches, parse_range};
use crate::stats::{Counters, OriginStats};
use crate::tls::TlsServer;

/// `Last-Modified` of version 0 (2020-01-01T00:00:00Z); version `v` is `v` seconds later, so a
/// date-based `If-Range` also notices a version bump.
const LAST_MODIFIED_BASE_SECS: u64 = 1_577_836_800;

/// Content blocks are ~2 MB each; a handful covers every test and benchmark, and regenerating an
/// evicted one costs only a millisecond or two.
const CONTENT_CACHE_CAP: usize = 16;

/// State shared by all requests of one origin.
pub(crate) struct Shared {
    pub options: OriginOptions,
    pub version: AtomicU64,
    pub counters: Counters,
    pub bucket: Option<TokenBucket>,
    pub shutdown: CancellationToken,
    /// The test CA's and the served certificate's PEM, when serving HTTPS.
    pub tls_pems: Option<TlsPems>,
    /// Counts bodies eligible for cutting, to pick the `cut_fraction` deterministically.
    cut_counter: AtomicU64,
    cache: Mutex<HashMap<u64, ContentBlock>>,
    /// What each client address asked and holds, for `max_connections_per_ip` and [`OriginHandle::clients`].
    clients: Mutex<HashMap<IpAddr, ClientStats>>,
    /// The `Host` and `Cookie` of every request to `/data`, in order, for [`OriginHandle::cookies_seen`].
    cookies: Mutex<Vec<CookieSeen>>,
}

/// What one request to `/data` carried: the host it asked for and its `Cookie` header (all of them joined with
/// `; `, as a client may send several), for tests of which cookies reach which host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieSeen {
    /// The `Host` header, port included.
    pub host: String,
    pub path: String,
    pub cookie: Option<String>,
}

/// What the origin counted for one client address (the IP its TCP connections come from).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClientStats {
    /// Requests to `/data` and `/redirect` from this address, refused ones included.
    pub requests: u64,
    /// Of those, the ones refused with 503 (by `max_connections` or `max_connections_per_ip`).
    pub responses_503: u64,
    /// Responses admitted and not yet finished (a live gauge, kept across `reset_stats`).
    pub in_flight: u64,
    /// Highest number of this address's concurrently admitted responses.
    pub peak_concurrent: u64,
}

/// The certificates of an HTTPS origin, PEM.
pub(crate) struct TlsPems {
    ca: String,
    served: String,
}

impl Shared {
    fn new(options: OriginOptions, shutdown: CancellationToken, tls_pems: Option<TlsPems>) -> Self {
        Self {
            bucket: options.aggregate_rate.map(TokenBucket::new),
            options,
            version: AtomicU64::new(0),
            counters: Counters::default(),
            shutdown,
            tls_pems,
            cut_counter: AtomicU64::new(0),
            cache: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
            cookies: Mutex::new(Vec::new()),
        }
    }

    fn content(&self, seed: u64) -> ContentBlock {
        if let Some(block) = self.lock_cache().get(&seed) {
            return block.clone();
        }
        // Generated outside the lock so other requests are not stalled meanwhile.
        let block = ContentBlock::new(seed);
        let mut cache = self.lock_cache();
        if cache.len() >= CONTENT_CACHE_CAP {
            cache.clear();
        }
        cache.insert(seed, block.clone());
        block
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<u64, ContentBlock>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_clients(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, ClientStats>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn file_seed(&self, size: u64, name: &str) -> u64 {
        file_seed(self.options.seed, size, name, self.version.load(Ordering::Acquire))
    }

    /// Counts a request from `peer` and a new in-flight response, or refuses it when `max_connections` or
    /// (for `peer`) `max_connections_per_ip` is reached.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<InFlight> {
        let counters = &self.counters;
        // The client's entry is locked across both checks, so two requests of one address cannot both take
        // its last slot.
        let mut clients = self.lock_clients();
        let client = clients.entry(peer).or_default();
        client.requests += 1;
        let now = counters.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        let over_total = self.options.max_connections.is_some_and(|max| now > max as u64);
        let over_client = self.options.max_connections_per_ip.is_some_and(|max| client.in_flight >= max as u64);
        if over_total || over_client {
            counters.in_flight.fetch_sub(1, Ordering::AcqRel);
            client.responses_503 += 1;
            return None;
        }
        client.in_flight += 1;
        client.peak_concurrent = client.peak_concurrent.max(client.in_flight);
        counters.peak_concurrent.fetch_max(now, Ordering::AcqRel);
        Some(InFlight { shared: Arc::clone(self), peer })
    }
}

/// One admitted in-flight response; dropping it frees the slot (and its client address's).
pub(crate) struct InFlight {
    shared: Arc<Shared>,
    peer: IpAddr,
}

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InFlight")
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(client) = self.shared.lock_clients().get_mut(&self.peer) {
            client.in_flight -= 1;
        }
        self.shared.counters.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Identity of a TCP connection: its accept order, which makes "slow connection" selection
/// deterministic, and the peer address.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnId {
    index: u64,
    peer: SocketAddr,
}

impl ConnId {
    /// What a listener reports as its own address (index `u64::MAX`).
    pub(crate) fn listener(addr: SocketAddr) -> ConnId {
        ConnId { index: u64::MAX, peer: addr }
    }
}

/// A `TcpListener` that numbers its connections and disables Nagle (small paced chunks must
/// not wait for ACKs). HTTPS origins accept through it too, before the handshake.
pub(crate) struct CountingListener {
    inner: TcpListener,
    addr: SocketAddr,
    next: u64,
}

impl CountingListener {
    pub(crate) fn new(inner: TcpListener) -> std::io::Result<CountingListener> {
        Ok(CountingListener { addr: inner.local_addr()?, inner, next: 0 })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Listener for CountingListener {
    type Io = TcpStream;
    type Addr = ConnId;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, peer) = Listener::accept(&mut self.inner).await;
        if let Err(e) = io.set_nodelay(true) {
            tracing::debug!("set_nodelay failed: {e}");
        }
        let index = self.next;
        self.next += 1;
        (io, ConnId { index, peer })
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(ConnId::listener(self.inner.local_addr()?))
    }
}

impl Connected<IncomingStream<'_, CountingListener>> for ConnId {
    fn connect_info(stream: IncomingStream<'_, CountingListener>) -> Self {
        *stream.remote_addr()
    }
}

fn header_value(s: String) -> HeaderValue {
    HeaderValue::try_from(s).expect("generated header values are visible ASCII")
}

fn service_unavailable() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, [(RETRY_AFTER, HeaderValue::from_static("1"))]).into_response()
}

/// What every GET/HEAD goes through before it is answered: counting, admission against
/// `max_connections` and `max_connections_per_ip` (refusals are immediate) and the first-byte latency.
async fn admit_request(shared: &Arc<Shared>, method: &Method, peer: IpAddr) -> Result<InFlight, Response> {
    let counters = &shared.counters;
    counters.requests.fetch_add(1, Ordering::Relaxed);
    if method == Method::HEAD {
        counters.head_requests.fetch_add(1, Ordering::Relaxed);
    }
    let Some(guard) = shared.admit(peer) else {
        counters.responses_503.fetch_add(1, Ordering::Relaxed);
        return Err(service_unavailable());
    };
    let latency = shared.options.first_byte_latency;
    if !latency.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(latency) => {}
            () = shared.shutdown.cancelled() => return Err(service_unavailable()),
        }
    }
    Ok(guard)
}

/// The percent-decoded value of the `cd` query parameter. `+` is kept as is (this is a URL
/// query, not a form), so any exact header value can be requested.
fn content_disposition(query: Option<&str>) -> Result<Option<HeaderValue>, axum::http::header::InvalidHeaderValue> {
    let Some(query) = query else {
        return Ok(None);
    };
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_encoding::percent_decode_str(key).collect::<Vec<u8>>() != b"cd" {
            continue;
        }
        let value: Vec<u8> = percent_encoding::percent_decode_str(value).collect();
        return HeaderValue::from_bytes(&value).map(Some);
    }
    Ok(None)
}

/// Where a cut body errors out: a deterministic pseudo-random point between 10% and 90% of
/// its `len` bytes (never 0 nor `len`, so the client always sees a partial body).
fn cut_offset(seed: u64, k: u64, len: u64) -> u64 {
    let r = (mix(seed ^ mix(k)) >> 11) as f64 / (1u64 << 53) as f64;
    let off = (len as f64 * (0.1 + 0.8 * r)) as u64;
    off.clamp(1, len - 1)
}

async fn data(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnId>,
    method: Method,
    Path((size, name)): Path<(u64, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let guard = match admit_request(&shared, &method, conn.peer.ip()).await {
        Ok(guard) => guard,
        Err(response) => return response,
    };
    {
        let text = |value: &HeaderValue| String::from_utf8_lossy(value.as_bytes()).into_owned();
        let cookies: Vec<String> = headers.get_all(axum::http::header::COOKIE).iter().map(text).collect();
        let seen = CookieSeen {
            host: headers.get(axum::http::header::HOST).map(text).unwrap_or_default(),
            path: format!("/data/{size}/{name}"),
            cookie: (!cookies.is_empty()).then(|| cookies.join("; ")),
        };
        shared.cookies.lock().unwrap_or_else(|e| e.into_inner()).push(seen);
    }
    let opts = &shared.options;
    let is_head = method == Method::HEAD;
    if is_head && opts.reject_head {
        return (StatusCode::METHOD_NOT_ALLOWED, [(ALLOW, HeaderValue::from_static("GET"))]).into_response();
    }
    let Ok(cd) = content_disposition(query.as_deref()) else {
        return (StatusCode::BAD_REQUEST, "cd= is not a valid header value\n").into_response();
    };

    let version = shared.version.load(Ordering::Acquire);
    let seed = file_seed(opts.seed, size, &name, version);
    let etag = format!("\"{seed:016x}\"");
    let last_modified = SystemTime::UNIX_EPOCH + Duration::from_secs(LAST_MODIFIED_BASE_SECS + version);

    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(ETAG, header_value(etag.clone()));
    h.insert(LAST_MODIFIED, header_value(httpdate::fmt_http_date(last_modified)));
    if !opts.no_range {
        h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    if let Some(cd) = cd {
        h.insert(CONTENT_DISPOSITION, cd);
    }

    let range = headers.get(RANGE).and_then(|v| v.to_str().ok());
    let if_range_ok =
        headers.get(IF_RANGE).is_none_or(|v| v.to_str().is_ok_and(|v| if_range_matches(v, &etag, last_modified)));
    let outcome = match range {
        Some(range) if !opts.no_range && if_range_ok => parse_range(range, size),
        _ => RangeOutcome::Full,
    };

    let (status, start, end) = match outcome {
        RangeOutcome::Full => {
            h.insert(CONTENT_LENGTH, HeaderValue::from(size + opts.length_lie));
            (StatusCode::OK, 0, size)
        }
        RangeOutcome::Partial { start, end } => {
            let cr = format!("bytes {start}-{}/{size}", end - 1);
            h.insert(CONTENT_RANGE, header_value(cr));
            h.insert(CONTENT_LENGTH, HeaderValue::from(end - start));
            (StatusCode::PARTIAL_CONTENT, start, end)
        }
        RangeOutcome::Unsatisfiable => {
            h.insert(CONTENT_RANGE, header_value(format!("bytes */{size}")));
            h.insert(CONTENT_LENGTH, HeaderValue::from(0u64));
            return (StatusCode::RANGE_NOT_SATISFIABLE, h).into_response();
        }
    };
    if is_head {
        return (status, h, Body::empty()).into_response();
    }

    let len = end - start;
    let cut_at = if opts.cut_fraction > 0.0 && len >= 2 {
        let k = shared.cut_counter.fetch_add(1, Ordering::Relaxed);
        pick(k, opts.cut_fraction).then(|| start + cut_offset(seed, k, len))
    } else {
        None
    };
    let rate = if pick(conn.index, opts.slow_fraction) { Some(opts.slow_rate()) } else { opts.per_connection_rate };
    let plan = BodyPlan {
        content: shared.content(seed),
        start,
        end,
        cut_at,
        fail_after_end: status == StatusCode::OK && opts.length_lie > 0,
        rate,
    };
    let body = body(plan, Arc::clone(&shared), guard);
    (status, h, body).into_response()
}

/// A video page around `/data/SIZE/NAME`, as a media site serves one: `og:title` and a `<video>` whose source
/// is the file. yt-dlp's generic extractor reads it; the benchmark's media profile times page-to-file downloads.
async fn watch(Path((size, name)): Path<(u64, String)>) -> Response {
    let escape =
        |text: &str| text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let name = escape(&name);
    let page = format!(
        "<!doctype html><html><head><title>{name}</title><meta property=\"og:title\" content=\"{name}\"></head>\
         <body><video controls><source src=\"/data/{size}/{name}\" type=\"video/mp4\"></video></body></html>"
    );
    ([(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

async fn redirect(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnId>,
    method: Method,
    // Extracted only to validate the path; the raw path is reused below to keep its encoding.
    Path((n, _size, _name)): Path<(u64, u64, String)>,
    uri: Uri,
) -> Response {
    let _guard = match admit_request(&shared, &method, conn.peer.ip()).await {
        Ok(guard) => guard,
        Err(response) => return response,
    };
    // "/redirect/N/data/SIZE/NAME" -> "data/SIZE/NAME", still percent-encoded as received.
    let tail = uri.path().splitn(4, '/').nth(3).unwrap_or_default();
    redirect_to(n, tail, uri.query())
}

fn redirect_to(n: u64, tail: &str, query: Option<&str>) -> Response {
    let mut location = match n.checked_sub(1) {
        Some(next) => format!("/redirect/{next}/{tail}"),
        None => format!("/{tail}"),
    };
    if let Some(query) = query {
        location.push('?');
        location.push_str(query);
    }
    (StatusCode::FOUND, [(LOCATION, header_value(location))]).into_response()
}

/// The counters, with each client address's under `clients` (`{"127.0.0.2": {"requests": ..}, ..}`).
async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    let mut json = serde_json::to_value(shared.counters.snapshot()).expect("stats serialize");
    let clients: BTreeMap<String, ClientStats> =
        shared.lock_clients().iter().map(|(ip, client)| (ip.to_string(), *client)).collect();
    json["clients"] = serde_json::to_value(clients).expect("client stats serialize");
    let json = json.to_string();
    ([(CONTENT_TYPE, HeaderValue::from_static("application/json"))], json).into_response()
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/data/{size}/{name}", get(data))
        .route("/redirect/{n}/data/{size}/{name}", get(redirect))
        .route("/watch/{size}/{name}", get(watch))
        .route("/stats", get(stats))
        .with_state(shared)
}

/// A running origin. Dropping it (or calling [`Origin::shutdown`]) stops it: it stops accepting,
/// closes idle connections and aborts bodies still being sent.
pub struct Origin {
    addr: SocketAddr,
    handle: OriginHandle,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Origin").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Origin {
    /// Starts an origin on `127.0.0.1:0` (a free port).
    pub async fn start(options: OriginOptions) -> anyhow::Result<Origin> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), options).await
    }

    /// Starts an origin on `addr`. Must be called within a tokio runtime, which runs the server.
    pub async fn start_on(addr: SocketAddr, options: OriginOptions) -> anyhow::Result<Origin> {
        options.validate()?;
        // Certificates are made before binding, so a failure leaves nothing listening.
        let tls = options.tls.map(TlsServer::new).transpose().context("making the origin's certificates")?;
        let listener = TcpListener::bind(addr).await.with_context(|| format!("binding the origin to {addr}"))?;
        let listener = CountingListener::new(listener)?;
        let addr = listener.addr();
        let shutdown = CancellationToken::new();
        let tls_pems = tls.as_ref().map(|tls| TlsPems { ca: tls.ca_pem.clone(), served: tls.cert_pem.clone() });
        let shared = Arc::new(Shared::new(options, shutdown.clone(), tls_pems));
        let app = router(Arc::clone(&shared)).into_make_service_with_connect_info::<ConnId>();
        let task = match tls {
            None => {
                let serve = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned());
                tokio::spawn(async move {
                    if let Err(e) = serve.await {
                        tracing::error!("origin server failed: {e}");
                    }
                })
            }
            Some(tls) => {
                let (listener, accept_loop) = tls.listen(listener, Arc::clone(&shared));
                let serve = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned());
                tokio::spawn(async move {
                    let ((), served) = tokio::join!(accept_loop, serve.into_future());
                    if let Err(e) = served {
                        tracing::error!("origin server failed: {e}");
                    }
                })
            }
        };
        Ok(Origin { addr, handle: OriginHandle { shared }, task: Some(task) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://HOST:PORT` (`https://` when serving TLS), with a wildcard bind address replaced by loopback so
    /// it is usable.
    pub fn base_url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        let scheme = if self.handle.is_tls() { "https" } else { "http" };
        format!("{scheme}://{addr}")
    }

    /// `http(s)://HOST:PORT/data/SIZE/NAME`.
    pub fn url(&self, size: u64, name: &str) -> String {
        format!("{}/data/{size}/{name}", self.base_url())
    }

    pub fn handle(&self) -> OriginHandle {
        self.handle.clone()
    }

    /// The test CA's certificate (PEM) when serving HTTPS, whatever the [`TlsMode`](crate::TlsMode): what a
    /// client is told to trust (`haul get --ca-cert FILE`, `SSL_CERT_FILE`). `None` over plain HTTP.
    pub fn ca_pem(&self) -> Option<String> {
        self.handle.ca_pem()
    }

    /// The certificate the origin presents (PEM) when serving HTTPS; `None` over plain HTTP.
    pub fn cert_pem(&self) -> Option<String> {
        self.handle.cert_pem()
    }

    /// Stops the server and waits (up to 5 s) until its connections are closed.
    pub async fn shutdown(mut self) {
        self.handle.shared.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        // The server task winds down on its own once told to.
        self.handle.shared.shutdown.cancel();
    }
}

/// A cheap, clonable handle to steer and inspect a running origin.
#[derive(Clone)]
pub struct OriginHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for OriginHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OriginHandle").field("options", &self.shared.options).field("version", &self.version()).finish()
    }
}

impl OriginHandle {
    /// Changes the content, ETag and Last-Modified of every file from now on (a changed remote).
    pub fn set_version(&self, v: u64) {
        self.shared.version.store(v, Ordering::Release);
    }

    pub fn version(&self) -> u64 {
        self.shared.version.load(Ordering::Acquire)
    }

    pub fn options(&self) -> &OriginOptions {
        &self.shared.options
    }

    /// Whether the origin serves HTTPS ([`OriginOptions::tls`]).
    pub fn is_tls(&self) -> bool {
        self.shared.tls_pems.is_some()
    }

    /// The test CA's certificate (PEM) when serving HTTPS; `None` over plain HTTP. See [`Origin::ca_pem`].
    pub fn ca_pem(&self) -> Option<String> {
        self.shared.tls_pems.as_ref().map(|pems| pems.ca.clone())
    }

    /// The certificate the origin presents (PEM) when serving HTTPS; `None` over plain HTTP.
    pub fn cert_pem(&self) -> Option<String> {
        self.shared.tls_pems.as_ref().map(|pems| pems.served.clone())
    }

    pub fn stats(&self) -> OriginStats {
        self.shared.counters.snapshot()
    }

    pub fn reset_stats(&self) {
        self.shared.counters.reset();
        // As for the totals, responses still in flight are each address's new baseline.
        let mut clients = self.shared.lock_clients();
        clients.retain(|_, client| client.in_flight > 0);
        for client in clients.values_mut() {
            *client =
                ClientStats { in_flight: client.in_flight, peak_concurrent: client.in_flight, ..Default::default() };
        }
    }

    /// The host and `Cookie` header of every request to `/data` so far, oldest first.
    pub fn cookies_seen(&self) -> Vec<CookieSeen> {
        self.shared.cookies.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// What the origin counted for each client address (see [`OriginOptions::max_connections_per_ip`]).
    pub fn clients(&self) -> BTreeMap<IpAddr, ClientStats> {
        self.shared.lock_clients().iter().map(|(ip, client)| (*ip, *client)).collect()
    }

    /// The content seed of `/data/SIZE/NAME` at the current version.
    pub fn file_seed(&self, size: u64, name: &str) -> u64 {
        self.shared.file_seed(size, name)
    }

    /// Lowercase hex SHA-256 of `/data/SIZE/NAME` at the current version.
    pub fn file_sha256(&self, size: u64, name: &str) -> String {
        self.shared.content(self.file_seed(size, name)).sha256(size)
    }

    /// The bytes `[start, end)` of `/data/SIZE/NAME` at the current version.
    pub fn file_bytes(&self, size: u64, name: &str, start: u64, end: u64) -> Vec<u8> {
        let end = end.min(size);
        let start = start.min(end);
        self.shared.content(self.file_seed(size, name)).to_vec(start, end - start)
    }
}
