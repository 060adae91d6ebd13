//! Accounts and their keys as the API needs them: which account a presented secret acts for, and setting up
//! accounts and keys (the default account of a data directory, the test server's extra accounts).
//!
//! Secrets are looked up by their hash; the secret itself is never stored.

use haul_core::account::KeyKind;
use haul_core::job::AccountId;
use haul_store::{hash_secret, key_prefix};

use super::Engine;
use super::error::ServiceError;
use super::views::KeyView;

impl Engine {
    /// The account a presented secret belongs to, if it is a live key of one of `kinds`.
    pub async fn account_for_key(&self, secret: &str, kinds: &[KeyKind]) -> Result<Option<AccountId>, ServiceError> {
        Ok(self.inner.store.account_for_key(&hash_secret(secret), kinds).await?)
    }

    /// The account of a Cloudflare global API key, which only counts together with its account's email.
    pub async fn account_for_global_key(&self, email: &str, key: &str) -> Result<Option<AccountId>, ServiceError> {
        let Some(account) = self.account_for_key(key, &[KeyKind::CloudflareGlobal]).await? else {
            return Ok(None);
        };
        let stored = self.inner.store.account(&account).await?;
        let matches = stored.email.is_some_and(|stored| stored.trim().eq_ignore_ascii_case(email.trim()));
        Ok(matches.then_some(account))
    }

    /// Makes sure the account `id` exists, creating it as `name` if not.
    pub async fn ensure_account(&self, id: &AccountId, name: &str) -> Result<(), ServiceError> {
        self.inner.store.ensure_account(id, name).await?;
        Ok(())
    }

    /// A new account; `email` is what Cloudflare's `X-Auth-Email` must match.
    pub async fn create_account(&self, name: &str, email: Option<&str>) -> Result<AccountId, ServiceError> {
        Ok(self.inner.store.create_account(name, email).await?.id)
    }

    /// Registers `secret` as a live key of `kind` for `account`.
    pub async fn add_key(&self, account: &AccountId, kind: KeyKind, secret: &str) -> Result<KeyView, ServiceError> {
        let key = self.inner.store.create_key(account, kind, &hash_secret(secret), &key_prefix(secret)).await?;
        Ok(key.into())
    }

    /// The account's keys, oldest first, revoked ones included.
    pub async fn keys(&self, account: &AccountId) -> Result<Vec<KeyView>, ServiceError> {
        Ok(self.inner.store.list_keys(Some(account)).await?.into_iter().map(KeyView::from).collect())
    }

    /// Revokes one of the account's keys by its id; another account's key is not found.
    pub async fn revoke_key(&self, account: &AccountId, key_id: &str) -> Result<KeyView, ServiceError> {
        let owned = self.inner.store.list_keys(Some(account)).await?.into_iter().any(|key| key.id == key_id);
        if !owned {
            return Err(ServiceError::NotFound(format!("key {key_id} not found")));
        }
        Ok(self.inner.store.revoke_key(key_id).await?.into())
    }
}

/// A signed-in browser session, as the web page sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionView {
    pub account: AccountId,
    /// The account's name.
    pub name: String,
    /// The key the session was opened with: revoking it ends the session.
    pub key_id: String,
    /// Unix milliseconds.
    pub expires_at: i64,
}

impl Engine {
    /// Opens a session for a live bearer key, for `ttl`: the new session's secret (for the cookie; only its hash
    /// is kept) and what it acts for. `None` when `key` is not a live bearer key.
    pub async fn sign_in(
        &self,
        key: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<(String, SessionView)>, ServiceError> {
        let Some(found) = self.inner.store.live_key(&hash_secret(key)).await? else { return Ok(None) };
        if found.kind != KeyKind::Bearer {
            return Ok(None);
        }
        let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let expires_at = haul_core::clock::unix_millis(std::time::SystemTime::now()).saturating_add(ttl_ms);
        self.inner.store.create_session(&hash_secret(&secret), &found.id, expires_at).await?;
        let name = self.inner.store.account(&found.account).await?.name;
        Ok(Some((secret, SessionView { account: found.account, name, key_id: found.id, expires_at })))
    }

    /// The account a cookie's secret acts for, while its session has not expired and its key is live: the one
    /// lookup every cookie-authenticated request makes.
    pub async fn session_account(&self, secret: &str) -> Result<Option<AccountId>, ServiceError> {
        Ok(self.inner.store.session(&hash_secret(secret)).await?.map(|(account, _, _)| account))
    }

    /// The session a cookie's secret stands for, with its account's name, while it has not expired and its key
    /// is live.
    pub async fn session(&self, secret: &str) -> Result<Option<SessionView>, ServiceError> {
        let Some((account, key_id, expires_at)) = self.inner.store.session(&hash_secret(secret)).await? else {
            return Ok(None);
        };
        let name = self.inner.store.account(&account).await?.name;
        Ok(Some(SessionView { account, name, key_id, expires_at }))
    }

    /// Ends a session; the cookie's secret no longer opens anything.
    pub async fn sign_out(&self, secret: &str) -> Result<(), ServiceError> {
        Ok(self.inner.store.delete_session(&hash_secret(secret)).await?)
    }

    /// The name of one account.
    pub async fn account_name(&self, account: &AccountId) -> Result<String, ServiceError> {
        Ok(self.inner.store.account(account).await?.name)
    }
}
