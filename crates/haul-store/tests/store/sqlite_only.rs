//! What only the SQLite backend has: opening it from a plain path or a `sqlite://` URL, creating the file, and
//! what `open` says about a URL no backend takes.

use haul_core::job::AccountId;
use haul_store::StoreError;

use crate::harness::create;

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
    for url in ["mysql://localhost/haul", "redis://localhost/0"] {
        match haul_store::open(url).await {
            Err(StoreError::Other { message, .. }) => {
                assert!(message.contains(url), "{message}")
            }
            Err(other) => panic!("{url}: unexpected error {other:?}"),
            Ok(_) => panic!("{url}: opened"),
        }
    }
}
