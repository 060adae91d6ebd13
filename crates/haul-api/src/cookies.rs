//! `/v1/cookies`: the caller's cookie jar. `PUT` takes a Netscape cookies.txt as the body (any content type) and
//! replaces the jar's cookies of each domain it names; `GET` lists the cookies without their values; `DELETE`
//! empties the jar, or one domain of it. The jar's cookies go with the caller's downloads only: haul's requests
//! to the matching hosts and paths, and yt-dlp's reading of a page.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::QueryParams;
use crate::wire::{CookieList, CookiesImported, Forgotten, StoredCookie};

/// Puts a Netscape cookies.txt (as browsers' "export cookies" extensions and yt-dlp write it) into the caller's
/// jar: for each domain the file names, the jar's cookies of that domain are replaced by the file's. A file with
/// a line that is not a cookie haul keeps is refused whole (400 naming the line): a malformed line, binary bytes,
/// a domain of `.` or a top-level domain alone, a value that cannot be sent in a header.
#[utoipa::path(put, path = "/v1/cookies", tag = "cookies", security(("bearer" = [])),
    request_body(content = String, content_type = "text/plain",
        description = "A Netscape cookies.txt: one cookie a line, 7 tab-separated fields (domain, subdomains \
            TRUE/FALSE, path, secure TRUE/FALSE, expiry in unix seconds or 0, name, value); `#` comments and \
            `#HttpOnly_` lines as browsers write them. At most 1 MiB and 10,000 cookies per account."),
    responses(
        (status = 200, body = CookiesImported),
        (status = 400, description = "A line that is not a cookie haul keeps, named", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
    ))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<CookiesImported>, ApiError> {
    let body = body?;
    let imported = state.engine.import_cookies(&caller.account, &body).await?;
    Ok(Json(CookiesImported { imported: imported.imported, domains: imported.domains }))
}

/// The caller's cookies, without their values.
#[utoipa::path(get, path = "/v1/cookies", tag = "cookies", security(("bearer" = [])),
    responses((status = 200, body = CookieList)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<CookieList>, ApiError> {
    let cookies = state.engine.cookies(&caller.account).await?;
    Ok(Json(CookieList { cookies: cookies.into_iter().map(StoredCookie::from).collect() }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ClearQuery {
    /// Only this domain's cookies (exactly this domain; a leading dot and case ignored).
    #[param(max_length = 253, example = "example.com")]
    domain: Option<String>,
}

/// Removes the caller's cookies: all of them, or one domain's.
#[utoipa::path(delete, path = "/v1/cookies", tag = "cookies", params(ClearQuery), security(("bearer" = [])),
    responses((status = 200, body = Forgotten, description = "How many cookies were removed")))]
pub async fn clear(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ClearQuery>,
) -> Result<Json<Forgotten>, ApiError> {
    let removed = state.engine.clear_cookies(&caller.account, query.domain.as_deref()).await?;
    Ok(Json(Forgotten { removed }))
}
