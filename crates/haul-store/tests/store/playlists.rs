//! Playlists, on every backend: a job that read a playlist becomes the parent of its entries under its lease,
//! is never claimed again, and its state is its entries' on every path that changes one (claims, actions,
//! completions, a node's requeue, deletes), kept by the store's triggers.

use haul_core::job::{AccountId, JobAction, JobKind, JobState};
use haul_store::{ListFilter, NewDownload, Store};

use crate::harness::{Fixture, LEASE, assert_conflict};

backend_tests! {
    a_playlist_takes_its_entries_state_on_every_path,
    only_the_lease_holder_expands_and_totals_are_per_account,
}

fn entry(account: &AccountId, parent: haul_core::job::DownloadId, index: u32) -> NewDownload {
    let mut child = NewDownload::new(account.clone(), format!("http://origin/watch/{index}"));
    child.kind = JobKind::Media;
    child.parent = Some(parent);
    child.playlist_index = Some(index);
    child
}

async fn state_of(store: &dyn Store, account: &AccountId, id: haul_core::job::DownloadId) -> JobState {
    store.get(account, id).await.unwrap().state
}

async fn a_playlist_takes_its_entries_state_on_every_path(fixture: Fixture) {
    let store = &*fixture.store;
    let account = AccountId::generate();
    let mut new = NewDownload::new(account.clone(), "http://origin/feed.rss");
    new.kind = JobKind::Auto;
    new.playlist_items = Some("1-3".into());
    let parent = store.create(new).await.unwrap();
    let claimed = store.claim_next("node-a", LEASE, 5).await.unwrap().unwrap();
    assert_eq!(claimed.id, parent.id);

    let children: Vec<NewDownload> = (1..=3).map(|n| entry(&account, parent.id, n)).collect();
    let expanded = store.expand_playlist(parent.id, "node-a", Some("A channel"), &children, 2).await.unwrap();
    assert_eq!((expanded.kind, expanded.state), (JobKind::Playlist, JobState::Queued));
    assert_eq!(expanded.title.as_deref(), Some("A channel"));
    assert_eq!(expanded.lease_owner, None);
    assert_eq!(expanded.playlist_items.as_deref(), Some("1-3"));
    assert_eq!(expanded.playlist_skipped, Some(2));

    let filter = ListFilter { parent: Some(parent.id), oldest_first: true, ..ListFilter::default() };
    let listed = store.list(&account, &filter).await.unwrap();
    let indexes: Vec<Option<u32>> = listed.iter().map(|child| child.playlist_index).collect();
    assert_eq!(indexes, [Some(1), Some(2), Some(3)]);
    assert_eq!(store.count(&account, &filter).await.unwrap(), 3);
    let ids: Vec<_> = listed.iter().map(|child| child.id).collect();

    // Claims hand out the entries, never the playlist; its state follows.
    let first = store.claim_next("node-a", LEASE, 10).await.unwrap().unwrap();
    assert_eq!(first.id, ids[0]);
    assert_eq!(state_of(store, &account, parent.id).await, JobState::Active);
    let second = store.claim_next("node-a", LEASE, 10).await.unwrap().unwrap();
    let third = store.claim_next("node-a", LEASE, 10).await.unwrap().unwrap();
    assert_eq!([second.id, third.id], [ids[1], ids[2]]);
    assert!(store.claim_next("node-a", LEASE, 10).await.unwrap().is_none(), "the playlist is never claimed");
    assert!(store.get(&account, parent.id).await.unwrap().started_at.is_some());

    // A node's restart puts its entries back: the playlist is queued again.
    store.requeue_node("node-a").await.unwrap();
    assert_eq!(state_of(store, &account, parent.id).await, JobState::Queued);

    // Paused entries: paused; one completed and the others cancelled: completed, finished.
    for id in &ids {
        store.apply(&account, *id, JobAction::Pause, None).await.unwrap();
    }
    assert_eq!(state_of(store, &account, parent.id).await, JobState::Paused);
    store.apply(&account, ids[0], JobAction::Resume, None).await.unwrap();
    let running = store.claim_next("node-b", LEASE, 10).await.unwrap().unwrap();
    assert_eq!(running.id, ids[0]);
    store.complete_leased(ids[0], "node-b").await.unwrap();
    assert_eq!(state_of(store, &account, parent.id).await, JobState::Paused);
    store.apply(&account, ids[1], JobAction::Cancel, None).await.unwrap();
    store.apply(&account, ids[2], JobAction::Cancel, None).await.unwrap();
    let done = store.get(&account, parent.id).await.unwrap();
    assert_eq!(done.state, JobState::Completed);
    assert!(done.finished_at.is_some());

    // A failed entry makes it failed, its retry queued again (no longer finished).
    store.apply(&account, ids[2], JobAction::Retry, None).await.unwrap();
    assert_eq!(state_of(store, &account, parent.id).await, JobState::Queued);
    assert_eq!(store.get(&account, parent.id).await.unwrap().finished_at, None);
    store.claim_next("node-b", LEASE, 10).await.unwrap().unwrap();
    store.apply(&account, ids[2], JobAction::Fail, Some("gone".into())).await.unwrap();
    assert_eq!(state_of(store, &account, parent.id).await, JobState::Failed);

    let totals = store.playlist_totals(&account, &[parent.id]).await.unwrap();
    assert_eq!(totals.len(), 1);
    let totals = &totals[0];
    assert_eq!((totals.entries, totals.completed, totals.failed, totals.cancelled), (3, 1, 1, 1));

    // Deleting the failed entry leaves completed and cancelled ones: completed. The counts trigger followed
    // the playlist's own moves.
    store.delete(&account, ids[2]).await.unwrap();
    assert_eq!(state_of(store, &account, parent.id).await, JobState::Completed);
    let counts = store.counts(Some(&account)).await.unwrap();
    assert_eq!((counts.completed, counts.cancelled, counts.failed, counts.total()), (2, 1, 0, 3));
    // It is what is left: the cancelled entry alone; with no entry left it keeps that, and goes when removed.
    store.delete(&account, ids[0]).await.unwrap();
    assert_eq!(state_of(store, &account, parent.id).await, JobState::Cancelled);
    store.delete(&account, ids[1]).await.unwrap();
    assert_eq!(state_of(store, &account, parent.id).await, JobState::Cancelled);
    store.delete(&account, parent.id).await.unwrap();
    assert_eq!(store.counts(Some(&account)).await.unwrap().total(), 0);
}

async fn only_the_lease_holder_expands_and_totals_are_per_account(fixture: Fixture) {
    let store = &*fixture.store;
    let (alice, mallory) = (AccountId::generate(), AccountId::generate());
    let parent = store.create(NewDownload::new(alice.clone(), "http://origin/feed")).await.unwrap();
    store.claim_next("node-a", LEASE, 5).await.unwrap().unwrap();
    let children = [entry(&alice, parent.id, 1)];
    let refused = store.expand_playlist(parent.id, "node-b", None, &children, 0).await;
    assert_conflict(refused, JobState::Active);
    assert_eq!(store.get(&alice, parent.id).await.unwrap().kind, JobKind::File, "nothing changed");
    assert_eq!(store.count(&alice, &ListFilter::default()).await.unwrap(), 1, "no entry was added");

    store.expand_playlist(parent.id, "node-a", None, &children, 0).await.unwrap();
    assert_eq!(store.playlist_totals(&alice, &[parent.id]).await.unwrap().len(), 1);
    assert!(store.playlist_totals(&mallory, &[parent.id]).await.unwrap().is_empty());
    let theirs = ListFilter { parent: Some(parent.id), ..ListFilter::default() };
    assert!(store.list(&mallory, &theirs).await.unwrap().is_empty());
}
