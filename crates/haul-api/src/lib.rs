//! haul's HTTP API: the native `/v1` JSON API over the [`Engine`], with bearer auth, server-sent events,
//! file downloads and an OpenAPI document.
//!
//! **API boundary**: [`router`]. Only this crate knows HTTP status codes and the wire JSON; handlers call the
//! `Engine` handle, never the store.

mod auth;
mod dialects;
mod downloads;
mod error;
mod events;
mod extract;
mod files;
mod system;
#[cfg(feature = "testing")]
pub mod testing;
mod wire;

use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};
use haul_core::job::AccountId;
use haul_engine::service::Engine;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi as _;

pub use error::ApiError;
pub use system::ApiDoc;

/// The largest JSON request body accepted; more is answered 413. Requests are a URL and a few options.
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// Who may call the API. For now one token, acting as one account.
#[derive(Clone)]
pub struct ApiOptions {
    /// The bearer token; an empty token refuses every authenticated request.
    pub token: String,
    /// The account the token acts for.
    pub account: AccountId,
}

impl fmt::Debug for ApiOptions {
    // The token stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiOptions").field("token", &"<redacted>").field("account", &self.account).finish()
    }
}

/// What every handler can reach: cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) engine: Engine,
    pub(crate) auth: Arc<auth::Auth>,
    /// The listening port, for `/health`.
    pub(crate) port: Option<u16>,
}

/// The whole API, ready to serve (`axum::serve`) or to call in tests.
pub fn router(engine: Engine, options: ApiOptions) -> Router {
    build(engine, options, None)
}

/// The whole API served on `port`, which `/health` reports (Surge clients read it there).
pub fn router_on_port(engine: Engine, options: ApiOptions, port: u16) -> Router {
    build(engine, options, Some(port))
}

fn build(engine: Engine, options: ApiOptions, port: Option<u16>) -> Router {
    let state = AppState { engine, auth: Arc::new(auth::Auth::new(options.token, options.account)), port };
    // Rendered once: the document is fixed for the life of the binary.
    let openapi: Arc<str> = ApiDoc::openapi().to_pretty_json().unwrap_or_else(|_| "{}".to_owned()).into();
    let serve_openapi = move || {
        let document = openapi.clone();
        async move { ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], document.to_string()) }
    };
    Router::new()
        .route("/health", get(system::health))
        .route("/v1/openapi.json", get(serve_openapi))
        .route("/v1/stats", get(system::stats))
        .route("/v1/downloads", get(downloads::list).post(downloads::create))
        .route("/v1/downloads/{id}", get(downloads::get).patch(downloads::patch).delete(downloads::remove))
        .route("/v1/downloads/{id}/pause", post(downloads::pause))
        .route("/v1/downloads/{id}/resume", post(downloads::resume))
        .route("/v1/downloads/{id}/cancel", post(downloads::cancel))
        // `get` answers HEAD too; the handler skips opening a body for it.
        .route("/v1/downloads/{id}/file", get(files::file))
        .route("/v1/events", get(events::events))
        // Compatibility dialects; Surge lives at the root.
        .merge(dialects::surge::routes())
        // After the routes: axum attaches this to the routes that exist when it is called.
        .method_not_allowed_fallback(error::wrong_method)
        .fallback(error::unknown_route)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
