//! Endpoints about the server rather than one download: health, statistics and the OpenAPI document.

use axum::Json;
use axum::extract::State;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::wire::{Health, Stats};

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
        crate::media::request,
        crate::media::list,
        crate::media::get,
        crate::media::remove,
        crate::media::file,
        crate::events::events,
    ),
    modifiers(&BearerScheme),
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme that the paths refer to.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
