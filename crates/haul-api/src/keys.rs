//! `/v1/keys`: the caller's own API keys, listed, made and revoked (the web page's key settings). A key's secret
//! is shown once, when it is made; only its hash and first characters are kept.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use haul_core::account::{KeyKind, new_secret};
use haul_engine::service::KeyView;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::wire::parse_name;

/// One key as listed.
#[derive(Serialize, ToSchema)]
pub struct Key {
    /// A UUID: what `DELETE /v1/keys/{id}` takes.
    id: String,
    /// `bearer` (the native API, Surge, the yt-dlp web app, Cloudflare tokens), `videodb` or `cloudflare-global`.
    kind: String,
    /// The secret's first characters, to tell keys apart.
    prefix: String,
    /// Unix milliseconds.
    created_at: i64,
    revoked_at: Option<i64>,
}

impl From<KeyView> for Key {
    fn from(key: KeyView) -> Self {
        let KeyView { id, kind, prefix, created_at, revoked_at } = key;
        Self { id, kind: kind.to_string(), prefix, created_at, revoked_at }
    }
}

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    /// Oldest first, revoked ones included.
    keys: Vec<Key>,
}

/// `POST /v1/keys`.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// `bearer` when absent.
    #[schema(value_type = Option<crate::wire::KeyKindName>)]
    kind: Option<String>,
}

/// A new key with its secret, which is not shown again.
#[derive(Serialize, ToSchema)]
pub struct NewKey {
    #[serde(flatten)]
    key: Key,
    secret: String,
}

/// The caller's keys.
#[utoipa::path(get, path = "/v1/keys", tag = "keys", security(("bearer" = [])),
    responses((status = 200, body = KeyList)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<KeyList>, ApiError> {
    let keys = state.engine.keys(&caller.account).await?;
    Ok(Json(KeyList { keys: keys.into_iter().map(Key::from).collect() }))
}

/// Makes a key of the caller's account; its `secret` is in this answer only.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = CreateKey, security(("bearer" = [])),
    responses((status = 201, body = NewKey), (status = 400, description = "Unknown kind", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateKey>,
) -> Result<(StatusCode, Json<NewKey>), ApiError> {
    let kind = parse_name::<KeyKind>(body.kind.as_deref())?.unwrap_or(KeyKind::Bearer);
    let secret = new_secret(kind);
    let key = state.engine.add_key(&caller.account, kind, &secret).await?;
    Ok((StatusCode::CREATED, Json(NewKey { key: key.into(), secret })))
}

/// Revokes one of the caller's keys at once (sessions opened with it end too); another account's key is not
/// found.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys", params(("id" = String, Path, format = Uuid)),
    security(("bearer" = [])),
    responses((status = 200, body = Key), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(key_id): Path<String>,
) -> Result<Json<Key>, ApiError> {
    let valid = key_id.len() == 36 && key_id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if !valid {
        return Err(ApiError::not_found(format!("key {key_id:?} not found; ids are the UUIDs GET /v1/keys lists")));
    }
    Ok(Json(state.engine.revoke_key(&caller.account, &key_id).await?.into()))
}
