//! haul's persistence: the [`Store`] trait over downloads, one module per backend, chosen by URL in [`open`].
//!
//! **Invariant**: only this crate contains SQL. Callers see domain types (`haul_core::job`, [`record`]) and a
//! [`StoreError`] that keeps only what they act on: not found, a conflict with the current state, or anything
//! else.

pub mod accounts;
mod postgres;
pub mod record;
mod rows;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use haul_core::account::KeyKind;
use haul_core::job::{AccountId, DownloadId, JobAction, JobState};
use haul_core::media::RenditionName;

pub use accounts::{Account, ApiKey, hash_secret, key_prefix};
pub use postgres::PgStore;
pub use record::{
    ArchiveRecord, AttemptOutcome, CookieRecord, CreatedOnce, DeliveryAttempt, DeliveryRecord, DeliveryState,
    DownloadPatch, DownloadRecord, DueDelivery, ListFilter, MediaUpdate, NewArchiveEntry, NewDownload, NewRule,
    NewWebhook, NodeBeat, NodeRecord, PlaylistTotals, ProgressUpdate, Rendition, RenditionUpdate, RulePatch,
    RuleRecord, StateCounts, StoredEvent, WebhookRecord,
};
pub use sqlite::SqliteStore;

/// Why a store operation failed, split by what the caller does next.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist for this caller (another account's download is not found either, so ids do
    /// not leak). Holds what was looked for, e.g. `download 3f2a…`.
    #[error("{0} not found")]
    NotFound(String),
    /// The download's current state forbids the change; the API answers 409. **Invariant**: `message` names
    /// `current` ("cannot resume a download that is completed"), so it can be shown as it is.
    #[error("{message}")]
    Conflict { current: JobState, message: String },
    /// A name that must be unique is taken (an account name).
    #[error("{0}")]
    Duplicate(String),
    /// The database failed or holds something unreadable; not the caller's fault. `source` is the cause
    /// (the driver's error), kept so that a log shows the whole chain.
    #[error("{message}")]
    Other {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl StoreError {
    /// A failure with no underlying error (data that makes no sense, a bad URL).
    pub fn other(message: impl Into<String>) -> Self {
        Self::Other { message: message.into(), source: None }
    }

    /// A failure caused by `source`, described by `message` (what was being done).
    pub fn caused(message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Other { message: message.into(), source: Some(Box::new(source)) }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        Self::caused("the database failed", error)
    }
}

/// Downloads, persisted. Every method taking an `AccountId` sees only that account's downloads; the methods
/// without one are for the scheduler and the engine, which act on behalf of whoever owns the job.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a new download, `queued` (or `paused` when `start_paused`), with a fresh id.
    async fn create(&self, new: NewDownload) -> Result<DownloadRecord, StoreError>;

    /// [`create`](Self::create), once per `key` of the account within `window`: the first call stores the
    /// download and binds the key to it with the request's `fingerprint`; a later one with the same fingerprint
    /// gets that download back, one with another fingerprint is told the key is taken. Concurrent calls with one
    /// key make one download. A key is freed when its download is removed, or after `window`.
    async fn create_once(
        &self,
        new: NewDownload,
        key: &str,
        fingerprint: &str,
        window: Duration,
    ) -> Result<CreatedOnce, StoreError>;

    async fn get(&self, account: &AccountId, id: DownloadId) -> Result<DownloadRecord, StoreError>;

    /// The account's downloads, newest first.
    async fn list(&self, account: &AccountId, filter: &ListFilter) -> Result<Vec<DownloadRecord>, StoreError>;

    /// How many of the account's downloads `filter` keeps, its `limit` and `offset` aside.
    async fn count(&self, account: &AccountId, filter: &ListFilter) -> Result<u64, StoreError>;

    /// Moves a download by `action`, checked against its state at the moment of writing (compare-and-set), and
    /// stores `error` as the reason (`None` clears it). An illegal action is `Conflict` naming the current state.
    /// Leaving `active` drops the lease, speed and connections; reaching a terminal state sets `finished_at`.
    async fn apply(
        &self,
        account: &AccountId,
        id: DownloadId,
        action: JobAction,
        error: Option<String>,
    ) -> Result<DownloadRecord, StoreError>;

    /// Atomically hands one runnable download to `node` for `lease`, from the queued downloads and the active ones
    /// whose lease has run out (their node is presumed dead): of the account with the fewest downloads running
    /// (on any node), the highest priority, then the oldest. Returns `None` when nothing is runnable or `node`
    /// already holds `max_active` live leases (the limit is per node).
    async fn claim_next(
        &self,
        node: &str,
        lease: Duration,
        max_active: usize,
    ) -> Result<Option<DownloadRecord>, StoreError>;

    /// Records the engine's progress. Speed, ETA and connections are kept only while active, so a late report
    /// from a download that was just paused does not show it as moving.
    async fn record_progress(&self, id: DownloadId, progress: &ProgressUpdate) -> Result<(), StoreError>;

    /// A running download's periodic report: its lease renewed and
    /// [`record_progress`](Self::record_progress) in one write, answering with the download as it now is. One
    /// statement rather than three matters with hundreds of downloads reporting every second. `Conflict` (and
    /// nothing written) when the download is no longer active on `node`.
    async fn report_progress(
        &self,
        id: DownloadId,
        node: &str,
        lease: Duration,
        progress: &ProgressUpdate,
    ) -> Result<DownloadRecord, StoreError>;

    /// Completes a download that `node` holds the lease on, recording `node` as the one holding its file. A
    /// node whose lease was taken over (or whose job a client moved on) gets `Conflict` and changes nothing.
    async fn complete_leased(&self, id: DownloadId, node: &str) -> Result<DownloadRecord, StoreError>;

    /// A playlist read by the download `id` that `node` holds the lease on: the download becomes the playlist
    /// (kind `playlist`, lease released, its title the playlist's when it had none) and the parent of
    /// `children`, inserted in the same transaction, in order, with the count of entries `skipped` (already in
    /// the account's archive). Its state is theirs from then on (triggers keep
    /// it), and claims never hand it out again. A node whose lease was lost gets `Conflict` and changes nothing.
    async fn expand_playlist(
        &self,
        id: DownloadId,
        node: &str,
        title: Option<&str>,
        children: &[NewDownload],
        skipped: u32,
    ) -> Result<DownloadRecord, StoreError>;

    /// The children of each playlist in `parents` (of `account`) taken together; a playlist without children
    /// is left out.
    async fn playlist_totals(
        &self,
        account: &AccountId,
        parents: &[DownloadId],
    ) -> Result<Vec<PlaylistTotals>, StoreError>;

    /// On startup: puts `node`'s active downloads back in the queue, to resume from their partial files.
    /// Returns how many.
    async fn requeue_node(&self, node: &str) -> Result<u64, StoreError>;

    /// On startup with `--no-resume`: pauses `node`'s active downloads instead, keeping their partial files.
    async fn pause_node(&self, node: &str) -> Result<u64, StoreError>;

    /// Changes the URL (only while paused or failed, else `Conflict`) and the priority (any time).
    async fn patch(
        &self,
        account: &AccountId,
        id: DownloadId,
        patch: &DownloadPatch,
    ) -> Result<DownloadRecord, StoreError>;

    /// Removes the row and returns it, whatever its state: stopping the engine and removing files first is the
    /// caller's job.
    async fn delete(&self, account: &AccountId, id: DownloadId) -> Result<DownloadRecord, StoreError>;

    /// Downloads of any account in one of `states` that finished before `before` (unix milliseconds), oldest
    /// first, at most `limit`: what a retention policy forgets.
    async fn ended_before(
        &self,
        states: &[JobState],
        before: i64,
        limit: u32,
    ) -> Result<Vec<(AccountId, DownloadId)>, StoreError>;

    /// Downloads per state, for one account or (with `None`) for the whole server.
    async fn counts(&self, account: Option<&AccountId>) -> Result<StateCounts, StoreError>;

    /// Records that the `name` rendition of an account's download was asked for, `pending`; asking again returns
    /// the existing one unchanged, except that a failed one is asked for afresh.
    async fn put_rendition(
        &self,
        account: &AccountId,
        id: DownloadId,
        name: RenditionName,
    ) -> Result<Rendition, StoreError>;

    /// Records a rendition's progress (the engine's; no account check). A new `state` replaces the error too.
    async fn update_rendition(
        &self,
        id: DownloadId,
        name: RenditionName,
        update: &RenditionUpdate,
    ) -> Result<(), StoreError>;

    /// Derived renditions asked for (or interrupted) whose download is complete: (account, download, name),
    /// oldest first. The engine makes them, at start-up and whenever a download completes.
    async fn renditions_to_make(&self) -> Result<Vec<(AccountId, DownloadId, RenditionName)>, StoreError>;

    /// Records what a media download learned (the engine's; no account check). A title the client gave is kept.
    async fn set_media(&self, id: DownloadId, update: &MediaUpdate) -> Result<(), StoreError>;

    /// The renditions of an account's download, by name.
    async fn renditions(&self, account: &AccountId, id: DownloadId) -> Result<Vec<Rendition>, StoreError>;

    /// Forgets one rendition (`Some(name)`) or all of them, returning what was removed so the caller can delete
    /// their files. `NotFound` when the download is not the account's.
    async fn delete_renditions(
        &self,
        account: &AccountId,
        id: DownloadId,
        name: Option<RenditionName>,
    ) -> Result<Vec<Rendition>, StoreError>;

    /// A new account with a fresh id; `Duplicate` when the name is taken.
    async fn create_account(&self, name: &str, email: Option<&str>) -> Result<Account, StoreError>;

    /// Makes sure an account with this id exists (the default account of a data directory), creating it with
    /// `name` if not. Returns it either way.
    async fn ensure_account(&self, id: &AccountId, name: &str) -> Result<Account, StoreError>;

    async fn account_by_name(&self, name: &str) -> Result<Account, StoreError>;

    async fn account(&self, id: &AccountId) -> Result<Account, StoreError>;

    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError>;

    /// Records a key by the hash of its secret (see [`hash_secret`]); `prefix` is the secret's start, for display.
    async fn create_key(
        &self,
        account: &AccountId,
        kind: KeyKind,
        secret_hash: &str,
        prefix: &str,
    ) -> Result<ApiKey, StoreError>;

    /// Keys of one account, or of all, oldest first; revoked ones included (with `revoked_at`).
    async fn list_keys(&self, account: Option<&AccountId>) -> Result<Vec<ApiKey>, StoreError>;

    /// Revokes the key whose id starts with `id_prefix` (it must match exactly one key).
    async fn revoke_key(&self, id_prefix: &str) -> Result<ApiKey, StoreError>;

    /// The account a live (unrevoked) key of one of `kinds` with this secret hash belongs to.
    async fn account_for_key(&self, secret_hash: &str, kinds: &[KeyKind]) -> Result<Option<AccountId>, StoreError>;

    /// The live (unrevoked) key with this secret hash.
    async fn live_key(&self, secret_hash: &str) -> Result<Option<ApiKey>, StoreError>;

    /// Opens a session standing for `key_id` until `expires_at` (unix ms); expired sessions are swept away.
    async fn create_session(&self, secret_hash: &str, key_id: &str, expires_at: i64) -> Result<(), StoreError>;

    /// The account, key id and expiry of a session that has not expired and whose key is still live.
    async fn session(&self, secret_hash: &str) -> Result<Option<(AccountId, String, i64)>, StoreError>;

    /// Ends a session; an unknown one is already ended.
    async fn delete_session(&self, secret_hash: &str) -> Result<(), StoreError>;

    /// The value every node shares under `name` (the default account, the link-signing key): the stored one,
    /// or `proposed` stored now when there is none. The first node to ask decides; the others adopt it.
    async fn shared_value(&self, name: &str, proposed: &str) -> Result<String, StoreError>;

    /// Records that `beat.node` is alive (its first beat also records when it started).
    /// A server setting stored by [`put_setting`](Self::put_setting), shared by every node on the store.
    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Stores (or replaces) a server setting.
    async fn put_setting(&self, name: &str, value: &str) -> Result<(), StoreError>;

    async fn heartbeat(&self, beat: &NodeBeat) -> Result<(), StoreError>;

    /// Every node that has beaten, with its live leases, most recently seen first.
    async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError>;

    /// The backend's name for people: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Whether several nodes may run on this store (PostgreSQL). Then events travel through it so that clients
    /// of every node see them, a download's file may be on another node, and values every node needs (the
    /// link key) live in it. When false, one node owns everything, and the event methods below are not used.
    fn shared_by_nodes(&self) -> bool {
        false
    }

    /// Appends events, numbered in the order they become visible (one number sequence for all nodes), and wakes
    /// the nodes waiting in [`wait_events`](Self::wait_events). `(kind, account, payload)`.
    async fn append_events(&self, _events: &[(String, String, String)]) -> Result<(), StoreError> {
        Ok(())
    }

    /// The number of the newest event (0 when there is none).
    async fn latest_event_id(&self) -> Result<i64, StoreError> {
        Ok(0)
    }

    /// Events numbered above `after`, oldest first, at most `limit`; when there are none yet, waits up to
    /// `wait` for some to be appended.
    async fn wait_events(&self, _after: i64, _limit: u32, _wait: Duration) -> Result<Vec<StoredEvent>, StoreError> {
        Ok(Vec::new())
    }

    /// Forgets events older than `age` (replay by `Last-Event-ID` reaches back that far).
    async fn prune_events(&self, _age: Duration) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Stores a webhook of `new.account` with a fresh id. From then on, every change of state of the account's
    /// downloads that the webhook wants writes a delivery, in the change's own transaction.
    async fn create_webhook(&self, new: &NewWebhook) -> Result<WebhookRecord, StoreError>;

    /// The account's webhooks, oldest first.
    async fn list_webhooks(&self, account: &AccountId) -> Result<Vec<WebhookRecord>, StoreError>;

    /// One of the account's webhooks; another account's is `NotFound`.
    async fn webhook(&self, account: &AccountId, id: &str) -> Result<WebhookRecord, StoreError>;

    /// Removes one of the account's webhooks with all its deliveries, the pending ones included.
    async fn delete_webhook(&self, account: &AccountId, id: &str) -> Result<WebhookRecord, StoreError>;

    /// Hands `node` up to `limit` deliveries that are due, for `lease` (another node takes one over only once
    /// that has run out), oldest first. Only the oldest pending delivery of each (webhook, download) is due, so
    /// one job's events reach a webhook in the order they happened, each after the one before was answered.
    async fn claim_deliveries(&self, node: &str, lease: Duration, limit: u32) -> Result<Vec<DueDelivery>, StoreError>;

    /// Records an attempt at a delivery `node` claimed, and releases the claim. A delivery no longer claimed by
    /// `node` (its claim ran out and another node took it) is left alone: `Ok(false)`.
    async fn record_attempt(&self, id: &str, node: &str, attempt: &DeliveryAttempt) -> Result<bool, StoreError>;

    /// Releases every claim `node` holds (at start-up: a node killed while sending left some), so they are due
    /// again at once rather than when their lease runs out.
    async fn release_deliveries(&self, node: &str) -> Result<u64, StoreError>;

    /// The deliveries of one of the account's webhooks, newest first, at most `limit`; `NotFound` for another
    /// account's webhook.
    async fn deliveries(
        &self,
        account: &AccountId,
        webhook: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// Forgets delivered and failed deliveries that happened longer than `age` ago.
    async fn prune_deliveries(&self, age: Duration) -> Result<u64, StoreError>;

    /// Stores a rule of `new.account` with a fresh id at `new.position` (the rules from there move down one),
    /// or after the account's last rule.
    async fn create_rule(&self, new: &NewRule) -> Result<RuleRecord, StoreError>;

    /// The account's rules in the order they are tried: by position, 1 first.
    async fn list_rules(&self, account: &AccountId) -> Result<Vec<RuleRecord>, StoreError>;

    /// One of the account's rules; another account's is `NotFound`.
    async fn rule(&self, account: &AccountId, id: &str) -> Result<RuleRecord, StoreError>;

    /// Renames or moves one of the account's rules; positions stay 1, 2, 3, ... without gaps.
    async fn update_rule(&self, account: &AccountId, id: &str, patch: &RulePatch) -> Result<RuleRecord, StoreError>;

    /// Removes one of the account's rules; the ones after it move up one.
    async fn delete_rule(&self, account: &AccountId, id: &str) -> Result<RuleRecord, StoreError>;

    /// Records that the account has downloaded `new.extractor`/`new.video_id`; a later recording of the same
    /// key replaces the entry's URL, title and download (the newest download is the one to name).
    async fn record_archive(&self, new: &NewArchiveEntry) -> Result<ArchiveRecord, StoreError>;

    /// The account's archive entry for this extractor and id, if there is one.
    async fn archive_entry(
        &self,
        account: &AccountId,
        extractor: &str,
        video_id: &str,
    ) -> Result<Option<ArchiveRecord>, StoreError>;

    /// The account's archive entries recorded for `url` (the page or file URL they were added with), newest
    /// first.
    async fn archive_by_url(&self, account: &AccountId, url: &str) -> Result<Vec<ArchiveRecord>, StoreError>;

    /// The account's archive, newest first, at most `limit` after skipping `offset`.
    async fn list_archive(
        &self,
        account: &AccountId,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<ArchiveRecord>, StoreError>;

    /// How many entries the account's archive holds.
    async fn count_archive(&self, account: &AccountId) -> Result<u64, StoreError>;

    /// Forgets one of the account's entries (by its id); another account's is `NotFound`.
    async fn delete_archive_entry(&self, account: &AccountId, id: &str) -> Result<ArchiveRecord, StoreError>;

    /// Forgets the account's whole archive; returns how many entries went.
    async fn clear_archive(&self, account: &AccountId) -> Result<u64, StoreError>;

    /// Puts `cookies` in the account's jar in one transaction: every cookie the jar held for a domain that
    /// `cookies` names is replaced, the other domains' are kept.
    async fn put_cookies(&self, account: &AccountId, cookies: &[CookieRecord]) -> Result<(), StoreError>;

    /// The account's cookies, by domain, path and name.
    async fn cookies(&self, account: &AccountId) -> Result<Vec<CookieRecord>, StoreError>;

    /// Removes the account's cookies of `domain` (exactly that domain), or all of them; returns how many went.
    async fn delete_cookies(&self, account: &AccountId, domain: Option<&str>) -> Result<u64, StoreError>;
}

/// A database URL as it may be shown (errors, logs): everything between `://` and the last `@` masked, which
/// covers a password holding `/`, `#` or `?` that a URL parser would split elsewhere.
pub fn shown_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme + 3 => format!("{}***{}", &url[..scheme + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

/// Opens the store named by `url`, creating and migrating it as needed: `sqlite:///abs/haul.db`,
/// `sqlite://relative.db`, a plain file path, or `postgres://user:password@host:port/database` (the database must
/// exist; haul creates its tables).
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PgStore::open(url).await?));
    }
    if url.starts_with("sqlite:") {
        return Ok(Arc::new(SqliteStore::open_url(url).await?));
    }
    if url.contains("://") {
        return Err(StoreError::other(format!(
            "unsupported store url {}: expected sqlite:///path/haul.db, a file path, or postgres://host/database",
            shown_url(url)
        )));
    }
    Ok(Arc::new(SqliteStore::open_path(url.as_ref()).await?))
}

#[cfg(test)]
mod tests {
    use super::shown_url;

    #[test]
    fn shown_urls_hide_the_whole_userinfo() {
        for (url, shown) in [
            ("postgres://haul:S3CRET@db.internal/haul", "postgres://***@db.internal/haul"),
            ("postgres://haul:pa/ss#w?rd@db:5432/haul", "postgres://***@db:5432/haul"),
            ("postgres://db.internal/haul", "postgres://db.internal/haul"),
            ("sqlite:///var/lib/haul/haul.db", "sqlite:///var/lib/haul/haul.db"),
        ] {
            assert_eq!(shown_url(url), shown, "{url}");
        }
    }
}
