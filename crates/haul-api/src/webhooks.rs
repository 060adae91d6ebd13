//! `/v1/webhooks`: the caller's webhooks, made, listed and removed, and each one's deliveries. A webhook's secret
//! is shown once, when it is made. Another account's webhook is not found.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use haul_engine::service::{MAX_DELIVERIES_LISTED, WebhookRequest};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, QueryParams, listed_id};
use crate::wire::{CreateWebhook, CreatedWebhook, Delivery, DeliveryList, Webhook, WebhookList};

/// Deliveries listed when the client does not say.
const DEFAULT_DELIVERIES: u32 = 100;

/// Adds a webhook to the caller's account; its `secret` is in this answer only. Each change of state of the
/// account's downloads that it asks for is POSTed to `url`, signed (`Haul-Signature`), and retried for a day
/// until answered with a 2xx.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = CreateWebhook, security(("bearer" = [])),
    responses(
        (status = 201, body = CreatedWebhook, headers(("Location" = String))),
        (status = 400, description = "Malformed URL, unknown event, bad secret", body = ErrorBody),
        (status = 403, description = "A literal address the server does not reach (loopback, private, ...)", body = ErrorBody),
        (status = 422, description = "Not an http or https URL", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateWebhook>,
) -> Result<impl IntoResponse, ApiError> {
    let request = WebhookRequest { url: body.url, events: body.events.unwrap_or_default(), secret: body.secret };
    let (webhook, secret) = state.engine.add_webhook(&caller.account, request).await?;
    let location = HeaderValue::from_str(&format!("/v1/webhooks/{}", webhook.id)).map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(CreatedWebhook { webhook: webhook.into(), secret })))
}

/// The caller's webhooks, oldest first.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, body = WebhookList)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<WebhookList>, ApiError> {
    let webhooks = state.engine.webhooks(&caller.account).await?;
    Ok(Json(WebhookList { webhooks: webhooks.into_iter().map(Webhook::from).collect() }))
}

/// One of the caller's webhooks (without its secret).
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path, format = Uuid)),
    security(("bearer" = [])),
    responses((status = 200, body = Webhook), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Webhook>, ApiError> {
    let id = listed_id(id, "webhook", "/v1/webhooks")?;
    Ok(Json(state.engine.webhook(&caller.account, &id).await?.into()))
}

/// Removes one of the caller's webhooks; deliveries not yet made are dropped.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path, format = Uuid)),
    security(("bearer" = [])),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = listed_id(id, "webhook", "/v1/webhooks")?;
    state.engine.remove_webhook(&caller.account, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// At most this many: 1 to 1000, 100 when absent.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// A webhook's deliveries, newest first: each event's state, attempts, and the last attempt's status or error.
/// Finished deliveries are kept for a week.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, format = Uuid), DeliveriesQuery), security(("bearer" = [])),
    responses((status = 200, body = DeliveryList), (status = 404, body = ErrorBody)))]
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<DeliveriesQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    let id = listed_id(id, "webhook", "/v1/webhooks")?;
    let limit = query.limit.unwrap_or(DEFAULT_DELIVERIES);
    if !(1..=MAX_DELIVERIES_LISTED).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be between 1 and {MAX_DELIVERIES_LISTED}, got {limit}")));
    }
    let deliveries = state.engine.webhook_deliveries(&caller.account, &id, limit).await?;
    Ok(Json(DeliveryList { deliveries: deliveries.into_iter().map(Delivery::from).collect() }))
}
