//! `/v1/rules`: the caller's rules (categories), made, listed, renamed or moved, and removed. On every add, the
//! first rule by position that the download matches gives it its directory and priority where the request gave
//! none. Another account's rule is not found.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use haul_engine::service::{RulePatchRequest, RuleRequest};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, listed_id};
use crate::wire::{CreateRule, Rule, RuleList, UpdateRule};

/// Adds a rule to the caller's account. Downloads added from then on that match it (and no rule before it) go
/// to its `directory` unless their request names one, and get its `priority` unless their request gives one.
#[utoipa::path(post, path = "/v1/rules", tag = "rules", request_body = CreateRule, security(("bearer" = [])),
    responses(
        (status = 201, body = Rule, headers(("Location" = String))),
        (status = 400, description = "No condition or no effect, a directory outside the downloads directory, a \
            host that is not a host name, a bad file type, a priority out of range", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateRule>,
) -> Result<impl IntoResponse, ApiError> {
    let request = RuleRequest {
        position: body.position,
        name: body.name,
        host: body.host,
        url_pattern: body.url_pattern,
        extensions: body.extensions,
        directory: body.directory,
        priority: body.priority,
    };
    let rule = state.engine.add_rule(&caller.account, request).await?;
    let location = HeaderValue::from_str(&format!("/v1/rules/{}", rule.id)).map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(Rule::from(rule))))
}

/// The caller's rules in the order they are tried.
#[utoipa::path(get, path = "/v1/rules", tag = "rules", security(("bearer" = [])),
    responses((status = 200, body = RuleList)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<RuleList>, ApiError> {
    let rules = state.engine.rules(&caller.account).await?;
    Ok(Json(RuleList { rules: rules.into_iter().map(Rule::from).collect() }))
}

/// One of the caller's rules.
#[utoipa::path(get, path = "/v1/rules/{id}", tag = "rules", params(("id" = String, Path, format = Uuid)),
    security(("bearer" = [])),
    responses((status = 200, body = Rule), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Rule>, ApiError> {
    let id = listed_id(id, "rule", "/v1/rules")?;
    Ok(Json(state.engine.rule(&caller.account, &id).await?.into()))
}

/// Renames or moves one of the caller's rules; the rules in between shift by one.
#[utoipa::path(patch, path = "/v1/rules/{id}", tag = "rules", request_body = UpdateRule,
    params(("id" = String, Path, format = Uuid)), security(("bearer" = [])),
    responses((status = 200, body = Rule), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UpdateRule>,
) -> Result<Json<Rule>, ApiError> {
    let id = listed_id(id, "rule", "/v1/rules")?;
    let request = RulePatchRequest { name: body.name, position: body.position };
    Ok(Json(state.engine.update_rule(&caller.account, &id, request).await?.into()))
}

/// Removes one of the caller's rules; the downloads it placed stay where they are.
#[utoipa::path(delete, path = "/v1/rules/{id}", tag = "rules", params(("id" = String, Path, format = Uuid)),
    security(("bearer" = [])),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = listed_id(id, "rule", "/v1/rules")?;
    state.engine.remove_rule(&caller.account, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
