//! Accounts and their API keys as stored: plain data, the key kinds, and how a secret is hashed.

use std::fmt;
use std::str::FromStr;

use haul_core::job::AccountId;
use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub email: Option<String>,
    pub created_at: i64,
}

/// Which API a key authenticates: each foreign API presents its key in its own way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    /// `Authorization: Bearer` (native API, Surge, Cloudflare API tokens, the yt-dlp web app).
    Bearer,
    /// VideoDB's `x-access-token: sk-...`.
    Videodb,
    /// Cloudflare's `X-Auth-Email` + `X-Auth-Key`.
    CloudflareGlobal,
}

impl KeyKind {
    pub const ALL: [KeyKind; 3] = [KeyKind::Bearer, KeyKind::Videodb, KeyKind::CloudflareGlobal];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::Videodb => "videodb",
            Self::CloudflareGlobal => "cloudflare-global",
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for KeyKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| format!("unknown key kind {text:?}; expected one of bearer, videodb, cloudflare-global"))
    }
}

/// An API key as listed; the secret itself is never stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub id: String,
    pub account: AccountId,
    pub kind: KeyKind,
    /// The first characters of the secret, so a person can tell keys apart.
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// The stored form of a secret: hex sha256. Secrets are long random strings, so a fast hash is enough (there is
/// nothing to brute-force as with passwords).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_unknown_kinds_are_named() {
        for kind in KeyKind::ALL {
            assert_eq!(kind.as_str().parse::<KeyKind>(), Ok(kind));
        }
        assert!("admin".parse::<KeyKind>().unwrap_err().contains("bearer, videodb, cloudflare-global"));
        assert_eq!(hash_secret("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
