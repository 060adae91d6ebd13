//! Who is calling: the one place that turns a request's credentials into the [`AccountId`] it acts for.
//!
//! A request proves who it is with `Authorization: Bearer KEY`, or, from the web page, with the session cookie
//! that signing in with a key opened (`crate::session`). Every bearer key, the data directory's token included, is looked up in the store by the hash of its secret,
//! so revoking one (`haul key revoke`) takes effect on the next request, and after a restart. Handlers just take
//! a `Caller`.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use haul_core::account::KeyKind;
use haul_core::job::AccountId;
use haul_engine::service::ServiceError;

use crate::AppState;
use crate::error::ApiError;

/// The authenticated caller of a request; taking it as a handler argument is what makes an endpoint private.
pub struct Caller {
    pub account: AccountId,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            // The web page's session cookie (see `session`), when there is no key.
            if let Some(caller) = crate::session::cookie_caller(parts, state).await? {
                return Ok(caller);
            }
            return Err(ApiError::unauthorized("missing Authorization header; send Authorization: Bearer TOKEN"));
        };
        let token = bearer_token(value.as_bytes())
            .ok_or_else(|| ApiError::unauthorized("Authorization must use the Bearer scheme: Bearer TOKEN"))?;
        match bearer_account(state, token).await? {
            Some(account) => Ok(Self { account }),
            None => Err(ApiError::unauthorized("invalid token")),
        }
    }
}

/// The account a bearer token acts for: a live bearer key in the store, found by the hash of its secret.
pub(crate) async fn bearer_account(state: &AppState, token: &[u8]) -> Result<Option<AccountId>, ServiceError> {
    let Ok(secret) = std::str::from_utf8(token) else { return Ok(None) };
    if secret.is_empty() {
        return Ok(None);
    }
    state.engine.account_for_key(secret, &[KeyKind::Bearer]).await
}

/// The data directory's default account: the one dialects served without auth act for.
pub(crate) fn default_account(state: &AppState) -> AccountId {
    state.default_account.clone()
}

/// The token of `Bearer TOKEN`; the scheme name is case-insensitive (RFC 7235).
pub(crate) fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then(|| rest.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_token_cases() {
        let cases: [(&[u8], Option<&[u8]>); 6] = [
            (b"Bearer abc", Some(b"abc")),
            (b"bearer abc", Some(b"abc")),
            (b"BEARER  abc ", Some(b"abc")),
            (b"Basic abc", None),
            (b"Bearer", None),
            (b"Bearerabc", None),
        ];
        for (value, expected) in cases {
            assert_eq!(bearer_token(value), expected, "{:?}", String::from_utf8_lossy(value));
        }
    }
}
