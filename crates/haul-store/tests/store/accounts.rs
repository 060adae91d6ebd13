//! Accounts and API keys in the store, on every backend: unique names, keys found only by the hash of their secret
//! and only for their kind, revocation, and the default account of a data directory.

use haul_core::account::KeyKind;
use haul_core::job::AccountId;
use haul_store::{StoreError, hash_secret};

use crate::harness::Fixture;

backend_tests! {
    accounts_have_unique_names,
    keys_are_found_by_secret_hash_and_kind_until_revoked,
    the_default_account_is_created_once_and_survives_reopening,
}

async fn accounts_have_unique_names(fixture: Fixture) {
    let store = fixture.store;
    let alice = store.create_account("alice", Some("alice@example.com")).await.unwrap();
    assert_eq!(alice.id.as_str().len(), 32);
    assert_eq!(store.account_by_name("alice").await.unwrap(), alice);
    let again = store.create_account("alice", None).await.unwrap_err();
    assert!(matches!(again, StoreError::Duplicate(_)), "{again:?}");
    assert!(again.to_string().contains("alice"), "{again}");
    assert!(matches!(store.account_by_name("bob").await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.create_account("  ", None).await, Err(StoreError::Other { .. })));
    assert_eq!(store.list_accounts().await.unwrap(), vec![alice]);
}

async fn keys_are_found_by_secret_hash_and_kind_until_revoked(fixture: Fixture) {
    let store = fixture.store;
    let alice = store.create_account("alice", None).await.unwrap();
    let bob = store.create_account("bob", None).await.unwrap();
    let key = store.create_key(&alice.id, KeyKind::Bearer, &hash_secret("secret-a"), "secret-a").await.unwrap();
    store.create_key(&bob.id, KeyKind::Videodb, &hash_secret("sk-bob"), "sk-bob").await.unwrap();

    let found = store.account_for_key(&hash_secret("secret-a"), &[KeyKind::Bearer]).await.unwrap();
    assert_eq!(found, Some(alice.id.clone()));
    // A key only opens the APIs of its kind, and a wrong secret opens nothing.
    assert_eq!(store.account_for_key(&hash_secret("secret-a"), &[KeyKind::Videodb]).await.unwrap(), None);
    assert_eq!(store.account_for_key(&hash_secret("nope"), &KeyKind::ALL).await.unwrap(), None);
    let bob_found = store.account_for_key(&hash_secret("sk-bob"), &[KeyKind::Videodb]).await.unwrap();
    assert_eq!(bob_found, Some(bob.id.clone()));

    assert_eq!(store.list_keys(Some(&alice.id)).await.unwrap(), vec![key.clone()]);
    assert_eq!(store.list_keys(None).await.unwrap().len(), 2);
    let revoked = store.revoke_key(&key.id[..8]).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(store.account_for_key(&hash_secret("secret-a"), &[KeyKind::Bearer]).await.unwrap(), None);
    assert!(matches!(store.revoke_key("zzzz").await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.revoke_key("").await, Err(StoreError::Duplicate(_))), "an empty prefix is ambiguous");

    let orphan = store.create_key(&AccountId::generate(), KeyKind::Bearer, &hash_secret("x"), "x").await;
    assert!(matches!(orphan, Err(StoreError::NotFound(_))), "{orphan:?}");
}

async fn the_default_account_is_created_once_and_survives_reopening(fixture: Fixture) {
    let url = fixture.url.clone();
    let id = AccountId::generate();
    {
        let store = fixture.store;
        store.create_account("default", None).await.unwrap();
        let account = store.ensure_account(&id, "default").await.unwrap();
        assert_eq!(account.id, id);
        assert_ne!(account.name, "default", "a taken name is made unique");
        assert_eq!(store.ensure_account(&id, "default").await.unwrap(), account);
    }
    let store = haul_store::open(&url).await.unwrap();
    assert_eq!(store.list_accounts().await.unwrap().len(), 2);
}
