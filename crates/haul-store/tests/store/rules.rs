//! Rules (categories) on every backend: what is stored and read back, positions that stay 1, 2, 3, ... through
//! inserts, moves and removals, concurrent adds, and what one account may see of another's rules.

use haul_core::job::AccountId;
use haul_store::{NewRule, RulePatch, RuleRecord, Store, StoreError};

use crate::harness::Fixture;

backend_tests! {
    rules_keep_what_they_were_given,
    positions_stay_dense_through_inserts_moves_and_removals,
    #[test(flavor = "multi_thread", worker_threads = 4)]
    concurrent_adds_take_distinct_positions,
    rules_are_seen_only_by_their_account,
}

fn rule(account: &AccountId, name: &str) -> NewRule {
    NewRule {
        account: account.clone(),
        position: None,
        name: Some(name.to_owned()),
        host: None,
        url_pattern: None,
        extensions: vec!["iso".to_owned()],
        directory: Some(name.to_owned()),
        priority: None,
    }
}

/// The account's rules as (name, position), in the order they are tried.
async fn order(store: &dyn Store, account: &AccountId) -> Vec<(String, u32)> {
    let rules = store.list_rules(account).await.unwrap();
    rules.into_iter().map(|rule| (rule.name.unwrap_or_default(), rule.position)).collect()
}

fn named(names: &[&str]) -> Vec<(String, u32)> {
    names.iter().zip(1..).map(|(name, position)| ((*name).to_owned(), position)).collect()
}

async fn rules_keep_what_they_were_given(fixture: Fixture) {
    let store = &*fixture.store;
    let account = AccountId::generate();
    let new = NewRule {
        account: account.clone(),
        position: Some(7),
        name: Some("ISOs".into()),
        host: Some("example.com".into()),
        url_pattern: Some("*/releases/*".into()),
        extensions: vec!["iso".into(), "tar.gz".into()],
        directory: Some("isos/linux".into()),
        priority: Some(-5),
    };
    let created = store.create_rule(&new).await.unwrap();
    let expected = RuleRecord {
        id: created.id.clone(),
        account: account.clone(),
        position: 1,
        name: Some("ISOs".into()),
        host: Some("example.com".into()),
        url_pattern: Some("*/releases/*".into()),
        extensions: vec!["iso".into(), "tar.gz".into()],
        directory: Some("isos/linux".into()),
        priority: Some(-5),
        created_at: created.created_at,
    };
    assert_eq!(created, expected, "a position past the end is the end");
    assert_eq!(store.rule(&account, &created.id).await.unwrap(), expected);

    let bare = NewRule {
        name: None,
        host: Some("example.org".into()),
        extensions: Vec::new(),
        directory: None,
        priority: Some(3),
        ..rule(&account, "")
    };
    let bare = store.create_rule(&bare).await.unwrap();
    assert_eq!((bare.position, bare.name.as_deref(), bare.extensions.len()), (2, None, 0));
    assert_eq!((bare.directory.as_deref(), bare.priority), (None, Some(3)));
    assert_eq!(store.list_rules(&account).await.unwrap(), [expected, bare]);
}

async fn positions_stay_dense_through_inserts_moves_and_removals(fixture: Fixture) {
    let store = &*fixture.store;
    let account = AccountId::generate();
    let a = store.create_rule(&rule(&account, "a")).await.unwrap();
    store.create_rule(&rule(&account, "b")).await.unwrap();
    let c = store.create_rule(&rule(&account, "c")).await.unwrap();
    store.create_rule(&NewRule { position: Some(1), ..rule(&account, "first") }).await.unwrap();
    store.create_rule(&NewRule { position: Some(3), ..rule(&account, "third") }).await.unwrap();
    assert_eq!(order(store, &account).await, named(&["first", "a", "third", "b", "c"]));

    let moved = store.update_rule(&account, &c.id, &RulePatch { position: Some(1), name: None }).await.unwrap();
    assert_eq!((moved.position, moved.name.as_deref()), (1, Some("c")));
    assert_eq!(order(store, &account).await, named(&["c", "first", "a", "third", "b"]));
    let patch = RulePatch { position: Some(99), name: Some(Some("a2".into())) };
    store.update_rule(&account, &a.id, &patch).await.unwrap();
    assert_eq!(order(store, &account).await, named(&["c", "first", "third", "b", "a2"]));
    let renamed = store.update_rule(&account, &a.id, &RulePatch { position: None, name: Some(None) }).await.unwrap();
    assert_eq!((renamed.position, renamed.name), (5, None));
    store.update_rule(&account, &a.id, &RulePatch { position: Some(0), name: Some(Some("a".into())) }).await.unwrap();
    assert_eq!(order(store, &account).await, named(&["a", "c", "first", "third", "b"]));

    let removed = store.delete_rule(&account, &c.id).await.unwrap();
    assert_eq!(removed.position, 2);
    assert_eq!(order(store, &account).await, named(&["a", "first", "third", "b"]));
}

async fn concurrent_adds_take_distinct_positions(fixture: Fixture) {
    let account = AccountId::generate();
    let adds = (0..16).map(|n| {
        let store = fixture.store.clone();
        let new = rule(&account, &format!("r{n:02}"));
        tokio::spawn(async move { store.create_rule(&new).await.unwrap() })
    });
    let mut positions: Vec<u32> = Vec::new();
    for add in adds.collect::<Vec<_>>() {
        positions.push(add.await.unwrap().position);
    }
    positions.sort_unstable();
    assert_eq!(positions, (1..=16).collect::<Vec<_>>());
}

async fn rules_are_seen_only_by_their_account(fixture: Fixture) {
    let store = &*fixture.store;
    let account = AccountId::generate();
    let other = AccountId::generate();
    let mine = store.create_rule(&rule(&account, "mine")).await.unwrap();
    let theirs = store.create_rule(&rule(&other, "theirs")).await.unwrap();
    assert_eq!(theirs.position, 1, "each account's positions are its own");

    let not_found = |result: Result<(), StoreError>| match result {
        Err(StoreError::NotFound(what)) => assert_eq!(what, format!("rule {}", mine.id)),
        other => panic!("expected NotFound, got {other:?}"),
    };
    not_found(store.rule(&other, &mine.id).await.map(drop));
    not_found(store.update_rule(&other, &mine.id, &RulePatch::default()).await.map(drop));
    not_found(store.delete_rule(&other, &mine.id).await.map(drop));
    assert_eq!(store.list_rules(&other).await.unwrap(), std::slice::from_ref(&theirs));

    assert_eq!(store.delete_rule(&account, &mine.id).await.unwrap(), mine);
    not_found(store.rule(&account, &mine.id).await.map(drop));
    assert!(store.list_rules(&account).await.unwrap().is_empty());
    assert_eq!(store.list_rules(&other).await.unwrap(), [theirs]);
}
