//! Downloads in the store, on every backend: what callers of `Store` rely on for their rows (every input kept,
//! listing and filters, account isolation, the state machine under compare-and-set, renditions and media fields,
//! the totals per state, durability across reopening). Claims, leases and progress are in `claims.rs`.

use haul_core::job::{AccountId, DownloadId, JobAction, JobKind, JobState, next_state};
use haul_core::media::{RenditionName, RenditionState};
use haul_core::media_choice::{Container, MediaChoice, SubtitleFile, VideoCodec};
use haul_store::{DownloadPatch, ListFilter, MediaUpdate, NewDownload, ProgressUpdate, Rendition, RenditionUpdate};

use crate::harness::{Fixture, LEASE, assert_conflict, assert_not_found, create, download_in};

backend_tests! {
    create_keeps_every_input,
    ended_before_finds_every_accounts_old_downloads_in_the_states_asked,
    list_is_newest_first_with_state_filter_and_paging,
    list_filters_on_text_creator_and_creation_time,
    labels_are_kept_and_replaced_whole,
    another_accounts_download_is_not_found,
    apply_follows_the_state_machine_for_every_state_and_action,
    conflict_names_the_current_state,
    apply_keeps_times_and_errors,
    patch_changes_url_only_while_paused_or_failed,
    delete_returns_the_row_and_removes_it,
    renditions_belong_to_their_download_and_account,
    media_fields_and_rendition_progress_are_recorded,
    media_choices_and_subtitle_files_are_kept,
    counts_per_account_and_overall,
    counts_stay_equal_to_the_rows_through_every_change,
    reopening_the_file_keeps_everything,
}

async fn create_keeps_every_input(fixture: Fixture) {
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

async fn list_is_newest_first_with_state_filter_and_paging(fixture: Fixture) {
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

async fn list_filters_on_text_creator_and_creation_time(fixture: Fixture) {
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

async fn labels_are_kept_and_replaced_whole(fixture: Fixture) {
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

async fn another_accounts_download_is_not_found(fixture: Fixture) {
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

async fn apply_follows_the_state_machine_for_every_state_and_action(fixture: Fixture) {
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

async fn conflict_names_the_current_state(fixture: Fixture) {
    let account = AccountId::generate();
    let id = download_in(&*fixture.store, &account, JobState::Completed).await;
    let message = assert_conflict(fixture.store.apply(&account, id, JobAction::Pause, None).await, JobState::Completed);
    assert_eq!(message, "cannot pause a download that is completed");
}

async fn apply_keeps_times_and_errors(fixture: Fixture) {
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

async fn ended_before_finds_every_accounts_old_downloads_in_the_states_asked(fixture: Fixture) {
    let store = &*fixture.store;
    let (alice, bob) = (AccountId::generate(), AccountId::generate());
    let end = |account: &AccountId, url: &'static str, last: JobAction| {
        let account = account.clone();
        async move {
            let id = create(store, &account, url, 0).await;
            store.apply(&account, id, JobAction::Start, None).await.unwrap();
            store.apply(&account, id, last, None).await.unwrap();
            // Apart by a few milliseconds, so that "oldest first" has one answer.
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
            id
        }
    };
    let completed = end(&alice, "http://origin/a", JobAction::Complete).await;
    let failed = end(&bob, "http://origin/b", JobAction::Fail).await;
    let cancelled = end(&bob, "http://origin/c", JobAction::Cancel).await;
    let running = create(store, &alice, "http://origin/d", 0).await;
    store.apply(&alice, running, JobAction::Start, None).await.unwrap();
    let later = haul_core::clock::unix_millis(std::time::SystemTime::now()) + 60_000;

    let all = [JobState::Completed, JobState::Failed, JobState::Cancelled];
    let found = store.ended_before(&all, later, 100).await.unwrap();
    let ids: Vec<DownloadId> = found.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids, [completed, failed, cancelled], "oldest first, active ones never");
    assert_eq!(found[0].0, alice);
    assert_eq!(found[1].0, bob);
    assert_eq!(store.ended_before(&all, later, 2).await.unwrap().len(), 2, "at most the limit");
    let only_completed = store.ended_before(&[JobState::Completed], later, 100).await.unwrap();
    assert_eq!(only_completed, [(alice.clone(), completed)]);
    assert!(store.ended_before(&all, 1, 100).await.unwrap().is_empty(), "nothing ended before 1970");
}

async fn patch_changes_url_only_while_paused_or_failed(fixture: Fixture) {
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

async fn delete_returns_the_row_and_removes_it(fixture: Fixture) {
    let store = &*fixture.store;
    let account = AccountId::generate();
    let id = download_in(store, &account, JobState::Completed).await;
    let before = store.get(&account, id).await.unwrap();
    assert_eq!(store.delete(&account, id).await.unwrap(), before);
    assert_not_found(store.get(&account, id).await, id);
    assert_not_found(store.delete(&account, id).await, id);
}

async fn renditions_belong_to_their_download_and_account(fixture: Fixture) {
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
    let left = fixture.count_rows("renditions").await;
    assert_eq!(left, 0, "renditions outlived their download");
}

async fn media_fields_and_rendition_progress_are_recorded(fixture: Fixture) {
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
        subtitles: None,
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

async fn counts_per_account_and_overall(fixture: Fixture) {
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

/// The totals are kept beside the rows (in SQLite, migration 0008), not counted from them: every way a row is added,
/// moves or goes must keep them equal to what a count of the rows says.
async fn counts_stay_equal_to_the_rows_through_every_change(fixture: Fixture) {
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

async fn reopening_the_file_keeps_everything(fixture: Fixture) {
    let account = AccountId::generate();
    let first = create(&*fixture.store, &account, "http://origin/a", 1).await;
    let second = download_in(&*fixture.store, &account, JobState::Failed).await;
    fixture.store.claim_next("node-a", LEASE, 5).await.unwrap().unwrap();
    fixture.store.record_progress(first, &ProgressUpdate { bytes_done: 77, ..Default::default() }).await.unwrap();
    let before = fixture.store.list(&account, &ListFilter::default()).await.unwrap();
    // As a restart would: the first store's connections close before the database is opened again.
    drop(fixture.store);

    let reopened = haul_store::open(&fixture.url).await.unwrap();
    assert_eq!(reopened.list(&account, &ListFilter::default()).await.unwrap(), before);
    assert_eq!(reopened.get(&account, first).await.unwrap().bytes_done, 77);
    assert_eq!(reopened.get(&account, second).await.unwrap().state, JobState::Failed);
    assert_eq!(reopened.requeue_node("node-a").await.unwrap(), 1, "leases survive a restart too");
}

/// A media download's choices come back as given (so a resume after a restart makes the same file), a row
/// without any reads as the defaults, and the subtitle files a run saved replace the list whole.
async fn media_choices_and_subtitle_files_are_kept(fixture: Fixture) {
    let store = &*fixture.store;
    let account = AccountId::generate();
    let choice = MediaChoice {
        prefer: Some(Container::Webm),
        vcodec: Some(VideoCodec::Vp9),
        format: None,
        subtitles: haul_core::media_choice::parse_langs("en,de").unwrap(),
        auto_subtitles: true,
        embed_subtitles: true,
        embed_metadata: true,
    };
    let chosen = NewDownload { media: choice.clone(), ..NewDownload::new(account.clone(), "http://site/page") };
    let id = store.create(chosen).await.unwrap().id;
    let plain = store.create(NewDownload::new(account.clone(), "http://site/file")).await.unwrap();
    assert_eq!(plain.media, MediaChoice::default());
    assert!(plain.subtitles.is_empty());
    let selector = NewDownload {
        media: MediaChoice { format: Some("bv*[vcodec^=av01]+ba/b".parse().unwrap()), ..MediaChoice::default() },
        ..NewDownload::new(account.clone(), "http://site/other")
    };
    let selector = store.create(selector).await.unwrap();
    assert_eq!(selector.media.format.as_ref().map(|format| format.as_str()), Some("bv*[vcodec^=av01]+ba/b"));

    let files = vec![
        SubtitleFile { lang: "en".into(), path: "Talk.en.vtt".into() },
        SubtitleFile { lang: "de".into(), path: "Talk.de.vtt".into() },
    ];
    let update = MediaUpdate { subtitles: Some(files.clone()), ..MediaUpdate::default() };
    store.set_media(id, &update).await.unwrap();
    let record = store.get(&account, id).await.unwrap();
    assert_eq!((record.media, record.subtitles), (choice, files));
    // `None` keeps the list.
    store.set_media(id, &MediaUpdate::default()).await.unwrap();
    assert_eq!(store.get(&account, id).await.unwrap().subtitles.len(), 2);
}
