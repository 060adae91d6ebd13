//! The PostgreSQL backend: one database shared by every haul node, the migrations in `migrations/postgres`
//! applied at open (under sqlx's advisory lock, so nodes starting together migrate once).
//!
//! PostgreSQL does the coordination. Single-row changes are compare-and-set `UPDATE ... WHERE state = $n`, as on
//! SQLite. `claim_next` picks its row with `SELECT ... FOR UPDATE SKIP LOCKED`, so nodes claiming at the same
//! moment each get a different row without waiting on each other, and re-checks the row's state under the
//! lock. Events are numbered under an advisory lock and announced with `NOTIFY haul_events` (see
//! `migrations/postgres/0001_init.sql`).
//!
//! The pool: [`POOL_SIZE`] connections per node (a node's writers are its running downloads' reports, one a
//! second each, its claims, and its API requests; PostgreSQL's default limit of 100 connections then allows
//! about five nodes with room for `psql`), [`ACQUIRE_TIMEOUT`] to get one. Each connection is checked before
//! use, so after the server restarts the first query does not fail on a dead socket; while it is down, calls
//! fail after the timeout, claims pause (the scheduler retries) and nothing accepted is lost, since a job is
//! accepted only once its row is committed.

use std::time::Duration;

use async_trait::async_trait;
use haul_core::account::KeyKind;
use haul_core::job::{AccountId, DownloadId, JobAction, JobState, next_state};
use haul_core::media::{RenditionName, RenditionState};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions};
use sqlx::{Connection as _, Row, migrate::MigrateError};
use tokio::sync::Mutex;

use crate::accounts::{Account, ApiKey};
use crate::rows::{
    account_from_row, attempt_columns, delivery_from_row, due_deliveries, due_from_row, duration_millis,
    ended_from_row, events_to_db, extensions_to_db, from_db, key_from_row, lease_lost, media_choice_to_db, meta_to_db,
    node_from_row, not_found, now_millis, parse_column, parse_state, playlist_totals_from_row, record_from_row,
    rendition_from_row, rule_from_row, rule_not_found, rule_position, state_list, to_db, to_json, webhook_from_row,
    webhook_not_found,
};
use crate::rows::{archive_from_row, archive_not_found, cookie_from_row};
use crate::{
    ArchiveRecord, CookieRecord, CreatedOnce, DeliveryAttempt, DeliveryRecord, DownloadPatch, DownloadRecord,
    DueDelivery, ListFilter, MediaUpdate, NewArchiveEntry, NewDownload, NewRule, NewWebhook, NodeBeat, NodeRecord,
    PlaylistTotals, ProgressUpdate, Rendition, RenditionUpdate, RulePatch, RuleRecord, StateCounts, Store, StoreError,
    StoredEvent, WebhookRecord,
};

/// Connections per node.
pub const POOL_SIZE: u32 = 16;
/// How long a call waits for a connection (including making one) before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// A statement running longer than this is stuck (every statement haul runs takes milliseconds).
const STATEMENT_TIMEOUT: &str = "30s";
/// See `SqliteStore`: how often `apply` re-reads and retries when another writer won the race.
const CAS_ATTEMPTS: usize = 8;
/// How often a claim picks again when the row it picked was taken between its pick and its write.
const CLAIM_ATTEMPTS: usize = 4;
/// Queued jobs per account a claim considers: the head and a few behind it, so a node whose neighbour holds
/// the head's lock (claiming it this instant) takes the next one instead of coming back empty.
const CLAIM_DEPTH: i64 = 8;
/// The channel `append_events` notifies.
const EVENTS_CHANNEL: &str = "haul_events";
/// PostgreSQL's SQLSTATE for a transaction it failed to break a deadlock.
const DEADLOCK: &str = "40P01";
/// The advisory lock (an arbitrary 64-bit key) under which events are numbered.
const EVENTS_LOCK: i64 = 0x6861_756c_0001;

/// A [`Store`] on a PostgreSQL database.
pub struct PgStore {
    pool: PgPool,
    /// Opened on the first `wait_events` (only nodes that serve events listen).
    listener: Mutex<Option<PgListener>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("PgStore").field("pool", &self.pool).finish_non_exhaustive()
    }
}

impl PgStore {
    /// Opens `postgres://user:password@host:port/database` (sqlx's URL, with its query options) and migrates it.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let shown = crate::shown_url(url);
        let options: PgConnectOptions =
            url.parse().map_err(|error| StoreError::caused(format!("invalid PostgreSQL url {shown}"), error))?;
        let options =
            options.application_name("haul").options([("statement_timeout", STATEMENT_TIMEOUT), ("TimeZone", "UTC")]);
        // One connection first, for its error: the pool would only say that it timed out.
        let cannot_connect = |error| {
            StoreError::caused(
                format!(
                    "cannot connect to {shown} (check the URL, that PostgreSQL runs there, and that the database exists)"
                ),
                error,
            )
        };
        PgConnection::connect_with(&options).await.map_err(cannot_connect)?.close().await.ok();
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .min_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(true)
            .connect_with(options)
            .await
            .map_err(cannot_connect)?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|error: MigrateError| StoreError::caused(format!("cannot migrate {shown}"), error))?;
        // Event numbers go on from the clock in microseconds, as a SQLite server's do, so a client that
        // reconnects with an id from before (another backend, a database made afresh) is not left waiting for the
        // numbers to catch up with it. Under the numbering lock, so no event is numbered meanwhile.
        let mut transaction = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(EVENTS_LOCK).execute(&mut *transaction).await?;
        sqlx::query(
            "SELECT setval('events_id', GREATEST((SELECT last_value FROM events_id),
                                                 (extract(epoch FROM clock_timestamp()) * 1000000)::bigint))",
        )
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(Self { pool, listener: Mutex::new(None) })
    }

    async fn current_state(&self, id: DownloadId) -> Result<JobState, StoreError> {
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM downloads WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        parse_state(state.ok_or_else(|| not_found(id))?, id)
    }

    async fn owned_state(&self, account: &AccountId, id: DownloadId) -> Result<JobState, StoreError> {
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM downloads WHERE id = $1 AND account = $2")
            .bind(id.to_string())
            .bind(account.as_str())
            .fetch_optional(&self.pool)
            .await?;
        parse_state(state.ok_or_else(|| not_found(id))?, id)
    }

    /// Moves `node`'s active downloads to `to` and drops their leases, retrying when PostgreSQL breaks a
    /// deadlock by failing this transaction.
    async fn release_node(&self, node: &str, to: JobState) -> Result<u64, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.release_node_once(node, to).await {
                Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some(DEADLOCK) && attempt < 4 => {}
                result => return Ok(result?),
            }
        }
    }

    /// One try of `release_node`. Locks are taken in the order every writer takes them: the downloads rows first
    /// (a change of state locks its row, then its counts through the trigger), then every counts row the update
    /// will move, in the migration's order: row by row, two nodes releasing downloads of the same accounts in
    /// different orders would each hold counts the other waits for.
    async fn release_node_once(&self, node: &str, to: JobState) -> Result<u64, sqlx::Error> {
        let mut transaction = self.pool.begin().await?;
        sqlx::query("SELECT seq FROM downloads WHERE state = 'active' AND lease_owner = $1 ORDER BY seq FOR UPDATE")
            .bind(node)
            .execute(&mut *transaction)
            .await?;
        sqlx::query(
            "SELECT 1 FROM download_counts
             WHERE account IN (SELECT account FROM downloads WHERE state = 'active' AND lease_owner = $1)
               AND state IN ('active', $2)
             ORDER BY account, state
             FOR UPDATE",
        )
        .bind(node)
        .bind(to.as_str())
        .execute(&mut *transaction)
        .await?;
        let done = sqlx::query(
            "UPDATE downloads SET
                 state = $2, lease_owner = NULL, lease_expires = NULL, speed = 0, eta_secs = NULL, connections = 0
             WHERE state = 'active' AND lease_owner = $1",
        )
        .bind(node)
        .bind(to.as_str())
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(done.rows_affected())
    }

    async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query("SELECT id, kind, account, payload FROM events WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredEvent {
                    id: row.try_get("id")?,
                    kind: row.try_get("kind")?,
                    account: row.try_get("account")?,
                    payload: row.try_get("payload")?,
                })
            })
            .collect()
    }

    /// One claim attempt, in one transaction: count the node's live leases, pick and lock a row, write the lease.
    async fn try_claim(&self, node: &str, lease: Duration, max_active: usize) -> Result<Claim, StoreError> {
        let mut transaction = self.pool.begin().await?;
        let now = now_millis();
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM downloads WHERE state = 'active' AND lease_owner = $1 AND lease_expires > $2",
        )
        .bind(node)
        .bind(now)
        .fetch_one(&mut *transaction)
        .await?;
        if usize::try_from(live).unwrap_or(usize::MAX) >= max_active {
            transaction.rollback().await?;
            return Ok(Claim::Nothing);
        }
        // The same choice as SQLite's (fewest running for the account, then priority, then age) over the first
        // few queued rows of each account and the active rows whose lease ran out. FOR UPDATE SKIP LOCKED locks
        // the first of those, in that order, that no other node is locking, and re-reads it: a row another node
        // claimed and committed meanwhile no longer passes the WHERE and is passed over.
        let seq: Option<i64> = sqlx::query_scalar(
            "WITH running AS (
                 SELECT account, COUNT(*) AS n FROM downloads
                 WHERE state = 'active' AND lease_expires > $1
                 GROUP BY account
             ), candidates AS (
                 SELECT head.seq FROM download_counts c
                 CROSS JOIN LATERAL (
                     SELECT q.seq FROM downloads q
                     WHERE q.account = c.account AND q.state = 'queued' AND q.kind <> 'playlist'
                     ORDER BY q.priority DESC, q.created_at, q.seq
                     LIMIT $2
                 ) head
                 WHERE c.state = 'queued' AND c.n > 0
                 UNION ALL
                 SELECT seq FROM downloads
                 WHERE state = 'active' AND (lease_expires IS NULL OR lease_expires <= $1) AND kind <> 'playlist'
             )
             SELECT d.seq FROM downloads d
             JOIN candidates ON candidates.seq = d.seq
             LEFT JOIN running r ON r.account = d.account
             WHERE d.kind <> 'playlist'
               AND (d.state = 'queued' OR (d.state = 'active' AND (d.lease_expires IS NULL OR d.lease_expires <= $1)))
             ORDER BY COALESCE(r.n, 0), d.priority DESC, d.created_at, d.seq
             LIMIT 1
             FOR UPDATE OF d SKIP LOCKED",
        )
        .bind(now)
        .bind(CLAIM_DEPTH)
        .fetch_optional(&mut *transaction)
        .await?;
        let Some(seq) = seq else {
            transaction.rollback().await?;
            return Ok(Claim::Nothing);
        };
        let row = sqlx::query(
            "UPDATE downloads SET
                 state = 'active', lease_owner = $2, lease_expires = $3, started_at = COALESCE(started_at, $4),
                 speed = 0, eta_secs = NULL, connections = 0
             WHERE seq = $1 AND kind <> 'playlist'
               AND (state = 'queued' OR (state = 'active' AND (lease_expires IS NULL OR lease_expires <= $4)))
             RETURNING *",
        )
        .bind(seq)
        .bind(node)
        .bind(now.saturating_add(duration_millis(lease)))
        .bind(now)
        .fetch_optional(&mut *transaction)
        .await?;
        transaction.commit().await?;
        match row {
            Some(row) => Ok(Claim::Claimed(Box::new(record_from_row(&row)?))),
            None => Ok(Claim::Raced),
        }
    }
}

/// The outcome of one claim attempt.
enum Claim {
    Claimed(Box<DownloadRecord>),
    /// Nothing runnable, or the node is full.
    Nothing,
    /// The picked row changed under the lock; pick again.
    Raced,
}

#[async_trait]
impl Store for PgStore {
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
        let now = now_millis();
        let account = new.account.as_str();
        let mut transaction = self.pool.begin().await?;
        // Claims the key (a new one, or one whose window has passed): a concurrent claim of the same key waits
        // here on the primary key until this transaction ends, then finds it taken.
        let claimed = sqlx::query(
            "INSERT INTO idempotency AS i (account, key, fingerprint, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (account, key) DO UPDATE
                 SET fingerprint = EXCLUDED.fingerprint, created_at = EXCLUDED.created_at, download_id = NULL
                 WHERE i.created_at <= $5
             RETURNING 1",
        )
        .bind(account)
        .bind(key)
        .bind(fingerprint)
        .bind(now)
        .bind(now.saturating_sub(duration_millis(window)))
        .fetch_optional(&mut *transaction)
        .await?;
        if claimed.is_none() {
            transaction.rollback().await?;
            let row = sqlx::query(
                "SELECT i.fingerprint, i.created_at AS bound_at, d.* FROM idempotency i
                 JOIN downloads d ON d.id = i.download_id
                 WHERE i.account = $1 AND i.key = $2",
            )
            .bind(account)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::other(format!("the idempotency key {key:?} changed hands; try again")))?;
            if row.try_get::<String, _>("fingerprint")? != fingerprint {
                return Ok(CreatedOnce::KeyReused { created_at: row.try_get("bound_at")? });
            }
            return Ok(CreatedOnce::Replayed(record_from_row(&row)?));
        }
        let record = insert_download(&mut *transaction, &new).await?;
        sqlx::query("UPDATE idempotency SET download_id = $3 WHERE account = $1 AND key = $2")
            .bind(account)
            .bind(key)
            .bind(record.id.to_string())
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(CreatedOnce::Created(record))
    }

    async fn get(&self, account: &AccountId, id: DownloadId) -> Result<DownloadRecord, StoreError> {
        let row = sqlx::query("SELECT * FROM downloads WHERE id = $1 AND account = $2")
            .bind(id.to_string())
            .bind(account.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found(id))?;
        record_from_row(&row)
    }

    async fn list(&self, account: &AccountId, filter: &ListFilter) -> Result<Vec<DownloadRecord>, StoreError> {
        let order = if filter.oldest_first { "ASC" } else { "DESC" };
        // LIMIT NULL is no limit.
        let sql = format!(
            "SELECT * FROM downloads WHERE {LIST_CONDITIONS}
             ORDER BY created_at {order}, seq {order}
             LIMIT $10 OFFSET $11"
        );
        let rows = bind_list_filter(sqlx::query(&sql), account, filter)
            .bind(filter.limit.map(i64::from))
            .bind(i64::from(filter.offset))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(record_from_row).collect()
    }

    async fn count(&self, account: &AccountId, filter: &ListFilter) -> Result<u64, StoreError> {
        let sql = format!("SELECT COUNT(*) AS n FROM downloads WHERE {LIST_CONDITIONS}");
        let row = bind_list_filter(sqlx::query(&sql), account, filter).fetch_one(&self.pool).await?;
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
                     state = $1,
                     error = $2,
                     started_at = CASE WHEN $1 = 'active' THEN COALESCE(started_at, $3) ELSE started_at END,
                     finished_at = $4,
                     held_by = CASE WHEN $1 = 'completed' THEN lease_owner ELSE held_by END,
                     lease_owner = CASE WHEN $1 = 'active' THEN lease_owner END,
                     lease_expires = CASE WHEN $1 = 'active' THEN lease_expires END,
                     speed = CASE WHEN $1 = 'active' THEN speed ELSE 0 END,
                     eta_secs = CASE WHEN $1 = 'active' THEN eta_secs END,
                     connections = CASE WHEN $1 = 'active' THEN connections ELSE 0 END
                 WHERE id = $5 AND account = $6 AND state = $7
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
        for _ in 0..CLAIM_ATTEMPTS {
            match self.try_claim(node, lease, max_active).await? {
                Claim::Claimed(record) => return Ok(Some(*record)),
                Claim::Nothing => return Ok(None),
                Claim::Raced => {}
            }
        }
        // Lost every race: others are claiming fast; the scheduler comes back on its next wake.
        Ok(None)
    }

    async fn record_progress(&self, id: DownloadId, progress: &ProgressUpdate) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE downloads SET
                 bytes_done = $1,
                 size = COALESCE($2, size),
                 filename = COALESCE($3, filename),
                 path = COALESCE($4, path),
                 speed = CASE WHEN state = 'active' THEN $5 ELSE 0 END,
                 eta_secs = CASE WHEN state = 'active' THEN $6 END,
                 connections = CASE WHEN state = 'active' THEN $7 ELSE 0 END
             WHERE id = $8",
        )
        .bind(to_db(progress.bytes_done))
        .bind(progress.size.map(to_db))
        .bind(&progress.filename)
        .bind(&progress.path)
        .bind(to_db(progress.speed))
        .bind(progress.eta_secs.map(to_db))
        .bind(i64::from(progress.connections))
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
                 lease_expires = $1,
                 bytes_done = $2,
                 size = COALESCE($3, size),
                 filename = COALESCE($4, filename),
                 path = COALESCE($5, path),
                 speed = $6,
                 eta_secs = $7,
                 connections = $8
             WHERE id = $9 AND state = 'active' AND lease_owner = $10
             RETURNING *",
        )
        .bind(now_millis().saturating_add(duration_millis(lease)))
        .bind(to_db(progress.bytes_done))
        .bind(progress.size.map(to_db))
        .bind(&progress.filename)
        .bind(&progress.path)
        .bind(to_db(progress.speed))
        .bind(progress.eta_secs.map(to_db))
        .bind(i64::from(progress.connections))
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
                 state = 'completed', error = NULL, finished_at = $3, held_by = $2, lease_owner = NULL,
                 lease_expires = NULL, speed = 0, eta_secs = NULL, connections = 0
             WHERE id = $1 AND state = 'active' AND lease_owner = $2
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
        let mut transaction = self.pool.begin().await?;
        // The kind first: the trigger keeps only a `playlist`'s state, as each child goes in.
        let held = sqlx::query(
            "UPDATE downloads SET kind = 'playlist', title = COALESCE(title, $3), playlist_skipped = $4, lease_owner = NULL,
                 lease_expires = NULL, speed = 0, eta_secs = NULL, connections = 0
             WHERE id = $1 AND state = 'active' AND lease_owner = $2",
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
        let row = sqlx::query("SELECT * FROM downloads WHERE id = $1")
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
                 COUNT(*) FILTER (WHERE state = 'completed') AS completed,
                 COUNT(*) FILTER (WHERE state = 'failed') AS failed,
                 COUNT(*) FILTER (WHERE state = 'cancelled') AS cancelled,
                 SUM(bytes_done)::BIGINT AS bytes_done,
                 CASE WHEN COUNT(size) = COUNT(*) THEN SUM(size)::BIGINT END AS size
             FROM downloads
             WHERE account = $1 AND parent_id = ANY($2)
             GROUP BY parent_id",
        )
        .bind(account.as_str())
        .bind(ids)
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
        let row = sqlx::query(
            "UPDATE downloads SET url = COALESCE($1, url), priority = COALESCE($2, priority),
                 title = COALESCE($10, title),
                 meta = CASE WHEN $5 THEN $6 ELSE meta END,
                 creator = CASE WHEN $5 THEN $7 ELSE creator END,
                 thumbnail_at = CASE WHEN $5 THEN $8 ELSE thumbnail_at END,
                 require_signed_urls = CASE WHEN $5 THEN $9 ELSE require_signed_urls END,
                 speed_limit = CASE WHEN $11 THEN $12 ELSE speed_limit END
             WHERE id = $3 AND account = $4 AND ($1::text IS NULL OR state IN ('paused', 'failed'))
             RETURNING *",
        )
        .bind(&patch.url)
        .bind(patch.priority.map(i64::from))
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
        let row = sqlx::query("DELETE FROM downloads WHERE id = $1 AND account = $2 RETURNING *")
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
             WHERE strpos($1, ',' || state || ',') > 0 AND finished_at IS NOT NULL AND finished_at < $2
             ORDER BY finished_at LIMIT $3",
        )
        .bind(state_list(states))
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ended_from_row).collect()
    }

    async fn counts(&self, account: Option<&AccountId>) -> Result<StateCounts, StoreError> {
        let rows = sqlx::query(
            "SELECT state, SUM(n)::BIGINT AS n FROM download_counts WHERE $1::text IS NULL OR account = $1
             GROUP BY state",
        )
        .bind(account.map(AccountId::as_str))
        .fetch_all(&self.pool)
        .await?;
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
        self.owned_state(account, id).await?;
        sqlx::query(
            "INSERT INTO renditions (download_id, name, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (download_id, name) DO UPDATE SET state = 'pending', percent = 0, error = NULL
                 WHERE renditions.state = 'failed'",
        )
        .bind(id.to_string())
        .bind(name.as_str())
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT * FROM renditions WHERE download_id = $1 AND name = $2")
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
                 state = COALESCE($3, state), percent = COALESCE($4, percent), path = COALESCE($5, path),
                 error = CASE WHEN $3::text IS NULL THEN error ELSE $6 END
             WHERE download_id = $1 AND name = $2",
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
                 kind = COALESCE($2, kind), title = COALESCE(title, $3), duration = COALESCE($4, duration),
                 width = COALESCE($5, width), height = COALESCE($6, height), format = COALESCE($7, format),
                 thumbnail = COALESCE($8, thumbnail), subtitles = COALESCE($9, subtitles)
             WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(update.kind.map(|kind| kind.as_str()))
        .bind(&update.title)
        .bind(update.duration)
        .bind(update.width.map(i64::from))
        .bind(update.height.map(i64::from))
        .bind(&update.format)
        .bind(&update.thumbnail)
        .bind(update.subtitles.as_ref().map(to_json).transpose()?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn renditions(&self, account: &AccountId, id: DownloadId) -> Result<Vec<Rendition>, StoreError> {
        self.owned_state(account, id).await?;
        let rows = sqlx::query("SELECT * FROM renditions WHERE download_id = $1 ORDER BY name")
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
        let rows = sqlx::query(
            "DELETE FROM renditions WHERE download_id = $1 AND ($2::text IS NULL OR name = $2) RETURNING *",
        )
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
        let inserted = sqlx::query("INSERT INTO accounts (id, name, email, created_at) VALUES ($1, $2, $3, $4)")
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
        sqlx::query(
            "INSERT INTO accounts (id, name, email, created_at)
             VALUES ($1, CASE WHEN EXISTS (SELECT 1 FROM accounts WHERE name = $2) THEN $2 || '-' || $1 ELSE $2 END,
                     NULL, $3)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id.as_str())
        .bind(name)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT * FROM accounts WHERE id = $1").bind(id.as_str()).fetch_one(&self.pool).await?;
        account_from_row(&row)
    }

    async fn account_by_name(&self, name: &str) -> Result<Account, StoreError> {
        let row = sqlx::query("SELECT * FROM accounts WHERE name = $1").bind(name).fetch_optional(&self.pool).await?;
        match row {
            Some(row) => account_from_row(&row),
            None => Err(StoreError::NotFound(format!("account {name:?}"))),
        }
    }

    async fn account(&self, id: &AccountId) -> Result<Account, StoreError> {
        let row =
            sqlx::query("SELECT * FROM accounts WHERE id = $1").bind(id.as_str()).fetch_optional(&self.pool).await?;
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
             VALUES ($1, $2, $3, $4, $5, $6)",
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
        let rows =
            sqlx::query("SELECT * FROM api_keys WHERE $1::text IS NULL OR account_id = $1 ORDER BY created_at, id")
                .bind(account.map(AccountId::as_str))
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn revoke_key(&self, id_prefix: &str) -> Result<ApiKey, StoreError> {
        let pattern = format!("{}%", id_prefix.replace(['%', '_', '\\'], ""));
        let rows = sqlx::query("SELECT * FROM api_keys WHERE id LIKE $1").bind(&pattern).fetch_all(&self.pool).await?;
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
        sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
            .bind(revoked_at)
            .bind(&key.id)
            .execute(&self.pool)
            .await?;
        Ok(ApiKey { revoked_at: key.revoked_at.or(Some(revoked_at)), ..key })
    }

    async fn account_for_key(&self, secret_hash: &str, kinds: &[KeyKind]) -> Result<Option<AccountId>, StoreError> {
        let row = sqlx::query("SELECT account_id, kind FROM api_keys WHERE secret_hash = $1 AND revoked_at IS NULL")
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
        let row = sqlx::query("SELECT * FROM api_keys WHERE secret_hash = $1 AND revoked_at IS NULL")
            .bind(secret_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn create_session(&self, secret_hash: &str, key_id: &str, expires_at: i64) -> Result<(), StoreError> {
        let now = now_millis();
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1").bind(now).execute(&self.pool).await?;
        sqlx::query("INSERT INTO sessions (secret_hash, key_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
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
             WHERE s.secret_hash = $1 AND s.expires_at > $2 AND k.revoked_at IS NULL",
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
        sqlx::query("DELETE FROM sessions WHERE secret_hash = $1").bind(secret_hash).execute(&self.pool).await?;
        Ok(())
    }

    async fn shared_value(&self, name: &str, proposed: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(proposed)
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE name = $1").bind(name).fetch_one(&self.pool).await?)
    }

    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn put_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = $2")
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn heartbeat(&self, beat: &NodeBeat) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO nodes (id, advertise_url, version, started_at, last_seen) VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (id) DO UPDATE SET advertise_url = $2, version = $3, last_seen = $4",
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
                          WHERE d.state = 'active' AND d.lease_owner = n.id AND d.lease_expires > $1) AS active
             FROM nodes n ORDER BY n.last_seen DESC, n.id",
        )
        .bind(now_millis())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(node_from_row).collect()
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn create_webhook(&self, new: &NewWebhook) -> Result<WebhookRecord, StoreError> {
        let row = sqlx::query(
            "INSERT INTO webhooks (id, account, url, events, secret, created_at) VALUES ($1, $2, $3, $4, $5, $6)
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
        let rows = sqlx::query("SELECT * FROM webhooks WHERE account = $1 ORDER BY created_at, id")
            .bind(account.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(webhook_from_row).collect()
    }

    async fn webhook(&self, account: &AccountId, id: &str) -> Result<WebhookRecord, StoreError> {
        let row = sqlx::query("SELECT * FROM webhooks WHERE id = $1 AND account = $2")
            .bind(id)
            .bind(account.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| webhook_not_found(id))?;
        webhook_from_row(&row)
    }

    async fn delete_webhook(&self, account: &AccountId, id: &str) -> Result<WebhookRecord, StoreError> {
        let row = sqlx::query("DELETE FROM webhooks WHERE id = $1 AND account = $2 RETURNING *")
            .bind(id)
            .bind(account.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| webhook_not_found(id))?;
        webhook_from_row(&row)
    }

    async fn claim_deliveries(&self, node: &str, lease: Duration, limit: u32) -> Result<Vec<DueDelivery>, StoreError> {
        // SKIP LOCKED: nodes claiming at the same moment take different rows without waiting; a row locked by
        // another claimer is still pending, so the deliveries after it in its job stay blocked meanwhile.
        let now = now_millis();
        let rows = sqlx::query(&format!(
            "WITH picked AS (
                 SELECT d.seq FROM webhook_deliveries d
                 WHERE {}
                 ORDER BY d.seq
                 LIMIT $4
                 FOR UPDATE SKIP LOCKED
             )
             UPDATE webhook_deliveries d SET claimed_by = $2, claimed_until = $3
             FROM picked, webhooks w
             WHERE d.seq = picked.seq AND w.id = d.webhook
             RETURNING d.*, w.url AS webhook_url, w.secret AS webhook_secret",
            due_deliveries("$1")
        ))
        .bind(now)
        .bind(node)
        .bind(now.saturating_add(duration_millis(lease)))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut due = rows.iter().map(due_from_row).collect::<Result<Vec<_>, _>>()?;
        due.sort_by_key(|due| due.delivery.occurred_at);
        Ok(due)
    }

    async fn record_attempt(&self, id: &str, node: &str, attempt: &DeliveryAttempt) -> Result<bool, StoreError> {
        let now = now_millis();
        let (state, next_attempt_at, delivered_at) = attempt_columns(attempt, now);
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET
                 state = $1, attempts = attempts + 1, next_attempt_at = COALESCE($2, next_attempt_at),
                 last_status = $3, last_error = $4, delivered_at = $5, claimed_by = NULL, claimed_until = NULL
             WHERE id = $6 AND claimed_by = $7 AND state = 'pending'",
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
             WHERE claimed_by = $1 AND state = 'pending'",
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
        let rows = sqlx::query("SELECT * FROM webhook_deliveries WHERE webhook = $1 ORDER BY seq DESC LIMIT $2")
            .bind(webhook)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn prune_deliveries(&self, age: Duration) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM webhook_deliveries WHERE state <> 'pending' AND occurred_at < $1")
            .bind(now_millis().saturating_sub(duration_millis(age)))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    fn shared_by_nodes(&self) -> bool {
        true
    }

    async fn append_events(&self, events: &[(String, String, String)]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut transaction = self.pool.begin().await?;
        // Numbers are taken and committed one writer at a time, so they become visible in order.
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(EVENTS_LOCK).execute(&mut *transaction).await?;
        let kinds: Vec<&str> = events.iter().map(|(kind, _, _)| kind.as_str()).collect();
        let accounts: Vec<&str> = events.iter().map(|(_, account, _)| account.as_str()).collect();
        let payloads: Vec<&str> = events.iter().map(|(_, _, payload)| payload.as_str()).collect();
        sqlx::query(
            "INSERT INTO events (id, kind, account, payload, created_at)
             SELECT nextval('events_id'), kind, account, payload, $4
             FROM UNNEST($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS e (kind, account, payload, n)
             ORDER BY n",
        )
        .bind(&kinds)
        .bind(&accounts)
        .bind(&payloads)
        .bind(now_millis())
        .execute(&mut *transaction)
        .await?;
        sqlx::query("SELECT pg_notify($1, '')").bind(EVENTS_CHANNEL).execute(&mut *transaction).await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn latest_event_id(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events").fetch_one(&self.pool).await?)
    }

    async fn wait_events(&self, after: i64, limit: u32, wait: Duration) -> Result<Vec<StoredEvent>, StoreError> {
        let mut listener = self.listener.lock().await;
        if listener.is_none() {
            let mut fresh = PgListener::connect_with(&self.pool).await?;
            fresh.listen(EVENTS_CHANNEL).await?;
            *listener = Some(fresh);
        }
        let Some(active) = listener.as_mut() else { return Ok(Vec::new()) };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Notifications already waiting are for events the read below sees anyway; dropping them first keeps
            // them from ending the wait with nothing new.
            while active.next_buffered().is_some() {}
            // Read after listening, so an event appended in between is either read here or wakes the wait below.
            let found = self.events_after(after, limit).await?;
            if !found.is_empty() {
                return Ok(found);
            }
            match tokio::time::timeout_at(deadline, active.recv()).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    // The listener's connection failed and could not be made again: a new one next time.
                    *listener = None;
                    return Err(error.into());
                }
                // A notification lost with a dropped connection is made up for by this last read.
                Err(_) => return self.events_after(after, limit).await,
            }
        }
    }

    async fn prune_events(&self, age: Duration) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM events WHERE created_at < $1")
            .bind(now_millis().saturating_sub(duration_millis(age)))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn create_rule(&self, new: &NewRule) -> Result<RuleRecord, StoreError> {
        let mut transaction = self.pool.begin().await?;
        lock_rules(&mut transaction, &new.account).await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rules WHERE account = $1")
            .bind(new.account.as_str())
            .fetch_one(&mut *transaction)
            .await?;
        let position = rule_position(new.position, count + 1);
        sqlx::query("UPDATE rules SET position = position + 1 WHERE account = $1 AND position >= $2")
            .bind(new.account.as_str())
            .bind(position)
            .execute(&mut *transaction)
            .await?;
        let row = sqlx::query(
            "INSERT INTO rules (id, account, position, name, host, url_pattern, extensions, directory, priority,
                                created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *",
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
        let rows = sqlx::query("SELECT * FROM rules WHERE account = $1 ORDER BY position, created_at, id")
            .bind(account.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rule_from_row).collect()
    }

    async fn rule(&self, account: &AccountId, id: &str) -> Result<RuleRecord, StoreError> {
        let row = sqlx::query("SELECT * FROM rules WHERE id = $1 AND account = $2")
            .bind(id)
            .bind(account.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| rule_not_found(id))?;
        rule_from_row(&row)
    }

    async fn update_rule(&self, account: &AccountId, id: &str, patch: &RulePatch) -> Result<RuleRecord, StoreError> {
        let mut transaction = self.pool.begin().await?;
        lock_rules(&mut transaction, account).await?;
        let row = sqlx::query("SELECT * FROM rules WHERE id = $1 AND account = $2")
            .bind(id)
            .bind(account.as_str())
            .fetch_optional(&mut *transaction)
            .await?
            .ok_or_else(|| rule_not_found(id))?;
        let before = rule_from_row(&row)?;
        let from = i64::from(before.position);
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rules WHERE account = $1")
            .bind(account.as_str())
            .fetch_one(&mut *transaction)
            .await?;
        let to = if patch.position.is_some() { rule_position(patch.position, count) } else { from };
        // The rules between the old place and the new one shift by one toward the old place.
        let (low, high, step) = if to < from { (to, from - 1, 1) } else { (from + 1, to, -1) };
        sqlx::query("UPDATE rules SET position = position + $1 WHERE account = $2 AND position BETWEEN $3 AND $4")
            .bind(step)
            .bind(account.as_str())
            .bind(low)
            .bind(high)
            .execute(&mut *transaction)
            .await?;
        let name = patch.name.clone().unwrap_or(before.name);
        let row = sqlx::query("UPDATE rules SET position = $1, name = $2 WHERE id = $3 RETURNING *")
            .bind(to)
            .bind(name)
            .bind(id)
            .fetch_one(&mut *transaction)
            .await?;
        transaction.commit().await?;
        rule_from_row(&row)
    }

    async fn delete_rule(&self, account: &AccountId, id: &str) -> Result<RuleRecord, StoreError> {
        let mut transaction = self.pool.begin().await?;
        lock_rules(&mut transaction, account).await?;
        let row = sqlx::query("DELETE FROM rules WHERE id = $1 AND account = $2 RETURNING *")
            .bind(id)
            .bind(account.as_str())
            .fetch_optional(&mut *transaction)
            .await?
            .ok_or_else(|| rule_not_found(id))?;
        let removed = rule_from_row(&row)?;
        sqlx::query("UPDATE rules SET position = position - 1 WHERE account = $1 AND position > $2")
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
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
        let row = sqlx::query("SELECT * FROM archive WHERE account = $1 AND extractor = $2 AND video_id = $3")
            .bind(account.as_str())
            .bind(extractor)
            .bind(video_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(archive_from_row).transpose()
    }

    async fn archive_by_url(&self, account: &AccountId, url: &str) -> Result<Vec<ArchiveRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM archive WHERE url = $2 AND account = $1 ORDER BY created_at DESC, id")
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
            sqlx::query("SELECT * FROM archive WHERE account = $1 ORDER BY created_at DESC, id LIMIT $2 OFFSET $3")
                .bind(account.as_str())
                .bind(i64::from(limit))
                .bind(i64::from(offset))
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(archive_from_row).collect()
    }

    async fn count_archive(&self, account: &AccountId) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM archive WHERE account = $1")
            .bind(account.as_str())
            .fetch_one(&self.pool)
            .await?;
        from_db(count, "count")
    }

    async fn delete_archive_entry(&self, account: &AccountId, id: &str) -> Result<ArchiveRecord, StoreError> {
        let row = sqlx::query("DELETE FROM archive WHERE id = $1 AND account = $2 RETURNING *")
            .bind(id)
            .bind(account.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| archive_not_found(id))?;
        archive_from_row(&row)
    }

    async fn clear_archive(&self, account: &AccountId) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM archive WHERE account = $1").bind(account.as_str()).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    async fn put_cookies(&self, account: &AccountId, cookies: &[CookieRecord]) -> Result<(), StoreError> {
        let mut transaction = self.pool.begin().await?;
        let domains: std::collections::BTreeSet<&str> = cookies.iter().map(|cookie| cookie.domain.as_str()).collect();
        for domain in domains {
            sqlx::query("DELETE FROM cookies WHERE account = $1 AND domain = $2")
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
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
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
        let rows = sqlx::query("SELECT * FROM cookies WHERE account = $1 ORDER BY domain, path, name")
            .bind(account.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(cookie_from_row).collect()
    }

    async fn delete_cookies(&self, account: &AccountId, domain: Option<&str>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM cookies WHERE account = $1 AND ($2::text IS NULL OR domain = $2)")
            .bind(account.as_str())
            .bind(domain)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

/// Inserts a new download, `queued` (or `paused`), with a fresh id.
async fn insert_download<'e, E>(executor: E, new: &NewDownload) -> Result<DownloadRecord, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Postgres>,
{
    let id = DownloadId::new_random();
    let state = if new.start_paused { JobState::Paused } else { JobState::Queued };
    let row = sqlx::query(
        "INSERT INTO downloads (id, account, url, mirrors, kind, state, priority, filename, directory, checksum,
             headers, connections_limit, speed_limit, created_at, title, quality, meta, creator, thumbnail_at,
             require_signed_urls, name_with_id, parent_id, playlist_index, playlist_item, playlist_items, name_template,
             media_options, check_archive)
         VALUES ($1, $2, $3, $4, $16, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $17, $18, $19, $20, $21, $22,
                 $23, $24, $25, $26, $27, $28)
         RETURNING *",
    )
    .bind(id.to_string())
    .bind(new.account.as_str())
    .bind(&new.url)
    .bind(to_json(&new.mirrors)?)
    .bind(state.as_str())
    .bind(i64::from(new.priority))
    .bind(&new.filename)
    .bind(&new.directory)
    .bind(&new.checksum)
    .bind(to_json(&new.headers)?)
    .bind(new.connections_limit.map(i64::from))
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
    .bind(new.playlist_index.map(i64::from))
    .bind(new.playlist_item.map(i64::from))
    .bind(&new.playlist_items)
    .bind(&new.name_template)
    .bind(media_choice_to_db(&new.media)?)
    .bind(new.check_archive)
    .fetch_one(executor)
    .await?;
    record_from_row(&row)
}

/// What a [`ListFilter`] keeps, as SQL over parameters $1 to $9 ([`bind_list_filter`]); a condition whose
/// parameter is NULL holds for every row.
const LIST_CONDITIONS: &str = "account = $1
    AND ($2::text[] IS NULL OR state = ANY($2))
    AND ($3::text[] IS NULL OR id = ANY($3))
    AND ($4::text IS NULL OR strpos(lower(COALESCE(title, '') || chr(10) || COALESCE(filename, '') || chr(10) || url),
                                     lower($4)) > 0)
    AND ($5::text IS NULL OR title = $5)
    AND ($6::text IS NULL OR creator = $6)
    AND ($7::bigint IS NULL OR created_at >= $7)
    AND ($8::bigint IS NULL OR created_at < $8)
    AND ($9::text IS NULL OR parent_id = $9)";

type Query<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

fn bind_list_filter<'q>(query: Query<'q>, account: &AccountId, filter: &ListFilter) -> Query<'q> {
    let states: Vec<String> = filter.states.iter().map(|state| state.as_str().to_owned()).collect();
    let ids: Vec<String> = filter.ids.iter().map(ToString::to_string).collect();
    query
        .bind(account.as_str().to_owned())
        .bind((!states.is_empty()).then_some(states))
        .bind((!ids.is_empty()).then_some(ids))
        .bind(filter.search.clone())
        .bind(filter.title.clone())
        .bind(filter.creator.clone())
        .bind(filter.created_from)
        .bind(filter.created_before)
        .bind(filter.parent.map(|parent| parent.to_string()))
}

/// Serialises changes to one account's rules (their positions are renumbered together) across nodes, for the
/// rest of the transaction; other accounts' changes go on.
async fn lock_rules(transaction: &mut sqlx::PgConnection, account: &AccountId) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('haul rules ' || $1, 0))")
        .bind(account.as_str())
        .execute(transaction)
        .await?;
    Ok(())
}
