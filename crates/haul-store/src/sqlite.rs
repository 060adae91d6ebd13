//! The SQLite backend: one database file in WAL mode, the migrations in `migrations/sqlite` applied at open.
//!
//! Writers are serialised by SQLite itself. Single-statement changes are compare-and-set `UPDATE ... WHERE
//! state = ?`; `claim_next`, which reads before it writes, runs in a `BEGIN IMMEDIATE` transaction so that the
//! write lock is taken before the read and two claimers (tasks or processes) can never pick the same row.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use haul_core::account::KeyKind;
use haul_core::job::{AccountId, DownloadId, JobAction, JobState, next_state};
use haul_core::media::{RenditionName, RenditionState};

use crate::accounts::{Account, ApiKey};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, migrate::MigrateError};

use crate::rows::{
    account_from_row, archive_from_row, archive_not_found, attempt_columns, cookie_from_row, delivery_from_row,
    due_deliveries, due_from_row, duration_millis, ended_from_row, events_to_db, extensions_to_db, from_db,
    key_from_row, lease_lost, media_choice_to_db, meta_to_db, not_found, now_millis, parse_column, parse_state,
    playlist_totals_from_row, record_from_row, rendition_from_row, rule_from_row, rule_not_found, rule_position,
    state_list, to_db, to_json, webhook_from_row, webhook_not_found,
};
use crate::{
    ArchiveRecord, CookieRecord, CreatedOnce, DeliveryAttempt, DeliveryRecord, DownloadPatch, DownloadRecord,
    DueDelivery, ListFilter, MediaUpdate, NewArchiveEntry, NewDownload, NewRule, NewWebhook, NodeBeat, NodeRecord,
    PlaylistTotals, ProgressUpdate, Rendition, RenditionUpdate, RulePatch, RuleRecord, StateCounts, Store, StoreError,
    WebhookRecord,
};

/// How long a writer waits for another's lock before failing; claims and progress writes are short, so
/// hitting this means something is stuck.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often `apply` re-reads and retries when the state changed between its read and its write. Each retry
/// means another writer won a race; a handful of losses in a row means something is looping.
const CAS_ATTEMPTS: usize = 8;

/// A [`Store`] on one SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens `sqlite:///abs/path.db` or `sqlite://relative.db` (query options such as `?mode=ro` are honoured).
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|error| StoreError::caused(format!("invalid sqlite url {url}"), error))?;
        Self::open_with(options, url).await
    }

    /// Opens the database file at `path`, creating it if missing.
    pub async fn open_path(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(SqliteConnectOptions::new().filename(path), &path.display().to_string()).await
    }

    async fn open_with(options: SqliteConnectOptions, name: &str) -> Result<Self, StoreError> {
        owner_only(options.get_filename())
            .map_err(|error| StoreError::caused(format!("cannot create {name}"), error))?;
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is safe against a killed process in WAL mode; only a power loss can drop the last commits,
            // the same trade the engine makes for its resume records (see ARCHITECTURE.md).
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .connect_with(options)
            .await
            .map_err(|error| StoreError::caused(format!("cannot open {name}"), error))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|error: MigrateError| StoreError::caused(format!("cannot migrate {name}"), error))?;
        Ok(Self { pool })
    }

    /// The state of any account's download, for explaining a failed compare-and-set.
    async fn current_state(&self, id: DownloadId) -> Result<JobState, StoreError> {
        let row = sqlx::query("SELECT state FROM downloads WHERE id = ?1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found(id))?;
        parse_state(row.try_get("state")?, id)
    }

    async fn owned_state(&self, account: &AccountId, id: DownloadId) -> Result<JobState, StoreError> {
        let row = sqlx::query("SELECT state FROM downloads WHERE id = ?1 AND account = ?2")
            .bind(id.to_string())
            .bind(account.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found(id))?;
        parse_state(row.try_get("state")?, id)
    }
}

impl SqliteStore {
    /// Moves `node`'s active downloads to `to` and drops their leases.
    async fn release_node(&self, node: &str, to: JobState) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE downloads SET
                 state = ?2, lease_owner = NULL, lease_expires = NULL, speed = 0, eta_secs = NULL, connections = 0
             WHERE state = 'active' AND lease_owner = ?1",
        )
        .bind(node)
        .bind(to.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create(&self, new: NewDownload) -> Result<DownloadRecord, StoreError> {
        insert_download(&self.pool, &new).await
    }

    async fn create_once(
        &self,
        new: NewDownload,
        key: &str,
        fingerprint: &str,
        window: Duration,
    ) -> Result<CreatedOnce, StoreError> {
        // The write lock first, so that concurrent adds with one key run one after the other.
        let mut transaction = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let now = now_millis();
        let account = new.account.as_str();
        sqlx::query("DELETE FROM idempotency WHERE account = ?1 AND created_at <= ?2")
            .bind(account)
            .bind(now.saturating_sub(duration_millis(window)))
            .execute(&mut *transaction)
            .await?;
        let bound = sqlx::query(
            "SELECT i.fingerprint, i.created_at AS bound_at, d.* FROM idempotency i
             JOIN downloads d ON d.id = i.download_id
             WHERE i.account = ?1 AND i.key = ?2",
        )
        .bind(account)
        .bind(key)
        .fetch_optional(&mut *transaction)
        .await?;
        if let Some(row) = bound {
            transaction.rollback().await?;
            if row.try_get::<String, _>("fingerprint")? != fingerprint {
                return Ok(CreatedOnce::KeyReused { created_at: row.try_get("bound_at")? });
            }
            return Ok(CreatedOnce::Replayed(record_from_row(&row)?));
        }
        let record = insert_download(&mut *transaction, &new).await?;
        sqlx::query(
            "INSERT INTO idempotency (account, key, fingerprint, download_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(account)
        .bind(key)
        .bind(fingerprint)
        .bind(record.id.to_string())
        .bind(now)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(CreatedOnce::Created(record))
    }

    async fn get(&self, account: &AccountId, id: DownloadId) -> Result<DownloadRecord, StoreError> {
        let row = sqlx::query("SELECT * FROM downloads WHERE id = ?1 AND account = ?2")
            .bind(id.to_string())
            .bind(account.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found(id))?;
        record_from_row(&row)
    }

    async fn list(&self, account: &AccountId, filter: &ListFilter) -> Result<Vec<DownloadRecord>, StoreError> {
        // One statement per order (the direction cannot be a parameter). LIMIT -1 is SQLite for "no limit".
        let order = if filter.oldest_first { "ASC" } else { "DESC" };
        let sql = format!(
            "SELECT * FROM downloads WHERE {LIST_CONDITIONS}
             ORDER BY created_at {order}, seq {order}
             LIMIT ?10 OFFSET ?11"
        );
        let rows = bind_list_filter(sqlx::query(&sql), account, filter)?
            .bind(filter.limit.map_or(-1, i64::from))
            .bind(i64::from(filter.offset))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(record_from_row).collect()
    }

    async fn count(&self, account: &AccountId, filter: &ListFilter) -> Result<u64, StoreError> {
        let sql = format!("SELECT COUNT(*) AS n FROM downloads WHERE {LIST_CONDITIONS}");
        let row = bind_list_filter(sqlx::query(&sql), account, filter)?.fetch_one(&self.pool).await?;
        from_db(row.try_get("n")?, "count")
    }

    async fn apply(
        &self,
        account: &AccountId,
        id: DownloadId,
        action: JobAction,
        error: Option<String>,
    ) -> Result<DownloadRecord, StoreError> {
        for _ in 0..CAS_ATTEMPTS {
            let current = self.owned_state(account, id).await?;
            let next = next_state(current, action)
                .map_err(|illegal| StoreError::Conflict { current, message: illegal.to_string() })?;
            let now = now_millis();
            let row = sqlx::query(
                "UPDATE downloads SET
                     state = ?1,
                     error = ?2,
                     started_at = CASE WHEN ?1 = 'active' THEN COALESCE(started_at, ?3) ELSE started_at END,
                     finished_at = ?4,
                     held_by = CASE WHEN ?1 = 'completed' THEN lease_owner ELSE held_by END,
                     lease_owner = CASE WHEN ?1 = 'active' THEN lease_owner END,
                     lease_expires = CASE WHEN ?1 = 'active' THEN lease_expires END,
                     speed = CASE WHEN ?1 = 'active' THEN speed ELSE 0 END,
                     eta_secs = CASE WHEN ?1 = 'active' THEN eta_secs END,
                     connections = CASE WHEN ?1 = 'active' THEN connections ELSE 0 END
                 WHERE id = ?5 AND account = ?6 AND state = ?7
                 RETURNING *",
            )
            .bind(next.as_str())
            .bind(&error)
            .bind(now)
            .bind(next.is_terminal().then_some(now))
            .bind(id.to_string())
            .bind(account.as_str())
            .bind(current.as_str())
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = row {
                return record_from_row(&row);
            }
            // Another writer changed the state (or deleted the row) between the read and the write: judge the
            // action again against what is there now.
        }
        Err(StoreError::other(format!("download {id} kept changing state while applying {action}; try again")))
    }

    async fn claim_next(
        &self,
        node: &str,
        lease: Duration,
        max_active: usize,
    ) -> Result<Option<DownloadRecord>, StoreError> {
        if max_active == 0 {
            return Ok(None);
        }
        let mut transaction = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let now = now_millis();
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM downloads WHERE state = 'active' AND lease_owner = ?1 AND lease_expires > ?2",
        )
        .bind(node)
        .bind(now)
        .fetch_one(&mut *transaction)
        .await?;
        if usize::try_from(live).unwrap_or(usize::MAX) >= max_active {
            transaction.rollback().await?;
            return Ok(None);
        }
        // An active row without a live lease has nobody fetching it (its node died, or it was started without
        // a lease), so it competes with the queued rows on the same terms.
        //
        // Fair sharing: the slot goes to the account with the fewest downloads running now; priority orders
        // an account's own jobs (then age), so one account's thousand top-priority jobs cannot starve
        // another's one.
        //
        // The candidates are the head of each account's queue (the accounts with a queued job are the few rows
        // of `download_counts`; each head is one step down `downloads_by_account_queue`) and the active rows
        // without a live lease: the best of those is the best runnable row, without sorting every queued one.
        let row = sqlx::query(
            "UPDATE downloads SET
                 state = 'active',
                 lease_owner = ?1,
                 lease_expires = ?2,
                 started_at = COALESCE(started_at, ?3),
                 speed = 0,
                 eta_secs = NULL,
                 connections = 0
             WHERE seq = (
                 WITH candidates (seq) AS (
                     SELECT (SELECT q.seq FROM downloads q
                             WHERE q.account = c.account AND q.state = 'queued' AND q.kind <> 'playlist'
                             ORDER BY q.priority DESC, q.created_at, q.seq
                             LIMIT 1)
                     FROM download_counts c
                     WHERE c.state = 'queued' AND c.n > 0
                     UNION ALL
                     SELECT seq FROM downloads
                     WHERE state = 'active' AND (lease_expires IS NULL OR lease_expires <= ?3) AND kind <> 'playlist'
                 )
                 SELECT d.seq FROM candidates
                 JOIN downloads d ON d.seq = candidates.seq
                 LEFT JOIN (
                     SELECT account, COUNT(*) AS running FROM downloads
                     WHERE state = 'active' AND lease_expires > ?3
                     GROUP BY account
                 ) a ON a.account = d.account
                 ORDER BY COALESCE(a.running, 0), d.priority DESC, d.created_at, d.seq
                 LIMIT 1)
             RETURNING *",
        )
        .bind(node)
        .bind(now.saturating_add(duration_millis(lease)))
        .bind(now)
        .fetch_optional(&mut *transaction)
        .await?;
        transaction.commit().await?;
        row.as_ref().map(record_from_row).transpose()
    }

    async fn record_progress(&self, id: DownloadId, progress: &ProgressUpdate) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE downloads SET
                 bytes_done = ?1,
                 size = COALESCE(?2, size),
                 filename = COALESCE(?3, filename),
                 path = COALESCE(?4, path),
                 speed = CASE WHEN state = 'active' THEN ?5 ELSE 0 END,
                 eta_secs = CASE WHEN state = 'active' THEN ?6 END,
                 connections = CASE WHEN state = 'active' THEN ?7 ELSE 0 END
             WHERE id = ?8",
        )
        .bind(to_db(progress.bytes_done))
        .bind(progress.size.map(to_db))
        .bind(&progress.filename)
        .bind(&progress.path)
        .bind(to_db(progress.speed))
        .bind(progress.eta_secs.map(to_db))
        .bind(progress.connections)
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(not_found(id));
        }
        Ok(())
    }

    async fn report_progress(
        &self,
        id: DownloadId,
        node: &str,
        lease: Duration,
        progress: &ProgressUpdate,
    ) -> Result<DownloadRecord, StoreError> {
        let row = sqlx::query(
            "UPDATE downloads SET
                 lease_expires = ?1,
                 bytes_done = ?2,
                 size = COALESCE(?3, size),
                 filename = COALESCE(?4, filename),
                 path = COALESCE(?5, path),
                 speed = ?6,
                 eta_secs = ?7,
                 connections = ?8
             WHERE id = ?9 AND state = 'active' AND lease_owner = ?10
             RETURNING *",
        )
        .bind(now_millis().saturating_add(duration_millis(lease)))
        .bind(to_db(progress.bytes_done))
        .bind(progress.size.map(to_db))
        .bind(&progress.filename)
        .bind(&progress.path)
        .bind(to_db(progress.speed))
        .bind(progress.eta_secs.map(to_db))
        .bind(progress.connections)
        .bind(id.to_string())
        .bind(node)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => record_from_row(&row),
            None => Err(lease_lost(id, node, self.current_state(id).await?)),
        }
    }

    async fn complete_leased(&self, id: DownloadId, node: &str) -> Result<DownloadRecord, StoreError> {
        let row = sqlx::query(
            "UPDATE downloads SET
                 state = 'completed', error = NULL, finished_at = ?3, held_by = ?2, lease_owner = NULL,
                 lease_expires = NULL, speed = 0, eta_secs = NULL, connections = 0
             WHERE id = ?1 AND state = 'active' AND lease_owner = ?2
             RETURNING *",
        )
        .bind(id.to_string())
        .bind(node)
        .bind(now_millis())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => record_from_row(&row),
            None => Err(lease_lost(id, node, self.current_state(id).await?)),
        }
    }

    async fn expand_playlist(
        &self,
        id: DownloadId,
        node: &str,
        title: Option<&str>,
        children: &[NewDownload],
        skipped: u32,
    ) -> Result<DownloadRecord, StoreError> {
        let mut transaction = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // The kind first: the triggers keep only a `playlist`'s state, as each child goes in.
        let held = sqlx::query(
            "UPDATE downloads SET kind = 'playlist', title = COALESCE(title, ?3), playlist_skipped = ?4, lease_owner = NULL,
                 lease_expires = NULL, speed = 0, eta_secs = NULL, connections = 0
             WHERE id = ?1 AND state = 'active' AND lease_owner = ?2",
        )
        .bind(id.to_string())
        .bind(node)
        .bind(title)
        .bind(i64::from(skipped))
        .execute(&mut *transaction)
        .await?;
        if held.rows_affected() == 0 {
            transaction.rollback().await?;
            return Err(lease_lost(id, node, self.current_state(id).await?));
        }
        for child in children {
            insert_download(&mut *transaction, child).await?;
        }
        let row = sqlx::query("SELECT * FROM downloads WHERE id = ?1")
            .bind(id.to_string())
            .fetch_one(&mut *transaction)
            .await?;
        transaction.commit().await?;
        record_from_row(&row)
    }

    async fn playlist_totals(
        &self,
        account: &AccountId,
        parents: &[DownloadId],
    ) -> Result<Vec<PlaylistTotals>, StoreError> {
        if parents.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = parents.iter().map(ToString::to_string).collect();
        let rows = sqlx::query(
            "SELECT parent_id, COUNT(*) AS entries,
                 SUM(state = 'completed') AS completed, SUM(state = 'failed') AS failed,
                 SUM(state = 'cancelled') AS cancelled, SUM(bytes_done) AS bytes_done,
                 CASE WHEN COUNT(size) = COUNT(*) THEN SUM(size) END AS size
             FROM downloads
             WHERE account = ?1 AND parent_id IN (SELECT value FROM json_each(?2))
             GROUP BY parent_id",
        )
        .bind(account.as_str())
        .bind(to_json(&ids)?)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(playlist_totals_from_row).collect()
    }

    async fn requeue_node(&self, node: &str) -> Result<u64, StoreError> {
        self.release_node(node, JobState::Queued).await
    }

    async fn pause_node(&self, node: &str) -> Result<u64, StoreError> {
        self.release_node(node, JobState::Paused).await
    }

    async fn patch(
        &self,
        account: &AccountId,
        id: DownloadId,
        patch: &DownloadPatch,
    ) -> Result<DownloadRecord, StoreError> {
        // The state guard is part of the UPDATE, so a download cannot start between the check and the write.
        let row = sqlx::query(
            "UPDATE downloads SET url = COALESCE(?1, url), priority = COALESCE(?2, priority), title = COALESCE(?10, title),
                 meta = CASE WHEN ?5 THEN ?6 ELSE meta END,
                 creator = CASE WHEN ?5 THEN ?7 ELSE creator END,
                 thumbnail_at = CASE WHEN ?5 THEN ?8 ELSE thumbnail_at END,
                 require_signed_urls = CASE WHEN ?5 THEN ?9 ELSE require_signed_urls END,
                 speed_limit = CASE WHEN ?11 THEN ?12 ELSE speed_limit END
             WHERE id = ?3 AND account = ?4 AND (?1 IS NULL OR state IN ('paused', 'failed'))
             RETURNING *",
        )
        .bind(&patch.url)
        .bind(patch.priority)
        .bind(id.to_string())
        .bind(account.as_str())
        .bind(patch.labels.is_some())
        .bind(patch.labels.as_ref().map(meta_to_db).transpose()?.flatten())
        .bind(patch.labels.as_ref().and_then(|labels| labels.creator.clone()))
        .bind(patch.labels.as_ref().and_then(|labels| labels.thumbnail_at))
        .bind(patch.labels.as_ref().is_some_and(|labels| labels.require_signed_urls))
        .bind(&patch.title)
        .bind(patch.speed_limit.is_some())
        .bind(patch.speed_limit.flatten().map(to_db))
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => record_from_row(&row),
            None => {
                let current = self.owned_state(account, id).await?;
                Err(StoreError::Conflict {
                    current,
                    message: format!(
                        "cannot change the url of a download that is {current}; pause it first (only paused or \
                         failed downloads take a new url)"
                    ),
                })
            }
        }
    }

    async fn delete(&self, account: &AccountId, id: DownloadId) -> Result<DownloadRecord, StoreError> {
        let row = sqlx::query("DELETE FROM downloads WHERE id = ?1 AND account = ?2 RETURNING *")
            .bind(id.to_string())
            .bind(account.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found(id))?;
        record_from_row(&row)
    }

    async fn ended_before(
        &self,
        states: &[JobState],
        before: i64,
        limit: u32,
    ) -> Result<Vec<(AccountId, DownloadId)>, StoreError> {
        let rows = sqlx::query(
            "SELECT account, id FROM downloads
             WHERE instr(?1, ',' || state || ',') > 0 AND finished_at IS NOT NULL AND finished_at < ?2
             ORDER BY finished_at LIMIT ?3",
        )
        .bind(state_list(states))
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ended_from_row).collect()
    }

    async fn counts(&self, account: Option<&AccountId>) -> Result<StateCounts, StoreError> {
        // Read from the totals the triggers of migration 0008 keep, not counted from the rows: this runs on every
        // add and every list, and a count takes time in proportion to the account's downloads.
        let rows = match account {
            Some(account) => {
                sqlx::query("SELECT state, n FROM download_counts WHERE account = ?1")
                    .bind(account.as_str())
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT state, SUM(n) AS n FROM download_counts GROUP BY state")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        let mut counts = StateCounts::default();
        for row in rows {
            let state: JobState = parse_column(row.try_get("state")?, "state count")?;
            *counts.slot(state) = from_db(row.try_get("n")?, "count")?;
        }
        Ok(counts)
    }

    async fn put_rendition(
        &self,
        account: &AccountId,
        id: DownloadId,
        name: RenditionName,
    ) -> Result<Rendition, StoreError> {
        // Ownership first: the insert below would happily reference another account's download.
        self.owned_state(account, id).await?;
        sqlx::query(
            "INSERT INTO renditions (download_id, name, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (download_id, name) DO UPDATE SET state = 'pending', percent = 0, error = NULL
                 WHERE renditions.state = 'failed'",
        )
        .bind(id.to_string())
        .bind(name.as_str())
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT * FROM renditions WHERE download_id = ?1 AND name = ?2")
            .bind(id.to_string())
            .bind(name.as_str())
            .fetch_one(&self.pool)
            .await?;
        rendition_from_row(&row)
    }

    async fn update_rendition(
        &self,
        id: DownloadId,
        name: RenditionName,
        update: &RenditionUpdate,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE renditions SET
                 state = COALESCE(?3, state), percent = COALESCE(?4, percent), path = COALESCE(?5, path),
                 error = CASE WHEN ?3 IS NULL THEN error ELSE ?6 END
             WHERE download_id = ?1 AND name = ?2",
        )
        .bind(id.to_string())
        .bind(name.as_str())
        .bind(update.state.map(RenditionState::as_str))
        .bind(update.percent)
        .bind(&update.path)
        .bind(&update.error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn renditions_to_make(&self) -> Result<Vec<(AccountId, DownloadId, RenditionName)>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.account, r.download_id, r.name FROM renditions r JOIN downloads d ON d.id = r.download_id
             WHERE r.name <> 'default' AND r.state IN ('pending', 'active') AND d.state = 'completed'
             ORDER BY r.created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    parse_column(row.try_get("account")?, "rendition's account")?,
                    parse_column(row.try_get("download_id")?, "rendition's download")?,
                    parse_column(row.try_get("name")?, "rendition name")?,
                ))
            })
            .collect()
    }

    async fn set_media(&self, id: DownloadId, update: &MediaUpdate) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE downloads SET
                 kind = COALESCE(?2, kind), title = COALESCE(title, ?3), duration = COALESCE(?4, duration),
                 width = COALESCE(?5, width), height = COALESCE(?6, height), format = COALESCE(?7, format),
                 thumbnail = COALESCE(?8, thumbnail), subtitles = COALESCE(?9, subtitles)
             WHERE id = ?1",
        )
        .bind(id.to_string())
        .bind(update.kind.map(|kind| kind.as_str()))
        .bind(&update.title)
        .bind(update.duration)
        .bind(update.width)
        .bind(update.height)
        .bind(&update.format)
        .bind(&update.thumbnail)
        .bind(update.subtitles.as_ref().map(to_json).transpose()?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn renditions(&self, account: &AccountId, id: DownloadId) -> Result<Vec<Rendition>, StoreError> {
        self.owned_state(account, id).await?;
        let rows = sqlx::query("SELECT * FROM renditions WHERE download_id = ?1 ORDER BY name")
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rendition_from_row).collect()
    }

    async fn delete_renditions(
        &self,
        account: &AccountId,
        id: DownloadId,
        name: Option<RenditionName>,
    ) -> Result<Vec<Rendition>, StoreError> {
        self.owned_state(account, id).await?;
        let rows =
            sqlx::query("DELETE FROM renditions WHERE download_id = ?1 AND (?2 IS NULL OR name = ?2) RETURNING *")
                .bind(id.to_string())
                .bind(name.map(RenditionName::as_str))
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(rendition_from_row).collect()
    }

    async fn create_account(&self, name: &str, email: Option<&str>) -> Result<Account, StoreError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(StoreError::other("an account needs a name"));
        }
        let id = AccountId::generate();
        let created_at = now_millis();
        let inserted = sqlx::query("INSERT INTO accounts (id, name, email, created_at) VALUES (?1, ?2, ?3, ?4)")
            .bind(id.as_str())
            .bind(name)
            .bind(email)
            .bind(created_at)
            .execute(&self.pool)
            .await;
        match inserted {
            Ok(_) => Ok(Account { id, name: name.to_owned(), email: email.map(str::to_owned), created_at }),
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                Err(StoreError::Duplicate(format!("an account named {name:?} already exists")))
            }
            Err(error) => Err(error.into()),
        }
    }

    async fn ensure_account(&self, id: &AccountId, name: &str) -> Result<Account, StoreError> {
        // A taken name gets the id appended, so a default account never collides with one made by hand.
        sqlx::query(
            "INSERT INTO accounts (id, name, email, created_at)
             VALUES (?1, CASE WHEN EXISTS (SELECT 1 FROM accounts WHERE name = ?2) THEN ?2 || '-' || ?1 ELSE ?2 END,
                     NULL, ?3)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id.as_str())
        .bind(name)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT * FROM accounts WHERE id = ?1").bind(id.as_str()).fetch_one(&self.pool).await?;
        account_from_row(&row)
    }

    async fn account_by_name(&self, name: &str) -> Result<Account, StoreError> {
        let row = sqlx::query("SELECT * FROM accounts WHERE name = ?1").bind(name).fetch_optional(&self.pool).await?;
        match row {
            Some(row) => account_from_row(&row),
            None => Err(StoreError::NotFound(format!("account {name:?}"))),
        }
    }

    async fn account(&self, id: &AccountId) -> Result<Account, StoreError> {
        let row =
            sqlx::query("SELECT * FROM accounts WHERE id = ?1").bind(id.as_str()).fetch_optional(&self.pool).await?;
        match row {
            Some(row) => account_from_row(&row),
            None => Err(StoreError::NotFound(format!("account {id}"))),
        }
    }

    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        let rows = sqlx::query("SELECT * FROM accounts ORDER BY created_at, name").fetch_all(&self.pool).await?;
        rows.iter().map(account_from_row).collect()
    }

    async fn create_key(
        &self,
        account: &AccountId,
        kind: KeyKind,
        secret_hash: &str,
        prefix: &str,
    ) -> Result<ApiKey, StoreError> {
        let id = DownloadId::new_random().to_string();
        let created_at = now_millis();
        let inserted = sqlx::query(
            "INSERT INTO api_keys (id, account_id, kind, secret_hash, prefix, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(&id)
        .bind(account.as_str())
        .bind(kind.as_str())
        .bind(secret_hash)
        .bind(prefix)
        .bind(created_at)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(ApiKey {
                id,
                account: account.clone(),
                kind,
                prefix: prefix.to_owned(),
                created_at,
                revoked_at: None,
            }),
            Err(sqlx::Error::Database(error)) if error.is_foreign_key_violation() => {
                Err(StoreError::NotFound(format!("account {account}")))
            }
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                Err(StoreError::Duplicate("a key with this secret already exists".into()))
            }
            Err(error) => Err(error.into()),
        }
    }

    async fn list_keys(&self, account: Option<&AccountId>) -> Result<Vec<ApiKey>, StoreError> {
        let rows = sqlx::query("SELECT * FROM api_keys WHERE ?1 IS NULL OR account_id = ?1 ORDER BY created_at, id")
            .bind(account.map(AccountId::as_str))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn revoke_key(&self, id_prefix: &str) -> Result<ApiKey, StoreError> {
        let pattern = format!("{}%", id_prefix.replace(['%', '_'], ""));
        let rows = sqlx::query("SELECT * FROM api_keys WHERE id LIKE ?1").bind(&pattern).fetch_all(&self.pool).await?;
        let key = match rows.as_slice() {
            [row] => key_from_row(row)?,
            [] => return Err(StoreError::NotFound(format!("key {id_prefix}"))),
            _ => {
                return Err(StoreError::Duplicate(format!(
                    "key id {id_prefix} matches {} keys; give more of it",
                    rows.len()
                )));
            }
        };
        let revoked_at = now_millis();
        sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?1) WHERE id = ?2")
            .bind(revoked_at)
            .bind(&key.id)
            .execute(&self.pool)
            .await?;
        Ok(ApiKey { revoked_at: key.revoked_at.or(Some(revoked_at)), ..key })
    }

    async fn account_for_key(&self, secret_hash: &str, kinds: &[KeyKind]) -> Result<Option<AccountId>, StoreError> {
        let row = sqlx::query("SELECT account_id, kind FROM api_keys WHERE secret_hash = ?1 AND revoked_at IS NULL")
            .bind(secret_hash)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let kind: KeyKind = parse_column(row.try_get("kind")?, "key kind")?;
        if !kinds.contains(&kind) {
            return Ok(None);
        }
        parse_column(row.try_get("account_id")?, "key's account").map(Some)
    }

    async fn live_key(&self, secret_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE secret_hash = ?1 AND revoked_at IS NULL")
            .bind(secret_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn create_session(&self, secret_hash: &str, key_id: &str, expires_at: i64) -> Result<(), StoreError> {
        let now = now_millis();
        sqlx::query("DELETE FROM sessions WHERE expires_at <= ?1").bind(now).execute(&self.pool).await?;
        sqlx::query("INSERT INTO sessions (secret_hash, key_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)")
            .bind(secret_hash)
            .bind(key_id)
            .bind(now)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn session(&self, secret_hash: &str) -> Result<Option<(AccountId, String, i64)>, StoreError> {
        let row = sqlx::query(
            "SELECT k.account_id, s.key_id, s.expires_at FROM sessions s JOIN api_keys k ON k.id = s.key_id
             WHERE s.secret_hash = ?1 AND s.expires_at > ?2 AND k.revoked_at IS NULL",
        )
        .bind(secret_hash)
        .bind(now_millis())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let account = parse_column(row.try_get("account_id")?, "session's account")?;
        Ok(Some((account, row.try_get("key_id")?, row.try_get("expires_at")?)))
    }

    async fn delete_session(&self, secret_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE secret_hash = ?1").bind(secret_hash).execute(&self.pool).await?;
        Ok(())
    }

    async fn shared_value(&self, name: &str, proposed: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(proposed)
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE name = ?1").bind(name).fetch_one(&self.pool).await?)
    }

    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE name = ?1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn put_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = ?2")
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn heartbeat(&self, beat: &NodeBeat) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO nodes (id, advertise_url, version, started_at, last_seen) VALUES (?1, ?2, ?3, ?4, ?4)
             ON CONFLICT (id) DO UPDATE SET advertise_url = ?2, version = ?3, last_seen = ?4",
        )
        .bind(&beat.node)
        .bind(&beat.advertise_url)
        .bind(&beat.version)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT n.*, (SELECT COUNT(*) FROM downloads d
                          WHERE d.state = 'active' AND d.lease_owner = n.id AND d.lease_expires > ?1) AS active
             FROM nodes n ORDER BY n.last_seen DESC, n.id",
        )
        .bind(now_millis())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(crate::rows::node_from_row).collect()
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn create_webhook(&self, new: &NewWebhook) -> Result<WebhookRecord, StoreError> {
        let row = sqlx::query(
            "INSERT INTO webhooks (id, account, url, events, secret, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             RETURNING *",
        )
        .bind(DownloadId::new_random().to_string())
        .bind(new.account.as_str())
        .bind(&new.url)
        .bind(events_to_db(&new.events))
        .bind(&new.secret)
        .bind(now_millis())
        .fetch_one(&self.pool)
        .await?;
        webhook_from_row(&row)
    }

    async fn list_webhooks(&self, account: &AccountId) -> Result<Vec<WebhookRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM webhooks WHERE account = ?1 ORDER BY created_at, id")
            .bind(account.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(webhook_from_row).collect()
    }

    async fn webhook(&self, account: &AccountId, id: &str) -> Result<WebhookRecord, StoreError> {
        let row = sqlx::query("SELECT * FROM webhooks WHERE id = ?1 AND account = ?2")
            .bind(id)
            .bind(account.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| webhook_not_found(id))?;
        webhook_from_row(&row)
    }

    async fn delete_webhook(&self, account: &AccountId, id: &str) -> Result<WebhookRecord, StoreError> {
        // Its deliveries go with it (ON DELETE CASCADE).
        let row = sqlx::query("DELETE FROM webhooks WHERE id = ?1 AND account = ?2 RETURNING *")
            .bind(id)
            .bind(account.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| webhook_not_found(id))?;
        webhook_from_row(&row)
    }

    async fn claim_deliveries(&self, node: &str, lease: Duration, limit: u32) -> Result<Vec<DueDelivery>, StoreError> {
        // The write lock before the read, so two claimers never pick the same rows.
        let mut transaction = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let now = now_millis();
        let rows = sqlx::query(&format!(
            "SELECT d.*, w.url AS webhook_url, w.secret AS webhook_secret FROM webhook_deliveries d
             JOIN webhooks w ON w.id = d.webhook
             WHERE {}
             ORDER BY d.seq
             LIMIT ?2",
            due_deliveries("?1")
        ))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *transaction)
        .await?;
        let due = rows.iter().map(due_from_row).collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<&str> = due.iter().map(|due| due.delivery.id.as_str()).collect();
        sqlx::query(
            "UPDATE webhook_deliveries SET claimed_by = ?1, claimed_until = ?2
             WHERE id IN (SELECT value FROM json_each(?3))",
        )
        .bind(node)
        .bind(now.saturating_add(duration_millis(lease)))
        .bind(to_json(&ids)?)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(due)
    }

    async fn record_attempt(&self, id: &str, node: &str, attempt: &DeliveryAttempt) -> Result<bool, StoreError> {
        let now = now_millis();
        let (state, next_attempt_at, delivered_at) = attempt_columns(attempt, now);
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET
                 state = ?1, attempts = attempts + 1, next_attempt_at = COALESCE(?2, next_attempt_at),
                 last_status = ?3, last_error = ?4, delivered_at = ?5, claimed_by = NULL, claimed_until = NULL
             WHERE id = ?6 AND claimed_by = ?7 AND state = 'pending'",
        )
        .bind(state)
        .bind(next_attempt_at)
        .bind(attempt.status.map(i64::from))
        .bind(&attempt.error)
        .bind(delivered_at)
        .bind(id)
        .bind(node)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn release_deliveries(&self, node: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET claimed_by = NULL, claimed_until = NULL
             WHERE claimed_by = ?1 AND state = 'pending'",
        )
        .bind(node)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn deliveries(
        &self,
        account: &AccountId,
        webhook: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.webhook(account, webhook).await?;
        let rows = sqlx::query("SELECT * FROM webhook_deliveries WHERE webhook = ?1 ORDER BY seq DESC LIMIT ?2")
            .bind(webhook)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn prune_deliveries(&self, age: Duration) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM webhook_deliveries WHERE state <> 'pending' AND occurred_at < ?1")
            .bind(now_millis().saturating_sub(duration_millis(age)))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn create_rule(&self, new: &NewRule) -> Result<RuleRecord, StoreError> {
        // Under the write lock from the start, so two adds never take one position.
        let mut transaction = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rules WHERE account = ?1")
            .bind(new.account.as_str())
            .fetch_one(&mut *transaction)
            .await?;
        let position = rule_position(new.position, count + 1);
        sqlx::query("UPDATE rules SET position = position + 1 WHERE account = ?1 AND position >= ?2")
            .bind(new.account.as_str())
            .bind(position)
            .execute(&mut *transaction)
            .await?;
        let row = sqlx::query(
            "INSERT INTO rules (id, account, position, name, host, url_pattern, extensions, directory, priority,
                                created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING *",
        )
        .bind(DownloadId::new_random().to_string())
        .bind(new.account.as_str())
        .bind(position)
        .bind(&new.name)
        .bind(&new.host)
        .bind(&new.url_pattern)
        .bind(extensions_to_db(&new.extensions))
        .bind(&new.directory)
        .bind(new.priority.map(i64::from))
        .bind(now_millis())
        .fetch_one(&mut *transaction)
        .await?;
        transaction.commit().await?;
        rule_from_row(&row)
    }

    async fn list_rules(&self, account: &AccountId) -> Result<Vec<RuleRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM rules WHERE account = ?1 ORDER BY position, created_at, id")
            .bind(account.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rule_from_row).collect()
    }

    async fn rule(&self, account: &AccountId, id: &str) -> Result<RuleRecord, StoreError> {
        let row = sqlx::query("SELECT * FROM rules WHERE id = ?1 AND account = ?2")
            .bind(id)
            .bind(account.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| rule_not_found(id))?;
        rule_from_row(&row)
    }

    async fn update_rule(&self, account: &AccountId, id: &str, patch: &RulePatch) -> Result<RuleRecord, StoreError> {
        let mut transaction = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query("SELECT * FROM rules WHERE id = ?1 AND account = ?2")
            .bind(id)
            .bind(account.as_str())
            .fetch_optional(&mut *transaction)
            .await?
            .ok_or_else(|| rule_not_found(id))?;
        let before = rule_from_row(&row)?;
        let from = i64::from(before.position);
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rules WHERE account = ?1")
            .bind(account.as_str())
            .fetch_one(&mut *transaction)
            .await?;
        let to = if patch.position.is_some() { rule_position(patch.position, count) } else { from };
        // The rules between the old place and the new one shift by one toward the old place.
        let (low, high, step) = if to < from { (to, from - 1, 1) } else { (from + 1, to, -1) };
        sqlx::query("UPDATE rules SET position = position + ?1 WHERE account = ?2 AND position BETWEEN ?3 AND ?4")
            .bind(step)
            .bind(account.as_str())
            .bind(low)
            .bind(high)
            .execute(&mut *transaction)
            .await?;
        let name = patch.name.clone().unwrap_or(before.name);
        let row = sqlx::query("UPDATE rules SET position = ?1, name = ?2 WHERE id = ?3 RETURNING *")
            .bind(to)
            .bind(name)
            .bind(id)
            .fetch_one(&mut *transaction)
            .await?;
        transaction.commit().await?;
        rule_from_row(&row)
    }

    async fn delete_rule(&self, account: &AccountId, id: &str) -> Result<RuleRecord, StoreError> {
        let mut transaction = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query("DELETE FROM rules WHERE id = ?1 AND account = ?2 RETURNING *")
            .bind(id)
            .bind(account.as_str())
            .fetch_optional(&mut *transaction)
            .await?
            .ok_or_else(|| rule_not_found(id))?;
        let removed = rule_from_row(&row)?;
        sqlx::query("UPDATE rules SET position = position - 1 WHERE account = ?1 AND position > ?2")
            .bind(account.as_str())
            .bind(i64::from(removed.position))
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(removed)
    }

    async fn record_archive(&self, new: &NewArchiveEntry) -> Result<ArchiveRecord, StoreError> {
        let row = sqlx::query(
            "INSERT INTO archive (id, account, extractor, video_id, url, title, download, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (account, extractor, video_id) DO UPDATE
                 SET url = excluded.url, title = excluded.title, download = excluded.download,
                     created_at = excluded.created_at
             RETURNING *",
        )
        .bind(DownloadId::new_random().to_string())
        .bind(new.account.as_str())
        .bind(&new.extractor)
        .bind(&new.video_id)
        .bind(&new.url)
        .bind(&new.title)
        .bind(new.download.map(|id| id.to_string()))
        .bind(now_millis())
        .fetch_one(&self.pool)
        .await?;
        archive_from_row(&row)
    }

    async fn archive_entry(
        &self,
        account: &AccountId,
        extractor: &str,
        video_id: &str,
    ) -> Result<Option<ArchiveRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM archive WHERE account = ?1 AND extractor = ?2 AND video_id = ?3")
            .bind(account.as_str())
            .bind(extractor)
            .bind(video_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(archive_from_row).transpose()
    }

    async fn archive_by_url(&self, account: &AccountId, url: &str) -> Result<Vec<ArchiveRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM archive WHERE url = ?2 AND account = ?1 ORDER BY created_at DESC, id")
            .bind(account.as_str())
            .bind(url)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(archive_from_row).collect()
    }

    async fn list_archive(
        &self,
        account: &AccountId,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<ArchiveRecord>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM archive WHERE account = ?1 ORDER BY created_at DESC, id LIMIT ?2 OFFSET ?3")
                .bind(account.as_str())
                .bind(i64::from(limit))
                .bind(i64::from(offset))
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(archive_from_row).collect()
    }

    async fn count_archive(&self, account: &AccountId) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM archive WHERE account = ?1")
            .bind(account.as_str())
            .fetch_one(&self.pool)
            .await?;
        from_db(count, "count")
    }

    async fn delete_archive_entry(&self, account: &AccountId, id: &str) -> Result<ArchiveRecord, StoreError> {
        let row = sqlx::query("DELETE FROM archive WHERE id = ?1 AND account = ?2 RETURNING *")
            .bind(id)
            .bind(account.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| archive_not_found(id))?;
        archive_from_row(&row)
    }

    async fn clear_archive(&self, account: &AccountId) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM archive WHERE account = ?1").bind(account.as_str()).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    async fn put_cookies(&self, account: &AccountId, cookies: &[CookieRecord]) -> Result<(), StoreError> {
        let mut transaction = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let domains: std::collections::BTreeSet<&str> = cookies.iter().map(|cookie| cookie.domain.as_str()).collect();
        for domain in domains {
            sqlx::query("DELETE FROM cookies WHERE account = ?1 AND domain = ?2")
                .bind(account.as_str())
                .bind(domain)
                .execute(&mut *transaction)
                .await?;
        }
        let now = now_millis();
        for cookie in cookies {
            // A file may name a cookie twice; the later line wins, as a browser reading it would keep.
            sqlx::query(
                "INSERT INTO cookies (account, domain, subdomains, path, secure, http_only, expires, name, value,
                                      created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (account, domain, path, name) DO UPDATE
                     SET subdomains = excluded.subdomains, secure = excluded.secure, http_only = excluded.http_only,
                         expires = excluded.expires, value = excluded.value",
            )
            .bind(account.as_str())
            .bind(&cookie.domain)
            .bind(cookie.subdomains)
            .bind(&cookie.path)
            .bind(cookie.secure)
            .bind(cookie.http_only)
            .bind(cookie.expires.map(to_db))
            .bind(&cookie.name)
            .bind(&cookie.value)
            .bind(now)
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    async fn cookies(&self, account: &AccountId) -> Result<Vec<CookieRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM cookies WHERE account = ?1 ORDER BY domain, path, name")
            .bind(account.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(cookie_from_row).collect()
    }

    async fn delete_cookies(&self, account: &AccountId, domain: Option<&str>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM cookies WHERE account = ?1 AND (?2 IS NULL OR domain = ?2)")
            .bind(account.as_str())
            .bind(domain)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

/// The database file, created (or made) readable by its owner only: it holds job headers (cookies, tokens) and
/// key hashes. SQLite gives the `-wal` and `-shm` files it makes beside it the database file's mode.
fn owner_only(path: &Path) -> std::io::Result<()> {
    if path.as_os_str().is_empty() || path == Path::new(":memory:") {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path)?;
        for file in [path.to_owned(), sibling(path, "-wal"), sibling(path, "-shm")] {
            match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(unix)]
fn sibling(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// Inserts a new download, `queued` (or `paused`), with a fresh id.
async fn insert_download<'e, E>(executor: E, new: &NewDownload) -> Result<DownloadRecord, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    let id = DownloadId::new_random();
    let state = if new.start_paused { JobState::Paused } else { JobState::Queued };
    let row = sqlx::query(
        "INSERT INTO downloads (id, account, url, mirrors, kind, state, priority, filename, directory, checksum,
             headers, connections_limit, speed_limit, created_at, title, quality, meta, creator, thumbnail_at,
             require_signed_urls, name_with_id, parent_id, playlist_index, playlist_item, playlist_items, name_template,
             media_options, check_archive)
         VALUES (?1, ?2, ?3, ?4, ?16, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?17, ?18, ?19, ?20, ?21, ?22,
                 ?23, ?24, ?25, ?26, ?27, ?28)
         RETURNING *",
    )
    .bind(id.to_string())
    .bind(new.account.as_str())
    .bind(&new.url)
    .bind(to_json(&new.mirrors)?)
    .bind(state.as_str())
    .bind(new.priority)
    .bind(&new.filename)
    .bind(&new.directory)
    .bind(&new.checksum)
    .bind(to_json(&new.headers)?)
    .bind(new.connections_limit)
    .bind(new.speed_limit.map(to_db))
    .bind(now_millis())
    .bind(&new.title)
    .bind(new.quality.to_string())
    .bind(new.kind.as_str())
    .bind(meta_to_db(&new.labels)?)
    .bind(&new.labels.creator)
    .bind(new.labels.thumbnail_at)
    .bind(new.labels.require_signed_urls)
    .bind(new.name_with_id)
    .bind(new.parent.map(|parent| parent.to_string()))
    .bind(new.playlist_index)
    .bind(new.playlist_item)
    .bind(&new.playlist_items)
    .bind(&new.name_template)
    .bind(media_choice_to_db(&new.media)?)
    .bind(new.check_archive)
    .fetch_one(executor)
    .await?;
    record_from_row(&row)
}

/// What a [`ListFilter`] keeps, as SQL over parameters ?1 to ?9 ([`bind_list_filter`]); a condition whose
/// parameter is NULL holds for every row.
const LIST_CONDITIONS: &str = "account = ?1
    AND (?2 IS NULL OR state IN (SELECT value FROM json_each(?2)))
    AND (?3 IS NULL OR id IN (SELECT value FROM json_each(?3)))
    AND (?4 IS NULL OR instr(lower(COALESCE(title, '') || char(10) || COALESCE(filename, '') || char(10) || url),
                             lower(?4)) > 0)
    AND (?5 IS NULL OR title = ?5)
    AND (?6 IS NULL OR creator = ?6)
    AND (?7 IS NULL OR created_at >= ?7)
    AND (?8 IS NULL OR created_at < ?8)
    AND (?9 IS NULL OR parent_id = ?9)";

type Query<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

fn bind_list_filter<'q>(query: Query<'q>, account: &AccountId, filter: &ListFilter) -> Result<Query<'q>, StoreError> {
    let states: Vec<&str> = filter.states.iter().map(|state| state.as_str()).collect();
    let ids: Vec<String> = filter.ids.iter().map(ToString::to_string).collect();
    Ok(query
        .bind(account.as_str().to_owned())
        .bind((!states.is_empty()).then(|| to_json(&states)).transpose()?)
        .bind((!ids.is_empty()).then(|| to_json(&ids)).transpose()?)
        .bind(filter.search.clone())
        .bind(filter.title.clone())
        .bind(filter.creator.clone())
        .bind(filter.created_from)
        .bind(filter.created_before)
        .bind(filter.parent.map(|parent| parent.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_absolute_and_relative_files() {
        for (url, file) in
            [("sqlite:///var/lib/haul/haul.db", "/var/lib/haul/haul.db"), ("sqlite://haul.db", "haul.db")]
        {
            let options = SqliteConnectOptions::from_str(url).unwrap();
            assert_eq!(options.get_filename(), Path::new(file), "{url}");
        }
    }
}
