//! `GET` and `PATCH /v1/settings`: the server's bandwidth (a limit for every download together, limits per host,
//! and a schedule), changed while downloads run. Server-wide, so the operator's token only.

use axum::Json;
use axum::extract::State;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::wire::{PatchSettings, Settings};

fn operator_only(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    if caller.account != state.default_account {
        return Err(ApiError::forbidden(
            "the bandwidth settings are the server's, shared by every account: use the server's own token (haul \
             token); a download's own limit is its speed_limit (PATCH /v1/downloads/{id})",
        ));
    }
    Ok(())
}

/// The bandwidth settings and what holds now.
#[utoipa::path(get, path = "/v1/settings", tag = "system", security(("bearer" = [])),
    responses((status = 200, body = Settings), (status = 403, body = ErrorBody)))]
pub async fn get(State(state): State<AppState>, caller: Caller) -> Result<Json<Settings>, ApiError> {
    operator_only(&state, &caller)?;
    Ok(Json(state.engine.bandwidth().into()))
}

/// Changes the bandwidth settings; running downloads take them up at once. They are stored, so they hold after
/// a restart (a flag given to `haul serve` then wins), and every node sharing the database applies them.
#[utoipa::path(patch, path = "/v1/settings", tag = "system", security(("bearer" = [])),
    request_body = PatchSettings,
    responses((status = 200, body = Settings), (status = 403, body = ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<PatchSettings>,
) -> Result<Json<Settings>, ApiError> {
    operator_only(&state, &caller)?;
    Ok(Json(state.engine.update_bandwidth(body.into_patch()?).await?.into()))
}
