//! The download archive and cookie jars on every backend: what is recorded and read back, a second recording of
//! one key, lookups by URL, paging, and what one account may see or remove of another's.

use haul_core::job::{AccountId, DownloadId};
use haul_store::{CookieRecord, NewArchiveEntry, StoreError};

use crate::harness::Fixture;

backend_tests! {
    archive_entries_are_recorded_found_and_replaced,
    archive_is_per_account,
    cookie_jars_replace_by_domain_and_stay_per_account,
}

fn entry(account: &AccountId, extractor: &str, video_id: &str, url: &str) -> NewArchiveEntry {
    NewArchiveEntry {
        account: account.clone(),
        extractor: extractor.to_owned(),
        video_id: video_id.to_owned(),
        url: url.to_owned(),
        title: Some(format!("{extractor} {video_id}")),
        download: Some(DownloadId::new_random()),
    }
}

async fn archive_entries_are_recorded_found_and_replaced(fixture: Fixture) {
    let store = &*fixture.store;
    let account = AccountId::generate();
    let first = entry(&account, "youtube", "dQw4w9WgXcQ", "https://www.youtube.com/watch?v=dQw4w9WgXcQ");
    let recorded = store.record_archive(&first).await.unwrap();
    assert_eq!(
        (recorded.extractor.as_str(), recorded.video_id.as_str(), recorded.url.as_str()),
        ("youtube", "dQw4w9WgXcQ", first.url.as_str())
    );
    assert_eq!((recorded.title.as_deref(), recorded.download), (first.title.as_deref(), first.download));
    let found = store.archive_entry(&account, "youtube", "dQw4w9WgXcQ").await.unwrap();
    assert_eq!(found.as_ref(), Some(&recorded));
    assert_eq!(store.archive_entry(&account, "youtube", "other").await.unwrap(), None);
    assert_eq!(store.archive_entry(&account, "vimeo", "dQw4w9WgXcQ").await.unwrap(), None);

    // The same video again (another URL for it, another download): one entry, naming the newest.
    let again =
        NewArchiveEntry { url: "https://youtu.be/dQw4w9WgXcQ".into(), ..entry(&account, "youtube", "dQw4w9WgXcQ", "") };
    let replaced = store.record_archive(&again).await.unwrap();
    assert_eq!(replaced.id, recorded.id, "one entry per key");
    assert_eq!((replaced.url.as_str(), replaced.download), (again.url.as_str(), again.download));
    assert_eq!(store.count_archive(&account).await.unwrap(), 1);
    assert!(store.archive_by_url(&account, &first.url).await.unwrap().is_empty());
    assert_eq!(store.archive_by_url(&account, &again.url).await.unwrap(), std::slice::from_ref(&replaced));

    // A URL 8 KiB long is taken (PostgreSQL's URL index is a hash index).
    let long = format!("https://example.com/{}", "a".repeat(8 * 1024));
    let file = NewArchiveEntry { download: None, title: None, ..entry(&account, "http", &"f".repeat(64), &long) };
    let file = store.record_archive(&file).await.unwrap();
    assert_eq!(store.archive_by_url(&account, &long).await.unwrap(), std::slice::from_ref(&file));

    let listed = store.list_archive(&account, 10, 0).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(store.list_archive(&account, 1, 1).await.unwrap().len(), 1);
    assert!(store.list_archive(&account, 10, 2).await.unwrap().is_empty());

    assert_eq!(store.delete_archive_entry(&account, &file.id).await.unwrap(), file);
    assert!(matches!(store.delete_archive_entry(&account, &file.id).await, Err(StoreError::NotFound(_))));
    assert_eq!(store.clear_archive(&account).await.unwrap(), 1);
    assert_eq!(store.count_archive(&account).await.unwrap(), 0);
}

async fn archive_is_per_account(fixture: Fixture) {
    let store = &*fixture.store;
    let alice = AccountId::generate();
    let bob = AccountId::generate();
    let url = "https://example.com/watch/1";
    let mine = store.record_archive(&entry(&alice, "generic", "1", url)).await.unwrap();
    assert_eq!(store.archive_entry(&bob, "generic", "1").await.unwrap(), None);
    assert!(store.archive_by_url(&bob, url).await.unwrap().is_empty());
    assert!(store.list_archive(&bob, 10, 0).await.unwrap().is_empty());
    match store.delete_archive_entry(&bob, &mine.id).await {
        Err(StoreError::NotFound(what)) => assert_eq!(what, format!("archive entry {}", mine.id)),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(store.clear_archive(&bob).await.unwrap(), 0);
    // Bob's own entry for the same video is his.
    let theirs = store.record_archive(&entry(&bob, "generic", "1", url)).await.unwrap();
    assert_ne!(theirs.id, mine.id);
    assert_eq!(store.archive_entry(&alice, "generic", "1").await.unwrap(), Some(mine));
}

fn cookie(domain: &str, name: &str, value: &str) -> CookieRecord {
    CookieRecord {
        domain: domain.to_owned(),
        subdomains: false,
        path: "/".to_owned(),
        secure: false,
        http_only: false,
        expires: None,
        name: name.to_owned(),
        value: value.to_owned(),
    }
}

async fn cookie_jars_replace_by_domain_and_stay_per_account(fixture: Fixture) {
    let store = &*fixture.store;
    let alice = AccountId::generate();
    let bob = AccountId::generate();
    let full = CookieRecord {
        subdomains: true,
        path: "/private".into(),
        secure: true,
        http_only: true,
        expires: Some(4_102_444_800),
        ..cookie("example.com", "sid", "s3cret")
    };
    store.put_cookies(&alice, &[full.clone(), cookie("other.example", "a", "1")]).await.unwrap();
    assert_eq!(store.cookies(&alice).await.unwrap(), [full.clone(), cookie("other.example", "a", "1")]);
    assert!(store.cookies(&bob).await.unwrap().is_empty(), "another account's jar is its own");

    // A new file for other.example replaces that domain's cookies and leaves example.com's; a name twice in one
    // file keeps the later line.
    let replacing = [cookie("other.example", "b", "2"), cookie("other.example", "b", "3")];
    store.put_cookies(&alice, &replacing).await.unwrap();
    assert_eq!(store.cookies(&alice).await.unwrap(), [full.clone(), cookie("other.example", "b", "3")]);

    store.put_cookies(&bob, &[cookie("example.com", "sid", "bobs")]).await.unwrap();
    assert_eq!(store.delete_cookies(&bob, Some("other.example")).await.unwrap(), 0);
    assert_eq!(store.delete_cookies(&alice, Some("other.example")).await.unwrap(), 1);
    assert_eq!(store.cookies(&alice).await.unwrap(), [full]);
    assert_eq!(store.delete_cookies(&alice, None).await.unwrap(), 1);
    assert!(store.cookies(&alice).await.unwrap().is_empty());
    assert_eq!(store.cookies(&bob).await.unwrap(), [cookie("example.com", "sid", "bobs")]);
}
