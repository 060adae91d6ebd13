//! What every store test starts from: a fresh store on one backend ([`Fixture`]), the macro that runs each test
//! on every backend ([`backend_tests!`]), and the helpers the tests share.

use std::sync::Arc;
use std::time::Duration;

use haul_core::job::{AccountId, DownloadId, JobAction, JobState};
use haul_store::{NewDownload, Store, StoreError};
use haul_test_support::Postgres;
use tempfile::TempDir;

pub const LEASE: Duration = Duration::from_secs(60);

/// Runs each named test, an `async fn NAME(fixture: Fixture)` of the calling module, once per backend: as
/// `sqlite::NAME` on a fresh SQLite file and as `postgres::NAME` on a fresh database of the test binary's shared
/// PostgreSQL server (skipped, with a printed reason, when there are no PostgreSQL binaries and
/// `HAUL_REQUIRE_POSTGRES` is not set). `#[test(ARGS)]` before a name passes ARGS to `#[tokio::test]`, for the
/// tests that need a multi-threaded runtime. So `cargo test -p haul-store -- sqlite` runs the SQLite half and
/// `-- postgres` the PostgreSQL one.
macro_rules! backend_tests {
    ($( $(#[test($($args:tt)*)])? $name:ident ),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test $( ($($args)*) )?]
                async fn $name() {
                    super::$name($crate::harness::Fixture::sqlite().await).await
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test $( ($($args)*) )?]
                async fn $name() {
                    let Some(fixture) = $crate::harness::Fixture::postgres(stringify!($name)).await else {
                        return;
                    };
                    super::$name(fixture).await
                }
            )*
        }
    };
}

/// Like [`backend_tests!`] for what only PostgreSQL has (events shared between nodes): each named test runs as
/// `postgres_only::NAME` only (so `-- postgres` still selects it), on a fresh database of the shared server,
/// skipped in the same way when there is none. A module may use both macros.
macro_rules! postgres_tests {
    ($( $(#[test($($args:tt)*)])? $name:ident ),* $(,)?) => {
        mod postgres_only {
            $(
                #[tokio::test $( ($($args)*) )?]
                async fn $name() {
                    let Some(fixture) = $crate::harness::Fixture::postgres(stringify!($name)).await else {
                        return;
                    };
                    super::$name(fixture).await
                }
            )*
        }
    };
}

/// Which database a fixture's store is on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    /// A database of its own on this server.
    Postgres(&'static Postgres),
}

/// A fresh, empty store of a test's own.
pub struct Fixture {
    pub store: Arc<dyn Store>,
    /// What the store was opened from: `haul_store::open(&url)` opens the same database again, as a restarted
    /// process or another node would (a store of its own, with its own connections).
    pub url: String,
    pub backend: Backend,
    /// Holds the SQLite file, so the directory outlives the store.
    _dir: Option<TempDir>,
}

impl Fixture {
    /// A store on a new SQLite file in a temporary directory.
    pub async fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("haul.db").display());
        let store = haul_store::open(&url).await.unwrap();
        assert_eq!(store.backend(), "sqlite");
        Fixture { store, url, backend: Backend::Sqlite, _dir: Some(dir) }
    }

    /// A store on a new database, named after `test`, of the shared PostgreSQL server; `None`, after saying so,
    /// when there is no server to share (no binaries; with `HAUL_REQUIRE_POSTGRES` set that panics instead).
    pub async fn postgres(test: &str) -> Option<Fixture> {
        let Some(server) = Postgres::shared() else {
            eprintln!("skipping postgres::{test}: no PostgreSQL server");
            return None;
        };
        let url = server.create_unique_database(test).await.unwrap();
        let store = haul_store::open(&url).await.unwrap_or_else(|err| panic!("opening {url}: {err:?}"));
        assert_eq!(store.backend(), "postgres");
        Some(Fixture { store, url, backend: Backend::Postgres(server), _dir: None })
    }

    /// How many rows `table` holds, read straight from the database rather than through the store, for what the
    /// `Store` API cannot show (rows it no longer returns).
    pub async fn count_rows(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        match self.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
                sqlx::query_scalar(&sql).fetch_one(&pool).await.unwrap()
            }
            Backend::Postgres(server) => {
                let count = server.psql(&self.url, &sql).await.unwrap();
                count.parse().unwrap_or_else(|err| panic!("{sql} answered {count:?}: {err}"))
            }
        }
    }
}

pub async fn create(store: &dyn Store, account: &AccountId, url: &str, priority: i32) -> DownloadId {
    let new = NewDownload { priority, ..NewDownload::new(account.clone(), url) };
    store.create(new).await.unwrap().id
}

/// Puts a fresh download of `account` in `state` using only legal actions.
pub async fn download_in(store: &dyn Store, account: &AccountId, state: JobState) -> DownloadId {
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

pub fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, id: DownloadId) {
    match result {
        Err(StoreError::NotFound(what)) => assert_eq!(what, format!("download {id}")),
        other => panic!("expected NotFound for {id}, got {other:?}"),
    }
}

pub fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, expected_current: JobState) -> String {
    match result {
        Err(StoreError::Conflict { current, message }) => {
            assert_eq!(current, expected_current, "{message}");
            message
        }
        other => panic!("expected Conflict in {expected_current}, got {other:?}"),
    }
}
