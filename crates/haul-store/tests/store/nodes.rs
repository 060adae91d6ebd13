//! Several nodes on one store: the values they share (decided by the first to ask), their heartbeats with the
//! leases each holds, which node holds a finished file, the counts when many writers change downloads at once, and
//! (PostgreSQL only; SQLite keeps a node's events its own) the events every node reads in one order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use haul_core::job::{AccountId, DownloadId, JobAction, JobState};
use haul_store::{ListFilter, NewDownload, NodeBeat, NodeRecord, StateCounts, Store, StoreError, StoredEvent};
use tokio::sync::Barrier;

use crate::harness::{Backend, Fixture, LEASE, assert_conflict, create, download_in};

backend_tests! {
    #[test(flavor = "multi_thread", worker_threads = 4)]
    shared_value_is_decided_by_the_first_caller,
    heartbeats_list_nodes_with_their_live_leases,
    held_by_names_the_node_that_completed_the_file,
    only_the_lease_holder_completes,
    a_release_waits_for_a_state_change_of_its_rows_instead_of_deadlocking,
    events_travel_through_the_store_only_on_postgres,
    #[test(flavor = "multi_thread", worker_threads = 4)]
    counts_stay_right_under_concurrent_claims_and_transitions,
    #[test(flavor = "multi_thread", worker_threads = 4)]
    nodes_restarting_together_release_their_downloads_without_deadlock,
}

postgres_tests! {
    #[test(flavor = "multi_thread", worker_threads = 4)]
    events_are_numbered_in_the_order_they_become_visible,
    #[test(flavor = "multi_thread", worker_threads = 4)]
    wait_events_returns_when_events_arrive_or_when_the_wait_runs_out,
    a_wait_is_not_ended_early_by_the_notification_of_events_already_read,
    pruning_forgets_old_events_but_numbers_keep_rising,
    #[test(flavor = "multi_thread", worker_threads = 4)]
    releases_meeting_on_the_counts_do_not_deadlock,
}

/// A run that finishes after its lease was taken over must not complete the other node's run (nor name its own
/// disk for the file); the holder of the lease completes, and is named.
async fn only_the_lease_holder_completes(fixture: Fixture) {
    let store = &*fixture.store;
    let account = AccountId::generate();
    let id = create(store, &account, "http://origin/leased", 0).await;
    assert_eq!(store.claim_next("n1", Duration::from_millis(1), 10).await.unwrap().unwrap().id, id);
    tokio::time::sleep(Duration::from_millis(10)).await;
    // n1's lease ran out and n2 took the job over.
    assert_eq!(store.claim_next("n2", LEASE, 10).await.unwrap().unwrap().id, id);
    let late = store.complete_leased(id, "n1").await;
    let message = assert_conflict(late, JobState::Active);
    assert!(message.contains("no longer leased to n1"), "{message}");
    let done = store.complete_leased(id, "n2").await.unwrap();
    assert_eq!((done.state, done.held_by.as_deref(), done.lease_owner), (JobState::Completed, Some("n2"), None));
    assert!(done.finished_at.is_some());
    // A client paused it at the last moment: not completed behind its back.
    let paused = create(store, &account, "http://origin/paused", 0).await;
    assert_eq!(store.claim_next("n1", LEASE, 10).await.unwrap().unwrap().id, paused);
    store.apply(&account, paused, JobAction::Pause, None).await.unwrap();
    assert_conflict(store.complete_leased(paused, "n1").await, JobState::Paused);
}

/// A node releasing its downloads while a client changes the state of one of them (pause, remove) through
/// another node: one waits for the other; neither fails.
async fn a_release_waits_for_a_state_change_of_its_rows_instead_of_deadlocking(fixture: Fixture) {
    let account = AccountId::generate();
    for round in 0..10 {
        let store = haul_store::open(&fixture.url).await.unwrap();
        let ids: Vec<DownloadId> = {
            let mut ids = Vec::new();
            for n in 0..6 {
                let id = create(&*store, &account, &format!("http://origin/{round}/{n}"), 0).await;
                assert_eq!(store.claim_next("n1", LEASE, 100).await.unwrap().unwrap().id, id);
                ids.push(id);
            }
            ids
        };
        let other = haul_store::open(&fixture.url).await.unwrap();
        let (account2, victims) = (account.clone(), ids.clone());
        let pauses = tokio::spawn(async move {
            for id in victims.iter().rev() {
                // Paused by the release first is a fair answer; a failure (a deadlock broken) is not.
                match other.apply(&account2, *id, JobAction::Pause, None).await {
                    Ok(_) | Err(StoreError::Conflict { current: JobState::Paused, .. }) => {}
                    Err(error) => panic!("a pause beside a release failed: {}", chain(&error)),
                }
            }
        });
        let released = match store.pause_node("n1").await {
            Ok(released) => released,
            Err(error) => panic!("round {round}: the release failed: {}", chain(&error)),
        };
        pauses.await.unwrap();
        assert!(released <= 6, "round {round}: {released}");
        for id in ids {
            assert_eq!(store.get(&account, id).await.unwrap().state, JobState::Paused, "round {round}");
        }
    }
}

async fn shared_value_is_decided_by_the_first_caller(fixture: Fixture) {
    let store = &*fixture.store;
    assert_eq!(store.shared_value("k", "a").await.unwrap(), "a", "the first to ask decides");
    assert_eq!(store.shared_value("k", "b").await.unwrap(), "a", "later callers adopt it");
    assert_eq!(store.shared_value("other", "b").await.unwrap(), "b", "each name has its own value");
    let reopened = haul_store::open(&fixture.url).await.unwrap();
    assert_eq!(reopened.shared_value("k", "c").await.unwrap(), "a", "another node (or a restart) adopts it too");

    // Nodes starting together, each with a store of its own, each proposing its own value: all get one answer.
    let ready = Arc::new(Barrier::new(8));
    let mut askers = Vec::new();
    for n in 0..8 {
        let (url, ready) = (fixture.url.clone(), ready.clone());
        askers.push(tokio::spawn(async move {
            let store = haul_store::open(&url).await.unwrap();
            ready.wait().await;
            store.shared_value("race", &format!("value-{n}")).await.unwrap()
        }));
    }
    let mut answers = HashSet::new();
    for asker in askers {
        answers.insert(asker.await.unwrap());
    }
    assert_eq!(answers.len(), 1, "every node got the same value: {answers:?}");
    let winner = answers.into_iter().next().unwrap();
    assert!((0..8).any(|n| winner == format!("value-{n}")), "the value is one of the proposals: {winner}");
    assert_eq!(store.shared_value("race", "late").await.unwrap(), winner);
}

async fn heartbeats_list_nodes_with_their_live_leases(fixture: Fixture) {
    let store = &*fixture.store;
    assert_eq!(store.nodes().await.unwrap(), []);
    let beat = |node: &str, url: &str, version: &str| NodeBeat {
        node: node.into(),
        advertise_url: Some(url.into()),
        version: version.into(),
    };

    let before = now_millis();
    store.heartbeat(&beat("n1", "http://n1:8080", "x")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    store.heartbeat(&beat("n2", "http://n2:8080", "x")).await.unwrap();
    let nodes = store.nodes().await.unwrap();
    assert_eq!(ids(&nodes), ["n2", "n1"], "most recently seen first");
    let first_n1 = nodes[1].clone();
    assert_eq!(first_n1.advertise_url.as_deref(), Some("http://n1:8080"));
    assert_eq!((first_n1.version.as_str(), first_n1.active), ("x", 0));
    assert!(first_n1.started_at >= before && first_n1.started_at <= now_millis(), "{first_n1:?}");
    assert_eq!(first_n1.started_at, first_n1.last_seen, "the first beat is when it started");
    assert!(nodes[0].last_seen > first_n1.last_seen, "{nodes:?}");

    // A later beat moves last_seen on and replaces what the node says about itself, but not when it started.
    tokio::time::sleep(Duration::from_millis(5)).await;
    store.heartbeat(&beat("n1", "http://n1.internal:8080", "y")).await.unwrap();
    let nodes = store.nodes().await.unwrap();
    assert_eq!(ids(&nodes), ["n1", "n2"], "n1 is now the most recently seen");
    let n1 = &nodes[0];
    assert_eq!(n1.started_at, first_n1.started_at, "started_at is kept across beats");
    assert!(n1.last_seen > first_n1.last_seen && n1.last_seen > nodes[1].last_seen, "{nodes:?}");
    assert_eq!((n1.advertise_url.as_deref(), n1.version.as_str()), (Some("http://n1.internal:8080"), "y"));
    assert_eq!(haul_store::open(&fixture.url).await.unwrap().nodes().await.unwrap(), nodes, "every node sees them");

    // `active` counts a node's live leases only: n2's lease of 1 ms runs out, and n3 holds one but never beat.
    let account = AccountId::generate();
    let mut on_n1 = Vec::new();
    for n in 0..3 {
        create(store, &account, &format!("http://origin/n1-{n}"), 0).await;
        on_n1.push(store.claim_next("n1", LEASE, 10).await.unwrap().unwrap().id);
    }
    create(store, &account, "http://origin/n3", 0).await;
    store.claim_next("n3", LEASE, 10).await.unwrap().unwrap();
    // Last, so that no other claim takes it over once its lease has run out.
    let short_id = create(store, &account, "http://origin/n2", 0).await;
    let short = store.claim_next("n2", Duration::from_millis(1), 10).await.unwrap().unwrap();
    assert_eq!(short.id, short_id);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let nodes = store.nodes().await.unwrap();
    assert_eq!(ids(&nodes), ["n1", "n2"], "a node that never beat is not listed, leases or not");
    assert_eq!((nodes[0].active, nodes[1].active), (3, 0), "n2's only lease has run out: {nodes:?}");

    // n2 takes its download back with a live lease; n1 finishes one and pauses another.
    let again = store.claim_next("n2", LEASE, 10).await.unwrap().unwrap();
    assert_eq!(again.id, short.id, "the expired lease made it runnable again");
    store.apply(&account, on_n1[0], JobAction::Complete, None).await.unwrap();
    store.apply(&account, on_n1[1], JobAction::Pause, None).await.unwrap();
    let nodes = store.nodes().await.unwrap();
    assert_eq!((nodes[0].active, nodes[1].active), (1, 1), "{nodes:?}");
    assert_eq!(store.requeue_node("n1").await.unwrap(), 1);
    assert_eq!(store.nodes().await.unwrap()[0].active, 0, "a requeued download is no longer n1's");
}

async fn held_by_names_the_node_that_completed_the_file(fixture: Fixture) {
    let store = &*fixture.store;
    let account = AccountId::generate();
    // Each case starts from one runnable download, so each claim takes the download just made.
    let claim = |node: &'static str, lease: Duration, expected: DownloadId| async move {
        let claimed = store.claim_next(node, lease, 10).await.unwrap().expect("a runnable download");
        assert_eq!((claimed.id, claimed.lease_owner.as_deref()), (expected, Some(node)));
        assert_eq!(claimed.held_by, None, "nobody holds the file of a download that is not complete");
        claimed
    };
    let mut expected = HashMap::new();

    // Claimed by n1 and completed there.
    let on_n1 = create(store, &account, "http://origin/on-n1", 0).await;
    claim("n1", LEASE, on_n1).await;
    let done = store.apply(&account, on_n1, JobAction::Complete, None).await.unwrap();
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(done.held_by.as_deref(), Some("n1"), "the lease owner when it completed holds the file");
    assert_eq!((done.lease_owner.as_deref(), done.lease_expires), (None, None), "completing drops the lease");
    assert_eq!(store.get(&account, on_n1).await.unwrap(), done);
    // Completed is final (see `next_state`): nothing moves it, or who holds its file, again.
    for action in JobAction::ALL {
        assert_conflict(store.apply(&account, on_n1, action, None).await, JobState::Completed);
    }
    assert_eq!(store.requeue_node("n1").await.unwrap(), 0);
    assert_eq!(store.get(&account, on_n1).await.unwrap(), done);
    expected.insert(on_n1, Some("n1"));

    // Started and completed without a lease: no node is known to hold it.
    let unleased = download_in(store, &account, JobState::Completed).await;
    assert_eq!(store.get(&account, unleased).await.unwrap().held_by, None);
    expected.insert(unleased, None);

    // Failed on n1, retried, completed on n2: n2 holds it.
    let retried = create(store, &account, "http://origin/retried", 0).await;
    claim("n1", LEASE, retried).await;
    let failed = store.apply(&account, retried, JobAction::Fail, Some("boom".into())).await.unwrap();
    assert_eq!((failed.state, failed.held_by.as_deref()), (JobState::Failed, None), "a failed file is nobody's");
    let requeued = store.apply(&account, retried, JobAction::Retry, None).await.unwrap();
    assert_eq!((requeued.state, requeued.held_by.as_deref()), (JobState::Queued, None));
    claim("n2", LEASE, retried).await;
    let done = store.apply(&account, retried, JobAction::Complete, None).await.unwrap();
    assert_eq!(done.held_by.as_deref(), Some("n2"));
    expected.insert(retried, Some("n2"));

    // Cancelled on n1, retried, completed on n2.
    let cancelled = create(store, &account, "http://origin/cancelled", 0).await;
    claim("n1", LEASE, cancelled).await;
    store.apply(&account, cancelled, JobAction::Cancel, None).await.unwrap();
    store.apply(&account, cancelled, JobAction::Retry, None).await.unwrap();
    claim("n2", LEASE, cancelled).await;
    let done = store.apply(&account, cancelled, JobAction::Complete, None).await.unwrap();
    assert_eq!(done.held_by.as_deref(), Some("n2"));
    expected.insert(cancelled, Some("n2"));

    // Paused on n1, resumed, completed on n2.
    let paused = create(store, &account, "http://origin/paused", 0).await;
    claim("n1", LEASE, paused).await;
    store.apply(&account, paused, JobAction::Pause, None).await.unwrap();
    store.apply(&account, paused, JobAction::Resume, None).await.unwrap();
    claim("n2", LEASE, paused).await;
    let done = store.apply(&account, paused, JobAction::Complete, None).await.unwrap();
    assert_eq!(done.held_by.as_deref(), Some("n2"));
    expected.insert(paused, Some("n2"));

    // n1's lease ran out and n2 took over; or n1 restarted and gave it back, and n2 took it.
    let taken_over = create(store, &account, "http://origin/taken-over", 0).await;
    claim("n1", Duration::from_millis(1), taken_over).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    claim("n2", LEASE, taken_over).await;
    let done = store.apply(&account, taken_over, JobAction::Complete, None).await.unwrap();
    assert_eq!(done.held_by.as_deref(), Some("n2"));
    expected.insert(taken_over, Some("n2"));
    let handed_back = create(store, &account, "http://origin/handed-back", 0).await;
    claim("n1", LEASE, handed_back).await;
    assert_eq!(store.requeue_node("n1").await.unwrap(), 1);
    claim("n3", LEASE, handed_back).await;
    let done = store.apply(&account, handed_back, JobAction::Complete, None).await.unwrap();
    assert_eq!(done.held_by.as_deref(), Some("n3"));
    expected.insert(handed_back, Some("n3"));

    // Listing, and another node's store, read the same.
    let reopened = haul_store::open(&fixture.url).await.unwrap();
    for store in [store, &*reopened] {
        let listed = store.list(&account, &ListFilter::default()).await.unwrap();
        let held: HashMap<DownloadId, Option<&str>> =
            listed.iter().map(|record| (record.id, record.held_by.as_deref())).collect();
        assert_eq!(held, expected);
    }
}

/// SQLite's are the trait's defaults (a node's events stay its own and never touch the store); PostgreSQL's go
/// through it.
async fn events_travel_through_the_store_only_on_postgres(fixture: Fixture) {
    let store = &*fixture.store;
    let events = [event("completed", "acct", "{}")];
    match fixture.backend {
        Backend::Sqlite => {
            assert!(!store.shared_by_nodes());
            store.append_events(&events).await.unwrap();
            assert_eq!(store.latest_event_id().await.unwrap(), 0);
            let started = Instant::now();
            assert_eq!(store.wait_events(0, 10, Duration::from_secs(5)).await.unwrap(), []);
            assert!(started.elapsed() < Duration::from_secs(1), "nothing to wait for: {:?}", started.elapsed());
            assert_eq!(store.prune_events(Duration::ZERO).await.unwrap(), 0);
        }
        Backend::Postgres(_) => {
            assert!(store.shared_by_nodes());
            store.append_events(&events).await.unwrap();
            let latest = store.latest_event_id().await.unwrap();
            assert!(latest > 0);
            let read = store.wait_events(0, 10, Duration::ZERO).await.unwrap();
            assert_eq!(
                read,
                [StoredEvent { id: latest, kind: "completed".into(), account: "acct".into(), payload: "{}".into() }]
            );
        }
    }
}

/// Writers on separate stores (separate pools, as separate nodes) append batches while a reader follows with
/// `wait_events(last, ..)`: the reader must see every event once, in strictly increasing numbers, each writer's
/// in the order it wrote them. A number that became visible after a higher one would be skipped by the reader.
async fn events_are_numbered_in_the_order_they_become_visible(fixture: Fixture) {
    const WRITERS: usize = 4;
    const BATCHES: usize = 50;
    const PER_BATCH: usize = 5;
    const TOTAL: usize = WRITERS * BATCHES * PER_BATCH;
    let reader = &*fixture.store;
    // Opens the reader's listener before anything is written.
    assert_eq!(reader.wait_events(0, 100, Duration::ZERO).await.unwrap(), []);

    let ready = Arc::new(Barrier::new(WRITERS + 1));
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (url, ready) = (fixture.url.clone(), ready.clone());
        writers.push(tokio::spawn(async move {
            let store = haul_store::open(&url).await.unwrap();
            ready.wait().await;
            for batch in 0..BATCHES {
                let events: Vec<_> = (0..PER_BATCH)
                    .map(|n| {
                        event("progress", &format!("writer-{writer}"), &format!("{writer}:{}", batch * PER_BATCH + n))
                    })
                    .collect();
                store.append_events(&events).await.unwrap();
            }
        }));
    }

    ready.wait().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen: Vec<StoredEvent> = Vec::with_capacity(TOTAL);
    let mut last = 0;
    while seen.len() < TOTAL {
        assert!(Instant::now() < deadline, "only {} of {TOTAL} events read; the last was {last}", seen.len());
        let read = reader.wait_events(last, 100, Duration::from_millis(200)).await.unwrap();
        assert!(read.len() <= 100, "{} events for a limit of 100", read.len());
        for stored in read {
            assert!(stored.id > last, "event {} read after event {last}", stored.id);
            last = stored.id;
            seen.push(stored);
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(reader.wait_events(last, 100, Duration::from_millis(50)).await.unwrap(), [], "nothing beyond");
    assert_eq!(reader.latest_event_id().await.unwrap(), last);

    // Every event once, each writer's in its own order.
    let mut next = [0usize; WRITERS];
    for stored in &seen {
        let (writer, number) = stored.payload.split_once(':').unwrap();
        let (writer, number): (usize, usize) = (writer.parse().unwrap(), number.parse().unwrap());
        assert_eq!((stored.kind.as_str(), stored.account.clone()), ("progress", format!("writer-{writer}")));
        assert_eq!(number, next[writer], "writer {writer}'s events out of order or repeated at event {}", stored.id);
        next[writer] += 1;
    }
    assert_eq!(next, [BATCHES * PER_BATCH; WRITERS]);

    // Another node reading from the start, in pages, reads the same sequence.
    let other = haul_store::open(&fixture.url).await.unwrap();
    let mut replayed = Vec::new();
    loop {
        let after = replayed.last().map_or(0, |stored: &StoredEvent| stored.id);
        let page = other.wait_events(after, 7, Duration::ZERO).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 7);
        replayed.extend(page);
    }
    assert_eq!(replayed, seen);
}

async fn wait_events_returns_when_events_arrive_or_when_the_wait_runs_out(fixture: Fixture) {
    const WAIT: Duration = Duration::from_millis(500);
    let reader = &*fixture.store;
    let writer = haul_store::open(&fixture.url).await.unwrap();

    // Idle: empty, after about the wait.
    let started = Instant::now();
    assert_eq!(reader.wait_events(0, 10, WAIT).await.unwrap(), []);
    assert_waited_about(started.elapsed(), WAIT, "an idle store");

    // An append from another node meanwhile ends the wait at once.
    let appending = tokio::spawn({
        let writer = writer.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            writer.append_events(&[event("created", "acct", "first")]).await.unwrap();
        }
    });
    let started = Instant::now();
    let read = reader.wait_events(0, 10, Duration::from_secs(5)).await.unwrap();
    let elapsed = started.elapsed();
    appending.await.unwrap();
    assert_eq!(payloads(&read), ["first"]);
    assert!(elapsed >= Duration::from_millis(90), "returned before the append: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "the append did not wake the wait: {elapsed:?}");
    let last = read[0].id;

    // Idle again once read: a wait lasts about the wait.
    let started = Instant::now();
    assert_eq!(reader.wait_events(last, 10, WAIT).await.unwrap(), []);
    assert_waited_about(started.elapsed(), WAIT, "a store idle again");

    // Events already there are read without waiting: those above `after` only, oldest first, at most `limit`.
    let batch: Vec<_> = (0..5).map(|n| event("created", "acct", &format!("batch-{n}"))).collect();
    writer.append_events(&batch).await.unwrap();
    let started = Instant::now();
    let read = reader.wait_events(last, 3, Duration::from_secs(5)).await.unwrap();
    assert_eq!(payloads(&read), ["batch-0", "batch-1", "batch-2"]);
    let read = reader.wait_events(read[2].id, 3, Duration::from_secs(5)).await.unwrap();
    assert_eq!(payloads(&read), ["batch-3", "batch-4"]);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

/// Events appended while the reader is not waiting are read at once, without waiting for their notification;
/// that notification, left behind, must not end the next wait early when nothing new has been appended.
async fn a_wait_is_not_ended_early_by_the_notification_of_events_already_read(fixture: Fixture) {
    const WAIT: Duration = Duration::from_millis(500);
    let reader = &*fixture.store;
    let writer = haul_store::open(&fixture.url).await.unwrap();
    // The reader listens from its first wait on.
    assert_eq!(reader.wait_events(0, 10, Duration::ZERO).await.unwrap(), []);

    writer.append_events(&[event("created", "acct", "appended while nobody waits")]).await.unwrap();
    // Let the notification reach the reader's listening connection.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let read = reader.wait_events(0, 10, WAIT).await.unwrap();
    assert_eq!(payloads(&read), ["appended while nobody waits"]);

    let started = Instant::now();
    let read = reader.wait_events(read[0].id, 10, WAIT).await.unwrap();
    assert_eq!(payloads(&read), Vec::<&str>::new(), "nothing new was appended");
    assert_waited_about(started.elapsed(), WAIT, "a wait after reading the events that were waiting");
}

async fn pruning_forgets_old_events_but_numbers_keep_rising(fixture: Fixture) {
    let store = &*fixture.store;
    let everything = || store.wait_events(0, 1000, Duration::ZERO);
    for batch in 0..2 {
        let events: Vec<_> = (0..5).map(|n| event("created", "acct", &format!("old-{batch}-{n}"))).collect();
        store.append_events(&events).await.unwrap();
    }
    let before = store.latest_event_id().await.unwrap();
    assert_eq!(everything().await.unwrap().len(), 10);
    assert_eq!(store.prune_events(Duration::from_secs(3600)).await.unwrap(), 0, "nothing is an hour old");

    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.prune_events(Duration::ZERO).await.unwrap(), 10);
    assert_eq!(fixture.count_rows("events").await, 0);
    assert_eq!(everything().await.unwrap(), []);
    assert_eq!(store.latest_event_id().await.unwrap(), 0, "no events left: the newest is 0 (documented)");

    // New events are still numbered above every earlier one: the numbers come from a sequence, not MAX(id).
    store.append_events(&[event("created", "acct", "after-prune")]).await.unwrap();
    let read = everything().await.unwrap();
    assert_eq!(payloads(&read), ["after-prune"]);
    assert!(read[0].id > before, "event {} after pruning, but {before} was already used", read[0].id);
    assert_eq!(store.latest_event_id().await.unwrap(), read[0].id);
    assert_eq!(payloads(&store.wait_events(before, 10, Duration::ZERO).await.unwrap()), ["after-prune"]);

    // A small age keeps what is younger.
    let events: Vec<_> = (0..3).map(|n| event("created", "acct", &format!("older-{n}"))).collect();
    store.append_events(&events).await.unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    store.append_events(&[event("created", "acct", "newest")]).await.unwrap();
    assert_eq!(store.prune_events(Duration::from_millis(30)).await.unwrap(), 4);
    let read = everything().await.unwrap();
    assert_eq!(payloads(&read), ["newest"]);
    assert_eq!(store.latest_event_id().await.unwrap(), read[0].id);
}

/// Many writers, each a store of its own (a node), create, claim, complete, fail, pause, resume, retry, cancel and
/// delete downloads of a few accounts at once. No operation may fail for any reason but the race it lost
/// (`Conflict`, `NotFound`) — on PostgreSQL a deadlock would surface as `Other` — and afterwards the counts kept
/// per state (by trigger) equal the rows.
async fn counts_stay_right_under_concurrent_claims_and_transitions(fixture: Fixture) {
    const WORKERS: usize = 6;
    const STEPS: usize = 50;
    let store = &*fixture.store;
    let accounts: Arc<Vec<AccountId>> = Arc::new((0..3).map(|_| AccountId::generate()).collect());
    let seeded = 12;
    for n in 0..seeded {
        create(store, &accounts[n % 3], &format!("http://origin/seed-{n}"), 0).await;
    }

    let ready = Arc::new(Barrier::new(WORKERS));
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let (url, ready, accounts) = (fixture.url.clone(), ready.clone(), accounts.clone());
        workers.push(tokio::spawn(async move {
            let store = haul_store::open(&url).await.unwrap();
            let node = format!("node-{worker}");
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (worker as u64 + 1));
            let mut held: Vec<(AccountId, DownloadId)> = Vec::new();
            let mut tally = Tally::default();
            ready.wait().await;
            for step in 0..STEPS {
                let account = &accounts[rng.below(accounts.len())];
                let outcome = match rng.below(12) {
                    0..=2 => {
                        let new = NewDownload {
                            start_paused: rng.below(4) == 0,
                            priority: rng.below(3) as i32,
                            ..NewDownload::new(account.clone(), format!("http://origin/{node}/{step}"))
                        };
                        store.create(new).await.map(|_| tally.created += 1)
                    }
                    3..=5 => store.claim_next(&node, LEASE, 4).await.map(|claimed| {
                        if let Some(record) = claimed {
                            tally.claimed += 1;
                            held.push((record.account, record.id));
                        }
                    }),
                    6 | 7 if !held.is_empty() => {
                        let (account, id) = held.swap_remove(rng.below(held.len()));
                        let action = if rng.below(4) == 0 { JobAction::Fail } else { JobAction::Complete };
                        store.apply(&account, id, action, None).await.map(drop)
                    }
                    8 => {
                        act_on_one(&*store, account, &[JobState::Queued, JobState::Active], JobAction::Pause, &mut rng)
                            .await
                    }
                    9 => act_on_one(&*store, account, &[JobState::Paused], JobAction::Resume, &mut rng).await,
                    10 if rng.below(2) == 0 => {
                        act_on_one(
                            &*store,
                            account,
                            &[JobState::Failed, JobState::Cancelled],
                            JobAction::Retry,
                            &mut rng,
                        )
                        .await
                    }
                    10 => {
                        let live = [JobState::Queued, JobState::Active, JobState::Paused];
                        act_on_one(&*store, account, &live, JobAction::Cancel, &mut rng).await
                    }
                    11 => match pick(&*store, account, &JobState::ALL, &mut rng).await {
                        Ok(Some(id)) => store.delete(account, id).await.map(|_| tally.deleted += 1),
                        Ok(None) => Ok(()),
                        Err(error) => Err(error),
                    },
                    _ => Ok(()),
                };
                match outcome {
                    Ok(()) | Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {}
                    Err(error) => return Err(format!("{node}, step {step}: {}", chain(&error))),
                }
            }
            Ok(tally)
        }));
    }
    let mut total = Tally::default();
    for worker in workers {
        match worker.await.unwrap() {
            Ok(tally) => {
                total.created += tally.created;
                total.claimed += tally.claimed;
                total.deleted += tally.deleted;
            }
            Err(failure) if failure.contains("deadlock") => panic!("a deadlock surfaced (40P01): {failure}"),
            Err(failure) => panic!("an operation failed: {failure}"),
        }
    }
    eprintln!("created {}, claimed {}, deleted {}", total.created, total.claimed, total.deleted);
    assert!(total.claimed > 0, "the workers did claim");

    let mut overall = StateCounts::default();
    let mut rows = 0;
    for account in accounts.iter() {
        let listed = tally_states(store, account).await;
        let counts = store.counts(Some(account)).await.unwrap();
        assert_eq!(counts_by_state(&counts), listed, "the kept counts of {account} differ from its rows");
        for state in JobState::ALL {
            *overall_slot(&mut overall, state) += counts.get(state);
        }
        rows += counts.total();
    }
    assert_eq!(store.counts(None).await.unwrap(), overall);
    assert_eq!(rows, (seeded + total.created - total.deleted) as u64, "every download created and not deleted");
}

/// Nodes restarting (or shutting down) at the same moment each hand their active downloads back in one statement
/// (`requeue_node`, or `pause_node` with `--no-resume`). When their downloads span several accounts, in opposite
/// orders, each statement's updates of the per-account counts meet the other's: neither may fail. On PostgreSQL,
/// a deadlock between the two would fail one with 40P01, which `Engine::start` turns into a node that does not
/// start.
async fn nodes_restarting_together_release_their_downloads_without_deadlock(fixture: Fixture) {
    const ACCOUNTS: usize = 16;
    const ROUNDS: usize = 6;
    let store = &*fixture.store;
    let accounts: Vec<AccountId> = (0..ACCOUNTS).map(|_| AccountId::generate()).collect();
    let first = haul_store::open(&fixture.url).await.unwrap();
    let second = haul_store::open(&fixture.url).await.unwrap();
    for round in 0..ROUNDS {
        // n1 takes one download of every account in account order, n2 one of every account in reverse order.
        for (node, order) in [("n1", accounts.iter().collect::<Vec<_>>()), ("n2", accounts.iter().rev().collect())] {
            for account in order {
                let id = create(store, account, &format!("http://origin/{node}/{round}"), 0).await;
                assert_eq!(store.claim_next(node, LEASE, 1000).await.unwrap().unwrap().id, id);
            }
        }
        let ready = Arc::new(Barrier::new(2));
        let releasing = |store: Arc<dyn Store>, node: &'static str, pause: bool| {
            let ready = ready.clone();
            tokio::spawn(async move {
                ready.wait().await;
                if pause { store.pause_node(node).await } else { store.requeue_node(node).await }
            })
        };
        let one = releasing(first.clone(), "n1", false);
        let two = releasing(second.clone(), "n2", round % 2 == 1);
        for (node, released) in [("n1", one.await.unwrap()), ("n2", two.await.unwrap())] {
            match released {
                Ok(count) => assert_eq!(count, ACCOUNTS as u64, "{node} in round {round}"),
                Err(error) => panic!("{node} could not release its downloads in round {round}: {}", chain(&error)),
            }
        }
        // Out of the way of the next round's claims.
        for account in &accounts {
            let waiting = ListFilter { states: vec![JobState::Queued, JobState::Paused], ..ListFilter::default() };
            for record in store.list(account, &waiting).await.unwrap() {
                store.apply(account, record.id, JobAction::Cancel, None).await.unwrap();
            }
        }
    }
    for account in &accounts {
        let counts = store.counts(Some(account)).await.unwrap();
        assert_eq!(counts_by_state(&counts), tally_states(store, account).await);
        assert_eq!((counts.cancelled, counts.total()), (2 * ROUNDS as u64, 2 * ROUNDS as u64));
    }
}

/// The meeting that `nodes_restarting_together_release_their_downloads_without_deadlock` leaves to chance, made
/// certain: n1's downloads span the accounts in one order and n2's in the other; a third transaction holds the
/// middle account's `active` count while both release, so that each has updated the counts of its half and
/// waits for that one row; when it lets go, both must still succeed. (A test of the PostgreSQL schema: it locks
/// a `download_counts` row directly.)
async fn releases_meeting_on_the_counts_do_not_deadlock(fixture: Fixture) {
    use sqlx::Connection as _;
    const ACCOUNTS: usize = 8;
    let store = &*fixture.store;
    let accounts: Vec<AccountId> = (0..ACCOUNTS).map(|_| AccountId::generate()).collect();
    for (node, order) in [("n1", accounts.iter().collect::<Vec<_>>()), ("n2", accounts.iter().rev().collect())] {
        for account in order {
            let id = create(store, account, &format!("http://origin/{node}"), 0).await;
            assert_eq!(store.claim_next(node, LEASE, 1000).await.unwrap().unwrap().id, id);
        }
    }
    let (first, second) =
        (haul_store::open(&fixture.url).await.unwrap(), haul_store::open(&fixture.url).await.unwrap());

    let mut blocker = sqlx::PgConnection::connect(&fixture.url).await.unwrap();
    let mut holding = blocker.begin().await.unwrap();
    sqlx::query("SELECT n FROM download_counts WHERE account = $1 AND state = 'active' FOR UPDATE")
        .bind(accounts[ACCOUNTS / 2].as_str())
        .fetch_one(&mut *holding)
        .await
        .unwrap();
    let one = tokio::spawn(async move { first.requeue_node("n1").await });
    let two = tokio::spawn(async move { second.requeue_node("n2").await });

    // Both statements are waiting for the held row once two sessions wait on a lock.
    let mut watcher = sqlx::PgConnection::connect(&fixture.url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut watcher)
        .await
        .unwrap();
        if waiting >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the releases never both waited ({waiting} waiting)");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    holding.commit().await.unwrap();

    for (node, released) in [("n1", one.await.unwrap()), ("n2", two.await.unwrap())] {
        match released {
            Ok(count) => assert_eq!(count, ACCOUNTS as u64, "{node}"),
            Err(error) => panic!("{node} could not release its downloads: {}", chain(&error)),
        }
    }
    for account in &accounts {
        let counts = store.counts(Some(account)).await.unwrap();
        assert_eq!(counts_by_state(&counts), tally_states(store, account).await);
        assert_eq!(counts.queued, 2, "{account}: {counts:?}");
    }
}

fn event(kind: &str, account: &str, payload: &str) -> (String, String, String) {
    (kind.to_owned(), account.to_owned(), payload.to_owned())
}

fn payloads(events: &[StoredEvent]) -> Vec<&str> {
    events.iter().map(|stored| stored.payload.as_str()).collect()
}

fn ids(nodes: &[NodeRecord]) -> Vec<&str> {
    nodes.iter().map(|node| node.id.as_str()).collect()
}

fn now_millis() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// An empty read that should have waited `wait`: not (much) sooner, and not much longer.
fn assert_waited_about(elapsed: Duration, wait: Duration, what: &str) {
    assert!(elapsed >= wait.mul_f64(0.9), "{what}: returned after {elapsed:?}, before the wait of {wait:?}");
    assert!(elapsed < wait + Duration::from_secs(2), "{what}: returned after {elapsed:?}, long after {wait:?}");
}

/// An error with its causes, for a failure message (a deadlock is named only in the driver's error).
fn chain(error: &StoreError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What one concurrent worker did that changes the number of rows or shows it worked.
#[derive(Default)]
struct Tally {
    created: usize,
    claimed: usize,
    deleted: usize,
}

/// A small deterministic generator (xorshift), so a failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// One of the account's downloads in one of `states` (among the newest few), if any.
async fn pick(
    store: &dyn Store,
    account: &AccountId,
    states: &[JobState],
    rng: &mut Rng,
) -> Result<Option<DownloadId>, StoreError> {
    let filter = ListFilter { states: states.to_vec(), limit: Some(5), ..ListFilter::default() };
    let listed = store.list(account, &filter).await?;
    Ok((!listed.is_empty()).then(|| listed[rng.below(listed.len())].id))
}

async fn act_on_one(
    store: &dyn Store,
    account: &AccountId,
    states: &[JobState],
    action: JobAction,
    rng: &mut Rng,
) -> Result<(), StoreError> {
    match pick(store, account, states, rng).await? {
        Some(id) => store.apply(account, id, action, None).await.map(drop),
        None => Ok(()),
    }
}

/// The account's downloads per state, counted from its rows.
async fn tally_states(store: &dyn Store, account: &AccountId) -> BTreeMap<&'static str, u64> {
    let mut by_state = BTreeMap::new();
    for record in store.list(account, &ListFilter::default()).await.unwrap() {
        *by_state.entry(record.state.as_str()).or_insert(0) += 1;
    }
    by_state
}

/// The kept counts in the same shape, leaving out the states with none.
fn counts_by_state(counts: &StateCounts) -> BTreeMap<&'static str, u64> {
    JobState::ALL
        .into_iter()
        .filter(|state| counts.get(*state) > 0)
        .map(|state| (state.as_str(), counts.get(state)))
        .collect()
}

fn overall_slot(counts: &mut StateCounts, state: JobState) -> &mut u64 {
    match state {
        JobState::Queued => &mut counts.queued,
        JobState::Active => &mut counts.active,
        JobState::Paused => &mut counts.paused,
        JobState::Completed => &mut counts.completed,
        JobState::Failed => &mut counts.failed,
        JobState::Cancelled => &mut counts.cancelled,
    }
}
