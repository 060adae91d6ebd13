//! Webhooks and their outbox, on every backend: the triggers that write one delivery per wanted event in the
//! transaction of each change of state, claims that hand out one job's deliveries in order and never to two
//! nodes at once, attempts, and what one account may see of another's webhooks.

use std::time::Duration;

use haul_core::job::{AccountId, JobAction};
use haul_store::{AttemptOutcome, DeliveryAttempt, DeliveryState, NewDownload, NewWebhook, Store, StoreError};

use crate::harness::{Fixture, LEASE, create};

backend_tests! {
    every_change_of_state_writes_one_delivery_per_wanted_event,
    claims_hand_out_each_jobs_deliveries_in_order_and_once,
    attempts_are_recorded_and_given_up_ones_stop_blocking,
    released_claims_are_due_again_at_once,
    webhooks_are_seen_only_by_their_account_and_take_their_deliveries_along,
}

fn hook(account: &AccountId, url: &str, events: &[&str]) -> NewWebhook {
    NewWebhook {
        account: account.clone(),
        url: url.to_owned(),
        events: events.iter().map(|event| (*event).to_owned()).collect(),
        secret: "whsec_test".to_owned(),
    }
}

/// The events of a webhook's deliveries, oldest first.
async fn events_of(store: &dyn Store, account: &AccountId, webhook: &str) -> Vec<String> {
    let mut deliveries = store.deliveries(account, webhook, 100).await.unwrap();
    deliveries.reverse();
    deliveries.into_iter().map(|delivery| delivery.event).collect()
}

fn retry_now() -> DeliveryAttempt {
    DeliveryAttempt { status: Some(500), error: Some("answered 500".into()), next: AttemptOutcome::RetryAt(0) }
}

fn delivered() -> DeliveryAttempt {
    DeliveryAttempt { status: Some(200), error: None, next: AttemptOutcome::Delivered }
}

async fn every_change_of_state_writes_one_delivery_per_wanted_event(fixture: Fixture) {
    let store = &*fixture.store;
    let account = AccountId::generate();
    let other = AccountId::generate();
    let all = store.create_webhook(&hook(&account, "http://hooks/all", &[])).await.unwrap();
    let ends = store.create_webhook(&hook(&account, "http://hooks/ends", &["completed", "failed"])).await.unwrap();
    assert!(all.events.is_empty());
    assert_eq!(ends.events, ["completed", "failed"]);
    // Another account's downloads write nothing to these (paused, so that the claims below take ours).
    let theirs = NewDownload { start_paused: true, ..NewDownload::new(other.clone(), "http://origin/theirs") };
    store.create(theirs).await.unwrap();

    let id = create(store, &account, "http://origin/a.bin", 0).await;
    let claimed = store.claim_next("node-a", LEASE, 5).await.unwrap().unwrap();
    assert_eq!(claimed.id, id);
    // A node restarting puts its active job back in the queue: no event; the next claim starts it again.
    store.requeue_node("node-a").await.unwrap();
    store.claim_next("node-a", LEASE, 5).await.unwrap().unwrap();
    store.complete_leased(id, "node-a").await.unwrap();

    let paused = store.create(NewDownload { start_paused: true, ..NewDownload::new(account.clone(), "http://p") });
    let paused = paused.await.unwrap().id;
    store.apply(&account, paused, JobAction::Resume, None).await.unwrap();
    store.apply(&account, paused, JobAction::Cancel, None).await.unwrap();
    store.apply(&account, paused, JobAction::Retry, None).await.unwrap();
    store.apply(&account, paused, JobAction::Pause, None).await.unwrap();
    store.delete(&account, paused).await.unwrap();

    let mut deliveries = store.deliveries(&account, &all.id, 100).await.unwrap();
    deliveries.reverse();
    let of = |download| -> Vec<&str> {
        deliveries.iter().filter(|delivery| delivery.download == download).map(|d| d.event.as_str()).collect()
    };
    assert_eq!(of(id), ["added", "started", "started", "completed"]);
    assert_eq!(of(paused), ["added", "resumed", "cancelled", "retried", "paused", "removed"]);
    assert_eq!(deliveries.len(), 10, "{deliveries:?}");
    assert_eq!(events_of(store, &account, &ends.id).await, ["completed"]);

    // Each carries the download as it was at that moment, and an id of its own.
    let completed = deliveries.iter().find(|delivery| delivery.event == "completed").unwrap();
    let payload: serde_json::Value = serde_json::from_str(&completed.payload).unwrap();
    assert_eq!(payload["id"], id.to_string());
    assert_eq!(payload["state"], "completed");
    assert_eq!(payload["url"], "http://origin/a.bin");
    assert_eq!(payload["node"], "node-a");
    let added = deliveries.iter().find(|delivery| delivery.event == "added").unwrap();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&added.payload).unwrap()["state"], "queued");
    let mut ids: Vec<&str> = deliveries.iter().map(|delivery| delivery.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), deliveries.len());
    assert!(ids.iter().all(|id| id.len() == 36), "{ids:?}");
    for delivery in &deliveries {
        assert_eq!(delivery.state, DeliveryState::Pending);
        assert_eq!(delivery.attempts, 0);
        assert_eq!(delivery.webhook, all.id);
    }
}

async fn claims_hand_out_each_jobs_deliveries_in_order_and_once(fixture: Fixture) {
    let store = &*fixture.store;
    let account = AccountId::generate();
    store.create_webhook(&hook(&account, "http://hooks/all", &[])).await.unwrap();
    let first = create(store, &account, "http://origin/1", 0).await;
    let second = create(store, &account, "http://origin/2", 0).await;
    store.apply(&account, first, JobAction::Pause, None).await.unwrap();
    store.apply(&account, second, JobAction::Pause, None).await.unwrap();

    // The oldest of each job only, with what sending needs.
    let claimed = store.claim_deliveries("node-a", LEASE, 10).await.unwrap();
    let got: Vec<_> = claimed.iter().map(|due| (due.delivery.download, due.delivery.event.as_str())).collect();
    assert_eq!(got, [(first, "added"), (second, "added")]);
    assert_eq!(claimed[0].url, "http://hooks/all");
    assert_eq!(claimed[0].secret, "whsec_test");
    // Claimed: nobody gets them (or what follows them) again while the claim holds.
    assert!(store.claim_deliveries("node-b", LEASE, 10).await.unwrap().is_empty());
    assert!(store.claim_deliveries("node-a", LEASE, 10).await.unwrap().is_empty());

    // A failed attempt keeps the job's next event waiting behind it.
    assert!(store.record_attempt(&claimed[0].delivery.id, "node-a", &retry_now()).await.unwrap());
    let again = store.claim_deliveries("node-b", LEASE, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].delivery.id, claimed[0].delivery.id, "the same delivery id on every attempt");
    assert_eq!(again[0].delivery.attempts, 1);
    assert_eq!(again[0].delivery.last_status, Some(500));
    // Only the claim's holder records an attempt.
    assert!(!store.record_attempt(&again[0].delivery.id, "node-a", &delivered()).await.unwrap());
    assert!(store.record_attempt(&again[0].delivery.id, "node-b", &delivered()).await.unwrap());
    assert!(store.record_attempt(&claimed[1].delivery.id, "node-a", &delivered()).await.unwrap());

    let next = store.claim_deliveries("node-a", LEASE, 10).await.unwrap();
    let got: Vec<_> = next.iter().map(|due| (due.delivery.download, due.delivery.event.as_str())).collect();
    assert_eq!(got, [(first, "paused"), (second, "paused")]);

    // A claim whose lease ran out is taken over.
    let short = store.claim_deliveries("node-c", Duration::ZERO, 10).await;
    assert!(short.unwrap().is_empty(), "node-a's claims still hold");
    for due in &next {
        store.record_attempt(&due.delivery.id, "node-a", &retry_now()).await.unwrap();
    }
    let expiring = store.claim_deliveries("node-c", Duration::ZERO, 1).await.unwrap();
    assert_eq!(expiring.len(), 1);
    let taken = store.claim_deliveries("node-d", LEASE, 10).await.unwrap();
    assert_eq!(taken.len(), 2, "node-c's claim ran out at once: {taken:?}");
}

async fn attempts_are_recorded_and_given_up_ones_stop_blocking(fixture: Fixture) {
    let store = &*fixture.store;
    let account = AccountId::generate();
    let webhook = store.create_webhook(&hook(&account, "http://hooks/all", &[])).await.unwrap();
    let waiting = create(store, &account, "http://origin/waiting", 0).await;
    let claimed = store.claim_deliveries("node-a", LEASE, 10).await.unwrap();
    let later = DeliveryAttempt {
        status: None,
        error: Some("connection refused".into()),
        next: AttemptOutcome::RetryAt(i64::MAX / 2),
    };
    store.record_attempt(&claimed[0].delivery.id, "node-a", &later).await.unwrap();
    // Not due yet, and the job's next event waits behind it.
    store.apply(&account, waiting, JobAction::Cancel, None).await.unwrap();
    assert!(store.claim_deliveries("node-a", LEASE, 10).await.unwrap().is_empty());
    let listed = store.deliveries(&account, &webhook.id, 10).await.unwrap();
    let added = listed.iter().find(|delivery| delivery.event == "added").unwrap();
    assert_eq!(added.state, DeliveryState::Pending);
    assert_eq!(added.attempts, 1);
    assert_eq!(added.last_status, None);
    assert_eq!(added.last_error.as_deref(), Some("connection refused"));
    assert_eq!(added.next_attempt_at, i64::MAX / 2);

    // Given up on (as the delivery task does after a day): failed, and the job's next event goes.
    let given_up = create(store, &account, "http://origin/given-up", 0).await;
    store.apply(&account, given_up, JobAction::Cancel, None).await.unwrap();
    let claimed = store.claim_deliveries("node-a", LEASE, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let give_up =
        DeliveryAttempt { status: Some(502), error: Some("answered 502".into()), next: AttemptOutcome::GiveUp };
    store.record_attempt(&claimed[0].delivery.id, "node-a", &give_up).await.unwrap();
    let listed = store.deliveries(&account, &webhook.id, 10).await.unwrap();
    let failed = listed.iter().find(|delivery| delivery.id == claimed[0].delivery.id).unwrap();
    assert_eq!(failed.state, DeliveryState::Failed);
    assert_eq!(failed.attempts, 1);
    assert_eq!(failed.last_status, Some(502));
    let next = store.claim_deliveries("node-a", LEASE, 10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!((next[0].delivery.download, next[0].delivery.event.as_str()), (given_up, "cancelled"));
    store.record_attempt(&next[0].delivery.id, "node-a", &delivered()).await.unwrap();
    let listed = store.deliveries(&account, &webhook.id, 10).await.unwrap();
    assert_eq!(listed[0].event, "cancelled", "newest first");
    assert_eq!(listed[0].state, DeliveryState::Delivered);
    assert!(listed[0].delivered_at.is_some());
    assert_eq!(store.deliveries(&account, &webhook.id, 1).await.unwrap().len(), 1);

    // Finished deliveries are pruned by age; pending ones never.
    assert_eq!(store.prune_deliveries(Duration::from_secs(3600)).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(store.prune_deliveries(Duration::ZERO).await.unwrap(), 2);
    assert_eq!(fixture.count_rows("webhook_deliveries").await, 2);
}

async fn released_claims_are_due_again_at_once(fixture: Fixture) {
    let store = &*fixture.store;
    let account = AccountId::generate();
    store.create_webhook(&hook(&account, "http://hooks/all", &[])).await.unwrap();
    create(store, &account, "http://origin/1", 0).await;
    assert_eq!(store.claim_deliveries("node-a", LEASE, 10).await.unwrap().len(), 1);
    assert!(store.claim_deliveries("node-a", LEASE, 10).await.unwrap().is_empty());
    // node-a was killed while sending; at its restart it releases what it held.
    assert_eq!(store.release_deliveries("node-b").await.unwrap(), 0);
    assert_eq!(store.release_deliveries("node-a").await.unwrap(), 1);
    assert_eq!(store.claim_deliveries("node-a", LEASE, 10).await.unwrap().len(), 1);
}

async fn webhooks_are_seen_only_by_their_account_and_take_their_deliveries_along(fixture: Fixture) {
    let store = &*fixture.store;
    let account = AccountId::generate();
    let other = AccountId::generate();
    let webhook = store.create_webhook(&hook(&account, "http://hooks/mine", &["added"])).await.unwrap();
    let theirs = store.create_webhook(&hook(&other, "http://hooks/theirs", &[])).await.unwrap();
    create(store, &account, "http://origin/1", 0).await;
    create(store, &account, "http://origin/2", 0).await;

    assert_eq!(store.webhook(&account, &webhook.id).await.unwrap(), webhook);
    let listed = store.list_webhooks(&account).await.unwrap();
    assert_eq!(listed, std::slice::from_ref(&webhook));
    let not_found = |result: Result<_, StoreError>| match result {
        Err(StoreError::NotFound(what)) => assert_eq!(what, format!("webhook {}", webhook.id)),
        other => panic!("expected NotFound, got {other:?}"),
    };
    not_found(store.webhook(&other, &webhook.id).await.map(drop));
    not_found(store.deliveries(&other, &webhook.id, 10).await.map(drop));
    not_found(store.delete_webhook(&other, &webhook.id).await.map(drop));
    assert_eq!(store.deliveries(&account, &webhook.id, 10).await.unwrap().len(), 2);

    assert_eq!(store.delete_webhook(&account, &webhook.id).await.unwrap(), webhook);
    not_found(store.webhook(&account, &webhook.id).await.map(drop));
    assert_eq!(fixture.count_rows("webhook_deliveries").await, 0, "its pending deliveries went with it");
    assert!(store.claim_deliveries("node-a", LEASE, 10).await.unwrap().is_empty());
    assert_eq!(store.list_webhooks(&other).await.unwrap(), [theirs]);
}
