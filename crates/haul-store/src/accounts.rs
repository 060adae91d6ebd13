//! Accounts and their API keys as stored: plain data, the key kinds, and how a secret is hashed.

use haul_core::account::KeyKind;
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

/// How much of a secret is kept in the clear, so a person can tell keys apart.
const PREFIX_CHARS: usize = 12;

/// The part of a secret stored and shown beside its hash.
pub fn key_prefix(secret: &str) -> String {
    secret.chars().take(PREFIX_CHARS).collect()
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
    fn secrets_hash_to_hex_sha256() {
        assert_eq!(hash_secret("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
