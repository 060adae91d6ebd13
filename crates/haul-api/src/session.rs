//! `/v1/session`: the web page's sign-in. A key (the data directory's token or any bearer key) is exchanged for
//! a session cookie, so the key itself is never kept by the browser (not in localStorage, not in the page).
//!
//! The cookie is `haul_session`: HttpOnly (no script reads it), SameSite=Strict (no other site's page sends
//! it), `Secure` when the page was reached over HTTPS, and it expires after [`SESSION_TTL`]. Only the hash of
//! its secret is stored, with the key it stands for: signing out, the expiry, or revoking that key ends it.
//!
//! A request authenticated by the cookie that changes anything (any method but GET, HEAD and OPTIONS) must also
//! carry `X-Requested-With: haul` and, when it has an `Origin`, come from this server's own origin: another
//! site cannot add such a header without a CORS preflight, which haul never grants (see [`check_csrf`]).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;

/// The session cookie's name.
pub const COOKIE: &str = "haul_session";
/// How long a session lasts: a week, then the page asks for the key again.
pub const SESSION_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// The header (and value) a cookie-authenticated request that changes something must carry.
pub const CSRF_HEADER: &str = "x-requested-with";
pub const CSRF_VALUE: &str = "haul";

/// `POST /v1/session`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// An API key of the account: the data directory's token or a bearer key (`haul key create`).
    #[schema(min_length = 1, max_length = 1000)]
    key: String,
}

/// Who is signed in.
#[derive(Serialize, ToSchema)]
pub struct Session {
    /// The account's id (32 hex digits).
    account: String,
    /// The account's name.
    name: String,
    /// When the session ends, unix milliseconds; absent for a request made with a bearer key.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    /// The id of the key the session was opened with (revoking it signs the page out); absent for a request
    /// made with a bearer key.
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
}

/// Opens a session with an API key and sets it as the `haul_session` cookie (HttpOnly, SameSite=Strict).
#[utoipa::path(post, path = "/v1/session", tag = "session", request_body = SignIn,
    responses(
        (status = 200, body = Session, headers(("Set-Cookie" = String, description = "haul_session=...; HttpOnly"))),
        (status = 400, description = "Not a JSON object with a key", body = ErrorBody),
        (status = 401, description = "Not a live bearer key", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
    ))]
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SignIn>,
) -> Result<Response, ApiError> {
    let key = body.key.trim();
    let opened = if key.is_empty() || key.len() > 1000 { None } else { state.engine.sign_in(key, SESSION_TTL).await? };
    let Some((secret, session)) = opened else {
        return Err(ApiError::unauthorized(
            "that key opens no account: paste the server's token (haul token) or a key from haul key create",
        ));
    };
    let secure = if over_https(&state, &headers) { "; Secure" } else { "" };
    let cookie =
        format!("{COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", SESSION_TTL.as_secs());
    let cookie = HeaderValue::from_str(&cookie).map_err(ApiError::internal)?;
    let body = Session {
        account: session.account.to_string(),
        name: session.name,
        expires_at: Some(session.expires_at),
        key_id: Some(session.key_id),
    };
    Ok(([(header::SET_COOKIE, cookie), (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))], Json(body))
        .into_response())
}

/// Who the request acts for: the session's account (with its expiry), or a bearer key's.
#[utoipa::path(get, path = "/v1/session", tag = "session", security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = Session), (status = 401, body = ErrorBody)))]
pub async fn current(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Json<Session>, ApiError> {
    let session = match cookie_secret(&headers) {
        Some(secret) if headers.get(header::AUTHORIZATION).is_none() => state.engine.session(secret).await?,
        _ => None,
    };
    let name = state.engine.account_name(&caller.account).await?;
    let (expires_at, key_id) = session.map(|session| (session.expires_at, session.key_id)).unzip();
    Ok(Json(Session { account: caller.account.to_string(), name, expires_at, key_id }))
}

/// Ends the session and clears the cookie; without one, there is nothing to end (204 all the same).
#[utoipa::path(delete, path = "/v1/session", tag = "session",
    responses((status = 204, description = "Signed out"), (status = 403, body = ErrorBody)))]
pub async fn sign_out(State(state): State<AppState>, method: Method, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(secret) = cookie_secret(&headers) {
        check_csrf(&method, &headers)?;
        state.engine.sign_out(secret).await?;
    }
    let clear = HeaderValue::from_static("haul_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear)]).into_response())
}

/// The session secret of the request's `haul_session` cookie.
pub(crate) fn cookie_secret(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// The account of the request's session cookie, checked against cross-site requests; `None` without a cookie.
pub(crate) async fn cookie_caller(parts: &Parts, state: &AppState) -> Result<Option<Caller>, ApiError> {
    let Some(secret) = cookie_secret(&parts.headers) else { return Ok(None) };
    check_csrf(&parts.method, &parts.headers)?;
    match state.engine.session_account(secret).await? {
        Some(account) => Ok(Some(Caller { account })),
        None => {
            Err(ApiError::unauthorized("the session has ended (signed out, expired or its key revoked); sign in again"))
        }
    }
}

/// A cookie-authenticated request that changes something must come from haul's own page: `X-Requested-With:
/// haul` (which a cross-site form or image cannot send, and a cross-site script only after a preflight haul
/// refuses) and, when the browser says where it comes from, an `Origin` of this server.
pub(crate) fn check_csrf(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let marked =
        headers.get(CSRF_HEADER).is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(CSRF_VALUE.as_bytes()));
    if !marked {
        return Err(ApiError::forbidden(
            "a request signed in by cookie that changes something needs the header X-Requested-With: haul (haul's \
             page sends it); scripts and other tools should send Authorization: Bearer KEY instead",
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|host| host.to_str().ok()).unwrap_or_default();
        let origin = origin.to_str().unwrap_or_default();
        let authority = origin.split_once("://").map(|(_, rest)| rest).unwrap_or_default();
        if host.is_empty() || !authority.eq_ignore_ascii_case(host) {
            return Err(ApiError::forbidden(format!(
                "a request from the page at {origin:?} cannot act on this server's session; open haul's page at \
                 this server's own address"
            )));
        }
    }
    Ok(())
}

/// Whether the client reached haul over HTTPS: the public URL says so, or a proxy in front of haul does.
fn over_https(state: &AppState, headers: &HeaderMap) -> bool {
    state.public_url.as_deref().is_some_and(|url| url.starts_with("https://"))
        || headers.get("x-forwarded-proto").is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"https"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (header::HeaderName::from_static(name), HeaderValue::from_static(value)))
            .collect()
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        assert_eq!(cookie_secret(&headers(&[("cookie", "a=1; haul_session=abc; b=2")])), Some("abc"));
        assert_eq!(cookie_secret(&headers(&[("cookie", "haul_session=")])), None);
        assert_eq!(cookie_secret(&headers(&[("cookie", "xhaul_session=abc")])), None);
        assert_eq!(cookie_secret(&headers(&[])), None);
    }

    #[test]
    fn changes_need_the_marker_and_a_same_origin() {
        let post = Method::POST;
        assert!(check_csrf(&Method::GET, &headers(&[])).is_ok());
        assert!(check_csrf(&post, &headers(&[])).is_err());
        assert!(check_csrf(&post, &headers(&[("x-requested-with", "haul"), ("host", "h:1700")])).is_ok());
        let same = [("x-requested-with", "haul"), ("host", "h:1700"), ("origin", "http://h:1700")];
        assert!(check_csrf(&post, &headers(&same)).is_ok());
        let other = [("x-requested-with", "haul"), ("host", "h:1700"), ("origin", "http://evil:1700")];
        assert!(check_csrf(&post, &headers(&other)).is_err());
        let null = [("x-requested-with", "haul"), ("host", "h:1700"), ("origin", "null")];
        assert!(check_csrf(&Method::DELETE, &headers(&null)).is_err());
    }
}
