//! Claims, leases and progress, on every backend: which download a node is handed (priority, age, fair sharing
//! between accounts, `max_active` per node), claims racing from separate stores, leases that run out, and the
//! reports of the node that holds one.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use haul_core::job::{AccountId, DownloadId, JobAction, JobState};
use haul_store::{ListFilter, NewDownload, ProgressUpdate};

use crate::harness::{Fixture, LEASE, assert_conflict, assert_not_found, create};

backend_tests! {
    claim_takes_highest_priority_then_oldest_up_to_max_active,
    free_slots_go_to_the_account_running_fewest,
    max_active_counts_only_the_claiming_nodes_leases,
    free_slots_go_to_the_account_running_fewest_on_any_node,
    #[test(flavor = "multi_thread", worker_threads = 4)]
    concurrent_claimers_never_share_a_download,
    #[test(flavor = "multi_thread", worker_threads = 4)]
    claims_under_contention_hand_out_each_download_once,
    expired_leases_are_reclaimed,
    report_progress_renews_records_and_answers_only_for_the_lease_holder,
    requeue_node_puts_only_that_nodes_downloads_back,
    progress_is_recorded_and_motion_only_while_active,
}

async fn claim_takes_highest_priority_then_oldest_up_to_max_active(fixture: Fixture) {
    let store = &*fixture.store;
    let account = AccountId::generate();
    let low_old = create(store, &account, "http://origin/low-old", 0).await;
    let high_old = create(store, &account, "http://origin/high-old", 5).await;
    let low_new = create(store, &account, "http://origin/low-new", 0).await;
    let high_new = create(store, &account, "http://origin/high-new", 5).await;
    let paused = NewDownload { start_paused: true, priority: 99, ..NewDownload::new(account.clone(), "http://p") };
    store.create(paused).await.unwrap();

    let first = store.claim_next("node-a", LEASE, 2).await.unwrap().unwrap();
    assert_eq!(first.id, high_old);
    assert_eq!(first.state, JobState::Active);
    assert_eq!(first.lease_owner.as_deref(), Some("node-a"));
    let lease_expires = first.lease_expires.unwrap();
    assert!(lease_expires >= first.started_at.unwrap() + 59_000, "lease runs about a minute from now");

    assert_eq!(store.claim_next("node-a", LEASE, 2).await.unwrap().unwrap().id, high_new);
    assert!(store.claim_next("node-a", LEASE, 2).await.unwrap().is_none(), "two live leases at max_active 2");
    // (The limit is per node: see max_active_counts_only_the_claiming_nodes_leases.)

    store.apply(&account, high_old, JobAction::Complete, None).await.unwrap();
    assert_eq!(store.claim_next("node-a", LEASE, 2).await.unwrap().unwrap().id, low_old);
    store.apply(&account, high_new, JobAction::Pause, None).await.unwrap();
    assert_eq!(store.claim_next("node-a", LEASE, 2).await.unwrap().unwrap().id, low_new);
    assert!(store.claim_next("node-a", LEASE, 10).await.unwrap().is_none(), "paused downloads are not claimed");
    assert!(store.claim_next("node-a", LEASE, 0).await.unwrap().is_none());
}

async fn free_slots_go_to_the_account_running_fewest(fixture: Fixture) {
    let store = &*fixture.store;
    let (greedy, modest) = (AccountId::generate(), AccountId::generate());
    for n in 0..50 {
        create(store, &greedy, &format!("http://origin/greedy-{n}"), 1000).await;
    }
    let modest_job = create(store, &modest, "http://origin/modest", -1000).await;
    let first = store.claim_next("node-a", LEASE, 3).await.unwrap().unwrap();
    assert_eq!(first.account, greedy, "with nothing running, priority then age decide");
    let second = store.claim_next("node-a", LEASE, 3).await.unwrap().unwrap();
    assert_eq!(second.id, modest_job, "the account with nothing running comes next, whatever the priorities");
    let third = store.claim_next("node-a", LEASE, 3).await.unwrap().unwrap();
    assert_eq!(third.account, greedy, "then each account has one running, and priority orders the rest");
}

/// `--max-active` is per node: a node counts only its own live leases, so two nodes at max_active 2 run four
/// downloads between them and the fifth waits for a slot; fair sharing between accounts still counts every node.
async fn max_active_counts_only_the_claiming_nodes_leases(fixture: Fixture) {
    let store = &*fixture.store;
    let (alice, bob) = (AccountId::generate(), AccountId::generate());
    for n in 0..3 {
        create(store, &alice, &format!("http://origin/alice-{n}"), 10).await;
    }
    for n in 0..2 {
        create(store, &bob, &format!("http://origin/bob-{n}"), 0).await;
    }
    let claim_all = |node: &'static str| async move {
        let mut claimed = Vec::new();
        while let Some(record) = store.claim_next(node, LEASE, 2).await.unwrap() {
            assert_eq!(record.lease_owner.as_deref(), Some(node));
            claimed.push(record);
        }
        claimed
    };
    let on_a = claim_all("node-a").await;
    let on_b = claim_all("node-b").await;
    assert_eq!((on_a.len(), on_b.len()), (2, 2), "each node runs max_active 2 of its own: {on_a:?} {on_b:?}");
    let counts = store.counts(None).await.unwrap();
    assert_eq!((counts.active, counts.queued), (4, 1), "the fifth stays queued");
    let running = |account: &AccountId| on_a.iter().chain(&on_b).filter(|record| &record.account == account).count();
    assert_eq!((running(&alice), running(&bob)), (2, 2), "each account runs two, whatever the priorities");
    let queued = ListFilter { states: vec![JobState::Queued], ..ListFilter::default() };
    let left = store.list(&alice, &queued).await.unwrap();
    assert_eq!(left.len(), 1, "the one left is alice's third");

    // A slot freed on node-b is node-b's: node-a stays full.
    let done = &on_b[0];
    store.apply(&done.account, done.id, JobAction::Complete, None).await.unwrap();
    assert!(store.claim_next("node-a", LEASE, 2).await.unwrap().is_none(), "node-a still holds two live leases");
    assert_eq!(store.claim_next("node-b", LEASE, 2).await.unwrap().unwrap().id, left[0].id);

    // A node's own expired lease does not count against it: that download is runnable again, by the node too.
    let late = create(store, &bob, "http://origin/bob-late", 0).await;
    let claimed = store.claim_next("node-c", Duration::from_millis(1), 1).await.unwrap().unwrap();
    assert_eq!(claimed.id, late);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let again = store.claim_next("node-c", LEASE, 1).await.unwrap().expect("node-c's expired lease does not count");
    assert_eq!((again.id, again.lease_owner.as_deref()), (late, Some("node-c")));
}

/// Fair sharing counts what runs on every node: a node with nothing running of its own gives its slot to the
/// account running least across all of them, not to the highest priority.
async fn free_slots_go_to_the_account_running_fewest_on_any_node(fixture: Fixture) {
    let store = &*fixture.store;
    let (greedy, modest) = (AccountId::generate(), AccountId::generate());
    for n in 0..3 {
        create(store, &greedy, &format!("http://origin/greedy-{n}"), 1000).await;
    }
    for _ in 0..2 {
        assert_eq!(store.claim_next("node-a", LEASE, 2).await.unwrap().unwrap().account, greedy);
    }
    let modest_job = create(store, &modest, "http://origin/modest", -1000).await;
    let first = store.claim_next("node-b", LEASE, 2).await.unwrap().unwrap();
    assert_eq!(first.id, modest_job, "greedy runs two on node-a, modest none: modest comes first on node-b");
    let second = store.claim_next("node-b", LEASE, 2).await.unwrap().unwrap();
    assert_eq!(second.account, greedy);
}

async fn concurrent_claimers_never_share_a_download(fixture: Fixture) {
    let account = AccountId::generate();
    let mut created = HashSet::new();
    for n in 0..20 {
        created.insert(create(&*fixture.store, &account, &format!("http://origin/{n}"), n % 3).await);
    }

    // Each claimer opens the database itself, as separate processes would, so the database's locking is what is
    // tested, not a shared pool.
    let url = fixture.url.clone();
    let mut claimers = Vec::new();
    for n in 0..8 {
        let url = url.clone();
        claimers.push(tokio::spawn(async move {
            let store = haul_store::open(&url).await.unwrap();
            let node = format!("node-{n}");
            let mut claimed = Vec::new();
            while let Some(record) = store.claim_next(&node, LEASE, 100).await.unwrap() {
                assert_eq!(record.lease_owner.as_deref(), Some(node.as_str()));
                claimed.push(record.id);
                tokio::task::yield_now().await;
            }
            claimed
        }));
    }
    let mut all_claims = Vec::new();
    for claimer in claimers {
        all_claims.extend(claimer.await.unwrap());
    }
    assert_eq!(all_claims.len(), 20, "every download claimed exactly once: {all_claims:?}");
    assert_eq!(all_claims.iter().copied().collect::<HashSet<_>>(), created);
    assert_eq!(fixture.store.counts(None).await.unwrap().active, 20);
}

/// Claims racing from separate stores (each its own connection pool, as separate nodes have), started together,
/// hand out every download exactly once: none to two nodes, and none left queued because a claimer was told
/// there was nothing to run while there was.
async fn claims_under_contention_hand_out_each_download_once(fixture: Fixture) {
    let accounts: Vec<AccountId> = (0..3).map(|_| AccountId::generate()).collect();
    let mut created = HashSet::new();
    for n in 0..40 {
        let priority = i32::try_from(n % 4).unwrap();
        created.insert(create(&*fixture.store, &accounts[n % 3], &format!("http://origin/{n}"), priority).await);
    }

    let claimers_ready = Arc::new(tokio::sync::Barrier::new(4));
    let mut claimers = Vec::new();
    for n in 0..4 {
        let (url, claimers_ready) = (fixture.url.clone(), claimers_ready.clone());
        claimers.push(tokio::spawn(async move {
            let store = haul_store::open(&url).await.unwrap();
            let node = format!("node-{n}");
            claimers_ready.wait().await;
            let mut claimed = Vec::new();
            while let Some(record) = store.claim_next(&node, LEASE, 1000).await.unwrap() {
                assert_eq!(record.lease_owner.as_deref(), Some(node.as_str()));
                claimed.push(record.id);
            }
            (node, claimed)
        }));
    }
    let mut owners = HashMap::new();
    for claimer in claimers {
        let (node, claimed) = claimer.await.unwrap();
        eprintln!("{node} claimed {}", claimed.len());
        for id in claimed {
            if let Some(other) = owners.insert(id, node.clone()) {
                panic!("download {id} claimed by both {other} and {node}");
            }
        }
    }
    assert_eq!(owners.len(), 40, "every download claimed once");
    assert_eq!(owners.keys().copied().collect::<HashSet<_>>(), created);
    for account in &accounts {
        for record in fixture.store.list(account, &ListFilter::default()).await.unwrap() {
            assert_eq!(record.state, JobState::Active, "{}", record.id);
            assert_eq!(record.lease_owner.as_ref(), owners.get(&record.id), "the stored lease names who claimed it");
        }
    }
}

async fn expired_leases_are_reclaimed(fixture: Fixture) {
    let store = &*fixture.store;
    let account = AccountId::generate();
    let id = create(store, &account, "http://origin/f", 0).await;

    let claimed = store.claim_next("node-dead", Duration::from_millis(1), 1).await.unwrap().unwrap();
    assert_eq!(claimed.id, id);
    store.record_progress(id, &ProgressUpdate { bytes_done: 4096, ..ProgressUpdate::default() }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;

    // The expired lease makes the download runnable again, and another node takes it over.
    let reclaimed = store.claim_next("node-live", LEASE, 1).await.unwrap().unwrap();
    assert_eq!(reclaimed.id, id);
    assert_eq!(reclaimed.lease_owner.as_deref(), Some("node-live"));
    assert_eq!(reclaimed.bytes_done, 4096, "progress is kept so the new node resumes");
    assert_eq!(reclaimed.started_at, claimed.started_at);

    let late = store.report_progress(id, "node-dead", LEASE, &ProgressUpdate::default()).await;
    let message = assert_conflict(late, JobState::Active);
    assert!(message.contains("no longer leased to node-dead"), "{message}");
    assert!(store.claim_next("node-other", LEASE, 5).await.unwrap().is_none(), "a live lease is not taken over");
}

async fn report_progress_renews_records_and_answers_only_for_the_lease_holder(fixture: Fixture) {
    let store = &*fixture.store;
    let account = AccountId::generate();
    let id = create(store, &account, "http://origin/f", 0).await;
    let claimed = store.claim_next("node-a", Duration::from_secs(1), 1).await.unwrap().unwrap();

    let progress = sample_progress();
    let reported = store.report_progress(id, "node-a", Duration::from_secs(3600), &progress).await.unwrap();
    assert!(reported.lease_expires.unwrap() >= claimed.lease_expires.unwrap() + 3_000_000);
    assert_eq!(
        (reported.bytes_done, reported.size, reported.speed, reported.eta_secs),
        (1_000, Some(10_000), 250, Some(36))
    );
    assert_eq!((reported.connections, reported.filename.as_deref()), (3, Some("f.bin")));
    assert_eq!(store.get(&account, id).await.unwrap(), reported, "the answer is the stored row");

    // Another node's report, or one after a pause, writes nothing.
    let late = ProgressUpdate { bytes_done: 2_000, speed: 300, ..Default::default() };
    assert_conflict(store.report_progress(id, "node-b", LEASE, &late).await, JobState::Active);
    store.apply(&account, id, JobAction::Pause, None).await.unwrap();
    let message = assert_conflict(store.report_progress(id, "node-a", LEASE, &late).await, JobState::Paused);
    assert_eq!(message, format!("download {id} is paused and no longer leased to node-a"));
    let paused = store.get(&account, id).await.unwrap();
    assert_eq!(paused.bytes_done, 1_000);
    assert_eq!((paused.lease_owner, paused.lease_expires), (None, None), "leaving active drops the lease");

    let unknown = DownloadId::new_random();
    assert_not_found(store.report_progress(unknown, "node-a", LEASE, &late).await, unknown);
}

async fn requeue_node_puts_only_that_nodes_downloads_back(fixture: Fixture) {
    let store = &*fixture.store;
    let account = AccountId::generate();
    for n in 0..3 {
        create(store, &account, &format!("http://origin/{n}"), 0).await;
    }
    let a1 = store.claim_next("node-a", LEASE, 10).await.unwrap().unwrap().id;
    let a2 = store.claim_next("node-a", LEASE, 10).await.unwrap().unwrap().id;
    let b1 = store.claim_next("node-b", LEASE, 10).await.unwrap().unwrap().id;
    store
        .record_progress(a1, &ProgressUpdate { bytes_done: 10, speed: 500, connections: 4, ..Default::default() })
        .await
        .unwrap();

    assert_eq!(store.requeue_node("node-a").await.unwrap(), 2);
    for id in [a1, a2] {
        let record = store.get(&account, id).await.unwrap();
        assert_eq!(record.state, JobState::Queued);
        assert_eq!((record.lease_owner, record.lease_expires, record.speed, record.connections), (None, None, 0, 0));
    }
    assert_eq!(store.get(&account, a1).await.unwrap().bytes_done, 10);
    assert_eq!(store.get(&account, b1).await.unwrap().lease_owner.as_deref(), Some("node-b"));
    assert_eq!(store.requeue_node("node-a").await.unwrap(), 0);
}

async fn progress_is_recorded_and_motion_only_while_active(fixture: Fixture) {
    let store = &*fixture.store;
    let account = AccountId::generate();
    let id = create(store, &account, "http://origin/f", 0).await;
    store.claim_next("node-a", LEASE, 1).await.unwrap().unwrap();

    let progress = sample_progress();
    store.record_progress(id, &progress).await.unwrap();
    let record = store.get(&account, id).await.unwrap();
    assert_eq!((record.bytes_done, record.size, record.speed, record.eta_secs), (1_000, Some(10_000), 250, Some(36)));
    assert_eq!(record.connections, 3);
    assert_eq!((record.filename.as_deref(), record.path.as_deref()), (Some("f.bin"), Some("downloads/f.bin")));

    // A late report after a pause: bytes count, motion does not, and unknown fields keep what is stored.
    store.apply(&account, id, JobAction::Pause, None).await.unwrap();
    let late =
        ProgressUpdate { bytes_done: 2_000, speed: 300, eta_secs: Some(20), connections: 3, ..Default::default() };
    store.record_progress(id, &late).await.unwrap();
    let record = store.get(&account, id).await.unwrap();
    assert_eq!(
        (record.bytes_done, record.size, record.speed, record.eta_secs, record.connections),
        (2_000, Some(10_000), 0, None, 0)
    );
    assert_eq!(record.filename.as_deref(), Some("f.bin"));

    let unknown = DownloadId::new_random();
    assert_not_found(store.record_progress(unknown, &late).await, unknown);
}

/// A running download's report: 1,000 of 10,000 bytes over 3 connections, named and placed.
fn sample_progress() -> ProgressUpdate {
    ProgressUpdate {
        bytes_done: 1_000,
        size: Some(10_000),
        speed: 250,
        eta_secs: Some(36),
        connections: 3,
        filename: Some("f.bin".into()),
        path: Some("downloads/f.bin".into()),
    }
}
