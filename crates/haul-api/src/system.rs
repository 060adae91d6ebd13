//! Endpoints about the server rather than one download: health, statistics and the OpenAPI document.

use axum::Json;
use axum::extract::State;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::wire::{Health, Nodes, Stats};

/// Liveness; public, so load balancers need no token. Also Surge's `/health` (`{"status": "ok", "port": N}`).
#[utoipa::path(get, path = "/health", tag = "system", responses((status = 200, body = Health)))]
pub async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health { status: "ok".to_owned(), port: state.port })
}

/// The caller's downloads per state and their combined speed.
#[utoipa::path(get, path = "/v1/stats", tag = "system", security(("bearer" = [])),
    responses((status = 200, body = Stats), (status = 401, body = ErrorBody)))]
pub async fn stats(State(state): State<AppState>, caller: Caller) -> Result<Json<Stats>, ApiError> {
    Ok(Json(state.engine.stats(&caller.account).await?.into()))
}

/// The nodes sharing this server's database, most recently seen first: one with SQLite, as many as run with
/// PostgreSQL. A node that stopped stays listed with its last heartbeat.
#[utoipa::path(get, path = "/v1/nodes", tag = "system", security(("bearer" = [])),
    responses((status = 200, body = Nodes), (status = 401, body = ErrorBody)))]
pub async fn nodes(State(state): State<AppState>, _caller: Caller) -> Result<Json<Nodes>, ApiError> {
    let nodes = state.engine.nodes().await?;
    Ok(Json(Nodes { nodes: nodes.into_iter().map(Into::into).collect() }))
}

/// This document. Public: it describes the API, not anyone's data, and clients generate code from it before
/// they have a token.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "system",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
#[allow(dead_code)] // Served by a closure over the pre-rendered document; this function only carries the docs.
pub async fn openapi_json() {}

#[derive(OpenApi)]
#[openapi(
    info(title = "haul", description = "haul's native download API. Every endpoint except /health and \
        /v1/openapi.json needs `Authorization: Bearer TOKEN`. Every error is `{\"error\": {\"code\", \"message\"}}`."),
    paths(
        health,
        openapi_json,
        stats,
        nodes,
        crate::settings::get,
        crate::settings::patch,
        crate::downloads::create,
        crate::downloads::list,
        crate::downloads::get,
        crate::downloads::pause,
        crate::downloads::resume,
        crate::downloads::retry,
        crate::downloads::cancel,
        crate::downloads::patch,
        crate::downloads::remove,
        crate::files::file,
        crate::media::thumbnail,
        crate::media::subtitle,
        crate::media::request,
        crate::media::list,
        crate::media::get,
        crate::media::remove,
        crate::media::file,
        crate::events::events,
        crate::links::create_link,
        crate::downloads::transfer,
        crate::session::sign_in,
        crate::session::current,
        crate::session::sign_out,
        crate::keys::list,
        crate::keys::create,
        crate::keys::revoke,
        crate::webhooks::create,
        crate::webhooks::list,
        crate::webhooks::get,
        crate::webhooks::remove,
        crate::webhooks::deliveries,
        crate::rules::create,
        crate::rules::list,
        crate::rules::get,
        crate::rules::update,
        crate::rules::remove,
        crate::archive::list,
        crate::archive::remove,
        crate::archive::clear,
        crate::cookies::put,
        crate::cookies::list,
        crate::cookies::clear,
    ),
    components(schemas(crate::media::RenditionNameSchema, crate::wire::OrderName)),
    modifiers(&BearerScheme, &CommonResponses),
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme that the paths refer to.
struct BearerScheme;

/// The answers every operation can give besides its own, written once instead of on each handler: 401 where a
/// token is needed, 400 where the path holds an id, 413 and 415 where there is a JSON body, 429 when adding.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                (false, item.get.as_mut()),
                (true, item.post.as_mut()),
                (true, item.patch.as_mut()),
                (true, item.delete.as_mut()),
                (true, item.put.as_mut()),
                (false, item.head.as_mut()),
            ];
            for (changes, operation) in operations.into_iter().filter_map(|(changes, op)| op.map(|op| (changes, op))) {
                let responses = &mut operation.responses.responses;
                let mut add = |status: &str, description: &str| {
                    responses.entry(status.to_owned()).or_insert_with(|| error(description).into());
                };
                if let Some(security) = operation.security.as_mut() {
                    add("401", "Missing, wrong or revoked token");
                    // Every operation a key opens, the page's session opens too.
                    let cookie = utoipa::openapi::security::SecurityRequirement::new("cookie", Vec::<String>::new());
                    if !security.contains(&cookie) {
                        security.push(cookie);
                    }
                    if changes {
                        add("403", "Signed in by cookie without X-Requested-With: haul, or from another origin");
                    }
                }
                if path.contains("{id}") {
                    add("400", "The id is not a hyphenated UUID, or another parameter is malformed");
                }
                // A body of another type (a cookies.txt) is taken whatever its Content-Type says.
                let json = operation.request_body.as_ref().map(|body| body.content.contains_key("application/json"));
                if json.is_some() {
                    add("400", "The body is not the JSON asked for");
                    add("413", "The body is over the size limit");
                }
                if json == Some(true) {
                    add("415", "The body is not sent as application/json");
                }
            }
        }
        if let Some(create) = openapi.paths.paths.get_mut("/v1/downloads").and_then(|item| item.post.as_mut()) {
            create
                .responses
                .responses
                .entry("429".to_owned())
                .or_insert_with(|| error("The account keeps as many downloads as the server allows").into());
        }
        if let Some(patch) = openapi.paths.paths.get_mut("/v1/downloads/{id}").and_then(|item| item.patch.as_mut()) {
            patch.responses.responses.entry("403".to_owned()).or_insert_with(|| {
                error("A literal address the server does not fetch from (loopback, private, ...)").into()
            });
        }
    }
}

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // The web page's session (POST /v1/session); a request with it that changes something also needs
        // `X-Requested-With: haul`.
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(
                utoipa::openapi::security::ApiKeyValue::with_description(
                    crate::session::COOKIE,
                    "Set by POST /v1/session; with any method but GET and HEAD, send X-Requested-With: haul too",
                ),
            )),
        );
    }
}
