//! Who is calling: the one place that turns a request's credentials into the [`AccountId`] it acts for.
//!
//! The data directory's token (held in memory, compared in constant time) acts for the default account; every
//! other bearer key is looked up in the store by the hash of its secret. Handlers just take a `Caller`.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use haul_core::account::KeyKind;
use haul_core::job::AccountId;
use haul_engine::service::ServiceError;
use subtle::ConstantTimeEq as _;

use crate::AppState;
use crate::error::ApiError;

/// The credentials the server accepts.
pub(crate) struct Auth {
    token: Vec<u8>,
    account: AccountId,
}

impl Auth {
    pub(crate) fn new(token: String, account: AccountId) -> Self {
        Self { token: token.into_bytes(), account }
    }

    /// The account `presented` authenticates, if any. The comparison takes the same time wherever the first
    /// differing byte is, so the token cannot be guessed byte by byte from response times (its length can,
    /// which tells an attacker nothing useful about a random token).
    fn account_for(&self, presented: &[u8]) -> Option<&AccountId> {
        // An empty configured token would let "Bearer " in; a server without a token refuses everyone instead.
        let matches = !self.token.is_empty() && bool::from(self.token.as_slice().ct_eq(presented));
        matches.then_some(&self.account)
    }
}

/// The authenticated caller of a request; taking it as a handler argument is what makes an endpoint private.
pub struct Caller {
    pub account: AccountId,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
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

/// The account a bearer token acts for: the data directory's token, or a live bearer key in the store.
pub(crate) async fn bearer_account(state: &AppState, token: &[u8]) -> Result<Option<AccountId>, ServiceError> {
    if let Some(account) = state.auth.account_for(token) {
        return Ok(Some(account.clone()));
    }
    // Other accounts' keys live in the store, found by the hash of the secret.
    let Ok(secret) = std::str::from_utf8(token) else { return Ok(None) };
    state.engine.account_for_key(secret, &[KeyKind::Bearer]).await
}

/// The account the data directory's token acts for: the one dialects served without auth act for.
pub(crate) fn default_account(state: &AppState) -> AccountId {
    state.auth.account.clone()
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

    #[test]
    fn empty_configured_token_accepts_nobody() {
        let auth = Auth::new(String::new(), AccountId::generate());
        assert!(auth.account_for(b"").is_none());
        let auth = Auth::new("secret".to_owned(), AccountId::generate());
        assert!(auth.account_for(b"secret").is_some());
        assert!(auth.account_for(b"secreT").is_none());
        assert!(auth.account_for(b"secret2").is_none());
    }
}
