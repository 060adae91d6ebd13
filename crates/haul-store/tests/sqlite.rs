//! The SQLite store on real database files in temp dirs: what callers of `Store` rely on (account isolation,
//! the state machine under compare-and-set, atomic claims and leases, durability across reopening).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use haul_core::job::{AccountId, DownloadId, JobAction, JobKind, JobState, next_state};
use haul_core::media::{RenditionName, RenditionState};
use haul_store::{
    DownloadPatch, ListFilter, MediaUpdate, NewDownload, ProgressUpdate, Rendition, RenditionUpdate, Store, StoreError,
};
use tempfile::TempDir;

const LEASE: Duration = Duration::from_secs(60);

struct Fixture {
    /// Kept so the directory outlives the store.
    _dir: TempDir,
    db_path: PathBuf,
    store: Arc<dyn Store>,
}

async fn fresh() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("haul.db");
    let store = haul_store::open(&format!("sqlite://{}", db_path.display())).await.unwrap();
    Fixture { _dir: dir, db_path, store }
}

async fn create(store: &dyn Store, account: &AccountId, url: &str, priority: i32) -> DownloadId {
    let new = NewDownload { priority, ..NewDownload::new(account.clone(), url) };
    store.create(new).await.unwrap().id
}

/// Puts a fresh download of `account` in `state` using only legal actions.
async fn download_in(store: &dyn Store, account: &AccountId, state: JobState) -> DownloadId {
    let id = create(store, account, "http://origin/file.bin", 0).await;
    let path: &[JobAction] = match state {
        JobState::Queued => &[],
        JobState::Active => &[JobAction::Start],
        JobState::Paused => &[JobAction::Pause],
        JobState::Completed => &[JobAction::Start, JobAction::Complete],
        JobState::Failed => &[JobAction::Start, JobAction::Fail],
        JobState::Cancelled => &[JobAction::Cancel],
    };
    for action in path {
        store.apply(account, id, *action, None).await.unwrap();
    }
    assert_eq!(store.get(account, id).await.unwrap().state, state);
    id
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, id: DownloadId) {
    match result {
        Err(StoreError::NotFound(what)) => assert_eq!(what, format!("download {id}")),
        other => panic!("expected NotFound for {id}, got {other:?}"),
    }
}

fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, expected_current: JobState) -> String {
    match result {
        Err(StoreError::Conflict { current, message }) => {
            assert_eq!(current, expected_current, "{message}");
            message
        }
        other => panic!("expected Conflict in {expected_current}, got {other:?}"),
    }
}

#[tokio::test]
async fn migrations_run_on_a_fresh_file() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("fresh.db");
    assert!(!db_path.exists());
    let store = haul_store::open(db_path.to_str().unwrap()).await.unwrap();
    assert!(db_path.exists(), "a plain path creates the file");
    assert_eq!(store.counts(None).await.unwrap().total(), 0);

    let absolute = dir.path().join("absolute.db");
    let store = haul_store::open(&format!("sqlite://{}", absolute.display())).await.unwrap();
    assert!(absolute.is_absolute() && absolute.exists(), "sqlite:///abs/path opens the absolute path");
    let account = AccountId::generate();
    create(&*store, &account, "http://origin/a", 0).await;
    assert_eq!(store.counts(Some(&account)).await.unwrap().queued, 1);
}

#[tokio::test]
async fn unsupported_backends_say_so() {
    for url in ["postgres://haul@localhost/haul", "mysql://localhost/haul"] {
        match haul_store::open(url).await {
            Err(StoreError::Other { message, .. }) => {
                assert!(message.contains("postgres") || message.contains(url), "{message}")
            }
            Err(other) => panic!("{url}: unexpected error {other:?}"),
            Ok(_) => panic!("{url}: opened"),
        }
    }
}

#[tokio::test]
async fn create_keeps_every_input() {
    let fixture = fresh().await;
    let account = AccountId::generate();
    let new = NewDownload {
        mirrors: vec!["http://mirror-a/f.iso".into(), "http://mirror-b/f.iso".into()],
        filename: Some("f.iso".into()),
        directory: Some("isos/linux".into()),
        checksum: Some("sha256=00ff".into()),
        headers: vec![("Cookie".into(), "a=1".into()), ("X-Token".into(), "t".into())],
        connections_limit: Some(8),
        speed_limit: Some(5_000_000),
        priority: 3,
        title: Some("Fedora 41".into()),
        quality: "720p".parse().unwrap(),
        ..NewDownload::new(account.clone(), "http://origin/f.iso")
    };
    let created = fixture.store.create(new).await.unwrap();
    assert_eq!(created.state, JobState::Queued);
    assert_eq!(created.kind, JobKind::File);
    assert_eq!(created.account, account);
    assert_eq!(created.url, "http://origin/f.iso");
    assert_eq!(created.mirrors, ["http://mirror-a/f.iso", "http://mirror-b/f.iso"]);
    assert_eq!(created.filename.as_deref(), Some("f.iso"));
    assert_eq!(created.directory.as_deref(), Some("isos/linux"));
    assert_eq!(created.checksum.as_deref(), Some("sha256=00ff"));
    assert_eq!((created.title.as_deref(), created.quality.to_string().as_str()), (Some("Fedora 41"), "720p"));
    assert_eq!(created.headers, [("Cookie".to_owned(), "a=1".to_owned()), ("X-Token".to_owned(), "t".to_owned())]);
    assert_eq!((created.connections_limit, created.speed_limit, created.priority), (Some(8), Some(5_000_000), 3));
    assert_eq!((created.bytes_done, created.speed, created.connections, created.size), (0, 0, 0, None));
    assert!(created.created_at > 0);
    assert_eq!((created.started_at, created.finished_at, created.lease_owner.as_deref()), (None, None, None));
    assert_eq!(fixture.store.get(&account, created.id).await.unwrap(), created);

    let paused = NewDownload { start_paused: true, ..NewDownload::new(account.clone(), "http://origin/later") };
    assert_eq!(fixture.store.create(paused).await.unwrap().state, JobState::Paused);

    let json = serde_json::to_value(&created).unwrap();
    assert_eq!(json["id"], created.id.to_string());
    assert_eq!(json["state"], "queued");
    assert_eq!(json["headers"][0], serde_json::json!(["Cookie", "a=1"]));
}

#[tokio::test]
async fn list_is_newest_first_with_state_filter_and_paging() {
    let fixture = fresh().await;
    let store = &*fixture.store;
    let account = AccountId::generate();
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(create(store, &account, &format!("http://origin/{n}"), 0).await);
    }
    store.apply(&account, ids[1], JobAction::Pause, None).await.unwrap();
    store.apply(&account, ids[3], JobAction::Pause, None).await.unwrap();
    let newest_first: Vec<_> = ids.iter().rev().copied().collect();

    let account = &account;
    let listed = |filter: ListFilter| async move {
        store.list(account, &filter).await.unwrap().into_iter().map(|record| record.id).collect::<Vec<_>>()
    };
    assert_eq!(listed(ListFilter::default()).await, newest_first);
    assert_eq!(listed(ListFilter { limit: Some(2), ..ListFilter::default() }).await, newest_first[..2]);
    assert_eq!(listed(ListFilter { limit: Some(2), offset: 2, ..ListFilter::default() }).await, newest_first[2..4]);
    assert_eq!(listed(ListFilter { offset: 4, ..ListFilter::default() }).await, newest_first[4..]);
    assert_eq!(listed(ListFilter { offset: 9, ..ListFilter::default() }).await, []);
    assert_eq!(listed(ListFilter { states: vec![JobState::Paused], ..ListFilter::default() }).await, [ids[3], ids[1]]);
    assert_eq!(
        listed(ListFilter { states: vec![JobState::Queued], limit: Some(1), offset: 1, ..ListFilter::default() }).await,
        [ids[2]],
        "queued newest first are 4, 2, 0"
    );
    assert_eq!(listed(ListFilter { states: vec![JobState::Completed], ..ListFilter::default() }).await, []);
    assert_eq!(
        listed(ListFilter { states: vec![JobState::Paused, JobState::Completed], ..ListFilter::default() }).await,
        [ids[3], ids[1]]
    );
    assert_eq!(listed(ListFilter { oldest_first: true, ..ListFilter::default() }).await, ids);
    assert_eq!(
        listed(ListFilter { oldest_first: true, limit: Some(2), offset: 1, ..ListFilter::default() }).await,
        ids[1..3]
    );
    assert_eq!(listed(ListFilter { ids: vec![ids[4], ids[0]], ..ListFilter::default() }).await, [ids[4], ids[0]]);
}

#[tokio::test]
async fn list_filters_on_text_creator_and_creation_time() {
    let fixture = fresh().await;
    let store = &*fixture.store;
    let account = AccountId::generate();
    let new = |url: &str, title: Option<&str>, creator: Option<&str>| {
        let mut new = NewDownload::new(account.clone(), url);
        new.title = title.map(str::to_owned);
        new.labels.creator = creator.map(str::to_owned);
        new
    };
    let holiday = store.create(new("http://origin/a.mp4", Some("Holiday Clip"), Some("ann"))).await.unwrap();
    let report = store.create(new("http://origin/Report.PDF", None, Some("bob"))).await.unwrap();
    let other = store.create(new("http://origin/c.bin", Some("c"), None)).await.unwrap();

    let account = &account;
    let listed = |filter: ListFilter| async move {
        store.list(account, &filter).await.unwrap().into_iter().map(|record| record.id).collect::<Vec<_>>()
    };
    let search = |text: &str| ListFilter { search: Some(text.into()), ..ListFilter::default() };
    assert_eq!(listed(search("holiday")).await, [holiday.id], "the title, ignoring case");
    assert_eq!(listed(search("report.pdf")).await, [report.id], "the URL, ignoring case");
    assert_eq!(listed(search("origin/")).await, [other.id, report.id, holiday.id]);
    assert_eq!(listed(search("%")).await, [], "no wildcards");
    assert_eq!(listed(search("nothing")).await, []);
    assert_eq!(store.count(account, &search("origin/")).await.unwrap(), 3);
    assert_eq!(store.count(account, &ListFilter { limit: Some(1), offset: 1, ..search("origin/") }).await.unwrap(), 3);
    assert_eq!(
        store.count(account, &ListFilter { creator: Some("bob".into()), ..ListFilter::default() }).await.unwrap(),
        1
    );
    assert_eq!(store.count(&AccountId::generate(), &ListFilter::default()).await.unwrap(), 0);
    assert_eq!(listed(ListFilter { title: Some("Holiday Clip".into()), ..ListFilter::default() }).await, [holiday.id]);
    assert_eq!(listed(ListFilter { title: Some("holiday clip".into()), ..ListFilter::default() }).await, []);
    assert_eq!(listed(ListFilter { creator: Some("bob".into()), ..ListFilter::default() }).await, [report.id]);
    let from = ListFilter { created_from: Some(report.created_at), ..ListFilter::default() };
    assert!(listed(from).await.contains(&report.id));
    let before = ListFilter { created_before: Some(holiday.created_at), ..ListFilter::default() };
    assert_eq!(listed(before).await, []);
    let after_all = ListFilter { created_from: Some(other.created_at + 1), ..ListFilter::default() };
    assert_eq!(listed(after_all).await, []);
}

#[tokio::test]
async fn labels_are_kept_and_replaced_whole() {
    let fixture = fresh().await;
    let store = &*fixture.store;
    let account = AccountId::generate();
    let mut new = NewDownload::new(account.clone(), "http://origin/v.mp4");
    new.labels.meta.insert("name".into(), serde_json::json!("Clip"));
    new.labels.meta.insert("nested".into(), serde_json::json!({"a": [1, 2.5, null]}));
    new.labels.creator = Some("ann".into());
    new.labels.thumbnail_at = Some(0.25);
    new.labels.require_signed_urls = true;
    let created = store.create(new.clone()).await.unwrap();
    assert_eq!(created.labels, new.labels);
    assert_eq!(store.get(&account, created.id).await.unwrap().labels, new.labels);

    let cleared = DownloadPatch { labels: Some(haul_core::labels::Labels::default()), ..DownloadPatch::default() };
    let patched = store.patch(&account, created.id, &cleared).await.unwrap();
    assert_eq!(patched.labels, haul_core::labels::Labels::default());
    let priority = DownloadPatch { priority: Some(1), ..DownloadPatch::default() };
    let untouched = store.patch(&account, created.id, &priority).await.unwrap();
    assert_eq!(untouched.labels, haul_core::labels::Labels::default());
}

#[tokio::test]
async fn another_accounts_download_is_not_found() {
    let fixture = fresh().await;
    let store = &*fixture.store;
    let owner = AccountId::generate();
    let stranger = AccountId::generate();
    let id = create(store, &owner, "http://origin/private", 0).await;

    assert_not_found(store.get(&stranger, id).await, id);
    assert!(store.list(&stranger, &ListFilter::default()).await.unwrap().is_empty());
    assert_not_found(store.apply(&stranger, id, JobAction::Pause, None).await, id);
    let patch = DownloadPatch { priority: Some(9), ..DownloadPatch::default() };
    assert_not_found(store.patch(&stranger, id, &patch).await, id);
    assert_not_found(store.delete(&stranger, id).await, id);
    assert_eq!(store.counts(Some(&stranger)).await.unwrap().total(), 0);

    let untouched = store.get(&owner, id).await.unwrap();
    assert_eq!((untouched.state, untouched.priority), (JobState::Queued, 0));
    let unknown = DownloadId::new_random();
    assert_not_found(store.get(&owner, unknown).await, unknown);
}

#[tokio::test]
async fn apply_follows_the_state_machine_for_every_state_and_action() {
    let fixture = fresh().await;
    let store = &*fixture.store;
    let account = AccountId::generate();
    for from in JobState::ALL {
        for action in JobAction::ALL {
            let id = download_in(store, &account, from).await;
            let result = store.apply(&account, id, action, None).await;
            match next_state(from, action) {
                Ok(to) => assert_eq!(result.unwrap().state, to, "{action} from {from}"),
                Err(illegal) => {
                    let message = assert_conflict(result, from);
                    assert_eq!(message, illegal.to_string());
                    assert_eq!(store.get(&account, id).await.unwrap().state, from, "a refused action changes nothing");
                }
            }
        }
    }
}

#[tokio::test]
async fn conflict_names_the_current_state() {
    let fixture = fresh().await;
    let account = AccountId::generate();
    let id = download_in(&*fixture.store, &account, JobState::Completed).await;
    let message = assert_conflict(fixture.store.apply(&account, id, JobAction::Pause, None).await, JobState::Completed);
    assert_eq!(message, "cannot pause a download that is completed");
}

#[tokio::test]
async fn apply_keeps_times_and_errors() {
    let fixture = fresh().await;
    let store = &*fixture.store;
    let account = AccountId::generate();
    let id = create(store, &account, "http://origin/f", 0).await;

    let started = store.apply(&account, id, JobAction::Start, None).await.unwrap();
    let started_at = started.started_at.expect("start sets started_at");
    assert_eq!(started.finished_at, None);

    let failed =
        store.apply(&account, id, JobAction::Fail, Some("http://origin/f: 404 Not Found".into())).await.unwrap();
    assert_eq!(failed.error.as_deref(), Some("http://origin/f: 404 Not Found"));
    assert!(failed.finished_at.is_some_and(|finished| finished >= started_at));
    assert_eq!(failed.started_at, Some(started_at));

    let retried = store.apply(&account, id, JobAction::Retry, None).await.unwrap();
    assert_eq!((retried.state, retried.error, retried.finished_at), (JobState::Queued, None, None));
    assert_eq!(retried.started_at, Some(started_at), "started_at is the first start");

    store.apply(&account, id, JobAction::Start, None).await.unwrap();
    let completed = store.apply(&account, id, JobAction::Complete, None).await.unwrap();
    assert_eq!(completed.started_at, Some(started_at));
    assert!(completed.finished_at.is_some());
}

#[tokio::test]
async fn claim_takes_highest_priority_then_oldest_up_to_max_active() {
    let fixture = fresh().await;
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
    assert!(store.claim_next("node-b", LEASE, 2).await.unwrap().is_none(), "the limit counts every node");

    store.apply(&account, high_old, JobAction::Complete, None).await.unwrap();
    assert_eq!(store.claim_next("node-a", LEASE, 2).await.unwrap().unwrap().id, low_old);
    store.apply(&account, high_new, JobAction::Pause, None).await.unwrap();
    assert_eq!(store.claim_next("node-a", LEASE, 2).await.unwrap().unwrap().id, low_new);
    assert!(store.claim_next("node-a", LEASE, 10).await.unwrap().is_none(), "paused downloads are not claimed");
    assert!(store.claim_next("node-a", LEASE, 0).await.unwrap().is_none());
}

#[tokio::test]
async fn free_slots_go_to_the_account_running_fewest() {
    let fixture = fresh().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_never_share_a_download() {
    let fixture = fresh().await;
    let account = AccountId::generate();
    let mut created = HashSet::new();
    for n in 0..20 {
        created.insert(create(&*fixture.store, &account, &format!("http://origin/{n}"), n % 3).await);
    }

    // Each claimer opens the file itself, as separate processes would, so the database's locking is what is
    // tested, not a shared pool.
    let url = format!("sqlite://{}", fixture.db_path.display());
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

#[tokio::test]
async fn expired_leases_are_reclaimed() {
    let fixture = fresh().await;
    let store = &*fixture.store;
    let account = AccountId::generate();
    let id = create(store, &account, "http://origin/f", 0).await;

    let claimed = store.claim_next("node-dead", Duration::from_millis(1), 1).await.unwrap().unwrap();
    assert_eq!(claimed.id, id);
    store.record_progress(id, &ProgressUpdate { bytes_done: 4096, ..ProgressUpdate::default() }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;

    // The expired lease no longer counts against max_active 1, and the download is handed over.
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

#[tokio::test]
async fn report_progress_renews_records_and_answers_only_for_the_lease_holder() {
    let fixture = fresh().await;
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

#[tokio::test]
async fn requeue_node_puts_only_that_nodes_downloads_back() {
    let fixture = fresh().await;
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

#[tokio::test]
async fn progress_is_recorded_and_motion_only_while_active() {
    let fixture = fresh().await;
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

#[tokio::test]
async fn patch_changes_url_only_while_paused_or_failed() {
    let fixture = fresh().await;
    let store = &*fixture.store;
    let account = AccountId::generate();
    let new_url = DownloadPatch { url: Some("http://mirror/f".into()), ..DownloadPatch::default() };

    for state in JobState::ALL {
        let id = download_in(store, &account, state).await;
        let result = store.patch(&account, id, &new_url).await;
        if matches!(state, JobState::Paused | JobState::Failed) {
            assert_eq!(result.unwrap().url, "http://mirror/f", "{state}");
        } else {
            let message = assert_conflict(result, state);
            assert!(message.starts_with(&format!("cannot change the url of a download that is {state}")), "{message}");
            assert_eq!(store.get(&account, id).await.unwrap().url, "http://origin/file.bin");
        }
    }

    let active = download_in(store, &account, JobState::Active).await;
    let reprioritised =
        store.patch(&account, active, &DownloadPatch { priority: Some(-2), ..DownloadPatch::default() }).await.unwrap();
    assert_eq!((reprioritised.priority, reprioritised.state), (-2, JobState::Active));
    let both = DownloadPatch { url: Some("http://x/y".into()), priority: Some(7), ..DownloadPatch::default() };
    assert_conflict(store.patch(&account, active, &both).await, JobState::Active);
    assert_eq!(store.get(&account, active).await.unwrap().priority, -2, "a refused patch changes nothing");
}

#[tokio::test]
async fn delete_returns_the_row_and_removes_it() {
    let fixture = fresh().await;
    let store = &*fixture.store;
    let account = AccountId::generate();
    let id = download_in(store, &account, JobState::Completed).await;
    let before = store.get(&account, id).await.unwrap();
    assert_eq!(store.delete(&account, id).await.unwrap(), before);
    assert_not_found(store.get(&account, id).await, id);
    assert_not_found(store.delete(&account, id).await, id);
}

#[tokio::test]
async fn renditions_belong_to_their_download_and_account() {
    let fixture = fresh().await;
    let store = &*fixture.store;
    let (owner, other) = (AccountId::generate(), AccountId::generate());
    let id = download_in(store, &owner, JobState::Completed).await;

    let first = store.put_rendition(&owner, id, RenditionName::Default).await.unwrap();
    assert_eq!((first.download, first.name, first.state), (id, RenditionName::Default, RenditionState::Pending));
    assert_eq!((first.percent, first.path.as_deref(), first.error.as_deref()), (0.0, None, None));
    // Asking again is idempotent.
    assert_eq!(store.put_rendition(&owner, id, RenditionName::Default).await.unwrap(), first);
    store.put_rendition(&owner, id, RenditionName::Audio).await.unwrap();
    let names = |list: Vec<Rendition>| list.into_iter().map(|r| r.name.as_str()).collect::<Vec<_>>();
    assert_eq!(names(store.renditions(&owner, id).await.unwrap()), ["audio", "default"]);

    // Another account sees neither the download nor its renditions, and cannot add or delete any.
    assert_not_found(store.renditions(&other, id).await, id);
    assert_not_found(store.put_rendition(&other, id, RenditionName::Audio).await, id);
    assert_not_found(store.delete_renditions(&other, id, None).await, id);

    assert_eq!(names(store.delete_renditions(&owner, id, Some(RenditionName::Audio)).await.unwrap()), ["audio"]);
    assert_eq!(
        names(store.delete_renditions(&owner, id, Some(RenditionName::Audio)).await.unwrap()),
        Vec::<&str>::new()
    );
    assert_eq!(names(store.renditions(&owner, id).await.unwrap()), ["default"]);

    // Deleting the download takes its renditions with it (the foreign key cascades).
    store.delete(&owner, id).await.unwrap();
    assert_not_found(store.renditions(&owner, id).await, id);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", fixture.db_path.display())).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM renditions").fetch_one(&pool).await.unwrap();
    assert_eq!(left, 0, "renditions outlived their download");
}

#[tokio::test]
async fn media_fields_and_rendition_progress_are_recorded() {
    let fixture = fresh().await;
    let store = &*fixture.store;
    let account = AccountId::generate();
    let named = NewDownload {
        kind: JobKind::Auto,
        title: Some("Client's name".into()),
        ..NewDownload::new(account.clone(), "http://site/page")
    };
    let id = store.create(named).await.unwrap().id;
    let update = MediaUpdate {
        kind: Some(JobKind::Media),
        title: Some("Page title".into()),
        duration: Some(2.5),
        width: Some(1280),
        height: Some(720),
        format: Some("v720+a1".into()),
        thumbnail: Some(format!("{id}.jpg")),
    };
    store.set_media(id, &update).await.unwrap();
    let record = store.get(&account, id).await.unwrap();
    assert_eq!(record.kind, JobKind::Media);
    assert_eq!(record.title.as_deref(), Some("Client's name"), "a title the client gave is kept");
    assert_eq!((record.duration, record.width, record.height), (Some(2.5), Some(1280), Some(720)));
    assert_eq!((record.format.as_deref(), record.thumbnail.clone()), (Some("v720+a1"), Some(format!("{id}.jpg"))));
    // `None` keeps what is there.
    store.set_media(id, &MediaUpdate::default()).await.unwrap();
    assert_eq!(store.get(&account, id).await.unwrap(), record);

    // Renditions to make: derived ones, pending or active, of completed downloads only.
    store.put_rendition(&account, id, RenditionName::Audio).await.unwrap();
    store.put_rendition(&account, id, RenditionName::Default).await.unwrap();
    assert!(store.renditions_to_make().await.unwrap().is_empty(), "the download is not complete yet");
    store.apply(&account, id, JobAction::Start, None).await.unwrap();
    store.apply(&account, id, JobAction::Complete, None).await.unwrap();
    assert_eq!(store.renditions_to_make().await.unwrap(), [(account.clone(), id, RenditionName::Audio)]);
    let active = RenditionUpdate { state: Some(RenditionState::Active), percent: Some(40.0), ..Default::default() };
    store.update_rendition(id, RenditionName::Audio, &active).await.unwrap();
    assert_eq!(store.renditions_to_make().await.unwrap().len(), 1, "an interrupted one is made again");
    let failed =
        RenditionUpdate { state: Some(RenditionState::Failed), error: Some("no audio".into()), ..Default::default() };
    store.update_rendition(id, RenditionName::Audio, &failed).await.unwrap();
    // Asking again for a failed one starts it afresh.
    let again = store.put_rendition(&account, id, RenditionName::Audio).await.unwrap();
    assert_eq!((again.state, again.percent, again.error), (RenditionState::Pending, 0.0, None));
    let ready = RenditionUpdate {
        state: Some(RenditionState::Ready),
        percent: Some(100.0),
        path: Some("a.m4a".into()),
        ..Default::default()
    };
    store.update_rendition(id, RenditionName::Audio, &ready).await.unwrap();
    let audio =
        store.renditions(&account, id).await.unwrap().into_iter().find(|r| r.name == RenditionName::Audio).unwrap();
    assert_eq!(
        (audio.state, audio.percent, audio.path.as_deref(), audio.error),
        (RenditionState::Ready, 100.0, Some("a.m4a"), None)
    );
    assert!(store.renditions_to_make().await.unwrap().is_empty());
}

#[tokio::test]
async fn counts_per_account_and_overall() {
    let fixture = fresh().await;
    let store = &*fixture.store;
    let alice = AccountId::generate();
    let bob = AccountId::generate();
    download_in(store, &alice, JobState::Queued).await;
    download_in(store, &alice, JobState::Queued).await;
    download_in(store, &alice, JobState::Failed).await;
    download_in(store, &bob, JobState::Paused).await;

    let counts = store.counts(Some(&alice)).await.unwrap();
    assert_eq!((counts.queued, counts.failed, counts.paused, counts.total()), (2, 1, 0, 3));
    let overall = store.counts(None).await.unwrap();
    assert_eq!((overall.queued, overall.failed, overall.paused, overall.total()), (2, 1, 1, 4));
    assert_eq!(serde_json::to_value(overall).unwrap()["paused"], 1);
}

/// The totals are kept beside the rows (migration 0008), not counted from them: every way a row is added,
/// moves or goes must keep them equal to what a count of the rows says.
#[tokio::test]
async fn counts_stay_equal_to_the_rows_through_every_change() {
    let fixture = fresh().await;
    let store = &*fixture.store;
    let alice = AccountId::generate();
    let bob = AccountId::generate();
    let counted = |account: AccountId| async move {
        let mut by_state = std::collections::BTreeMap::new();
        for record in store.list(&account, &ListFilter::default()).await.unwrap() {
            *by_state.entry(record.state.as_str()).or_insert(0u64) += 1;
        }
        by_state
    };
    let kept = |account: AccountId| async move {
        let counts = store.counts(Some(&account)).await.unwrap();
        let all = [
            ("queued", counts.queued),
            ("active", counts.active),
            ("paused", counts.paused),
            ("completed", counts.completed),
            ("failed", counts.failed),
            ("cancelled", counts.cancelled),
        ];
        all.into_iter().filter(|(_, n)| *n > 0).collect::<std::collections::BTreeMap<_, _>>()
    };

    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(create(store, &alice, &format!("http://origin/{n}"), 0).await);
    }
    let paused = store.create(NewDownload { start_paused: true, ..NewDownload::new(bob.clone(), "http://o/p") });
    let paused = paused.await.unwrap().id;
    let claimed = store.claim_next("node-a", LEASE, 10).await.unwrap().unwrap().id;
    store.apply(&alice, claimed, JobAction::Complete, None).await.unwrap();
    store.claim_next("node-a", LEASE, 10).await.unwrap().unwrap();
    store.claim_next("node-a", LEASE, 10).await.unwrap().unwrap();
    store.pause_node("node-a").await.unwrap();
    store.apply(&bob, paused, JobAction::Resume, None).await.unwrap();
    store.apply(&alice, ids[3], JobAction::Cancel, None).await.unwrap();
    // A write that names the state without changing it.
    assert!(store.apply(&alice, ids[3], JobAction::Cancel, None).await.is_err());
    store.delete(&alice, ids[0]).await.unwrap();
    store.record_progress(ids[1], &ProgressUpdate { bytes_done: 5, ..Default::default() }).await.unwrap();

    for account in [alice.clone(), bob.clone()] {
        assert_eq!(kept(account.clone()).await, counted(account).await);
    }
    let overall = store.counts(None).await.unwrap();
    assert_eq!(overall.total(), 4);
    assert_eq!((overall.queued, overall.paused, overall.completed, overall.cancelled), (1, 2, 0, 1));
}

#[tokio::test]
async fn reopening_the_file_keeps_everything() {
    let fixture = fresh().await;
    let account = AccountId::generate();
    let first = create(&*fixture.store, &account, "http://origin/a", 1).await;
    let second = download_in(&*fixture.store, &account, JobState::Failed).await;
    fixture.store.claim_next("node-a", LEASE, 5).await.unwrap().unwrap();
    fixture.store.record_progress(first, &ProgressUpdate { bytes_done: 77, ..Default::default() }).await.unwrap();
    let before = fixture.store.list(&account, &ListFilter::default()).await.unwrap();
    drop(fixture.store);

    let reopened = haul_store::open(fixture.db_path.to_str().unwrap()).await.unwrap();
    assert_eq!(reopened.list(&account, &ListFilter::default()).await.unwrap(), before);
    assert_eq!(reopened.get(&account, first).await.unwrap().bytes_done, 77);
    assert_eq!(reopened.get(&account, second).await.unwrap().state, JobState::Failed);
    assert_eq!(reopened.requeue_node("node-a").await.unwrap(), 1, "leases survive a restart too");
}
