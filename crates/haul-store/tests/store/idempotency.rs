//! Idempotent adds on every backend: a key makes one download, whatever the number of concurrent callers and
//! whichever node (store) they reach; the same key with another request is refused; a key is freed by removing
//! its download or by its window passing.

use std::sync::Arc;
use std::time::Duration;

use haul_core::job::AccountId;
use haul_store::{CreatedOnce, NewDownload, Store};

use crate::harness::Fixture;

backend_tests! {
    a_key_replays_its_download_and_refuses_another_request,
    #[test(flavor = "multi_thread", worker_threads = 4)]
    fifty_concurrent_adds_with_one_key_make_one_download,
    a_key_is_freed_by_removing_its_download_or_by_its_window,
}

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn new(account: &AccountId, url: &str) -> NewDownload {
    NewDownload::new(account.clone(), url)
}

async fn a_key_replays_its_download_and_refuses_another_request(fixture: Fixture) {
    let store = &*fixture.store;
    let (alice, bob) = (AccountId::generate(), AccountId::generate());
    let CreatedOnce::Created(first) = store.create_once(new(&alice, "http://h/a"), "k1", "f1", DAY).await.unwrap()
    else {
        panic!("the first add with a key creates")
    };
    let again = store.create_once(new(&alice, "http://h/a"), "k1", "f1", DAY).await.unwrap();
    assert_eq!(again, CreatedOnce::Replayed(first.clone()), "the same request gets the same download back");
    match store.create_once(new(&alice, "http://h/b"), "k1", "f2", DAY).await.unwrap() {
        // When the key was first used: the moment the first download was made.
        CreatedOnce::KeyReused { created_at } => {
            assert!((created_at - first.created_at).abs() < 5_000, "{created_at} vs {}", first.created_at)
        }
        other => panic!("another request under a used key: {other:?}"),
    }
    // Keys are the account's own: bob's k1 is another key.
    let CreatedOnce::Created(bobs) = store.create_once(new(&bob, "http://h/a"), "k1", "f1", DAY).await.unwrap() else {
        panic!("another account's key")
    };
    assert_ne!(bobs.id, first.id);
    assert_eq!(store.counts(Some(&alice)).await.unwrap().total(), 1);
}

async fn fifty_concurrent_adds_with_one_key_make_one_download(fixture: Fixture) {
    let account = AccountId::generate();
    // Callers spread over several stores on one database, as over several nodes.
    let mut stores: Vec<Arc<dyn Store>> = vec![fixture.store.clone()];
    for _ in 0..2 {
        stores.push(haul_store::open(&fixture.url).await.unwrap());
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let mut tasks = Vec::new();
    for caller in 0..50 {
        let (store, barrier, account) = (stores[caller % stores.len()].clone(), barrier.clone(), account.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.create_once(new(&account, "http://h/once"), "retry-me", "same", DAY).await
        }));
    }
    let (mut created, mut replayed) = (Vec::new(), Vec::new());
    for task in tasks {
        match task.await.unwrap() {
            Ok(CreatedOnce::Created(record)) => created.push(record.id),
            Ok(CreatedOnce::Replayed(record)) => replayed.push(record.id),
            other => panic!("a concurrent add with the same key and request: {other:?}"),
        }
    }
    assert_eq!(created.len(), 1, "exactly one caller creates: {created:?}");
    assert!(replayed.iter().all(|id| *id == created[0]), "every other caller gets that download back");
    assert_eq!(fixture.store.counts(Some(&account)).await.unwrap().total(), 1);
}

async fn a_key_is_freed_by_removing_its_download_or_by_its_window(fixture: Fixture) {
    let store = &*fixture.store;
    let account = AccountId::generate();
    let CreatedOnce::Created(first) = store.create_once(new(&account, "http://h/a"), "k", "f", DAY).await.unwrap()
    else {
        panic!("created")
    };
    store.delete(&account, first.id).await.unwrap();
    let CreatedOnce::Created(second) = store.create_once(new(&account, "http://h/b"), "k", "g", DAY).await.unwrap()
    else {
        panic!("a removed download's key is free again")
    };
    assert_ne!(second.id, first.id);
    // Past its window, the key binds anew, whatever the request.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let window = Duration::from_millis(10);
    let CreatedOnce::Created(third) = store.create_once(new(&account, "http://h/c"), "k", "h", window).await.unwrap()
    else {
        panic!("a key past its window is free again")
    };
    assert_ne!(third.id, second.id);
    let replay = store.create_once(new(&account, "http://h/c"), "k", "h", DAY).await.unwrap();
    assert_eq!(replay, CreatedOnce::Replayed(third));
    assert_eq!(store.counts(Some(&account)).await.unwrap().total(), 2);
}
