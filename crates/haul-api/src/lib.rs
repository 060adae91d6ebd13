//! haul's HTTP API: the native `/v1` JSON API over the [`Engine`], with bearer auth, server-sent events,
//! file downloads and an OpenAPI document.
//!
//! **API boundary**: [`router`]. Only this crate knows HTTP status codes and the wire JSON; handlers call the
//! `Engine` handle, never the store.

mod archive;
mod auth;
mod cookies;
mod dialects;
mod downloads;
mod error;
mod events;
mod extract;
mod files;
mod keys;
mod linger;
mod links;
mod media;
mod metrics;
mod rules;
mod serve;
mod session;
mod settings;
mod system;
mod ui;
mod webhooks;

/// How many bytes the embedded web page weighs, every file together.
pub use ui::weight as page_weight;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wire;

pub use serve::{ConnectionLimits, serve};

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};
use haul_core::job::{AccountId, DownloadId};
use haul_engine::service::Engine;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi as _;

pub use error::ApiError;
pub use links::{LINK_TTL, LinkSigner};
pub use metrics::ApiMetrics;
pub use system::ApiDoc;

/// The largest JSON request body accepted; more is answered 413. Requests are a URL and a few options.
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// The foreign APIs haul speaks, each a module of [`dialects`] mounted under its own path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dialect {
    /// The yt-dlp web app's `/api/...`.
    YtdlpApp,
    /// The Surge download manager, at the root.
    Surge,
    /// VideoDB's download jobs.
    Videodb,
    /// Cloudflare Stream's per-video downloads.
    Cloudflare,
}

impl Dialect {
    pub const ALL: [Dialect; 4] = [Dialect::YtdlpApp, Dialect::Surge, Dialect::Videodb, Dialect::Cloudflare];

    /// The name used on the command line: `ytdlp-app`, `surge`, `videodb`, `cloudflare`.
    pub fn name(self) -> &'static str {
        match self {
            Self::YtdlpApp => "ytdlp-app",
            Self::Surge => "surge",
            Self::Videodb => "videodb",
            Self::Cloudflare => "cloudflare",
        }
    }

    /// Where the dialect is served unless told otherwise; `/` is the root.
    pub fn default_mount(self) -> &'static str {
        match self {
            Self::YtdlpApp => "/api",
            Self::Surge => "/",
            Self::Videodb => "/videodb",
            Self::Cloudflare => "/client/v4",
        }
    }

    /// The paths the dialect serves, relative to its mount: what a root mount claims.
    fn top_segments(self) -> &'static [&'static str] {
        match self {
            Self::YtdlpApp => &["download", "downloads", "thumbnails", "stream", "info"],
            Self::Surge => &["download", "list", "pause", "resume", "delete", "update-url", "history", "events"],
            Self::Videodb => &["download"],
            Self::Cloudflare => &["accounts"],
        }
    }

    fn routes(self) -> Router<AppState> {
        match self {
            Self::YtdlpApp => dialects::ytdlp_app::routes(),
            Self::Surge => dialects::surge::routes(),
            Self::Videodb => dialects::videodb::routes(),
            Self::Cloudflare => dialects::cloudflare::routes(),
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl std::str::FromStr for Dialect {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|dialect| dialect.name() == text).ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|dialect| dialect.name()).collect();
            format!("unknown API {text:?}; expected one of {}", names.join(", "))
        })
    }
}

/// Where each dialect is served on the main listener; `None` switches it off there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mounts(BTreeMap<Dialect, Option<String>>);

impl Default for Mounts {
    fn default() -> Self {
        Self(Dialect::ALL.into_iter().map(|dialect| (dialect, Some(dialect.default_mount().to_owned()))).collect())
    }
}

/// Paths of haul's own that no dialect may take.
const RESERVED: [&str; 4] = ["v1", "health", "links", "ui"];

impl Mounts {
    /// Where `dialect` is mounted, if it is.
    pub fn get(&self, dialect: Dialect) -> Option<&str> {
        self.0.get(&dialect).and_then(|mount| mount.as_deref())
    }

    /// Applies `DIALECT=/path` or `DIALECT=off`, checking the path's syntax.
    pub fn set(&mut self, spec: &str) -> Result<(), String> {
        let (name, path) =
            spec.split_once('=').ok_or_else(|| format!("--mount takes DIALECT=/path or DIALECT=off, got {spec:?}"))?;
        let dialect: Dialect = name.trim().parse()?;
        let path = path.trim();
        if path == "off" {
            self.0.insert(dialect, None);
            return Ok(());
        }
        let path = if path.len() > 1 { path.trim_end_matches('/') } else { path };
        let valid = path.starts_with('/')
            && !path.contains("//")
            && path.split('/').all(|segment| segment != "." && segment != "..")
            && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b));
        if !valid {
            return Err(format!(
                "mount path {path:?} for {dialect} must start with / and use only letters, digits, - _ . ~"
            ));
        }
        self.0.insert(dialect, Some(path.to_owned()));
        Ok(())
    }

    /// Every mounted dialect with its path.
    pub fn iter(&self) -> impl Iterator<Item = (Dialect, &str)> {
        self.0.iter().filter_map(|(dialect, mount)| mount.as_deref().map(|mount| (*dialect, mount)))
    }

    /// Checks that no two mounts overlap and none takes haul's own paths (`/v1`, `/health`, `/links`).
    pub fn validate(&self) -> Result<(), String> {
        let mounted: Vec<(Dialect, &str)> = self.iter().collect();
        let first_segment = |path: &str| path.trim_start_matches('/').split('/').next().unwrap_or("").to_owned();
        for (i, (dialect, path)) in mounted.iter().enumerate() {
            let first = first_segment(path);
            if *path != "/" && RESERVED.contains(&first.as_str()) {
                return Err(format!("{dialect} cannot be mounted at {path}: /{first} is haul's own"));
            }
            for (other, other_path) in &mounted[i + 1..] {
                let clash = match (*path, *other_path) {
                    ("/", "/") => true,
                    ("/", nested) => dialect.top_segments().contains(&first_segment(nested).as_str()),
                    (_, "/") => other.top_segments().contains(&first.as_str()),
                    (a, b) => a == b || a.starts_with(&format!("{b}/")) || b.starts_with(&format!("{a}/")),
                };
                if clash {
                    return Err(format!(
                        "{dialect} at {path} and {other} at {other_path} overlap; move one with --mount NAME=/path"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Who may call the API and how it is laid out.
#[derive(Clone)]
pub struct ApiOptions {
    /// The data directory's default account: the one dialects served without auth act for. (Its token is a
    /// bearer key in the store like any other, so revoking it takes effect at once.)
    pub account: AccountId,
    /// Signs the expiring download links of the VideoDB and Cloudflare APIs.
    pub links: LinkSigner,
    /// The base URL put in download links (`https://haul.example.com`); when `None`, the Host the client used.
    pub public_url: Option<String>,
    pub mounts: Mounts,
    /// Serve the yt-dlp web app's API without auth, acting for `account`, as the original app did.
    pub open_ytdlp_app: bool,
    /// Serve the web page at `/` and `/ui/...`.
    pub ui: bool,
    /// The API's metrics, shared by every listener made from these options.
    pub metrics: ApiMetrics,
}

impl ApiOptions {
    /// The default account, every dialect at its default mount, a random link key.
    pub fn new(account: AccountId) -> Self {
        Self {
            account,
            links: LinkSigner::new(random_key()),
            public_url: None,
            mounts: Mounts::default(),
            open_ytdlp_app: false,
            ui: true,
            metrics: ApiMetrics::default(),
        }
    }
}

/// 32 random bytes from the operating system (two v4 UUIDs carry 244 random bits).
fn random_key() -> Vec<u8> {
    let mut key = Vec::with_capacity(32);
    key.extend_from_slice(DownloadId::new_random().as_uuid().as_bytes());
    key.extend_from_slice(DownloadId::new_random().as_uuid().as_bytes());
    key
}

impl fmt::Debug for ApiOptions {
    // The link key stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiOptions")
            .field("account", &self.account)
            .field("public_url", &self.public_url)
            .field("mounts", &self.mounts)
            .field("open_ytdlp_app", &self.open_ytdlp_app)
            .finish()
    }
}

/// What every handler can reach: cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) engine: Engine,
    /// The account dialects served without auth act for.
    pub(crate) default_account: AccountId,
    /// The listening port, for `/health`.
    pub(crate) port: Option<u16>,
    pub(crate) links: Arc<LinkSigner>,
    pub(crate) public_url: Option<String>,
    pub(crate) open_ytdlp_app: bool,
    pub(crate) metrics: ApiMetrics,
}

impl AppState {
    fn new(engine: Engine, options: ApiOptions, port: Option<u16>) -> Self {
        Self {
            engine,
            default_account: options.account,
            port,
            links: Arc::new(options.links),
            public_url: options.public_url,
            open_ytdlp_app: options.open_ytdlp_app,
            metrics: options.metrics,
        }
    }
}

/// The whole API, ready to serve (`axum::serve`) or to call in tests; an error when `options.mounts` does not
/// pass [`Mounts::validate`].
pub fn router(engine: Engine, options: ApiOptions) -> Result<Router, String> {
    build(engine, options, None)
}

/// The whole API served on `port`, which `/health` reports (Surge clients read it there).
pub fn router_on_port(engine: Engine, options: ApiOptions, port: u16) -> Result<Router, String> {
    build(engine, options, Some(port))
}

/// One dialect at the root of a listener of its own (`--listen-dialect`), for clients that cannot take a base
/// path; with `/health` and the signed links its download URLs point at.
pub fn dialect_router(engine: Engine, options: ApiOptions, dialect: Dialect, port: u16) -> Router {
    let state = AppState::new(engine, options, Some(port));
    let routes = dialect.routes().route("/links/{id}/{variant}", get(links::serve_link));
    let routes = if dialect == Dialect::Surge {
        // The other dialects bring their own fallback, in their own error shape.
        routes.route("/health", get(system::health)).fallback(dialects::surge::unknown_route)
    } else {
        routes.route("/health", get(system::health))
    };
    routes
        .route_layer(axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(axum::middleware::from_fn(linger::lingering))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// `/metrics` without a token, and `/health`, for a listener of their own (`--metrics-listen`) that only the
/// operator's Prometheus reaches.
pub fn metrics_router(engine: Engine, options: ApiOptions) -> Router {
    let state = AppState::new(engine, options, None);
    Router::new()
        .route("/metrics", get(metrics::open_metrics))
        .route("/health", get(system::health))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

fn build(engine: Engine, options: ApiOptions, port: Option<u16>) -> Result<Router, String> {
    options.mounts.validate().map_err(|error| format!("invalid API mounts: {error}"))?;
    let mounts = options.mounts.clone();
    let with_ui = options.ui;
    let state = AppState::new(engine, options, port);
    // Rendered once: the document is fixed for the life of the binary.
    let openapi: Arc<str> = ApiDoc::openapi().to_pretty_json().unwrap_or_else(|_| "{}".to_owned()).into();
    let serve_openapi = move || {
        let document = openapi.clone();
        async move { ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], document.to_string()) }
    };
    let mut router = Router::new()
        .route("/health", get(system::health))
        .route("/v1/openapi.json", get(serve_openapi))
        .route("/v1/stats", get(system::stats))
        .route("/v1/nodes", get(system::nodes))
        .route("/v1/settings", get(settings::get).patch(settings::patch))
        .route("/v1/downloads", get(downloads::list).post(downloads::create))
        .route("/v1/downloads/{id}", get(downloads::get).patch(downloads::patch).delete(downloads::remove))
        .route("/v1/downloads/{id}/pause", post(downloads::pause))
        .route("/v1/downloads/{id}/resume", post(downloads::resume))
        .route("/v1/downloads/{id}/cancel", post(downloads::cancel))
        .route("/v1/downloads/{id}/retry", post(downloads::retry))
        // `get` answers HEAD too; the handler skips opening a body for it.
        .route("/v1/downloads/{id}/file", get(files::file))
        .route("/v1/downloads/{id}/thumbnail", get(media::thumbnail))
        .route("/v1/downloads/{id}/subtitles/{lang}", get(media::subtitle))
        .route("/v1/downloads/{id}/renditions", get(media::list))
        .route("/v1/downloads/{id}/renditions/{name}", get(media::get).post(media::request).delete(media::remove))
        .route("/v1/downloads/{id}/renditions/{name}/file", get(media::file))
        .route("/v1/downloads/{id}/link", post(links::create_link))
        .route("/v1/downloads/{id}/transfer", get(downloads::transfer))
        .route("/v1/events", get(events::events))
        .route("/v1/session", get(session::current).post(session::sign_in).delete(session::sign_out))
        .route("/v1/keys", get(keys::list).post(keys::create))
        .route("/v1/keys/{id}", axum::routing::delete(keys::revoke))
        .route("/v1/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/v1/webhooks/{id}", get(webhooks::get).delete(webhooks::remove))
        .route("/v1/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/v1/rules", get(rules::list).post(rules::create))
        .route("/v1/rules/{id}", get(rules::get).patch(rules::update).delete(rules::remove))
        .route("/v1/archive", get(archive::list).delete(archive::clear))
        .route("/v1/archive/{id}", axum::routing::delete(archive::remove))
        .route("/v1/cookies", get(cookies::list).put(cookies::put).delete(cookies::clear))
        .route("/links/{id}/{variant}", get(links::serve_link));
    if with_ui {
        router = router.route("/", get(ui::index)).route("/ui/{*path}", get(ui::asset));
    }
    // Compatibility dialects, each under its mount; one at `/` shares the root.
    for (dialect, mount) in mounts.iter() {
        router = if mount == "/" { router.merge(dialect.routes()) } else { router.nest(mount, dialect.routes()) };
    }
    let track = axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track);
    Ok(router
        .route("/metrics", get(metrics::metrics))
        // After routing, so each request is counted under its route's pattern.
        .route_layer(track)
        // After the routes: axum attaches this to the routes that exist when it is called.
        .method_not_allowed_fallback(error::wrong_method)
        .fallback(error::unknown_route)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(axum::middleware::from_fn(linger::lingering))
        .layer(TraceLayer::new_for_http())
        .with_state(state))
}
